//! The poison-tolerant mutex helper of the Maildir backend, in a leaf so `mod.rs`,
//! `mailbox.rs` and the files beside them share it without importing each other.

use std::sync::{Mutex, MutexGuard};

/// Locks `m`. A mutex poisoned by a panicking holder is used as it is rather than failing
/// every later caller.
pub(super) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}
