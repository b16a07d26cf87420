//! The daemon as an admin sees it: startup errors, hot reload through the real binary,
//! connection caps, the generated certificate, clean exit on SIGTERM
//! (ARCHITECTURE.md, "Server", "Configuration and reload", "Limits").

mod common;

use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::time::Duration;

use common::{Daemon, Options};

fn read_line(s: &mut BufReader<TcpStream>) -> String {
    let mut l = String::new();
    s.read_line(&mut l).unwrap();
    l
}

fn connect(addr: std::net::SocketAddr) -> BufReader<TcpStream> {
    let s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    BufReader::new(s)
}

#[test]
fn invalid_config_refuses_to_start_with_file_line_column() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.toml");
    std::fs::write(
        &path,
        "[server]\ndata_dir = \"d\"\n[ParametersSystem]\n\"POP3 Protocol Logging Level\" = 9\n",
    )
    .unwrap();
    let out = std::process::Command::new(common::bin())
        .arg("--config")
        .arg(&path)
        .arg("run")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("bad.toml:4:"), "names file and line: {err}");
    assert!(
        err.contains("POP3 Protocol Logging Level"),
        "names the value: {err}"
    );
}

#[test]
fn sigterm_exits_zero_and_generates_certificate_once() {
    let mut d = Daemon::start();
    let cert = d.data_dir().join("tls").join("cert.pem");
    assert!(
        cert.exists(),
        "self-signed certificate generated in data_dir/tls"
    );
    let st = d.stop();
    assert!(st.success(), "{st:?}\n{}", d.log_text());
}

#[test]
fn reload_applies_valid_edits_rejects_invalid_ones_and_flags_restart_only_values() {
    let d = Daemon::start();
    // A valid edit: one value changes.
    d.rewrite_config(&Options {
        registry: "\"POP3 Protocol Logging Level\" = 3".into(),
        ..Default::default()
    });
    d.wait_log("applies at the next session start", Duration::from_secs(15));
    assert!(d.log_text().contains("POP3 Protocol Logging Level"));

    // An invalid edit is rejected whole, naming file:line:column; the running config stays.
    let path = d.config_path.clone();
    let good = std::fs::read_to_string(&path).unwrap();
    std::fs::write(&path, good.replace("= 3", "= 77")).unwrap();
    d.wait_log("mailserver.toml:", Duration::from_secs(15));
    let log = d.log_text();
    assert!(log.contains("77") || log.contains("0 through 5"), "{log}");

    // The next valid save is picked up.
    std::fs::write(&path, good.replace("= 3", "= 4")).unwrap();
    d.wait_log("-> 4", Duration::from_secs(15));

    // A listen address change needs a restart.
    let moved = good.replace("= 3", "= 4").replacen(
        "listen = [\"127.0.0.1:0\"]",
        "listen = [\"127.0.0.1:1\"]",
        1,
    );
    std::fs::write(&path, moved).unwrap();
    d.wait_log("needs a restart", Duration::from_secs(15));
}

#[test]
fn connection_cap_per_ip_refuses_with_a_reason() {
    let d = Daemon::start_with(Options {
        limits: "max_connections_per_ip = 1".into(),
        ..Default::default()
    });
    let addr = d.pop3.unwrap();
    let mut first = connect(addr);
    assert!(read_line(&mut first).starts_with("+OK"));
    let mut second = connect(addr);
    let l = read_line(&mut second);
    assert!(l.starts_with("-ERR [SYS/TEMP]"), "{l:?}");
    // Once the first leaves, a new connection is served.
    first.get_mut().write_all(b"QUIT\r\n").unwrap();
    let _ = read_line(&mut first);
    drop(first);
    // The slot is released when the first session has ended on the server's side.
    common::wait::wait_for(
        "the slot to be released after the first session ended",
        common::wait::WAIT,
        || {
            let mut c = connect(addr);
            let l = read_line(&mut c);
            if l.starts_with("+OK") {
                Ok(())
            } else {
                Err(l)
            }
        },
    );
}

#[test]
fn data_dir_change_needs_restart_and_default_log_path_stays_with_running_data_dir() {
    let d = Daemon::start();
    let text = common::config_text(
        d.dir.path(),
        &Options {
            registry: "\"POP3 Protocol Logging Level\" = 1".into(),
            ..Default::default()
        },
    );
    let data2 = d.dir.path().join("data2");
    let old_dd = d.data_dir().display().to_string();
    std::fs::write(
        &d.config_path,
        text.replace(&old_dd, &data2.display().to_string()),
    )
    .unwrap();
    d.wait_log("needs a restart", Duration::from_secs(15));
    d.wait_log("applies at the next session start", Duration::from_secs(15));
    let mut c = connect(d.pop3.unwrap());
    assert!(read_line(&mut c).starts_with("+OK"));
    c.get_mut().write_all(b"QUIT\r\n").unwrap();
    let _ = read_line(&mut c);
    let log = d.data_dir().join("L0000001.log");
    common::wait::wait_until(
        "the protocol log in the running data_dir",
        common::wait::WAIT,
        || log.exists(),
        || d.log_text(),
    );
    assert!(
        !data2.exists(),
        "the new data_dir is not used before a restart"
    );
}

/// Hostile input: the config replaced by a FIFO. Reading it used to block the reload task
/// forever (later edits and SIGHUP ignored, SIGTERM no longer ended the process); now it is
/// refused at once with an error naming the file, the running config stays, the next valid
/// file is picked up, and SIGTERM exits within the shutdown grace (5 s in tests).
#[test]
fn config_replaced_by_a_fifo_is_refused_and_reload_goes_on() {
    let mut d = Daemon::start();
    let path = d.config_path.clone();
    let good = std::fs::read_to_string(&path).unwrap();
    let fifo = d.dir.path().join("fifo.tmp");
    let st = std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .expect("run mkfifo");
    assert!(st.success());
    std::fs::rename(&fifo, &path).unwrap();
    let before = d.log_count("not a regular file (a FIFO)");
    d.signal("HUP");
    d.wait_log_more(
        "not a regular file (a FIFO)",
        before,
        Duration::from_secs(15),
    );
    assert!(
        d.log_text()
            .lines()
            .any(|l| l.contains("mailserver.toml: cannot read: not a regular file")),
        "the error names the file:\n{}",
        d.log_text()
    );

    // A valid file put back (atomically, as an editor does) with one value changed.
    let tmp = d.dir.path().join("mailserver.toml.new");
    std::fs::write(
        &tmp,
        good.replace(
            "[ParametersSystem]\n",
            "[ParametersSystem]\n\"POP3 Protocol Logging Level\" = 2\n",
        ),
    )
    .unwrap();
    std::fs::rename(&tmp, &path).unwrap();
    d.wait_log("applies at the next session start", Duration::from_secs(15));
    assert!(d.log_text().contains("POP3 Protocol Logging Level"));

    // The process still answers and ends on SIGTERM within the grace period.
    let mut s = connect(d.pop3.unwrap());
    assert!(read_line(&mut s).starts_with("+OK"));
    d.signal("TERM");
    let st = d.wait_exit(Duration::from_secs(10));
    assert!(st.success(), "{st:?}\n{}", d.log_text());
}
