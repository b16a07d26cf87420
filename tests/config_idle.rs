//! An idle daemon leaves its config file alone: the directory watch wakes it only for
//! changes, not for its own reads of the file (inotify reports opens and reads too; a reload
//! on those re-read the file five times a second for ever). Checked with `strace` on the
//! real binary: no open of the config in two idle seconds, and one after a real change.

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

use common::Daemon;

/// Opens of `path` by the daemon while `during` runs, seen by `strace -f -e openat`.
fn opens_of(d: &Daemon, path: &std::path::Path, during: impl FnOnce()) -> usize {
    // Not beside the config: its own writes would be changes in the watched directory.
    let out = tempfile::tempdir().unwrap();
    let trace = out.path().join("strace.txt");
    let mut strace = Command::new("strace")
        .args(["-f", "-e", "trace=openat", "-o"])
        .arg(&trace)
        .arg("-p")
        .arg(d.pid().to_string())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let err = strace.stderr.take().unwrap();
    let attached = format!("Process {} attached", d.pid());
    let mut lines = BufReader::new(err).lines();
    loop {
        match lines.next() {
            Some(Ok(l)) if l.contains(&attached) => break,
            Some(Ok(l)) if l.contains("Operation not permitted") => {
                panic!("strace cannot attach here: {l}")
            }
            Some(Ok(_)) => {}
            _ => panic!("strace did not attach"),
        }
    }
    during();
    let _ = Command::new("kill")
        .args(["-INT", &strace.id().to_string()])
        .status();
    let _ = strace.wait();
    let text = std::fs::read_to_string(&trace).unwrap_or_default();
    let name = path.to_string_lossy();
    text.lines().filter(|l| l.contains(&*name)).count()
}

#[test]
fn an_idle_daemon_does_not_reread_its_config() {
    if !common::have("strace") {
        common::skipped("strace is not installed");
        return;
    }
    let d = Daemon::start();
    let config = d.config_path.clone();
    // Let the start-up's own reads and their events settle.
    std::thread::sleep(Duration::from_millis(700));
    let idle = opens_of(&d, &config, || std::thread::sleep(Duration::from_secs(2)));
    assert_eq!(idle, 0, "the config was re-read while nothing changed");
    // A real change is still seen (and read once or twice: the debounced events).
    let changed = opens_of(&d, &config, || {
        let text = std::fs::read_to_string(&config).unwrap();
        std::fs::write(&config, format!("{text}\n# touched\n")).unwrap();
        std::thread::sleep(Duration::from_secs(2));
    });
    assert!(
        (1..=4).contains(&changed),
        "{changed} reads after one change"
    );
}
