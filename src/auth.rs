//! Users and passwords (ARCHITECTURE.md, "Users and authentication"): the Dovecot passwd-file, password schemes, the failure delay
//! and [`Secret`].
//!
//! This module owns everything between "the client sent a user name and a password" and
//! [`AuthResult`]: reading and caching the users file, verifying the supplied password with the
//! entry's scheme, and making an unknown user indistinguishable from a wrong password (RFC 1939
//! §13 and RFC 3501 §11.1 / RFC 9051 §11.1 leave this to the server; we follow Dovecot). The
//! protocol sessions own the wording of replies and the delay before them.
//!
//! INTERFACE CONTRACT (used by the protocol sessions):
//! * [`Secret`] wraps anything secret; its `Debug` prints `***`.
//! * [`Users::authenticate`] verifies off the async runtime; re-reads the users file when its
//!   mtime/size changed (applies at the next login).
//! * [`failure_delay`] gives the delay before answering the n-th consecutive failure.
//!
//! # File format (Dovecot's passwd-file)
//!
//! `name:password[:uid:gid:gecos:home:shell:extra]`, one user a line; empty lines, lines starting
//! with `#` and lines starting with `:` are skipped, as Dovecot does. Only the first two fields
//! matter here (mailboxes live under `data_dir`, not `home`). The password is
//! `{SCHEME}data`; without `{SCHEME}` it is Dovecot's passwd-file default, `CRYPT`, which we
//! accept for the `$6$` (SHA512-CRYPT), `$2y$`/`$2b$`/`$2a$` (BLF-CRYPT) and `$argon2id$`
//! prefixes. Schemes: `ARGON2ID`, `SHA512-CRYPT`, `BLF-CRYPT`, `PLAIN` (alias `CLEAR`,
//! `CLEARTEXT`), `CRYPT`; names are case-insensitive. A line that does not parse (no password
//! field, unknown scheme, hash not in its scheme's format, a user name that cannot be a
//! mailbox directory, a duplicate user) is skipped with a warning naming `file:line`; the rest of
//! the file still serves. User names match exactly (Dovecot's passwd-file with `%u`).
//!
//! # Caching
//!
//! [`Users`] keeps the parsed file per path and `stat`s it at every login: a change of device,
//! inode, size, mtime or ctime re-reads it, so `mv users.new users`, in-place edits and `chmod`
//! all apply at the next login. A file modified less than two seconds ago is read again at
//! every login (two writes within one tick of the file clock can leave equal stamps). A file that cannot be read gives [`AuthResult::TempFail`]; the
//! stale copy is not used (a removed user must not keep working).
//!
//! # Timing
//!
//! Verification runs in `tokio::task::spawn_blocking`, at most one per CPU (2 to 16) at a time;
//! further logins wait for a slot. An unknown user is verified against the
//! hash of a real entry of the file (its slowest, by the scheme's parameters) and the result
//! thrown away, and a wrong password of a user with a cheaper scheme is also checked against
//! it, so every failure costs at least what the slowest scheme in the file costs (a file
//! mixing ARGON2ID and SHA512-CRYPT users does not tell by timing who exists). `PLAIN` compares with `subtle`
//! in constant time for equal lengths (the length of the stored password may still show).

use std::collections::HashMap;
use std::net::{IpAddr, Ipv6Addr};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use subtle::ConstantTimeEq;

/// A value that must never reach a log by accident (as imap-types' `Secret`).
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
    Ok {
        user: String,
    },
    Failed,
    /// The users file could not be read, or similar: `[SYS/TEMP]` / `UNAVAILABLE`.
    TempFail(String),
}

/// The schemes `hash_password` produces, in the order error messages list them.
pub const SCHEMES: [&str; 4] = ["ARGON2ID", "SHA512-CRYPT", "BLF-CRYPT", "PLAIN"];

/// Dovecot 2.3's `doveadm pw -s ARGON2ID` parameters (libsodium's "moderate" limits):
/// `m=65536,t=3,p=1`, 16-byte salt, 32-byte hash.
const ARGON2_M_KIB: u32 = 65536;
const ARGON2_T: u32 = 3;
const ARGON2_P: u32 = 1;
const ARGON2_OUT: usize = 32;
/// `doveadm pw -s BLF-CRYPT` writes `$2y$05$`: cost 5.
const BCRYPT_COST: u32 = 5;

/// A stored password, parsed and checked for its scheme's format when the file is read.
#[derive(Clone)]
enum Verifier {
    /// `{PLAIN}`: the password itself (also what APOP needs).
    Plain(Secret<String>),
    /// A PHC string `$argon2id$v=19$m=..,t=..,p=..$salt$hash`.
    Argon2id(Secret<String>),
    /// `$6$[rounds=N$]salt$hash` (Drepper's SHA-crypt).
    Sha512Crypt(Secret<String>),
    /// `$2y$NN$...` / `$2b$` / `$2a$` (OpenBSD bcrypt).
    Bcrypt(Secret<String>),
}

