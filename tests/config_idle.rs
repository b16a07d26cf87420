//! An idle daemon leaves its config file alone: the directory watch wakes it only for
//! changes, not for its own reads of the file (inotify reports opens and reads too; a reload
//! on those re-read the file five times a second for ever). Checked with `strace` on the
//! real binary: no open of the config in two idle seconds, and one after a real change.

mod common;

use std::time::Duration;

use common::Daemon;

/// Opens of `path` by the daemon while `during` runs, seen by `strace -f -e openat`.
/// `None` (said SKIPPED) where strace may not attach.
fn opens_of(d: &Daemon, path: &std::path::Path, during: impl FnOnce()) -> Option<usize> {
    // Not beside the config: its own writes would be changes in the watched directory.
    let out = tempfile::tempdir().unwrap();
    let trace = out.path().join("strace.txt");
    let strace = common::strace_attached(d.pid(), &["-e", "trace=openat"], &trace)?;
    during();
    common::strace_stop(strace);
    let text = std::fs::read_to_string(&trace).unwrap_or_default();
    let name = path.to_string_lossy();
    Some(text.lines().filter(|l| l.contains(&*name)).count())
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
    let Some(idle) = opens_of(&d, &config, || std::thread::sleep(Duration::from_secs(2))) else {
        return;
    };
    assert_eq!(idle, 0, "the config was re-read while nothing changed");
    // A real change is still seen (and read once or twice: the debounced events).
    let Some(changed) = opens_of(&d, &config, || {
        let text = std::fs::read_to_string(&config).unwrap();
        std::fs::write(&config, format!("{text}\n# touched\n")).unwrap();
        std::thread::sleep(Duration::from_secs(2));
    }) else {
        return;
    };
    assert!(
        (1..=4).contains(&changed),
        "{changed} reads after one change"
    );
}
