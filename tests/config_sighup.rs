//! SIGHUP reloads even when the file is unchanged (ARCHITECTURE.md, "Configuration and
//! reload"). A dedicated test binary: the
//! signal goes to the whole process, sent with `kill -HUP <pid>` (no unsafe code).

use std::sync::Arc;
use std::time::Duration;

use mailserver::config::{watch, Config};
use tokio_util::sync::CancellationToken;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_reloads_unchanged_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("mailserver.toml");
    std::fs::write(
        &path,
        "[ParametersSystem]\n\"IMAP Protocol Logging Level\" = 4\n",
    )
    .unwrap();
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let shutdown = CancellationToken::new();
    let task = watch::spawn(
        path.clone(),
        Arc::new(move |c: Config| {
            let _ = tx.send(c);
        }),
        shutdown.clone(),
    )
    .unwrap();

    for round in 0..2 {
        let status = std::process::Command::new("kill")
            .args(["-HUP", &std::process::id().to_string()])
            .status()
            .expect("run kill");
        assert!(status.success());
        let c = tokio::time::timeout(Duration::from_secs(10), rx.recv())
            .await
            .unwrap_or_else(|_| panic!("no reload after SIGHUP #{round}"))
            .unwrap();
        assert_eq!(c.imap_log.level, 4);
    }

    // An invalid file on SIGHUP: rejected, apply not called; the process survives.
    std::fs::write(
        &path,
        "[ParametersSystem]\n\"IMAP Protocol Logging Level\" = 9\n",
    )
    .unwrap();
    // Whether the directory event or the signal reads it first, it is rejected both times.
    let status = std::process::Command::new("kill")
        .args(["-HUP", &std::process::id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    assert!(
        tokio::time::timeout(Duration::from_millis(1500), rx.recv())
            .await
            .is_err(),
        "an invalid config must not be applied"
    );

    shutdown.cancel();
    tokio::time::timeout(Duration::from_secs(10), task)
        .await
        .unwrap()
        .unwrap();
}
