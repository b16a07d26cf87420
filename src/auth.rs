//! Users and passwords (SPEC §6).
//!
//! INTERFACE CONTRACT (used by the protocol sessions):
//! * [`Secret`] wraps anything secret; its `Debug` prints `***`.
//! * [`Users::authenticate`] verifies off the async runtime; re-reads the users file when its
//!   mtime/size changed (applies at the next login).
//! * [`failure_delay`] gives the delay before answering the n-th consecutive failure.

use std::path::Path;
use std::time::Duration;

/// A value that must never reach a log by accident (STYLE principle 10).
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Secret<T>(T);

impl<T> Secret<T> {
    pub fn new(value: T) -> Secret<T> {
        Secret(value)
    }
    /// The secret itself; call sites say why they need it.
    pub fn expose(&self) -> &T {
        &self.0
    }
}

impl<T> std::fmt::Debug for Secret<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("***")
    }
}

/// Outcome of a login attempt. `Failed` is the same whether or not the user exists.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuthResult {
    /// The canonical user name (as written in the users file).
    Ok { user: String },
    Failed,
    /// The users file could not be read, or similar: `[SYS/TEMP]` / `UNAVAILABLE`.
    TempFail(String),
}

/// The users database, cached per file.
#[derive(Default)]
pub struct Users {}

impl Users {
    pub fn new() -> Users {
        Users {}
    }

    pub async fn authenticate(
        &self,
        users_file: &Path,
        user: &str,
        password: &Secret<String>,
    ) -> AuthResult {
        let _ = (users_file, user, password);
        todo!("auth work")
    }

    /// The plaintext password of a `{PLAIN}` user, for APOP; `None` for other schemes.
    pub fn plain_password(&self, users_file: &Path, user: &str) -> Option<Secret<String>> {
        let _ = (users_file, user);
        todo!("auth work")
    }
}

/// `mailserver passwd`: hashes `password` with `scheme` (`ARGON2ID`, `SHA512-CRYPT`,
/// `BLF-CRYPT`, `PLAIN`) into a `{SCHEME}...` string ready for the users file.
pub fn hash_password(scheme: &str, password: &str) -> Result<String, String> {
    let _ = (scheme, password);
    todo!("auth work")
}

/// Delay before answering the `consecutive`-th failed login of a session (growing, capped).
pub fn failure_delay(consecutive: u32) -> Duration {
    Duration::from_millis((500u64 << consecutive.min(4)).min(5000))
}
