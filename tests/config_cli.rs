//! The real binary driven as an admin would (ARCHITECTURE.md, "Configuration and reload"):
//! `check-config`, `reg`, usage errors and exit codes. Every case works on a copy in a tempdir.

use std::path::{Path, PathBuf};

use assert_cmd::cargo::cargo_bin_cmd;

const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/config");

struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

fn ms(dir: &Path, args: &[&str]) -> Run {
    let out = cargo_bin_cmd!("mailserver")
        .current_dir(dir)
        .env_remove("MAILSERVER_CONFIG")
        .env_remove("RUST_LOG")
        .args(args)
        .output()
        .expect("run mailserver");
    Run {
        code: out.status.code().expect("exit code"),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// A tempdir with `mailserver.toml` holding `content`.
fn with_config(content: &str) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("mailserver.toml");
    std::fs::write(&path, content).unwrap();
    (dir, path)
}

fn fixture_copy() -> (tempfile::TempDir, PathBuf) {
    with_config(&std::fs::read_to_string(format!("{FIXTURES}/valid.toml")).unwrap())
}

fn reg(dir: &Path, args: &[&str]) -> Run {
    let mut all = vec!["--config", "mailserver.toml", "reg"];
    all.extend_from_slice(args);
    ms(dir, &all)
}

#[test]
fn version() {
    let dir = tempfile::tempdir().unwrap();
    let r = ms(dir.path(), &["--version"]);
    assert_eq!(r.code, 0);
    assert_eq!(r.stdout.trim(), "mailserver 0.1.0");
}

#[test]
fn check_config_ok_prints_effective_settings() {
    let (dir, _) = fixture_copy();
    let r = ms(dir.path(), &["--config", "mailserver.toml", "check-config"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(
        r.stderr
            .contains("warning: mailserver.toml: auth.users_file ")
            && r.stderr.contains("/users: "),
        "a missing users file is worth a warning: {}",
        r.stderr
    );
    std::fs::write(dir.path().join("users"), "").unwrap();
    let r = ms(dir.path(), &["--config", "mailserver.toml", "check-config"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let base = dir.path().display().to_string();
    for needle in [
        "hostname = \"mail.example.org\"".to_string(),
        format!("data_dir = \"{base}/data\""),
        format!("users_file = \"{base}/users\""),
        "listen = [\"127.0.0.1:1143\"]".to_string(),
        "imap4rev2 = true".to_string(),
        "shutdown_grace_secs = 10".to_string(),
        "\"POP3 Protocol Logging Level\" = 5  # REG_DWORD 0x5 (file)".to_string(),
        format!("\"POP3 Protocol Log Path\" = \"{base}/logs\"  # REG_SZ"),
        "\"IMAP Protocol Log File Size Limit\" = 0  # REG_DWORD 0x0 (default)".to_string(),
    ] {
        assert!(
            r.stdout.contains(&needle),
            "missing {needle:?} in\n{}",
            r.stdout
        );
    }
    assert!(r.stderr.is_empty(), "{}", r.stderr);
}

#[test]
fn check_config_uses_env_then_cwd_default() {
    let (dir, path) = fixture_copy();
    // MAILSERVER_CONFIG
    let out = cargo_bin_cmd!("mailserver")
        .current_dir(dir.path())
        .env("MAILSERVER_CONFIG", &path)
        .arg("check-config")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
    // etc/mailserver.toml relative to cwd (when /etc/mailserver/mailserver.toml is absent)
    if !Path::new("/etc/mailserver/mailserver.toml").exists() {
        std::fs::create_dir(dir.path().join("etc")).unwrap();
        std::fs::write(
            dir.path().join("etc/mailserver.toml"),
            "[server]\nhostname = \"from-etc\"\n",
        )
        .unwrap();
        let r = ms(dir.path(), &["check-config"]);
        assert_eq!(r.code, 0, "{}", r.stderr);
        assert!(r.stdout.contains("hostname = \"from-etc\""));
        assert!(r.stdout.contains(&format!(
            "users_file = \"{}/etc/users\"",
            dir.path().display()
        )));
    }
}

/// Each bad config: exit 1, and stderr names file:line:col and the offending thing.
#[test]
fn check_config_failures_name_value_and_position() {
    let cases: &[(&str, &str, &[&str])] = &[
        (
            "level out of range",
            "[server]\nhostname = \"h\"\n\n[ParametersSystem]\n\"POP3 Protocol Logging Level\" = 7\n",
            &["mailserver.toml:5:33: \"POP3 Protocol Logging Level\" must be REG_DWORD 0 through 5, got 7"],
        ),
        (
            "type mismatch",
            "[ParametersSystem]\n\"IMAP Protocol Log Path\" = 5\n",
            &["mailserver.toml:2:28: ", "\"IMAP Protocol Log Path\" must be REG_SZ", "got REG_DWORD 5"],
        ),
        (
            "names equal but for case",
            "[ParametersSystem]\n\"POP3 Protocol Logging Level\" = 1\n\"pop3 protocol LOGGING level\" = 2\n",
            &["mailserver.toml:3:1: ", "\"pop3 protocol LOGGING level\"", "case-insensitive"],
        ),
        (
            "windows path",
            "[ParametersSystem]\n\"POP3 Protocol Log Path\" = 'c:\\exchsrvr\\mdbdata'\n",
            &["mailserver.toml:2:28: ", "\"POP3 Protocol Log Path\" is a Windows path"],
        ),
        (
            "unknown key outside ParametersSystem",
            "[server]\nhostname = \"h\"\n[limits]\nmax_conections = 5\n",
            &["mailserver.toml:4:1: ", "max_conections"],
        ),
        (
            "unknown section",
            "[server]\nhostname = \"h\"\n\n[imap4]\nlisten = []\n",
            &["mailserver.toml:4:", "imap4"],
        ),
        (
            "bad listen address",
            "[imap]\nlisten = [\"localhost:143\"]\n",
            &["mailserver.toml:2:11: ", "imap.listen", "localhost:143"],
        ),
        (
            "TOML syntax",
            "[server]\nhostname = \"unterminated\n",
            &["mailserver.toml:2:"],
        ),
        (
            "wrong type outside registry",
            "[auth]\nallow_plaintext = \"yes\"\n",
            &["mailserver.toml:2:19: "],
        ),
    ];
    for (what, content, needles) in cases {
        let (dir, _) = with_config(content);
        let r = ms(dir.path(), &["--config", "mailserver.toml", "check-config"]);
        assert_eq!(r.code, 1, "{what}: {}", r.stderr);
        assert!(r.stdout.is_empty(), "{what}: {}", r.stdout);
        for n in *needles {
            assert!(
                r.stderr.contains(n),
                "{what}: missing {n:?} in {}",
                r.stderr
            );
        }
    }
}

#[test]
fn check_config_missing_file_exits_1() {
    let dir = tempfile::tempdir().unwrap();
    let r = ms(dir.path(), &["--config", "nope.toml", "check-config"]);
    assert_eq!(r.code, 1);
    assert!(r.stderr.contains("nope.toml"), "{}", r.stderr);
}

#[test]
fn unknown_registry_value_warns_with_suggestion_and_is_kept() {
    let (dir, _) = with_config("[ParametersSystem]\n\"POP3 Protocol Loging Level\" = 2\n");
    let r = ms(dir.path(), &["--config", "mailserver.toml", "check-config"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(
        r.stderr.contains("mailserver.toml:2:1: ")
            && r.stderr
                .contains("did you mean \"POP3 Protocol Logging Level\"?"),
        "{}",
        r.stderr
    );
    assert!(r
        .stdout
        .contains("\"POP3 Protocol Loging Level\" = 2  # REG_DWORD 0x2 (file; unknown"));
    let q = reg(dir.path(), &["query"]);
    assert_eq!(q.code, 0);
    assert!(q
        .stdout
        .contains("    POP3 Protocol Loging Level    REG_DWORD    0x2\n"));
}

#[test]
fn reg_query_has_reg_exe_shape() {
    let (dir, _) = fixture_copy();
    let r = reg(dir.path(), &["query"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(
        r.stdout,
        "\nHKEY_LOCAL_MACHINE\\SYSTEM\\CurrentControlSet\\Services\\MSExchangeIS\\ParametersSystem\n\
         \x20   POP3 Protocol Logging Level    REG_DWORD    0x5\n\
         \x20   POP3 Protocol Log Path    REG_SZ    logs\n\
         \x20   IMAP Protocol Logging Level    REG_DWORD    0x0\n\
         \x20   IMAP Protocol Log Path    REG_SZ    /var/log/mailserver\n\n"
    );
    let one = reg(dir.path(), &["query", "pop3 protocol logging level"]);
    assert_eq!(one.code, 0);
    assert_eq!(
        one.stdout,
        "\nHKEY_LOCAL_MACHINE\\SYSTEM\\CurrentControlSet\\Services\\MSExchangeIS\\ParametersSystem\n\
         \x20   POP3 Protocol Logging Level    REG_DWORD    0x5\n\n"
    );
    let missing = reg(dir.path(), &["query", "POP3 Protocol Log File Size Limit"]);
    assert_eq!(missing.code, 1);
    assert_eq!(
        missing.stderr.trim(),
        "ERROR: The system was unable to find the specified registry key or value."
    );
}

#[test]
fn reg_add_keeps_comments_and_needs_f_to_overwrite() {
    let (dir, path) = fixture_copy();
    let before = std::fs::read_to_string(&path).unwrap();

    // exists, no /f: refused, unchanged
    let r = reg(
        dir.path(),
        &[
            "add",
            "POP3 Protocol Logging Level",
            "/t",
            "REG_DWORD",
            "/d",
            "2",
        ],
    );
    assert_eq!(r.code, 1);
    assert!(r.stderr.contains("/f"), "{}", r.stderr);
    assert_eq!(std::fs::read_to_string(&path).unwrap(), before);

    let r = reg(
        dir.path(),
        &[
            "add",
            "POP3 Protocol Logging Level",
            "/t",
            "REG_DWORD",
            "/d",
            "0x2",
            "/f",
        ],
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(r.stdout.trim(), "The operation completed successfully.");
    let after = std::fs::read_to_string(&path).unwrap();
    assert!(
        after.contains("\"POP3 Protocol Logging Level\" = 2          # REG_DWORD, 0 through 5\n"),
        "{after}"
    );
    // everything else byte-identical
    assert_eq!(
        after.replace("Level\" = 2  ", "Level\" = 5  "),
        before,
        "only the value changed"
    );

    // a new value is appended, REG_SZ, lowercase flags work
    let r = reg(
        dir.path(),
        &[
            "add",
            "IMAP Protocol Log File Size Limit",
            "/T",
            "reg_dword",
            "/D",
            "1024",
        ],
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    let q = reg(dir.path(), &["query", "IMAP Protocol Log File Size Limit"]);
    assert!(q
        .stdout
        .contains("    IMAP Protocol Log File Size Limit    REG_DWORD    0x400\n"));
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(text.contains("# HKLM\\SYSTEM"), "comments survive: {text}");
    assert!(text.contains("# implicit TLS (POP3S)"));
}

#[test]
fn config_option_may_follow_reg_switches() {
    let (dir, path) = fixture_copy();
    let r = ms(
        dir.path(),
        &[
            "reg",
            "add",
            "IMAP Protocol Logging Level",
            "/t",
            "REG_DWORD",
            "/d",
            "4",
            "/f",
            "--config",
            "mailserver.toml",
        ],
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    let r = ms(
        dir.path(),
        &[
            "reg",
            "delete",
            "POP3 Protocol Log Path",
            "--config=mailserver.toml",
            "/f",
        ],
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(
        text.contains("\"IMAP Protocol Logging Level\" = 4\n"),
        "{text}"
    );
    assert!(!text.contains("POP3 Protocol Log Path"), "{text}");
}

#[test]
fn reg_add_unknown_name_is_kept_with_a_warning() {
    let (dir, path) = fixture_copy();
    let r = reg(
        dir.path(),
        &[
            "add",
            "IMAP Protocol Loging Level",
            "/t",
            "REG_DWORD",
            "/d",
            "1",
        ],
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(
        r.stderr
            .contains("did you mean \"IMAP Protocol Logging Level\"?"),
        "{}",
        r.stderr
    );
    assert!(std::fs::read_to_string(&path)
        .unwrap()
        .contains("\"IMAP Protocol Loging Level\" = 1\n"));
}

#[test]
fn reg_exe_v_switch_names_the_value() {
    let (dir, path) = fixture_copy();
    let q = reg(dir.path(), &["query", "/v", "POP3 Protocol Logging Level"]);
    assert_eq!(q.code, 0, "{}", q.stderr);
    assert!(q
        .stdout
        .contains("    POP3 Protocol Logging Level    REG_DWORD    0x5\n"));
    assert_eq!(q.stdout.lines().count(), 4, "{}", q.stdout);
    let r = reg(
        dir.path(),
        &[
            "add",
            "/v",
            "IMAP Protocol Logging Level",
            "/t",
            "REG_DWORD",
            "/d",
            "1",
            "/f",
        ],
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    let r = reg(
        dir.path(),
        &["delete", "/V", "IMAP Protocol Log Path", "/f"],
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(
        text.contains("\"IMAP Protocol Logging Level\" = 1\n"),
        "{text}"
    );
    assert!(!text.contains("IMAP Protocol Log Path"), "{text}");
    assert_eq!(reg(dir.path(), &["query", "/v"]).code, 2);
    assert_eq!(reg(dir.path(), &["query", "a", "b"]).code, 2);
}

#[test]
fn reg_add_keeps_the_file_mode() {
    use std::os::unix::fs::PermissionsExt;
    let (dir, path) = fixture_copy();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o640)).unwrap();
    let r = reg(
        dir.path(),
        &[
            "add",
            "IMAP Protocol Logging Level",
            "/t",
            "REG_DWORD",
            "/d",
            "2",
            "/f",
        ],
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o7777;
    assert_eq!(mode, 0o640);
}

#[test]
fn reg_add_creates_the_table_when_missing() {
    let (dir, path) = with_config("# my server\n[server]\nhostname = \"h\" # name\n");
    let r = reg(
        dir.path(),
        &[
            "add",
            "POP3 Protocol Log Path",
            "/t",
            "REG_SZ",
            "/d",
            "/var/log/mailserver",
        ],
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(
        text.starts_with("# my server\n[server]\nhostname = \"h\" # name\n"),
        "{text}"
    );
    assert!(
        text.contains("[ParametersSystem]\n\"POP3 Protocol Log Path\" = \"/var/log/mailserver\"\n")
    );
}

#[test]
fn invalid_reg_add_leaves_file_byte_identical() {
    let (dir, path) = fixture_copy();
    let before = std::fs::read(&path).unwrap();
    let cases: &[(&[&str], &str)] = &[
        (
            &[
                "add",
                "POP3 Protocol Logging Level",
                "/t",
                "REG_DWORD",
                "/d",
                "7",
                "/f",
            ],
            "\"POP3 Protocol Logging Level\" must be REG_DWORD 0 through 5, got 7",
        ),
        (
            &[
                "add",
                "IMAP Protocol Log Path",
                "/t",
                "REG_SZ",
                "/d",
                "C:\\exchsrvr\\logs",
                "/f",
            ],
            "Windows path",
        ),
        (
            &[
                "add",
                "POP3 Protocol Logging Level",
                "/t",
                "REG_SZ",
                "/d",
                "5",
                "/f",
            ],
            "must be REG_DWORD",
        ),
        (
            &[
                "add",
                "pop3 protocol logging LEVEL",
                "/t",
                "REG_DWORD",
                "/d",
                "9",
                "/f",
            ],
            "got 9",
        ),
        (
            &["add", "X", "/t", "REG_DWORD", "/d", "lots", "/f"],
            "REG_DWORD",
        ),
        (
            &["add", "X", "/t", "REG_BINARY", "/d", "00", "/f"],
            "REG_BINARY",
        ),
    ];
    for (args, needle) in cases {
        let r = reg(dir.path(), args);
        assert_eq!(r.code, 1, "{args:?}: {}", r.stderr);
        assert!(r.stderr.contains(needle), "{args:?}: {}", r.stderr);
        assert_eq!(
            std::fs::read(&path).unwrap(),
            before,
            "{args:?} changed the file"
        );
    }
    // the edited document's position is reported like a load error
    let r = reg(
        dir.path(),
        &[
            "add",
            "POP3 Protocol Logging Level",
            "/t",
            "REG_DWORD",
            "/d",
            "7",
            "/f",
        ],
    );
    assert!(r.stderr.contains("mailserver.toml:27:33: "), "{}", r.stderr);
    // no temp files left behind
    let names: Vec<String> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names, vec!["mailserver.toml".to_string()]);
}

#[test]
fn reg_delete_needs_f_and_existing_value() {
    let (dir, path) = fixture_copy();
    let before = std::fs::read(&path).unwrap();
    let r = reg(dir.path(), &["delete", "POP3 Protocol Log Path"]);
    assert_eq!(r.code, 1);
    assert!(r.stderr.contains("/f"));
    assert_eq!(std::fs::read(&path).unwrap(), before);
    let r = reg(dir.path(), &["delete", "No Such Value", "/f"]);
    assert_eq!(r.code, 1);
    assert!(r.stderr.contains("unable to find"));
    let r = reg(dir.path(), &["delete", "pop3 protocol log path", "/f"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(!text.contains("POP3 Protocol Log Path"));
    assert!(text.contains("\"POP3 Protocol Logging Level\" = 5          # REG_DWORD, 0 through 5"));
    let q = reg(dir.path(), &["query", "POP3 Protocol Log Path"]);
    assert_eq!(q.code, 1);
}

#[test]
fn reg_through_symlink_rewrites_target() {
    let (dir, _) = fixture_copy();
    std::fs::create_dir(dir.path().join("real")).unwrap();
    std::fs::rename(
        dir.path().join("mailserver.toml"),
        dir.path().join("real/mailserver.toml"),
    )
    .unwrap();
    std::os::unix::fs::symlink("real/mailserver.toml", dir.path().join("mailserver.toml")).unwrap();
    let r = reg(
        dir.path(),
        &[
            "add",
            "IMAP Protocol Logging Level",
            "/t",
            "REG_DWORD",
            "/d",
            "3",
            "/f",
        ],
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(
        std::fs::symlink_metadata(dir.path().join("mailserver.toml"))
            .unwrap()
            .file_type()
            .is_symlink()
    );
    let text = std::fs::read_to_string(dir.path().join("real/mailserver.toml")).unwrap();
    assert!(
        text.contains("\"IMAP Protocol Logging Level\" = 3"),
        "{text}"
    );
}

#[test]
fn reg_import_applies_our_key_and_skips_the_rest() {
    let (dir, path) = fixture_copy();
    std::fs::copy(
        format!("{FIXTURES}/import.reg"),
        dir.path().join("import.reg"),
    )
    .unwrap();
    let r = reg(dir.path(), &["import", "import.reg"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(
        r.stderr.contains("\"Binary Thing\" has type hex"),
        "{}",
        r.stderr
    );
    assert!(r.stderr.contains("ParametersPrivate"), "{}", r.stderr);
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(
        text.contains("\"POP3 Protocol Logging Level\" = 3          # REG_DWORD, 0 through 5"),
        "{text}"
    );
    assert!(
        text.contains("\"IMAP Protocol Logging Level\" = 5\n"),
        "{text}"
    );
    assert!(
        text.contains("\"IMAP Protocol Log Path\" = \"imap-logs\"\n"),
        "{text}"
    );
    assert!(text.contains("\"Max Open Tables\" = 512\n"), "{text}");
    assert!(!text.contains("POP3 Protocol Log Path"), "{text}");
    assert!(!text.contains("Something"), "{text}");
}

#[test]
fn reg_import_is_all_or_nothing() {
    let (dir, path) = fixture_copy();
    let before = std::fs::read(&path).unwrap();
    std::fs::write(
        dir.path().join("bad.reg"),
        "REGEDIT4\r\n\r\n[HKEY_LOCAL_MACHINE\\SYSTEM\\CurrentControlSet\\Services\\MSExchangeIS\\ParametersSystem]\r\n\"IMAP Protocol Logging Level\"=dword:00000001\r\n\"POP3 Protocol Logging Level\"=dword:00000009\r\n",
    )
    .unwrap();
    let r = reg(dir.path(), &["import", "bad.reg"]);
    assert_eq!(r.code, 1);
    assert!(r.stderr.contains("got 9"), "{}", r.stderr);
    assert_eq!(std::fs::read(&path).unwrap(), before);
    // a malformed .reg changes nothing either
    std::fs::write(dir.path().join("worse.reg"), "not a reg file\n").unwrap();
    let r = reg(dir.path(), &["import", "worse.reg"]);
    assert_eq!(r.code, 1);
    assert!(r.stderr.contains("line 1"), "{}", r.stderr);
    assert_eq!(std::fs::read(&path).unwrap(), before);
}

#[test]
fn reg_export_then_import_round_trips() {
    let (dir, path) = fixture_copy();
    reg(
        dir.path(),
        &["add", "Odd \"Name\"", "/t", "REG_SZ", "/d", "a\\b", "/f"],
    );
    let r = reg(dir.path(), &["export", "out.reg"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let bytes = std::fs::read(dir.path().join("out.reg")).unwrap();
    assert_eq!(&bytes[..2], &[0xFF, 0xFE], "UTF-16LE BOM");
    let units: Vec<u16> = bytes[2..]
        .chunks_exact(2)
        .map(|c| u16::from_le_bytes([c[0], c[1]]))
        .collect();
    let text = String::from_utf16(&units).unwrap();
    assert_eq!(
        text,
        "Windows Registry Editor Version 5.00\r\n\r\n\
         [HKEY_LOCAL_MACHINE\\SYSTEM\\CurrentControlSet\\Services\\MSExchangeIS\\ParametersSystem]\r\n\
         \"POP3 Protocol Logging Level\"=dword:00000005\r\n\
         \"POP3 Protocol Log Path\"=\"logs\"\r\n\
         \"IMAP Protocol Logging Level\"=dword:00000000\r\n\
         \"IMAP Protocol Log Path\"=\"/var/log/mailserver\"\r\n\
         \"Odd \\\"Name\\\"\"=\"a\\\\b\"\r\n\r\n"
    );
    let before_query = reg(dir.path(), &["query"]).stdout;

    // import into a config without the table: same values come back
    std::fs::write(&path, "[server]\nhostname = \"h\"\n").unwrap();
    let r = reg(dir.path(), &["import", "out.reg"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(reg(dir.path(), &["query"]).stdout, before_query);
}

/// A REG_SZ holding a line break and a REG_MULTI_SZ, through the binary: `reg add` with
/// reg.exe's `\0` separator, `reg query` printing it back, `reg export` writing `hex(1):`
/// and `hex(7):`, and `reg import` into an empty config giving the same values.
#[test]
fn reg_multi_sz_and_line_breaks_round_trip_through_export_and_import() {
    let (dir, path) = fixture_copy();
    let r = reg(
        dir.path(),
        &[
            "add",
            "IMAP Protocol Log Users",
            "/t",
            "REG_MULTI_SZ",
            "/d",
            "alice\\0Bob@example.org",
            "/f",
        ],
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(std::fs::read_to_string(&path)
        .unwrap()
        .contains("\"IMAP Protocol Log Users\" = [\"alice\", \"Bob@example.org\"]"));
    let q = reg(dir.path(), &["query", "imap protocol log users"]);
    assert!(
        q.stdout
            .contains("    IMAP Protocol Log Users    REG_MULTI_SZ    alice\\0Bob@example.org\n"),
        "{}",
        q.stdout
    );
    // A line break can only come from the TOML file itself.
    let text = std::fs::read_to_string(&path).unwrap();
    std::fs::write(&path, format!("{text}\"Note\" = \"two\\r\\nlines\"\n")).unwrap();
    let r = reg(dir.path(), &["export", "out.reg"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let bytes = std::fs::read(dir.path().join("out.reg")).unwrap();
    let units: Vec<u16> = bytes[2..]
        .chunks_exact(2)
        .map(|c| u16::from_le_bytes([c[0], c[1]]))
        .collect();
    let exported = String::from_utf16(&units).unwrap();
    assert!(
        exported.contains("\r\n\"Note\"=hex(1):74,00,77,00,6f,00,0d,00,0a,00,6c,00,69,00,6e,00,65,00,73,00,00,\\\r\n  00\r\n"),
        "{exported}"
    );
    assert!(
        exported
            .contains("\"IMAP Protocol Log Users\"=hex(7):61,00,6c,00,69,00,63,00,65,00,00,00,"),
        "{exported}"
    );
    let before_query = reg(dir.path(), &["query"]).stdout;
    std::fs::write(&path, "[server]\nhostname = \"h\"\n").unwrap();
    let r = reg(dir.path(), &["import", "out.reg"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(reg(dir.path(), &["query"]).stdout, before_query);
    // The same value, line break included (`reg query` shows controls escaped).
    assert!(
        before_query.contains("    Note    REG_SZ    two"),
        "{before_query}"
    );
    let imported = mailserver::config::load(&path).unwrap();
    let note = imported.registry.get("note").map(|e| e.data.clone());
    assert_eq!(
        note,
        Some(mailserver::config::registry::RegData::Sz(
            "two\r\nlines".into()
        ))
    );
}

#[test]
fn usage_errors_exit_2() {
    let (dir, _) = fixture_copy();
    for args in [
        &["no-such-command"][..],
        &["--config"],
        &["reg"],
        &["reg", "add"],
        &["reg", "frobnicate"],
        &["--config", "mailserver.toml", "reg", "add", "X", "/t"],
        &["--config", "mailserver.toml", "reg", "add", "X", "/q", "1"],
        &[
            "--config",
            "mailserver.toml",
            "reg",
            "delete",
            "X",
            "/d",
            "1",
        ],
        &["check-config", "extra"],
    ] {
        let r = ms(dir.path(), args);
        assert_eq!(r.code, 2, "{args:?}: {}", r.stderr);
    }
}

/// `reg` edits are read-modify-write of one file: concurrent ones are serialised (an
/// exclusive lock on the config's directory), so none is lost.
#[test]
fn concurrent_reg_edits_all_land() {
    let (dir, path) = fixture_copy();
    let n = 16;
    let handles: Vec<_> = (0..n)
        .map(|i| {
            let d = dir.path().to_path_buf();
            std::thread::spawn(move || {
                let name = format!("Custom Value {i}");
                let data = format!("v{i}");
                reg(&d, &["add", &name, "/t", "REG_SZ", "/d", &data, "/f"])
            })
        })
        .collect();
    for h in handles {
        let r = h.join().unwrap();
        assert_eq!(r.code, 0, "{}", r.stderr);
    }
    let text = std::fs::read_to_string(&path).unwrap();
    for i in 0..n {
        assert!(
            text.contains(&format!("\"Custom Value {i}\" = \"v{i}\"")),
            "value {i} lost:\n{text}"
        );
    }
    // No lock file or temp file is left behind.
    let mut names: Vec<String> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(names, ["mailserver.toml"]);
}

/// Hostile input: 20,000 unknown `[ParametersSystem]` values. Locating each value used to
/// count lines from the file's start and the duplicate check searched every earlier name,
/// so checking took tens of seconds; both are linear now. The bound is generous (the check
/// takes a few seconds in a debug build); `timeout` ends a run that would take far longer.
#[test]
fn check_config_with_20000_unknown_values_is_linear() {
    let (dir, path) = fixture_copy();
    let mut text = std::fs::read_to_string(&path).unwrap();
    assert!(
        text.lines().rfind(|l| l.starts_with('[')) == Some("[ParametersSystem]"),
        "the fixture's last table must be [ParametersSystem]"
    );
    for i in 0..20_000 {
        text.push_str(&format!("\"Unknown Value {i}\" = {i}\n"));
    }
    std::fs::write(&path, text).unwrap();
    std::fs::write(dir.path().join("users"), "").unwrap();
    let out = std::process::Command::new("timeout")
        .arg("20")
        .arg(assert_cmd::cargo::cargo_bin!("mailserver"))
        .args(["--config", "mailserver.toml", "check-config"])
        .current_dir(dir.path())
        .env_remove("MAILSERVER_CONFIG")
        .env_remove("RUST_LOG")
        .output()
        .expect("run timeout mailserver");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        out.status.code(),
        Some(0),
        "check-config did not finish within 20 s (124 = timed out): {}",
        stderr.lines().last().unwrap_or("")
    );
    assert_eq!(
        stderr.matches("unknown registry value").count(),
        20_000,
        "every unknown value is warned about once"
    );
    assert!(
        stderr.contains("mailserver.toml:"),
        "warnings name the file"
    );
}