impl Verifier {
    /// The Dovecot scheme name (tests: which entry became the dummy).
    #[cfg(test)]
    fn scheme(&self) -> &'static str {
        match self {
            Verifier::Plain(_) => "PLAIN",
            Verifier::Argon2id(_) => "ARGON2ID",
            Verifier::Sha512Crypt(_) => "SHA512-CRYPT",
            Verifier::Bcrypt(_) => "BLF-CRYPT",
        }
    }

    /// Parses the password field: `{SCHEME}data` or bare crypt(3) data.
    fn parse(field: &str) -> Result<Verifier, String> {
        let (scheme, data) = match field.strip_prefix('{') {
            Some(rest) => match rest.split_once('}') {
                Some((scheme, data)) => (scheme.to_ascii_uppercase(), data),
                None => return Err("password starts with '{' but has no closing '}'".into()),
            },
            None => ("CRYPT".to_string(), field),
        };
        let data_s = data.to_string();
        match scheme.as_str() {
            "PLAIN" | "CLEAR" | "CLEARTEXT" => Ok(Verifier::Plain(Secret::new(data_s))),
            "ARGON2ID" => check_argon2id(data).map(|()| Verifier::Argon2id(Secret::new(data_s))),
            "SHA512-CRYPT" => {
                check_sha512(data).map(|()| Verifier::Sha512Crypt(Secret::new(data_s)))
            }
            "BLF-CRYPT" => check_bcrypt(data).map(|()| Verifier::Bcrypt(Secret::new(data_s))),
            "CRYPT" => {
                if data.starts_with("$6$") {
                    check_sha512(data).map(|()| Verifier::Sha512Crypt(Secret::new(data_s)))
                } else if is_bcrypt_prefix(data) {
                    check_bcrypt(data).map(|()| Verifier::Bcrypt(Secret::new(data_s)))
                } else if data.starts_with("$argon2id$") {
                    check_argon2id(data).map(|()| Verifier::Argon2id(Secret::new(data_s)))
                } else {
                    Err("CRYPT password is not $6$ (SHA512-CRYPT), $2y$/$2b$/$2a$ \
                         (BLF-CRYPT) or $argon2id$ (ARGON2ID)"
                        .into())
                }
            }
            other => Err(format!(
                "unknown password scheme {{{other}}} (supported: ARGON2ID, SHA512-CRYPT, \
                 BLF-CRYPT, PLAIN, CRYPT)"
            )),
        }
    }

    /// A rough cost of one verification in microseconds (measured on x86-64 at Dovecot's
    /// default parameters: ARGON2ID m=65536,t=3 ~140 ms, SHA512-CRYPT 5000 rounds ~3 ms,
    /// BLF-CRYPT cost 5 ~2 ms). Only the order matters: it picks the slowest entry as the
    /// dummy for unknown users.
    fn cost(&self) -> u64 {
        match self {
            Verifier::Plain(_) => 0,
            Verifier::Argon2id(phc) => {
                use argon2::password_hash::PasswordHash;
                PasswordHash::new(phc.expose())
                    .ok()
                    .and_then(|h| argon2::Params::try_from(&h).ok())
                    .map_or(0, |p| u64::from(p.m_cost()) * u64::from(p.t_cost()) * 7 / 10)
            }
            Verifier::Sha512Crypt(hash) => {
                let rounds = hash
                    .expose()
                    .strip_prefix("$6$rounds=")
                    .and_then(|r| r.split('$').next())
                    .and_then(|r| r.parse::<u64>().ok())
                    .unwrap_or(sha_crypt::ROUNDS_DEFAULT as u64);
                rounds * 6 / 10
            }
            Verifier::Bcrypt(hash) => {
                let cost: u32 = hash.expose().get(4..6).and_then(|c| c.parse().ok()).unwrap_or(5);
                60u64 << cost.min(31)
            }
        }
    }

    /// Does `password` match? CPU-heavy for the hashed schemes: call off the runtime.
    fn verify(&self, password: &str) -> bool {
        match self {
            Verifier::Plain(stored) => stored.expose().as_bytes().ct_eq(password.as_bytes()).into(),
            Verifier::Argon2id(phc) => {
                use argon2::password_hash::{PasswordHash, PasswordVerifier};
                match PasswordHash::new(phc.expose()) {
                    Ok(parsed) => argon2::Argon2::default()
                        .verify_password(password.as_bytes(), &parsed)
                        .is_ok(),
                    Err(_) => false,
                }
            }
            Verifier::Sha512Crypt(hash) => sha_crypt::sha512_check(password, hash.expose()).is_ok(),
            Verifier::Bcrypt(hash) => bcrypt::verify(password, hash.expose()).unwrap_or(false),
        }
    }
}

fn is_bcrypt_prefix(data: &str) -> bool {
    data.starts_with("$2y$") || data.starts_with("$2b$") || data.starts_with("$2a$")
}

fn check_argon2id(data: &str) -> Result<(), String> {
    use argon2::password_hash::PasswordHash;
    let parsed =
        PasswordHash::new(data).map_err(|e| format!("ARGON2ID hash is not a PHC string: {e}"))?;
    if parsed.algorithm.as_str() != "argon2id" {
        return Err(format!(
            "ARGON2ID hash names algorithm {}, not argon2id",
            parsed.algorithm
        ));
    }
    if parsed.salt.is_none() || parsed.hash.is_none() {
        return Err("ARGON2ID hash lacks its salt or hash part".into());
    }
    argon2::Params::try_from(&parsed).map_err(|e| format!("ARGON2ID parameters: {e}"))?;
    Ok(())
}

/// Length of the encoded SHA-512 digest in a `$6$` string.
const SHA512_HASH_CHARS: usize = 86;

/// `$6$[rounds=N$]salt$hash` with an 86-character hash of the crypt alphabet.
fn check_sha512(data: &str) -> Result<(), String> {
    let bad = || "SHA512-CRYPT hash is not $6$[rounds=N$]salt$hash".to_string();
    let rest = data.strip_prefix("$6$").ok_or_else(bad)?;
    let mut parts: Vec<&str> = rest.split('$').collect();
    if parts.first().is_some_and(|p| p.starts_with("rounds=")) {
        let rounds: usize = parts[0]["rounds=".len()..].parse().map_err(|_| bad())?;
        if !(sha_crypt::ROUNDS_MIN..=sha_crypt::ROUNDS_MAX).contains(&rounds) {
            return Err(format!("SHA512-CRYPT rounds={rounds} out of range"));
        }
        parts.remove(0);
    }
    let crypt_char = |c: char| c.is_ascii_alphanumeric() || c == '.' || c == '/';
    match parts.as_slice() {
        // Like glibc, a salt longer than 16 characters is cut to 16 when hashing.
        [_salt, hash] if hash.len() == SHA512_HASH_CHARS && hash.chars().all(crypt_char) => Ok(()),
        _ => Err(bad()),
    }
}

/// `$2?$NN$` + 53 characters of bcrypt's base64 (22 salt + 31 hash).
fn check_bcrypt(data: &str) -> Result<(), String> {
    let bad = || "BLF-CRYPT hash is not $2y$NN$<53 characters>".to_string();
    if !is_bcrypt_prefix(data) {
        return Err(bad());
    }
    let rest = &data[4..];
    let (cost, tail) = rest.split_once('$').ok_or_else(bad)?;
    let cost: u32 = cost.parse().map_err(|_| bad())?;
    if !(4..=31).contains(&cost) {
        return Err(format!("BLF-CRYPT cost {cost} out of range 4-31"));
    }
    let b64 = |c: char| c.is_ascii_alphanumeric() || c == '.' || c == '/';
    if tail.len() != 53 || !tail.chars().all(b64) {
        return Err(bad());
    }
    Ok(())
}

