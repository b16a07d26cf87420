//! The `data_dir` marker (`server.require_data_marker`, README.md, "Shared storage"): a file
//! that says "this directory is the mail store". A node whose shared mount is missing sees a
//! bare mount point without it and refuses to serve, rather than writing a new, empty store
//! into the mount point (which the real store would hide once mounted).
//!
//! The rule: with `require_data_marker = true` the marker must be there at start (the daemon
//! exits non-zero, creating nothing under `data_dir`), at each reload (an error is logged)
//! and at each login (the store refuses the user, `[UNAVAILABLE]`); with `false` (the
//! default) it is created at start when missing, so a store that has been served once can
//! have the switch turned on later.

use super::{ServerSettings, DATA_MARKER};
use std::io;
use std::path::{Path, PathBuf};

/// What the marker's file holds (only its existence counts).
const CONTENT: &str = "mailserver data directory: do not remove \
(server.require_data_marker refuses to serve without it)\n";

/// The marker's path in `data_dir`.
pub fn path(data_dir: &Path) -> PathBuf {
    data_dir.join(DATA_MARKER)
}

/// Whether the marker is there; an error other than "missing" (a stale NFS handle, no
/// permission) is an error, not an absence.
pub fn present(data_dir: &Path) -> io::Result<bool> {
    match std::fs::symlink_metadata(path(data_dir)) {
        Ok(m) => Ok(m.is_file()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(e),
    }
}

/// At start, before anything is written under `data_dir`: with the marker required, its
/// absence is an error naming the rule; without, `data_dir` and the marker are created when
/// missing.
pub fn ensure(server: &ServerSettings) -> Result<(), String> {
    let dd = &server.data_dir;
    let marker = path(dd);
    match present(dd) {
        Ok(true) => return Ok(()),
        Ok(false) => {}
        Err(e) => return Err(format!("{}: {e}", marker.display())),
    }
    if server.require_data_marker {
        return Err(missing_text(dd));
    }
    std::fs::create_dir_all(dd).map_err(|e| format!("cannot create {}: {e}", dd.display()))?;
    match std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&marker)
    {
        Ok(mut f) => {
            use std::io::Write as _;
            f.write_all(CONTENT.as_bytes())
                .and_then(|()| f.sync_all())
                .map_err(|e| format!("cannot write {}: {e}", marker.display()))?;
            tracing::info!("created the data_dir marker {}", marker.display());
            Ok(())
        }
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(format!("cannot create {}: {e}", marker.display())),
    }
}

/// The refusal, worded for the operator.
pub fn missing_text(data_dir: &Path) -> String {
    format!(
        "{} is missing and server.require_data_marker = true: refusing to serve \
         (is the mail store mounted at {}?)",
        path(data_dir).display(),
        data_dir.display()
    )
}

/// `check-config`'s line about the marker (a TOML comment), and whether the daemon would
/// refuse to start.
pub fn describe(server: &ServerSettings) -> (String, bool) {
    let marker = path(&server.data_dir);
    match (present(&server.data_dir), server.require_data_marker) {
        (Ok(true), _) => (format!("# data_dir marker {}: present", marker.display()), false),
        (Ok(false), true) => (
            format!(
                "# data_dir marker {}: MISSING; the daemon will refuse to start \
                 (server.require_data_marker = true)",
                marker.display()
            ),
            true,
        ),
        (Ok(false), false) => (
            format!(
                "# data_dir marker {}: missing; created at start \
                 (server.require_data_marker = false)",
                marker.display()
            ),
            false,
        ),
        (Err(e), _) => (format!("# data_dir marker {}: {e}", marker.display()), true),
    }
}
