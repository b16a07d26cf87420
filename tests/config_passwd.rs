//! `mailserver passwd` (ARCHITECTURE.md, "Users and authentication"): reads one line on stdin,
//! prints `{SCHEME}hash`; on a terminal it asks twice without echo, as `doveadm pw` does
//! (driven here through a pty).

use assert_cmd::cargo::cargo_bin_cmd;

fn passwd(args: &[&str], stdin: &str) -> Option<(i32, String, String)> {
    let out = cargo_bin_cmd!("mailserver")
        .arg("passwd")
        .args(args)
        .write_stdin(stdin)
        .output()
        .expect("run mailserver passwd");
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
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

/// On a terminal: two prompts, nothing echoed, a hash printed; a mismatch is refused.
#[test]
fn passwd_on_a_terminal_asks_twice_without_echo() {
    let bin = assert_cmd::cargo::cargo_bin!("mailserver");
    let script = r#"
import os, pty, select, sys, termios, time
bin, first, second = sys.argv[1], sys.argv[2].encode(), sys.argv[3].encode()
pid, fd = pty.fork()
if pid == 0:
    os.execv(bin, [bin, "passwd", "--scheme", "SHA512-CRYPT"])
out = b""
def until(token):
    global out
    deadline = time.time() + 30
    while token not in out:
        assert time.time() < deadline, out
        r, _, _ = select.select([fd], [], [], 1)
        if r:
            out += os.read(fd, 4096)
def echo_off():
    # Type only once the program has turned echo off, as a person would after the prompt.
    deadline = time.time() + 30
    while termios.tcgetattr(fd)[3] & termios.ECHO:
        assert time.time() < deadline, "echo never turned off"
        time.sleep(0.01)
until(b"Enter new password: ")
echo_off()
os.write(fd, first + b"\n")
until(b"Retype new password: ")
echo_off()
os.write(fd, second + b"\n")
deadline = time.time() + 60
while time.time() < deadline:
    r, _, _ = select.select([fd], [], [], 1)
    if not r:
        continue
    try:
        chunk = os.read(fd, 4096)
    except OSError:
        break
    if not chunk:
        break
    out += chunk
_, status = os.waitpid(pid, 0)
text = out.decode()
print("EXIT", os.waitstatus_to_exitcode(status))
print("ECHOED", first.decode() in text)
for line in text.splitlines():
    if line.startswith("{SHA512-CRYPT}$6$"):
        print("HASH", line.strip())
print("MISMATCH", "don't match" in text)
"#;
    let run = |first: &str, second: &str| -> String {
        let out = std::process::Command::new("timeout")
            .args(["120", "python3", "-W", "ignore", "-c", script])
            .arg(bin)
            .args([first, second])
            .output()
            .expect("python3");
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(
            out.status.success(),
            "{text}{}",
            String::from_utf8_lossy(&out.stderr)
        );
        text
    };
    let ok = run("pty-s3cret", "pty-s3cret");
    assert!(ok.contains("EXIT 0"), "{ok}");
    assert!(ok.contains("ECHOED False"), "{ok}");
    // (That such hashes verify is `auth_dovecot`'s business, against `doveadm pw`.)
    assert!(ok.contains("HASH {SHA512-CRYPT}$6$"), "{ok}");
    let bad = run("pty-s3cret", "other");
    assert!(bad.contains("EXIT 1"), "{bad}");
    assert!(bad.contains("MISMATCH True"), "{bad}");
    assert!(bad.contains("ECHOED False"), "{bad}");
}