/// The password data of a users-file password field: after `{SCHEME}` if there is one.
fn password_data(field: &str) -> &str {
    field
        .strip_prefix('{')
        .and_then(|rest| rest.split_once('}'))
        .map_or(field, |(_, data)| data)
}

/// What makes a user name unusable as `data_dir/mail/<user>/` or in a protocol line.
fn check_user_name(name: &str) -> Result<(), String> {
    // The name is not echoed: a mangled line may have a password where the name should be.
    if name.starts_with('.') {
        return Err("the user name starts with '.'".into());
    }
    if let Some(c) = name
        .chars()
        .find(|c| c.is_whitespace() || c.is_control() || *c == '/' || *c == '"' || *c == '\\')
    {
        return Err(format!("the user name contains {c:?}"));
    }
    Ok(())
}

/// A parsed users file: who exists, with which password, and what was skipped.
pub struct UsersFile {
    /// User name -> verifier; exact, case-sensitive keys.
    users: HashMap<String, Verifier>,
    /// Verified for unknown users so they cost what a known one costs.
    dummy: Verifier,
    /// `file:line: message` for every skipped line, in file order.
    warnings: Vec<String>,
    /// User name -> the extra fields (`key=value`, the rest of the line after the seventh
    /// field, split at white space), for users that have any (quota rules).
    extras: HashMap<String, Vec<String>>,
}

impl UsersFile {
    /// Parses `text` as the passwd-file at `path` (named in the warnings). Never fails: lines
    /// that do not parse are skipped and reported in [`UsersFile::warnings`].
    pub fn parse(path: &Path, text: &str) -> UsersFile {
        let mut users = HashMap::new();
        let mut extras = HashMap::new();
        let mut warnings = Vec::new();
        // The slowest entry so far (the first of equals), with its cost.
        let mut slowest: Option<(u64, Verifier)> = None;
        for (index, raw) in text.split('\n').enumerate() {
            let line = raw.strip_suffix('\r').unwrap_or(raw);
            if line.trim().is_empty() || line.starts_with('#') || line.starts_with(':') {
                continue;
            }
            let mut warn = |msg: String| {
                warnings.push(format!(
                    "{}:{}: {msg}; line skipped",
                    path.display(),
                    index + 1
                ))
            };
            // The eighth field is the rest of the line: extra fields hold ':' (`*:storage=1G`).
            let mut fields = line.splitn(8, ':');
            let name = fields.next().unwrap_or_default();
            let Some(password) = fields.next() else {
                // Not echoed: a line without ':' may be a stray password.
                warn("no ':' after the user name (expected name:{SCHEME}password)".into());
                continue;
            };
            if let Err(e) = check_user_name(name) {
                warn(e);
                continue;
            }
            if password_data(password).is_empty() {
                // `dave:` and `dave:{PLAIN}` alike: nobody may log in with an empty password.
                warn(format!("user {name} has an empty password"));
                continue;
            }
            let verifier = match Verifier::parse(password) {
                Ok(v) => v,
                Err(e) => {
                    warn(format!("user {name}: {e}"));
                    continue;
                }
            };
            if users.contains_key(name) {
                warn(format!(
                    "user {name} exists more than once (the first entry is used)"
                ));
                continue;
            }
            let cost = verifier.cost();
            if slowest.as_ref().is_none_or(|(c, _)| cost > *c) {
                slowest = Some((cost, verifier.clone()));
            }
            let extra: Vec<String> = fields
                .nth(5)
                .unwrap_or_default()
                .split_ascii_whitespace()
                .map(str::to_string)
                .collect();
            if !extra.is_empty() {
                extras.insert(name.to_string(), extra);
            }
            users.insert(name.to_string(), verifier);
        }
        // Unknown users cost what the slowest scheme in the file costs (a mix of schemes
        // must not tell which users exist).
        let dummy = slowest
            .map(|(_, v)| v)
            .unwrap_or_else(|| Verifier::Plain(Secret::new(String::new())));
        UsersFile {
            users,
            dummy,
            warnings,
            extras,
        }
    }

    /// `file:line: message` for every line that was skipped.
    pub fn warnings(&self) -> &[String] {
        &self.warnings
    }

    /// Whether `user` is in the file (exact, case-sensitive).
    pub fn contains(&self, user: &str) -> bool {
        self.users.contains_key(user)
    }

    /// The extra fields of `user` (`key=value`; empty when none or unknown).
    pub fn extra_fields(&self, user: &str) -> &[String] {
        self.extras.get(user).map_or(&[], Vec::as_slice)
    }

    /// How many users can log in.
    pub fn len(&self) -> usize {
        self.users.len()
    }

    pub fn is_empty(&self) -> bool {
        self.users.is_empty()
    }

    /// Verifies `password` for `user`; an unknown user costs one dummy verification (the
    /// slowest entry of the file), and so does a failure of a user with a cheaper scheme, so
    /// every failure costs at least the slowest scheme. An empty password never matches,
    /// whatever the scheme (it is still verified, so it costs what any other attempt costs).
    fn verify(&self, user: &str, password: &str) -> bool {
        let matched = match self.users.get(user) {
            Some(v) => {
                let ok = v.verify(password);
                if !ok && v.cost() < self.dummy.cost() {
                    let _ = self.dummy.verify(password);
                }
                ok
            }
            None => {
                let _ = self.dummy.verify(password);
                false
            }
        };
        matched && !password.is_empty()
    }
}

/// Reads and parses the users file at `path` (for `check-config` and tests): its warnings are
/// in the result; `Err` says why it could not be read.
pub fn load_users_file(path: &Path) -> Result<UsersFile, String> {
    read_users_file(path).map(|(_, f)| f)
}

/// What identifies one version of the file on disk.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
struct Stamp {
    dev: u64,
    ino: u64,
    size: u64,
    mtime: (i64, i64),
    ctime: (i64, i64),
}

impl Stamp {
    fn of(m: &std::fs::Metadata) -> Stamp {
        Stamp {
            dev: m.dev(),
            ino: m.ino(),
            size: m.size(),
            mtime: (m.mtime(), m.mtime_nsec()),
            ctime: (m.ctime(), m.ctime_nsec()),
        }
    }
}

