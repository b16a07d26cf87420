//! Users and passwords against Dovecot itself (ARCHITECTURE.md, "Users and authentication").
//!
//! * `tests/fixtures/auth/doveadm-users` holds hashes that Debian's Dovecot 2.3 `doveadm pw`
//!   produced once, so the interoperability checks also run where Dovecot is not installed.
//! * Where `doveadm` is on `PATH`, fresh hashes are made with it and our own hashes are checked
//!   with `doveadm pw -t`; otherwise those tests print why they skip (CI installs dovecot-core).
//!
//! Everything goes through the public API the protocol sessions use: `Users::authenticate`
//! over real files in temporary directories.

use std::path::{Path, PathBuf};
use std::process::Command;

use mailserver::auth::{hash_password, load_users_file, AuthResult, Secret, Users};

const SECRET: &str = "secret";

fn fixture() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/auth/doveadm-users")
}

fn pw(s: &str) -> Secret<String> {
    Secret::new(s.to_string())
}

fn ok(user: &str) -> AuthResult {
    AuthResult::Ok {
        user: user.to_string(),
    }
}

/// `doveadm` if it is installed and answers; otherwise prints why the caller skips.
fn doveadm(test: &str) -> Option<PathBuf> {
    let found = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|d| d.join("doveadm"))
            .find(|p| p.is_file())
    });
    if found.is_none() {
        eprintln!("SKIP {test}: doveadm not found on PATH (apt-get install dovecot-core)");
    }
    found
}

fn doveadm_hash(doveadm: &Path, scheme: &str) -> String {
    let out = Command::new(doveadm)
        .args(["pw", "-s", scheme, "-p", SECRET])
        .output()
        .expect("run doveadm pw");
    assert!(out.status.success(), "doveadm pw -s {scheme}: {out:?}");
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

/// `doveadm pw -t HASH -p PASSWORD`: did Dovecot verify it?
fn doveadm_verifies(doveadm: &Path, hash: &str, password: &str) -> bool {
    let out = Command::new(doveadm)
        .args(["pw", "-t", hash, "-p", password])
        .output()
        .expect("run doveadm pw -t");
    out.status.success() && String::from_utf8_lossy(&out.stdout).contains("(verified)")
}

#[tokio::test]
async fn fixture_hashes_made_by_doveadm_verify() {
    let users = Users::new();
    let file = fixture();
    let parsed = load_users_file(&file).unwrap();
    assert!(parsed.warnings().is_empty(), "{:?}", parsed.warnings());
    let names = [
        "argon",
        "sha",
        "sharounds",
        "blf",
        "blf8",
        "plain",
        "crypt",
        "bare",
    ];
    assert_eq!(parsed.len(), names.len());
    for name in names {
        assert_eq!(
            users.authenticate(&file, name, &pw(SECRET)).await,
            ok(name),
            "{name}"
        );
        assert_eq!(
            users.authenticate(&file, name, &pw("Secret")).await,
            AuthResult::Failed,
            "{name} with a wrong password"
        );
    }
    // Lookup is exact, as Dovecot's passwd-file with %u.
    assert_eq!(
        users.authenticate(&file, "ARGON", &pw(SECRET)).await,
        AuthResult::Failed
    );
}

#[tokio::test]
async fn fresh_doveadm_hashes_verify() {
    let Some(doveadm) = doveadm("fresh_doveadm_hashes_verify") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("users");
    let schemes = ["ARGON2ID", "SHA512-CRYPT", "BLF-CRYPT", "PLAIN", "CRYPT"];
    let text: String = schemes
        .iter()
        .map(|s| format!("u-{s}:{}\n", doveadm_hash(&doveadm, s)))
        .collect();
    std::fs::write(&file, text).unwrap();
    let users = Users::new();
    for s in schemes {
        let name = format!("u-{s}");
        assert_eq!(
            users.authenticate(&file, &name, &pw(SECRET)).await,
            ok(&name)
        );
        assert_eq!(
            users.authenticate(&file, &name, &pw("secret ")).await,
            AuthResult::Failed,
            "{name}"
        );
    }
}

#[test]
fn doveadm_verifies_our_hashes() {
    let Some(doveadm) = doveadm("doveadm_verifies_our_hashes") else {
        return;
    };
    for scheme in ["ARGON2ID", "SHA512-CRYPT", "BLF-CRYPT", "PLAIN"] {
        let hash = hash_password(scheme, SECRET).unwrap();
        assert!(
            hash.starts_with(&format!("{{{scheme}}}")),
            "{scheme}: {hash}"
        );
        assert!(doveadm_verifies(&doveadm, &hash, SECRET), "{hash}");
        assert!(!doveadm_verifies(&doveadm, &hash, "wrong"), "{hash}");
    }
}

#[test]
fn our_hashes_use_doveadm_parameters() {
    let argon = hash_password("argon2id", SECRET).unwrap();
    assert!(
        argon.starts_with("{ARGON2ID}$argon2id$v=19$m=65536,t=3,p=1$"),
        "{argon}"
    );
    let sha = hash_password("SHA512-CRYPT", SECRET).unwrap();
    let parts: Vec<&str> = sha.split('$').collect();
    assert_eq!(parts[0], "{SHA512-CRYPT}");
    assert_eq!(parts[1], "6");
    assert_eq!(
        parts[2].len(),
        16,
        "16-character salt, default rounds: {sha}"
    );
    let blf = hash_password("Blf-Crypt", SECRET).unwrap();
    assert!(blf.starts_with("{BLF-CRYPT}$2y$05$"), "{blf}");
    // Two hashes of the same password differ (random salts).
    assert_ne!(sha, hash_password("SHA512-CRYPT", SECRET).unwrap());
    let err = hash_password("MD5-CRYPT", SECRET).unwrap_err();
    assert!(
        err.contains("MD5-CRYPT") && err.contains("ARGON2ID, SHA512-CRYPT, BLF-CRYPT, PLAIN"),
        "{err}"
    );
}

#[tokio::test]
async fn our_hashes_verify_in_a_users_file() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("users");
    // Hashed schemes take any password, ':' included; PLAIN cannot hold ':' in this format.
    let text = format!(
        "user0:{}\nuser1:{}\nuser2:{}\nuser3:{}\n",
        hash_password("ARGON2ID", "pä:ss").unwrap(),
        hash_password("SHA512-CRYPT", "pä:ss").unwrap(),
        hash_password("BLF-CRYPT", "pä:ss").unwrap(),
        hash_password("PLAIN", "päss").unwrap(),
    );
    std::fs::write(&file, &text).unwrap();
    let users = Users::new();
    for i in 0..3 {
        let name = format!("user{i}");
        assert_eq!(
            users.authenticate(&file, &name, &pw("pä:ss")).await,
            ok(&name)
        );
        assert_eq!(
            users.authenticate(&file, &name, &pw("pä:s")).await,
            AuthResult::Failed
        );
    }
    assert_eq!(
        users.authenticate(&file, "user3", &pw("päss")).await,
        ok("user3")
    );
}

