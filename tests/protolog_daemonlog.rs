//! The daemon log names every protocol-log open and release with its reason (ARCHITECTURE.md,
//! "Protocol log"). Alone in its own test binary: `tracing::subscriber::with_default` is scoped
//! to a thread while callsite interest is cached process-wide, so other tests running in
//! parallel in the same binary could make the capture miss events.

mod protolog_common;

use mailserver::protolog::ProtoLog;
use mailserver::service::Service;
use protolog_common::*;

#[test]
fn every_open_and_release_is_in_the_daemon_log_with_its_reason() {
    let tmp = tempfile::tempdir().unwrap();
    let (a, b) = (tmp.path().join("a"), tmp.path().join("b"));
    let cap = Captured::default();
    tracing::subscriber::with_default(cap.subscriber(), || {
        let log = ProtoLog::new();
        log.session_start(Service::Pop3, &config(1, &a), local(), remote(1))
            .end(0, 0);
        log.session_start(Service::Pop3, &config(1, &b), local(), remote(2))
            .end(0, 0);
        log.session_start(Service::Pop3, &config(0, &b), local(), remote(3))
            .end(0, 0);
    });
    let text = cap.text();
    let lines: Vec<&str> = text
        .lines()
        .filter(|l| l.contains("protocol log opened") || l.contains("protocol log released"))
        .collect();
    assert_eq!(lines.len(), 4, "{text}");
    let expect = [
        ("opened", "a/L0000001.log", "level > 0"),
        ("released", "a/L0000001.log", "path changed"),
        ("opened", "b/L0000001.log", "path changed"),
        ("released", "b/L0000001.log", "level 0"),
    ];
    for (line, (what, file, why)) in lines.iter().zip(expect) {
        assert!(line.contains(what) && line.contains(file), "{line}");
        assert!(
            line.contains(&format!("reason=\"{why}\"")) || line.contains(&format!("reason={why}")),
            "{line}"
        );
    }
}