/// Reads the file: the stamp of the open file (so a rename after `open` is seen next time)
/// and its bytes.
fn read_raw(path: &Path) -> Result<(Stamp, Vec<u8>), String> {
    use std::io::Read;
    let cannot = |e: std::io::Error| format!("users file {}: cannot read: {e}", path.display());
    let mut file = std::fs::File::open(path).map_err(cannot)?;
    let stamp = Stamp::of(&file.metadata().map_err(cannot)?);
    let mut bytes = Vec::new();
    file.read_to_end(&mut bytes).map_err(cannot)?;
    Ok((stamp, bytes))
}

/// Parses what [`read_raw`] read, logging the warnings and the count.
fn parse_raw(path: &Path, bytes: &[u8]) -> UsersFile {
    let parsed = UsersFile::parse(path, &String::from_utf8_lossy(bytes));
    for w in parsed.warnings() {
        tracing::warn!("{w}");
    }
    tracing::info!(
        "users file {}: {} users loaded",
        path.display(),
        parsed.len()
    );
    parsed
}

fn read_users_file(path: &Path) -> Result<(Stamp, UsersFile), String> {
    let (stamp, bytes) = read_raw(path)?;
    Ok((stamp, parse_raw(path, &bytes)))
}

/// Two writes within one tick of the kernel's file clock (a few ms) can leave the same
/// stamp; like git's "racy" index entries, a file modified this recently is read again at
/// every login (and parsed again only if its bytes differ) until it is older than this.
const RACY_WINDOW: Duration = Duration::from_secs(2);

fn is_racy(stamp: &Stamp) -> bool {
    let mtime = std::time::UNIX_EPOCH
        + Duration::new(
            u64::try_from(stamp.mtime.0).unwrap_or(0),
            u32::try_from(stamp.mtime.1).unwrap_or(0),
        );
    match std::time::SystemTime::now().duration_since(mtime) {
        Ok(age) => age < RACY_WINDOW,
        Err(_) => true, // modified "in the future": clock skew, trust nothing
    }
}

/// One cached file.
struct Cached {
    stamp: Stamp,
    /// The bytes parsed, kept only while the stamp is too recent to trust ([`RACY_WINDOW`]).
    racy_bytes: Option<Vec<u8>>,
    file: Arc<UsersFile>,
}

/// The users database, cached per file.
pub struct Users {
    /// Path as configured -> the version parsed last. Shared with the blocking tasks.
    cache: Arc<Mutex<HashMap<PathBuf, Cached>>>,
    /// Caps concurrent verifications: one Argon2id at Dovecot's parameters holds 64 MiB, and
    /// a login flood must queue here rather than fill the blocking pool (512 threads) and RAM.
    verifying: Arc<tokio::sync::Semaphore>,
}

impl Default for Users {
    fn default() -> Users {
        let cpus = std::thread::available_parallelism().map_or(2, |n| n.get());
        Users {
            cache: Arc::default(),
            verifying: Arc::new(tokio::sync::Semaphore::new(
                cpus.clamp(2, MAX_CONCURRENT_VERIFICATIONS),
            )),
        }
    }
}

/// Upper bound of concurrent password verifications (at most 1 GiB of Argon2id memory).
const MAX_CONCURRENT_VERIFICATIONS: usize = 16;

impl Users {
    pub fn new() -> Users {
        Users::default()
    }

    /// The current parse of `path`: cached while its stamp is unchanged, re-read otherwise.
    /// Blocking (a `stat`, maybe a read): call off the runtime or accept a short block.
    fn current(
        cache: &Mutex<HashMap<PathBuf, Cached>>,
        path: &Path,
    ) -> Result<Arc<UsersFile>, String> {
        let meta = std::fs::metadata(path)
            .map_err(|e| format!("users file {}: cannot read: {e}", path.display()))?;
        let stamp = Stamp::of(&meta);
        let previous = {
            let map = cache.lock().unwrap_or_else(|p| p.into_inner());
            match map.get(path) {
                Some(c) if c.stamp == stamp && c.racy_bytes.is_none() => return Ok(c.file.clone()),
                Some(c) => c.racy_bytes.clone().map(|b| (b, c.file.clone())),
                None => None,
            }
        };
        let (stamp, bytes) = read_raw(path)?;
        let file = match previous {
            Some((old, file)) if old == bytes => file,
            _ => Arc::new(parse_raw(path, &bytes)),
        };
        let racy_bytes = is_racy(&stamp).then_some(bytes);
        cache.lock().unwrap_or_else(|p| p.into_inner()).insert(
            path.to_path_buf(),
            Cached {
                stamp,
                racy_bytes,
                file: file.clone(),
            },
        );
        Ok(file)
    }

    /// Verifies `user`/`password` against `users_file`. Runs the `stat`, any re-read
    /// and the hash on the blocking pool. `Failed` for a wrong password and for an unknown user
    /// alike; `TempFail` when the file cannot be read.
    pub async fn authenticate(
        &self,
        users_file: &Path,
        user: &str,
        password: &Secret<String>,
    ) -> AuthResult {
        let cache = self.cache.clone();
        let path = users_file.to_path_buf();
        let user = user.to_string();
        let password = password.clone();
        let Ok(permit) = self.verifying.clone().acquire_owned().await else {
            return AuthResult::TempFail("password verification is shut down".into());
        };
        let task = tokio::task::spawn_blocking(move || {
            let _permit = permit;
            let file = match Users::current(&cache, &path) {
                Ok(f) => f,
                Err(e) => {
                    tracing::error!("{e}");
                    return AuthResult::TempFail(e);
                }
            };
            if file.verify(&user, password.expose()) {
                AuthResult::Ok { user }
            } else {
                // Daemon log only (as Dovecot's auth_verbose); the client never sees the cause.
                let cause = if file.users.contains_key(&user) {
                    "password mismatch"
                } else {
                    "unknown user"
                };
                tracing::debug!(user = %user, "passwd-file {}: {cause}", path.display());
                AuthResult::Failed
            }
        });
        match task.await {
            Ok(result) => result,
            Err(e) => AuthResult::TempFail(format!("password verification task failed: {e}")),
        }
    }

