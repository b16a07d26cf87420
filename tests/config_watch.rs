//! Hot reload (ARCHITECTURE.md, "Configuration and reload") over real files in tempdirs: editor
//! rename, in-place write, Kubernetes ConfigMap symlink swap, invalid-then-valid edits,
//! unchanged bytes skipped. Every wait is bounded (10 s per expected reload).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use mailserver::config::{watch, Config};
use tokio::sync::mpsc::{unbounded_channel, UnboundedReceiver};
use tokio_util::sync::CancellationToken;

fn cfg(level: u32) -> String {
    format!(
        "[server]\nhostname = \"h\"\ndata_dir = \"data\"\n\n[ParametersSystem]\n\"POP3 Protocol Logging Level\" = {level}  # comment\n"
    )
}

struct Watch {
    rx: UnboundedReceiver<Config>,
    shutdown: CancellationToken,
    task: tokio::task::JoinHandle<()>,
}

fn start(path: &Path) -> Watch {
    let (tx, rx) = unbounded_channel();
    let shutdown = CancellationToken::new();
    let task = watch::spawn(
        path.to_path_buf(),
        Arc::new(move |c: Config| {
            let _ = tx.send(c);
        }),
        shutdown.clone(),
    )
    .expect("spawn watcher");
    Watch { rx, shutdown, task }
}

impl Watch {
    async fn next(&mut self) -> Config {
        tokio::time::timeout(Duration::from_secs(10), self.rx.recv())
            .await
            .expect("no reload within 10 s")
            .expect("watcher ended")
    }

    /// Nothing applied within a short grace (used only to show something was NOT applied;
    /// a slow machine makes this pass more easily, never fail wrongly).
    async fn nothing_for(&mut self, ms: u64) {
        if let Ok(Some(c)) = tokio::time::timeout(Duration::from_millis(ms), self.rx.recv()).await {
            panic!("unexpected reload: level {}", c.pop3_log.level);
        }
    }

    async fn stop(self) {
        self.shutdown.cancel();
        tokio::time::timeout(Duration::from_secs(10), self.task)
            .await
            .expect("watcher did not stop")
            .unwrap();
    }
}

fn setup(level: u32) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("mailserver.toml");
    std::fs::write(&path, cfg(level)).unwrap();
    (dir, path)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn editor_write_temp_then_rename() {
    let (dir, path) = setup(1);
    let mut w = start(&path);
    let tmp = dir.path().join(".mailserver.toml.swp");
    std::fs::write(&tmp, cfg(4)).unwrap();
    std::fs::rename(&tmp, &path).unwrap();
    let c = w.next().await;
    assert_eq!(c.pop3_log.level, 4);
    assert_eq!(c.server.data_dir, dir.path().join("data"));
    w.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_place_write() {
    let (_dir, path) = setup(1);
    let mut w = start(&path);
    std::fs::write(&path, cfg(2)).unwrap();
    assert_eq!(w.next().await.pop3_log.level, 2);
    std::fs::write(&path, cfg(3)).unwrap();
    assert_eq!(w.next().await.pop3_log.level, 3);
    w.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unchanged_bytes_are_skipped() {
    let (dir, path) = setup(1);
    let mut w = start(&path);
    // same content rewritten, and an unrelated file in the directory
    std::fs::write(&path, cfg(1)).unwrap();
    std::fs::write(dir.path().join("users"), "u:{PLAIN}p\n").unwrap();
    w.nothing_for(1000).await;
    std::fs::write(&path, cfg(5)).unwrap();
    assert_eq!(w.next().await.pop3_log.level, 5);
    w.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_edit_is_rejected_then_valid_edit_applies() {
    let (_dir, path) = setup(1);
    let mut w = start(&path);
    std::fs::write(&path, cfg(7)).unwrap(); // level out of range
    w.nothing_for(1000).await;
    std::fs::write(&path, "[server\n").unwrap(); // syntax error
    w.nothing_for(1000).await;
    std::fs::write(&path, cfg(3)).unwrap();
    assert_eq!(w.next().await.pop3_log.level, 3);
    w.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubernetes_configmap_symlink_swap() {
    use std::os::unix::fs::symlink;
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::create_dir(d.join("..2026_x")).unwrap();
    std::fs::write(d.join("..2026_x/mailserver.toml"), cfg(1)).unwrap();
    symlink("..2026_x", d.join("..data")).unwrap();
    symlink("..data/mailserver.toml", d.join("mailserver.toml")).unwrap();
    let path = d.join("mailserver.toml");
    assert_eq!(mailserver::config::load(&path).unwrap().pop3_log.level, 1);
    let mut w = start(&path);

    std::fs::create_dir(d.join("..2026_y")).unwrap();
    std::fs::write(d.join("..2026_y/mailserver.toml"), cfg(5)).unwrap();
    symlink("..2026_y", d.join("..data_tmp")).unwrap();
    std::fs::rename(d.join("..data_tmp"), d.join("..data")).unwrap();
    std::fs::remove_dir_all(d.join("..2026_x")).unwrap();

    let c = w.next().await;
    assert_eq!(c.pop3_log.level, 5);
    // relative paths resolve against the directory of the path as given
    assert_eq!(c.server.data_dir, d.join("data"));
    w.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn symlink_to_a_file_elsewhere_edited_in_place() {
    let conf = tempfile::tempdir().unwrap();
    let real = tempfile::tempdir().unwrap();
    let target = real.path().join("ms.toml");
    std::fs::write(&target, cfg(1)).unwrap();
    let path = conf.path().join("mailserver.toml");
    std::os::unix::fs::symlink(&target, &path).unwrap();
    let mut w = start(&path);
    std::fs::write(&target, cfg(2)).unwrap();
    assert_eq!(w.next().await.pop3_log.level, 2);
    // repointed to another file elsewhere: seen (directory of the link), then followed
    let other = tempfile::tempdir().unwrap();
    let target2 = other.path().join("ms.toml");
    std::fs::write(&target2, cfg(3)).unwrap();
    let tmp_link = conf.path().join("mailserver.toml.new");
    std::os::unix::fs::symlink(&target2, &tmp_link).unwrap();
    std::fs::rename(&tmp_link, &path).unwrap();
    assert_eq!(w.next().await.pop3_log.level, 3);
    std::fs::write(&target2, cfg(4)).unwrap();
    assert_eq!(w.next().await.pop3_log.level, 4);
    w.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn empty_file_on_event_is_a_write_in_progress() {
    let (_dir, path) = setup(1);
    let mut w = start(&path);
    std::fs::write(&path, "").unwrap();
    w.nothing_for(1000).await;
    std::fs::write(&path, cfg(2)).unwrap();
    assert_eq!(w.next().await.pop3_log.level, 2);
    w.stop().await;
}