#[tokio::test]
async fn unknown_user_fails_like_a_wrong_password() {
    let users = Users::new();
    let file = fixture();
    let wrong = users.authenticate(&file, "argon", &pw("nope")).await;
    let unknown = users.authenticate(&file, "nobody", &pw(SECRET)).await;
    let empty = users.authenticate(&file, "", &pw("")).await;
    assert_eq!(wrong, AuthResult::Failed);
    assert_eq!(unknown, wrong);
    assert_eq!(empty, wrong);
    // The dummy verification never lets anyone in, even with a real user's password.
    assert_eq!(
        users.authenticate(&file, "nobody", &pw("")).await,
        AuthResult::Failed
    );
}

#[tokio::test]
async fn file_changes_apply_at_next_login() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("users");
    std::fs::write(&file, "alice:{PLAIN}one\n").unwrap();
    let users = Users::new();
    assert_eq!(
        users.authenticate(&file, "alice", &pw("one")).await,
        ok("alice")
    );

    // In-place rewrite of the same size: seen through mtime/ctime (and size where it differs).
    std::fs::write(&file, "alice:{PLAIN}two\n").unwrap();
    assert_eq!(
        users.authenticate(&file, "alice", &pw("two")).await,
        ok("alice")
    );
    assert_eq!(
        users.authenticate(&file, "alice", &pw("one")).await,
        AuthResult::Failed
    );

    // Editor-style replace: write a new file and rename it over (new inode).
    let new = dir.path().join("users.new");
    std::fs::write(&new, "bob:{PLAIN}three\n").unwrap();
    std::fs::rename(&new, &file).unwrap();
    assert_eq!(
        users.authenticate(&file, "bob", &pw("three")).await,
        ok("bob")
    );
    assert_eq!(
        users.authenticate(&file, "alice", &pw("two")).await,
        AuthResult::Failed,
        "a removed user stops working at the next login"
    );
    assert_eq!(
        users
            .plain_password(&file, "bob")
            .map(|s| s.expose().clone()),
        Some("three".to_string())
    );
}