    /// Whether `users_file` has `user` (exactly); `Err` when the file cannot be read.
    /// Blocking (a `stat`, maybe a read).
    pub fn user_exists(&self, users_file: &Path, user: &str) -> Result<bool, String> {
        Ok(Users::current(&self.cache, users_file)?.contains(user))
    }

    /// The extra fields of `user` in `users_file` (`key=value`, e.g. Dovecot's
    /// `userdb_quota_rule=*:storage=1G`). Blocking (a `stat`, maybe a read).
    pub fn extra_fields(&self, users_file: &Path, user: &str) -> Result<Vec<String>, String> {
        Ok(Users::current(&self.cache, users_file)?
            .extra_fields(user)
            .to_vec())
    }

    /// The plaintext password of a `{PLAIN}` user, for APOP; `None` for other schemes.
    pub fn plain_password(&self, users_file: &Path, user: &str) -> Option<Secret<String>> {
        let file = match Users::current(&self.cache, users_file) {
            Ok(f) => f,
            Err(e) => {
                tracing::error!("{e}");
                return None;
            }
        };
        match file.users.get(user) {
            // An empty password would make the APOP digest computable by anyone.
            Some(Verifier::Plain(pw)) if !pw.expose().is_empty() => Some(pw.clone()),
            _ => None,
        }
    }
}

/// The quota limits of users (RFC 9208) from their users-file extra fields
/// (`userdb_quota_rule=*:storage=1G`, `quota_rule2=...`, see `store::quota`) over the
/// configured default. `current` gives the users file and the default of the live config, so
/// a reload or an edited users file applies at the next check.
pub struct UserQuotas {
    users: Arc<Users>,
    current: CurrentQuota,
}

/// Gives the users file, the default limits and the default delivery grace now in force.
pub type CurrentQuota = Box<
    dyn Fn() -> (PathBuf, crate::store::quota::Limits, crate::store::quota::Grace) + Send + Sync,
>;

impl UserQuotas {
    pub fn new(users: Arc<Users>, current: CurrentQuota) -> UserQuotas {
        UserQuotas { users, current }
    }
}

impl std::fmt::Debug for UserQuotas {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UserQuotas").finish_non_exhaustive()
    }
}

impl UserQuotas {
    /// `derive(the user's extra fields)`, its warnings logged at debug level (every check
    /// asks: a skipped rule would fill the log); `None` when the users file cannot be read.
    fn per_user<T>(&self, user: &str, derive: impl FnOnce(&[&str]) -> (T, Vec<String>)) -> Option<T> {
        let path = (self.current)().0;
        match self.users.extra_fields(&path, user) {
            Ok(fields) => {
                let fields: Vec<&str> = fields.iter().map(String::as_str).collect();
                let (value, warnings) = derive(&fields);
                for w in warnings {
                    tracing::debug!("users file {}: user {user}: {w}", path.display());
                }
                Some(value)
            }
            Err(e) => {
                tracing::warn!("{e}; the default quota applies");
                None
            }
        }
    }
}

impl crate::store::quota::QuotaLimits for UserQuotas {
    fn limits(&self, user: &str) -> crate::store::quota::Limits {
        let default = (self.current)().1;
        self.per_user(user, |f| crate::store::quota::user_limits(default, f.iter().copied()))
            .unwrap_or(default)
    }

    fn save_limits(
        &self,
        user: &str,
        mailbox: &str,
    ) -> (crate::store::quota::Limits, crate::store::quota::Limits, u64) {
        use crate::store::quota;
        let (_, default, grace) = (self.current)();
        self.per_user(user, |f| {
            let (limits, mut warnings) = quota::user_limits(default, f.iter().copied());
            let here = quota::mailbox_limits(limits, f.iter().copied(), mailbox);
            let (grace, more) = quota::user_grace(grace, f.iter().copied());
            warnings.extend(more);
            ((limits, here, grace.bytes(limits.bytes)), warnings)
        })
        .unwrap_or((default, default, grace.bytes(default.bytes)))
    }
}

/// `mailserver passwd`: hashes `password` with `scheme` (`ARGON2ID`, `SHA512-CRYPT`,
/// `BLF-CRYPT`, `PLAIN`) into a `{SCHEME}...` string ready for the users file.
///
/// Parameters are `doveadm pw`'s (Dovecot 2.3): ARGON2ID `m=65536,t=3,p=1` with a 16-byte salt
/// and 32-byte hash; SHA512-CRYPT 5000 rounds (written without `rounds=`) and a 16-character
/// salt; BLF-CRYPT `$2y$` cost 5. `scheme` is case-insensitive and may carry its braces.
pub fn hash_password(scheme: &str, password: &str) -> Result<String, String> {
    let name = scheme.trim();
    let name = name
        .strip_prefix('{')
        .and_then(|s| s.strip_suffix('}'))
        .unwrap_or(name)
        .to_ascii_uppercase();
    match name.as_str() {
        "ARGON2ID" => {
            use argon2::password_hash::{PasswordHasher, SaltString};
            let mut salt = [0u8; 16];
            rand::fill(&mut salt);
            let salt = SaltString::encode_b64(&salt).map_err(|e| format!("ARGON2ID salt: {e}"))?;
            let params = argon2::Params::new(ARGON2_M_KIB, ARGON2_T, ARGON2_P, Some(ARGON2_OUT))
                .map_err(|e| format!("ARGON2ID parameters: {e}"))?;
            let hasher =
                argon2::Argon2::new(argon2::Algorithm::Argon2id, argon2::Version::V0x13, params);
            let hash = hasher
                .hash_password(password.as_bytes(), &salt)
                .map_err(|e| format!("ARGON2ID: {e}"))?;
            Ok(format!("{{ARGON2ID}}{hash}"))
        }
        "SHA512-CRYPT" => {
            let params = sha_crypt::Sha512Params::new(sha_crypt::ROUNDS_DEFAULT)
                .map_err(|e| format!("SHA512-CRYPT parameters: {e:?}"))?;
            let hash = sha_crypt::sha512_simple(password, &params)
                .map_err(|e| format!("SHA512-CRYPT: {e:?}"))?;
            Ok(format!("{{SHA512-CRYPT}}{hash}"))
        }
        "BLF-CRYPT" => {
            let parts = bcrypt::hash_with_result(password, BCRYPT_COST)
                .map_err(|e| format!("BLF-CRYPT: {e}"))?;
            Ok(format!(
                "{{BLF-CRYPT}}{}",
                parts.format_for_version(bcrypt::Version::TwoY)
            ))
        }
        "PLAIN" => {
            // The passwd-file has no escaping: these would end the field or the line.
            if let Some(c) = password.chars().find(|c| matches!(c, ':' | '\n' | '\r')) {
                return Err(format!(
                    "a PLAIN password cannot contain {c:?} in a passwd-file; use a hashed scheme"
                ));
            }
            Ok(format!("{{PLAIN}}{password}"))
        }
        _ => Err(format!(
            "unknown password scheme {scheme:?}; supported: {}",
            SCHEMES.join(", ")
        )),
    }
}

