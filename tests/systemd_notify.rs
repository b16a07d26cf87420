//! systemd `Type=notify` protocol against a real `NOTIFY_SOCKET` datagram socket
//! (ARCHITECTURE.md, "Server"):
//! READY=1 once bound, RELOADING=1 + MONOTONIC_USEC then READY=1 around a SIGHUP reload,
//! WATCHDOG=1 pings when WATCHDOG_USEC is set, STOPPING=1 on SIGTERM, exit 0.

mod common;

use std::os::unix::net::UnixDatagram;
use std::time::{Duration, Instant};

fn recv_until(sock: &UnixDatagram, want: &str, seen: &mut Vec<String>) -> String {
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut buf = [0u8; 4096];
    while Instant::now() < deadline {
        match sock.recv(&mut buf) {
            Ok(n) => {
                let msg = String::from_utf8_lossy(&buf[..n]).to_string();
                seen.push(msg.clone());
                if msg.lines().any(|l| l == want) {
                    return msg;
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
            Err(e) if e.kind() == std::io::ErrorKind::TimedOut => {}
            Err(e) => panic!("recv: {e}"),
        }
    }
    panic!("no {want:?} within 20 s; messages so far: {seen:?}");
}

#[test]
fn notify_ready_reload_watchdog_stopping_in_order() {
    let sockdir = tempfile::tempdir().unwrap();
    let sock_path = sockdir.path().join("notify.sock");
    let sock = UnixDatagram::bind(&sock_path).unwrap();
    sock.set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();

    let mut d = common::Daemon::start_with(common::Options {
        env: vec![
            ("NOTIFY_SOCKET".into(), sock_path.display().to_string()),
            ("WATCHDOG_USEC".into(), "400000".into()),
        ],
        ..Default::default()
    });
    let mut seen = Vec::new();
    recv_until(&sock, "READY=1", &mut seen);
    recv_until(&sock, "WATCHDOG=1", &mut seen);

    d.signal("HUP");
    let reloading = recv_until(&sock, "RELOADING=1", &mut seen);
    assert!(
        reloading.lines().any(|l| l.starts_with("MONOTONIC_USEC=")),
        "RELOADING=1 comes with MONOTONIC_USEC: {reloading:?}"
    );
    recv_until(&sock, "READY=1", &mut seen);

    d.signal("TERM");
    recv_until(&sock, "STOPPING=1", &mut seen);
    let status = d.wait_exit(Duration::from_secs(20));
    assert!(status.success(), "exit status {status:?}\n{}", d.log_text());

    // Order: READY before RELOADING before the second READY before STOPPING.
    let pos = |pred: &dyn Fn(&str) -> bool, from: usize| {
        seen.iter()
            .skip(from)
            .position(|m| pred(m))
            .map(|p| p + from)
    };
    let r1 = pos(&|m| m.contains("READY=1"), 0).unwrap();
    let rl = pos(&|m| m.contains("RELOADING=1"), r1).unwrap();
    let r2 = pos(&|m| m.contains("READY=1"), rl).unwrap();
    let st = pos(&|m| m.contains("STOPPING=1"), r2).unwrap();
    assert!(r1 < rl && rl < r2 && r2 < st, "{seen:?}");
}
