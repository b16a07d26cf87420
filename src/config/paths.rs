//! Lexical path helpers shared by the config files (`mod.rs` and `registry.rs`), kept in a
//! leaf so neither imports the other for them.

use std::path::{Path, PathBuf};

/// Lexically drops `.` components (`/etc/mailserver/./logs` → `/etc/mailserver/logs`).
pub(crate) fn normalize(p: &Path) -> PathBuf {
    use std::path::Component;
    // Lexically, as Go's filepath.Clean: `etc/../var` reads as `var` in logs and listings.
    let mut out = PathBuf::new();
    for c in p.components() {
        match c {
            Component::CurDir => {}
            Component::ParentDir
                if matches!(out.components().next_back(), Some(Component::Normal(_))) =>
            {
                out.pop();
            }
            other => out.push(other),
        }
    }
    if out.as_os_str().is_empty() {
        out.push(".");
    }
    out
}