/// Delay before answering the `consecutive`-th failed login of a session (growing, capped).
pub fn failure_delay(consecutive: u32) -> Duration {
    Duration::from_millis((500u64 << consecutive.min(4)).min(5000))
}

/// Failed logins a session may make before it is closed (Dovecot's login processes also
/// disconnect after a few failures: "auth failed, 3 attempts").
pub const MAX_AUTH_FAILURES: u32 = 3;

/// Client addresses the [`Penalty`] table remembers; a new address beyond this evicts the
/// one whose last failure is oldest (about 100 KiB at most).
pub const PENALTY_CAPACITY: usize = 2048;
/// An address without a failure for this long starts again from no penalty.
pub const PENALTY_FORGET: Duration = Duration::from_secs(3600);

/// The wait before the next login attempt from an address with `failures` recent failures,
/// counted from its last failure: none, then 2 s doubling up to 15 s (Dovecot's
/// `auth_penalty_to_secs`: `AUTH_PENALTY_INIT_SECS` 2, `AUTH_PENALTY_MAX_SECS` 15).
pub fn penalty_delay(failures: u32) -> Duration {
    match failures {
        0 => Duration::ZERO,
        n => Duration::from_secs((2u64 << (n - 1).min(3)).min(15)),
    }
}

/// Failed logins per client address, one table per daemon shared by POP3 and IMAP
/// (Dovecot's `auth_penalty`): a login attempt from an address with recent failures waits
/// [`penalty_delay`] after the last of them before its password is checked, whatever the
/// outcome, so an early disconnect learns nothing. Attempts from one address take turns:
/// each reserves the next slot and pushes it one penalty on, so parallel connections do not
/// multiply the guesses (the login deadline still bounds how long one may queue). IPv6 addresses count by /64 (one host usually has the whole prefix),
/// IPv4 by address. A success from the address forgets its failures.
#[derive(Default)]
pub struct Penalty {
    table: Mutex<HashMap<IpAddr, PenaltyEntry>>,
}

struct PenaltyEntry {
    failures: u32,
    /// The last failure.
    last: Instant,
    /// When the next attempt may be checked.
    next: Instant,
}

impl Penalty {
    /// Reserves the next attempt from `ip`: how long it must wait before its password is
    /// checked (zero for an address without recent failures).
    pub fn reserve(&self, ip: IpAddr) -> Duration {
        let now = Instant::now();
        let mut table = self.table.lock().unwrap_or_else(|p| p.into_inner());
        match table.get_mut(&penalty_key(ip)) {
            Some(e) if now.duration_since(e.last) < PENALTY_FORGET => {
                let slot = e.next.max(now);
                e.next = slot + penalty_delay(e.failures);
                slot - now
            }
            _ => Duration::ZERO,
        }
    }

    /// Records a failed login from `ip`; returns the address's recent failures.
    pub fn failed(&self, ip: IpAddr) -> u32 {
        let key = penalty_key(ip);
        let now = Instant::now();
        let mut table = self.table.lock().unwrap_or_else(|p| p.into_inner());
        if !table.contains_key(&key) && table.len() >= PENALTY_CAPACITY {
            table.retain(|_, e| now.duration_since(e.last) < PENALTY_FORGET);
            if table.len() >= PENALTY_CAPACITY {
                let oldest = table.iter().min_by_key(|(_, e)| e.last).map(|(k, _)| *k);
                if let Some(k) = oldest {
                    table.remove(&k);
                }
            }
        }
        let entry = table.entry(key).or_insert(PenaltyEntry {
            failures: 0,
            last: now,
            next: now,
        });
        if now.duration_since(entry.last) >= PENALTY_FORGET {
            entry.failures = 0;
        }
        entry.failures = entry.failures.saturating_add(1);
        entry.last = now;
        entry.next = entry.next.max(now + penalty_delay(entry.failures));
        entry.failures
    }

    /// A login from `ip` succeeded: its failures are forgotten.
    pub fn succeeded(&self, ip: IpAddr) {
        let mut table = self.table.lock().unwrap_or_else(|p| p.into_inner());
        table.remove(&penalty_key(ip));
    }
}

