//! `mailserver passwd` (SPEC §2, §6): reads one line on stdin, prints `{SCHEME}hash`.
//! The hashing itself is `auth::hash_password` (the auth work); until that is merged the
//! binary panics with "not yet implemented" and these tests say so and return.

use assert_cmd::cargo::cargo_bin_cmd;

fn passwd(args: &[&str], stdin: &str) -> Option<(i32, String, String)> {
    let out = cargo_bin_cmd!("mailserver")
        .arg("passwd")
        .args(args)
        .write_stdin(stdin)
        .output()
        .expect("run mailserver passwd");
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    if stderr.contains("not yet implemented") {
        eprintln!("skipped: auth::hash_password is not merged into this branch yet");
        return None;
    }
    Some((
        out.status.code().expect("exit code"),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr,
    ))
}

#[test]
fn passwd_default_scheme_is_argon2id() {
    let Some((code, stdout, stderr)) = passwd(&[], "s3cret\n") else {
        return;
    };
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.starts_with("{ARGON2ID}$argon2id$"), "{stdout}");
    assert_eq!(stdout.lines().count(), 1);
    assert!(!stdout.contains("s3cret"));
}

#[test]
fn passwd_other_schemes_and_errors() {
    let Some((code, stdout, stderr)) = passwd(&["--scheme", "sha512-crypt"], "pw\r\n") else {
        return;
    };
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.starts_with("{SHA512-CRYPT}$6$"), "{stdout}");
    let (code, stdout, _) = passwd(&["--scheme", "BLF-CRYPT"], "pw").unwrap();
    assert_eq!(code, 0);
    assert!(stdout.starts_with("{BLF-CRYPT}$2"), "{stdout}");
    let (code, _, stderr) = passwd(&["--scheme", "ROT13"], "pw\n").unwrap();
    assert_eq!(code, 1, "{stderr}");
    let (code, _, stderr) = passwd(&[], "").unwrap();
    assert_eq!(code, 1, "empty stdin: {stderr}");
}
