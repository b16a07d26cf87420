//! Hot reload (ARCHITECTURE.md, "Configuration and reload"): watch the config file's **directory** and reload on `SIGHUP`.
//!
//! Owns: the watcher (`notify-debouncer-full`, 200 ms debounce, non-recursive on the parent
//! directory, so editors that write a new file and rename it over the old one, and Kubernetes
//! ConfigMap updates that swap the `..data` symlink, are both seen), the SIGHUP stream, and the
//! decision to reload:
//!
//! * any directory event re-reads the configured path (following symlinks) and reloads only
//!   when the bytes differ from the last read — unrelated files in the directory cost a read;
//! * when the path is a symlink to a file in another directory (config management, dotfile
//!   repositories), that directory is watched too, and re-resolved after every event;
//! * an empty file seen on a directory event is taken as a write in progress (an in-place
//!   save truncates first) and skipped; the event that completes the write follows;
//! * `SIGHUP` always reloads, even unchanged, so certificate rotation behind the same config
//!   takes effect (the server rebuilds TLS in `apply`);
//! * a reload that proceeds is framed by `systemd::reloading()` / `systemd::ready()`;
//! * an invalid file is logged (file:line:col) and rejected whole: `apply` is not called and
//!   the running config stays; the next valid save is picked up;
//! * a valid file is handed to `apply` (off the async workers: it may build TLS).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use notify_debouncer_full::notify::{RecommendedWatcher, RecursiveMode};
use notify_debouncer_full::{new_debouncer, DebounceEventResult, Debouncer, RecommendedCache};
use tokio::signal::unix::{signal, SignalKind};
use tokio_util::sync::CancellationToken;

use super::Config;

/// Debounce window: editors write in several steps; one reload per save.
pub const DEBOUNCE: Duration = Duration::from_millis(200);

/// The directory to watch for `path`.
fn watch_dir(path: &Path) -> PathBuf {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

/// Starts watching `path`; must be called inside a tokio runtime. The SIGHUP handler and the
/// directory watch are installed before this returns (errors are startup errors). The task
/// ends when `shutdown` fires.
pub fn spawn(
    path: PathBuf,
    apply: Arc<dyn Fn(Config) + Send + Sync>,
    shutdown: CancellationToken,
) -> anyhow::Result<tokio::task::JoinHandle<()>> {
    let dir = watch_dir(&path);
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<()>();
    let mut debouncer = new_debouncer(DEBOUNCE, None, move |res: DebounceEventResult| {
        match res {
            // Opens, reads and read-only closes change nothing. They must not wake us:
            // our own read of the file after an event is one (inotify reports it), and a
            // reload on it read the file again, five times a second for ever.
            Ok(events) if events.iter().all(|e| e.kind.is_access()) => {}
            Ok(_) => {
                let _ = tx.send(());
            }
            Err(errors) => {
                for e in errors {
                    tracing::warn!("config watcher: {e}");
                }
                // Something happened we could not describe: re-read to be safe.
                let _ = tx.send(());
            }
        }
    })
    .context("cannot start the config file watcher")?;
    debouncer
        .watch(&dir, RecursiveMode::NonRecursive)
        .with_context(|| format!("cannot watch {}", dir.display()))?;
    let mut hup = signal(SignalKind::hangup()).context("cannot install the SIGHUP handler")?;
    let mut last = super::read_file(&path).ok();
    let mut target_watch = None;
    follow_target(&mut debouncer, &dir, &path, &mut target_watch);

    Ok(tokio::spawn(async move {
        // Dropping the debouncer stops the watch: it lives as long as the task runs.
        let mut debouncer = debouncer;
        let mut events_open = true;
        loop {
            let force = tokio::select! {
                _ = shutdown.cancelled() => break,
                ev = rx.recv(), if events_open => {
                    if ev.is_none() {
                        events_open = false;
                        continue;
                    }
                    // Coalesce what queued up meanwhile.
                    while rx.try_recv().is_ok() {}
                    false
                }
                sig = hup.recv() => {
                    if sig.is_none() {
                        break;
                    }
                    tracing::info!("SIGHUP: reloading {}", path.display());
                    true
                }
            };
            // Re-resolve first, so that a write to the new target after our read is seen.
            follow_target(&mut debouncer, &dir, &path, &mut target_watch);
            reload(&path, force, &mut last, &apply).await;
        }
    }))
}

/// Watches the directory of the file `path` resolves to, when that is not `dir`; keeps at
/// most one such extra watch, moving it when the symlink now points elsewhere.
fn follow_target(
    debouncer: &mut Debouncer<RecommendedWatcher, RecommendedCache>,
    dir: &Path,
    path: &Path,
    current: &mut Option<PathBuf>,
) {
    let same = |a: &Path, b: &Path| {
        std::fs::canonicalize(a)
            .ok()
            .is_some_and(|a| Some(a) == std::fs::canonicalize(b).ok())
    };
    let wanted = std::fs::canonicalize(path)
        .ok()
        .and_then(|t| t.parent().map(Path::to_path_buf))
        .filter(|t| !same(t, dir));
    if wanted == *current {
        return;
    }
    if let Some(old) = current.take() {
        // Fails harmlessly when the directory is already gone (ConfigMap swap).
        let _ = debouncer.unwatch(&old);
    }
    if let Some(new) = wanted {
        match debouncer.watch(&new, RecursiveMode::NonRecursive) {
            Ok(()) => *current = Some(new),
            Err(e) => tracing::warn!("cannot watch {}: {e}", new.display()),
        }
    }
}

/// One reload attempt; `force` (SIGHUP) reloads even when the bytes are unchanged.
async fn reload(
    path: &Path,
    force: bool,
    last: &mut Option<Vec<u8>>,
    apply: &Arc<dyn Fn(Config) + Send + Sync>,
) {
    let owned = path.to_path_buf();
    let read = tokio::task::spawn_blocking(move || super::read_file(&owned))
        .await
        .unwrap_or_else(|e| Err(std::io::Error::other(e)));
    let bytes = match read {
        Ok(b) => b,
        Err(e) => {
            // Mid-rename or mid-symlink-swap the file can be missing for a moment; the
            // event that completes the swap comes next. Anything else (not a regular file,
            // no permission) is worth an error on every attempt.
            if force || e.kind() != std::io::ErrorKind::NotFound {
                tracing::error!(
                    "{}: cannot read: {e}; keeping the running configuration",
                    path.display()
                );
            } else {
                tracing::debug!("{}: cannot read: {e}", path.display());
            }
            return;
        }
    };
    if !force && (bytes.is_empty() || last.as_deref() == Some(bytes.as_slice())) {
        return;
    }
    *last = Some(bytes.clone());
    crate::systemd::reloading();
    match super::parse(path, &bytes) {
        Ok(config) => {
            // `apply` (the server) logs the config's warnings with the diff.
            let apply = Arc::clone(apply);
            if let Err(e) = tokio::task::spawn_blocking(move || apply(config)).await {
                tracing::error!("applying the reloaded configuration failed: {e}");
            }
        }
        Err(e) => {
            for line in e.0.lines() {
                tracing::error!("{line}");
            }
            tracing::error!(
                "{}: reload rejected; the running configuration stays",
                path.display()
            );
            crate::metrics::get().reload(false);
        }
    }
    crate::systemd::ready();
}