#[tokio::test]
async fn unreadable_file_is_a_temporary_failure() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("users");
    let users = Users::new();
    match users.authenticate(&file, "alice", &pw("x")).await {
        AuthResult::TempFail(msg) => assert!(msg.contains("users"), "{msg}"),
        other => panic!("missing file gave {other:?}"),
    }
    std::fs::write(&file, "alice:{PLAIN}x\n").unwrap();
    assert_eq!(
        users.authenticate(&file, "alice", &pw("x")).await,
        ok("alice")
    );
    // Gone again: the stale cached copy is not used.
    std::fs::remove_file(&file).unwrap();
    assert!(matches!(
        users.authenticate(&file, "alice", &pw("x")).await,
        AuthResult::TempFail(_)
    ));
    // A directory where the file should be cannot be read either.
    std::fs::create_dir(&file).unwrap();
    assert!(matches!(
        users.authenticate(&file, "alice", &pw("x")).await,
        AuthResult::TempFail(_)
    ));
    assert!(users.plain_password(&file, "alice").is_none());
}

#[tokio::test]
async fn malformed_lines_are_skipped_and_named() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("users");
    let good = std::fs::read_to_string(fixture()).unwrap();
    let text = format!(
        "{good}\
         justaname\n\
         md5:{{MD5}}5ebe2294ecd0e0f08eab7690d2a6ee69\n\
         broken:{{SHA512-CRYPT}}$6$abc\n\
         \n\
         last:{{PLAIN}}x\n"
    );
    std::fs::write(&file, &text).unwrap();
    let first_bad = good.lines().count() + 1;
    let parsed = load_users_file(&file).unwrap();
    let w = parsed.warnings();
    assert_eq!(w.len(), 3, "{w:#?}");
    for (i, warning) in w.iter().enumerate() {
        let prefix = format!("{}:{}: ", file.display(), first_bad + i);
        assert!(
            warning.starts_with(&prefix),
            "{warning} should start {prefix}"
        );
    }
    let users = Users::new();
    assert_eq!(
        users.authenticate(&file, "last", &pw("x")).await,
        ok("last")
    );
    assert_eq!(
        users.authenticate(&file, "sha", &pw(SECRET)).await,
        ok("sha")
    );
    for name in ["justaname", "md5", "broken"] {
        assert_eq!(
            users.authenticate(&file, name, &pw(SECRET)).await,
            AuthResult::Failed,
            "{name}"
        );
    }
}

#[test]
fn plain_password_is_only_for_plain_users() {
    let users = Users::new();
    let file = fixture();
    assert_eq!(
        users
            .plain_password(&file, "plain")
            .map(|s| s.expose().clone()),
        Some(SECRET.to_string())
    );
    assert!(users.plain_password(&file, "sha").is_none());
    assert!(users.plain_password(&file, "nobody").is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_concurrent_logins_all_get_an_answer() {
    fn shared<T: Send + Sync + 'static>(_: &T) {}
    let users = std::sync::Arc::new(Users::new());
    shared(&*users);
    let file = fixture();
    let mut tasks = Vec::new();
    for i in 0..40 {
        let users = users.clone();
        let file = file.clone();
        tasks.push(tokio::spawn(async move {
            let (name, pass) = match i % 4 {
                0 => ("blf", SECRET),
                1 => ("sha", SECRET),
                2 => ("nobody", SECRET),
                _ => ("plain", "wrong"),
            };
            (i, users.authenticate(&file, name, &pw(pass)).await)
        }));
    }
    for task in tasks {
        let (i, result) = tokio::time::timeout(std::time::Duration::from_secs(120), task)
            .await
            .expect("bounded")
            .unwrap();
        let want = match i % 4 {
            0 => ok("blf"),
            1 => ok("sha"),
            _ => AuthResult::Failed,
        };
        assert_eq!(result, want, "login {i}");
    }
}
