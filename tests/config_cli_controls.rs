//! Control characters from an attacker's `.reg` or config file are escaped in what
//! `reg import` and `check-config` print (the "hostile input" issue): the real binary's
//! stdout and stderr hold `\x1B`, never a raw ESC byte.

use assert_cmd::cargo::cargo_bin_cmd;

const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/config");

/// Runs the binary in `dir`; (exit code, stdout + stderr as raw bytes).
fn ms(dir: &std::path::Path, args: &[&str]) -> (i32, Vec<u8>) {
    let out = cargo_bin_cmd!("mailserver")
        .current_dir(dir)
        .env_remove("MAILSERVER_CONFIG")
        .env_remove("RUST_LOG")
        .args(["--config", "mailserver.toml"])
        .args(args)
        .output()
        .expect("run mailserver");
    let mut all = out.stdout;
    all.extend_from_slice(&out.stderr);
    (out.status.code().expect("exit code"), all)
}

fn assert_escaped(all: &[u8]) {
    let text = String::from_utf8_lossy(all);
    assert!(!all.contains(&0x1B), "raw ESC in {text:?}");
    assert!(text.contains("\\x1B]0;owned\\x07"), "{text}");
}

#[test]
fn check_config_escapes_names_and_values() {
    let dir = tempfile::tempdir().unwrap();
    let valid = std::fs::read_to_string(format!("{FIXTURES}/valid.toml")).unwrap();
    // An unknown value (warned about, kept, printed) whose name and data hold OSC sequences.
    let config = format!(
        "{valid}\n\"Evil\\u001B]0;owned\\u0007Name\" = \"v\\u001B]0;owned\\u0007\\u009b2J\"\n"
    );
    std::fs::write(dir.path().join("mailserver.toml"), config).unwrap();
    let (code, all) = ms(dir.path(), &["check-config"]);
    assert_eq!(code, 0, "{}", String::from_utf8_lossy(&all));
    assert_escaped(&all);
    assert!(String::from_utf8_lossy(&all).contains("\\u{9b}2J"));
}

#[test]
fn reg_import_escapes_names_and_values() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(
        format!("{FIXTURES}/valid.toml"),
        dir.path().join("mailserver.toml"),
    )
    .unwrap();
    let reg = "Windows Registry Editor Version 5.00\r\n\r\n[HKEY_LOCAL_MACHINE\\SYSTEM\\CurrentControlSet\\Services\\MSExchangeIS\\ParametersSystem]\r\n\"Evil\x1B]0;owned\x07\"=hex:01,02\r\n\"Other\x1B]0;owned\x07\"=\"data\x1B]0;owned\x07\"\r\n";
    std::fs::write(dir.path().join("evil.reg"), reg).unwrap();
    let (_, all) = ms(dir.path(), &["reg", "import", "evil.reg"]);
    assert_escaped(&all);
}