/// What the [`Penalty`] table counts by: the IPv4 address (also when IPv4-mapped), or the
/// IPv6 /64 prefix.
fn penalty_key(ip: IpAddr) -> IpAddr {
    match ip.to_canonical() {
        IpAddr::V6(v6) => {
            let bits = u128::from(v6) & !((1u128 << 64) - 1);
            IpAddr::V6(Ipv6Addr::from(bits))
        }
        v4 => v4,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> UsersFile {
        UsersFile::parse(Path::new("/etc/users"), text)
    }

    #[test]
    fn skips_comments_blank_and_colon_lines() {
        let f = parse(
            "# comment\n\n   \n:nobody\nalice:{PLAIN}pw\r\nbob:{plain}x:1000:1000::/home/bob::\n",
        );
        assert_eq!(f.len(), 2);
        assert!(f.warnings().is_empty(), "{:?}", f.warnings());
        assert!(f.verify("alice", "pw"));
        assert!(f.verify("bob", "x"));
        assert!(!f.verify("Alice", "pw"), "lookup is case-sensitive");
    }

    #[test]
    fn equal_stamps_of_a_recent_file_are_not_trusted() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("users");
        let cache = Mutex::new(HashMap::new());
        std::fs::write(&path, "a:{PLAIN}1\n").unwrap();
        let first = Users::current(&cache, &path).unwrap();
        assert!(first.verify("a", "1"));
        // Same size, and pretend the file clock did not tick: the cached stamp equals the new.
        std::fs::write(&path, "a:{PLAIN}2\n").unwrap();
        let now = Stamp::of(&std::fs::metadata(&path).unwrap());
        cache.lock().unwrap().get_mut(&path).unwrap().stamp = now;
        let second = Users::current(&cache, &path).unwrap();
        assert!(second.verify("a", "2"), "a recent file is read again");
        // Unchanged bytes are not parsed again.
        let third = Users::current(&cache, &path).unwrap();
        assert!(Arc::ptr_eq(&second, &third));
    }

    #[test]
    fn an_old_unchanged_file_is_served_from_the_cache() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("users");
        std::fs::write(&path, "a:{PLAIN}1\n").unwrap();
        let old = std::time::SystemTime::now() - Duration::from_secs(3600);
        std::fs::File::options()
            .write(true)
            .open(&path)
            .unwrap()
            .set_modified(old)
            .unwrap();
        let cache = Mutex::new(HashMap::new());
        let first = Users::current(&cache, &path).unwrap();
        assert!(cache.lock().unwrap()[&path].racy_bytes.is_none());
        let second = Users::current(&cache, &path).unwrap();
        assert!(Arc::ptr_eq(&first, &second));
    }

    #[test]
    fn last_line_without_newline_counts() {
        let f = parse("a:{PLAIN}1\nb:{PLAIN}2");
        assert!(f.verify("b", "2"));
        let f = parse("a:{PLAIN}1\r\nb:{PLAIN}2\r\n");
        assert!(
            f.verify("a", "1") && f.verify("b", "2"),
            "CRLF is not part of the password"
        );
    }

    #[test]
    fn malformed_lines_are_skipped_with_file_and_line() {
        let text = "alice:{PLAIN}a\n\
                    nopass\n\
                    weird:{MD5}abc\n\
                    brace:{PLAINabc\n\
                    bad6:{SHA512-CRYPT}$6$salt$short\n\
                    badblf:{BLF-CRYPT}$2y$05$short\n\
                    badargon:{ARGON2ID}$argon2i$v=19$m=65536,t=3,p=1$YYk9YTY86ts1GhFOumItKQ$mgv/mkCc7ltfoV5pNWWia/s2hr9ic/qpyVsGIMUzKtU\n\
                    barecrypt:abcdefgh\n\
                    empty:\n\
                    ../etc:{PLAIN}x\n\
                    sp ace:{PLAIN}x\n\
                    alice:{PLAIN}b\n\
                    carol:{PLAIN}c\n";
        let f = parse(text);
        let w = f.warnings();
        assert_eq!(w.len(), 11, "{w:#?}");
        for (i, line) in [2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12].iter().enumerate() {
            assert!(
                w[i].starts_with(&format!("/etc/users:{line}: ")),
                "{i}: {}",
                w[i]
            );
        }
        assert!(w[1].contains("unknown password scheme {MD5}"), "{}", w[1]);
        assert!(
            !w[0].contains("nopass"),
            "a line without ':' is not echoed: {}",
            w[0]
        );
        assert!(
            !w[9].contains("sp ace"),
            "a bad name is not echoed: {}",
            w[9]
        );
        assert!(w[10].contains("more than once"), "{}", w[10]);
        assert_eq!(f.len(), 2);
        assert!(f.verify("alice", "a"), "first entry wins");
        assert!(!f.verify("alice", "b"));
        assert!(f.verify("carol", "c"));
    }

    #[test]
    fn empty_password_data_is_skipped_and_never_matches() {
        let f = parse("alice:{PLAIN}a\ndave:{PLAIN}\nerin:{plain}\nfay:{}\ngus:\n");
        let w = f.warnings();
        assert_eq!(w.len(), 4, "{w:#?}");
        for (i, (line, user)) in [(2, "dave"), (3, "erin"), (4, "fay"), (5, "gus")]
            .iter()
            .enumerate()
        {
            assert_eq!(
                w[i],
                format!("/etc/users:{line}: user {user} has an empty password; line skipped")
            );
        }
        assert_eq!(f.len(), 1);
        assert!(!f.verify("dave", ""));
        // Any scheme: a hash of the empty password does not let "" in either.
        let h = hash_password("SHA512-CRYPT", "").unwrap();
        let f = parse(&format!("hal:{h}\nivy:{{PLAIN}}x\n"));
        assert!(f.warnings().is_empty(), "{:?}", f.warnings());
        assert!(!f.verify("hal", ""));
        assert!(!f.verify("ivy", ""));
        assert!(!f.verify("nobody", ""));
    }

    #[test]
    fn crypt_prefixes_select_the_scheme() {
        let f = parse(concat!(
            "a:$6$C3qGq0t6gzK8fvQb$wuvJYfRZzpV3.HlZmtVyIJ6BZb7GqaDXLh4HLnbTMGiyPAi3wL/0Nv15vS9LnTlpL.LQ18eLiVVlVqEEtY.JE/\n",
            "b:{CRYPT}$2y$05$r6hF0nRXPrdawwNo8jxmx.0JOGr9ufPbwe.lmBiwSeeNG28WG2XVW\n",
        ));
        assert!(f.warnings().is_empty(), "{:?}", f.warnings());
        assert_eq!(f.users["a"].scheme(), "SHA512-CRYPT");
        assert_eq!(f.users["b"].scheme(), "BLF-CRYPT");
        assert!(f.verify("a", "secret"));
        assert!(f.verify("b", "secret"));
        assert!(!f.verify("b", "secreT"));
        // $2b$ and $2a$ are the same algorithm as $2y$ for ASCII passwords.
        let f = parse(concat!(
            "b:$2b$05$r6hF0nRXPrdawwNo8jxmx.0JOGr9ufPbwe.lmBiwSeeNG28WG2XVW\n",
            "a:{BLF-CRYPT}$2a$05$r6hF0nRXPrdawwNo8jxmx.0JOGr9ufPbwe.lmBiwSeeNG28WG2XVW\n",
        ));
        assert!(f.warnings().is_empty(), "{:?}", f.warnings());
        assert!(f.verify("b", "secret") && f.verify("a", "secret"));
        // Bare and {CRYPT} Argon2id (made by doveadm pw -s ARGON2ID -p secret).
        let argon = "$argon2id$v=19$m=65536,t=3,p=1$YYk9YTY86ts1GhFOumItKQ$\
                     mgv/mkCc7ltfoV5pNWWia/s2hr9ic/qpyVsGIMUzKtU";
        let f = parse(&format!("x:{argon}\ny:{{CRYPT}}{argon}\n"));
        assert!(f.warnings().is_empty(), "{:?}", f.warnings());
        assert_eq!(f.users["x"].scheme(), "ARGON2ID");
        assert!(f.verify("x", "secret") && f.verify("y", "secret"));
        assert!(!f.verify("x", "secret2"));
    }

    #[test]
    fn dummy_is_the_slowest_entry() {
        let argon = "$argon2id$v=19$m=65536,t=3,p=1$YYk9YTY86ts1GhFOumItKQ$\
                     mgv/mkCc7ltfoV5pNWWia/s2hr9ic/qpyVsGIMUzKtU";
        let sha = hash_password("SHA512-CRYPT", "x").unwrap();
        let f = parse(&format!("s:{sha}\nt:{sha}\nu:{sha}\na:{{ARGON2ID}}{argon}\n"));
        assert_eq!(f.dummy.scheme(), "ARGON2ID", "the slowest, not the most common");
        let f = parse(&format!("s:{sha}\nb:$2y$12$r6hF0nRXPrdawwNo8jxmx.0JOGr9ufPbwe.lmBiwSeeNG28WG2XVW\n"));
        assert_eq!(f.dummy.scheme(), "BLF-CRYPT", "bcrypt cost 12 outweighs 5000 SHA rounds");
        let f = parse(concat!(
            "p:{PLAIN}x\n",
            "a:{BLF-CRYPT}$2y$05$x/SjNFNrha38X1bUyombPOUgYvdi4aUBVgekbe5V/nOI4akiZIlx2\n",
            "b:{CRYPT}$2y$05$r6hF0nRXPrdawwNo8jxmx.0JOGr9ufPbwe.lmBiwSeeNG28WG2XVW\n",
        ));
        assert_eq!(f.dummy.scheme(), "BLF-CRYPT");
        assert!(!f.verify("nobody", "secret"), "unknown user never succeeds");
        let empty = parse("# nobody\n");
        assert!(empty.is_empty());
        assert!(
            !empty.verify("nobody", ""),
            "empty dummy must not let '' in"
        );
    }

    #[test]
    fn plain_hash_round_trip_and_bad_characters() {
        assert_eq!(hash_password("plain", "pw").unwrap(), "{PLAIN}pw");
        assert_eq!(hash_password("{PLAIN}", "pw").unwrap(), "{PLAIN}pw");
        assert!(hash_password("PLAIN", "a:b").is_err());
        assert!(hash_password("PLAIN", "a\nb").is_err());
        let err = hash_password("MD5", "pw").unwrap_err();
        assert!(
            err.contains("ARGON2ID, SHA512-CRYPT, BLF-CRYPT, PLAIN"),
            "{err}"
        );
    }

    #[test]
    fn sha512_and_bcrypt_hashes_verify() {
        for scheme in ["SHA512-CRYPT", "blf-crypt"] {
            let h = hash_password(scheme, "pässword").unwrap();
            let f = parse(&format!("u:{h}\n"));
            assert!(f.warnings().is_empty(), "{:?}", f.warnings());
            assert!(f.verify("u", "pässword"), "{h}");
            assert!(!f.verify("u", "password"), "{h}");
        }
    }

    #[test]
    fn secret_debug_is_redacted() {
        let s = Secret::new("hunter2".to_string());
        assert_eq!(format!("{s:?}"), "***");
    }

    #[test]
    fn penalty_counts_per_address_and_v6_prefix_and_resets() {
        let p = Penalty::default();
        let a: IpAddr = "192.0.2.1".parse().unwrap();
        let mapped: IpAddr = "::ffff:192.0.2.1".parse().unwrap();
        assert_eq!(p.reserve(a), Duration::ZERO);
        assert_eq!(p.failed(a), 1);
        assert_eq!(p.failed(mapped), 2, "an IPv4-mapped address is the IPv4 address");
        let first = p.reserve(a);
        assert!(first > Duration::from_secs(3) && first <= Duration::from_secs(4));
        let second = p.reserve(mapped);
        assert!(
            second > Duration::from_secs(7) && second <= Duration::from_secs(8),
            "parallel attempts queue one penalty apart: {second:?}"
        );
        assert_eq!(p.reserve("192.0.2.2".parse().unwrap()), Duration::ZERO);
        let v6: IpAddr = "2001:db8:1:2:aaaa::1".parse().unwrap();
        p.failed(v6);
        let same64: IpAddr = "2001:db8:1:2:ffff::9".parse().unwrap();
        assert!(p.reserve(same64) > Duration::ZERO, "same /64");
        assert_eq!(p.reserve("2001:db8:1:3::1".parse().unwrap()), Duration::ZERO);
        p.succeeded(a);
        assert_eq!(p.reserve(a), Duration::ZERO);
        assert_eq!(p.failed(a), 1, "a success forgets the failures");
    }

    #[test]
    fn penalty_table_is_bounded_and_evicts_the_oldest() {
        let p = Penalty::default();
        let v4 = |i: u32| IpAddr::V4(std::net::Ipv4Addr::from(0x0a00_0000 + i));
        p.failed(v4(0));
        std::thread::sleep(Duration::from_millis(2));
        for i in 1..PENALTY_CAPACITY as u32 + 10 {
            p.failed(v4(i));
        }
        assert_eq!(p.table.lock().unwrap().len(), PENALTY_CAPACITY);
        assert_eq!(p.reserve(v4(0)), Duration::ZERO, "the oldest is evicted");
        assert!(p.reserve(v4(PENALTY_CAPACITY as u32 + 9)) > Duration::ZERO);
    }

    #[test]
    fn penalty_delay_doubles_from_two_to_fifteen_seconds() {
        let secs: Vec<u64> = (0..6).map(|n| penalty_delay(n).as_secs()).collect();
        assert_eq!(secs, [0, 2, 4, 8, 15, 15]);
    }

    #[test]
    fn failure_delay_grows_and_caps() {
        assert!(failure_delay(1) < failure_delay(2));
        assert_eq!(failure_delay(100), Duration::from_millis(5000));
    }
}
