//! Real IMAP clients against the real `mailserver` binary (tests/common `Daemon`): Python
//! `imaplib` over plain, STARTTLS and IMAPS, `curl imap://`, and isync's `mbsync` syncing a
//! mailbox both ways. A client that is not installed makes its test print a note and pass.

mod common;

use common::*;
use std::process::Command;

const PY_SESSION: &str = r#"
import imaplib, ssl, sys
host, port, mode, user, pw = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4], sys.argv[5]
ctx = ssl.create_default_context()
ctx.check_hostname = False
ctx.verify_mode = ssl.CERT_NONE
if mode == "imaps":
    M = imaplib.IMAP4_SSL(host, port, ssl_context=ctx)
else:
    M = imaplib.IMAP4(host, port)
    if mode == "starttls":
        assert "STARTTLS" in M.capabilities, M.capabilities
        M.starttls(ssl_context=ctx)
        assert "STARTTLS" not in M.capabilities, M.capabilities
print("caps", " ".join(M.capabilities))
M.login(user, pw)
typ, data = M.append("INBOX", r"(\Flagged)", None,
    b"From: a@example.org\r\nSubject: via imaplib\r\n\r\nbody line\r\n")
print("append", typ, data[0].decode())
typ, data = M.select("INBOX")
print("select", typ, data[0].decode())
typ, data = M.search(None, "SUBJECT", '"via imaplib"')
print("search", typ, data[0].decode())
typ, data = M.fetch("1", "(FLAGS BODY[])")
print("fetch", typ, data[0][0].decode(), repr(data[0][1]))
typ, data = M.store("1", "+FLAGS", r"(\Deleted)")
print("store", typ, data[0].decode())
typ, data = M.expunge()
print("expunge", typ, data[0].decode())
typ, data = M.list()
print("list", typ, len(data))
M.close()
print("logout", M.logout()[0])
"#;

fn run_imaplib(d: &Daemon, mode: &str) -> String {
    let addr = match mode {
        "imaps" => d.imaps.unwrap(),
        _ => d.imap.unwrap(),
    };
    python(
        PY_SESSION,
        &["127.0.0.1", &addr.port().to_string(), mode, USER, PASS],
    )
}

/// `tls`: the capabilities were printed with TLS active (IMAPS, or after STARTTLS).
fn check_imaplib_output(out: &str, tls: bool) {
    let caps = out.lines().next().unwrap();
    assert!(caps.starts_with("caps IMAP4REV1"), "{out}");
    assert_eq!(caps.contains("STARTTLS"), !tls, "{out}");
    assert!(out.contains("append OK [APPENDUID "), "{out}");
    assert!(out.contains("select OK 1"), "{out}");
    assert!(out.contains("search OK 1"), "{out}");
    assert!(
        out.contains("fetch OK 1 (FLAGS (\\Flagged \\Seen \\Recent) BODY[] {56}"),
        "{out}"
    );
    assert!(out.contains("via imaplib"), "{out}");
    assert!(
        out.contains("store OK 1 (FLAGS (\\Flagged \\Deleted \\Seen \\Recent))"),
        "{out}"
    );
    assert!(out.contains("expunge OK 1"), "{out}");
    assert!(out.contains("list OK 6"), "{out}");
    assert!(out.contains("logout BYE"), "{out}");
}

#[test]
fn python_imaplib_plain() {
    let d = Daemon::start();
    let out = run_imaplib(&d, "plain");
    check_imaplib_output(&out, false);
}

#[test]
fn python_imaplib_starttls() {
    let d = Daemon::start();
    let out = run_imaplib(&d, "starttls");
    check_imaplib_output(&out, true);
}

#[test]
fn python_imaplib_imaps() {
    let d = Daemon::start();
    let out = run_imaplib(&d, "imaps");
    check_imaplib_output(&out, true);
}

#[test]
fn curl_lists_and_fetches() {
    if !have("curl") {
        common::skipped("curl is not installed");
        return;
    }
    let d = Daemon::start();
    let msg = "From: c@example.org\r\nSubject: for curl\r\n\r\nHello curl\r\n";
    deliver(&d.data_dir(), USER, 1, msg);
    let port = d.imap.unwrap().port();
    let url = |path: &str| format!("imap://127.0.0.1:{port}/{path}");
    let run = |args: &[&str]| {
        let out = Command::new("curl")
            .args(["-sS", "--max-time", "20", "-u", &format!("{USER}:{PASS}")])
            .args(args)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "curl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let list = run(&[&url("")]);
    assert!(
        list.contains("* LIST (\\HasNoChildren) \"/\" INBOX"),
        "{list}"
    );
    assert!(list.contains("\\Sent) \"/\" Sent"), "{list}");
    let body = run(&[&url("INBOX;UID=1")]);
    assert_eq!(body, msg);
    let examine = run(&["-X", "EXAMINE INBOX", &url("")]);
    assert!(examine.contains("* 1 EXISTS"), "{examine}");
}

#[test]
fn mbsync_syncs_both_ways() {
    if !have("mbsync") {
        common::skipped("mbsync is not installed");
        return;
    }
    let d = Daemon::start();
    for i in 1..=3 {
        deliver(
            &d.data_dir(),
            USER,
            i,
            &format!("From: s@example.org\r\nSubject: server {i}\r\n\r\nbody {i}\r\n"),
        );
    }
    let local = d.dir.path().join("local");
    std::fs::create_dir_all(&local).unwrap();
    let port = d.imap.unwrap().port();
    let rc = d.dir.path().join("mbsyncrc");
    std::fs::write(
        &rc,
        format!(
            "IMAPAccount test\nHost 127.0.0.1\nPort {port}\nUser {USER}\nPass {PASS}\nSSLType None\nAuthMechs LOGIN\n\n\
             IMAPStore remote\nAccount test\n\n\
             MaildirStore local\nPath {p}/\nInbox {p}/INBOX\nSubFolders Verbatim\n\n\
             Channel sync\nFar :remote:\nNear :local:\nPatterns *\nCreate Both\nExpunge Both\nSyncState *\nSync All\n",
            p = local.display()
        ),
    )
    .unwrap();
    let mbsync = || {
        let out = Command::new("timeout")
            .args(["60", "mbsync", "-c"])
            .arg(&rc)
            .arg("-a")
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "mbsync: {}\n{}\ndaemon log:\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr),
            d.log_text()
        );
    };
    mbsync();
    let count = |dir: &std::path::Path| {
        ["cur", "new"]
            .iter()
            .map(|s| {
                std::fs::read_dir(dir.join(s))
                    .map(|r| r.count())
                    .unwrap_or(0)
            })
            .sum::<usize>()
    };
    assert_eq!(count(&local.join("INBOX")), 3, "server -> local");
    assert!(
        local.join("Sent").is_dir(),
        "special-use folders created locally"
    );

    // A message written locally goes up; one flagged locally as deleted goes away on both.
    let name = "1700000100.local.host:2,S";
    std::fs::write(
        local.join("INBOX/cur").join(name),
        "From: l@example.org\r\nSubject: local\r\n\r\nfrom mbsync\r\n",
    )
    .unwrap();
    mbsync();
    let server_inbox = d.data_dir().join("mail").join(USER);
    assert_eq!(count(&server_inbox), 4, "local -> server");
    let found = std::fs::read_dir(server_inbox.join("cur"))
        .unwrap()
        .flatten()
        .any(|e| {
            std::fs::read_to_string(e.path())
                .unwrap_or_default()
                .contains("from mbsync")
        });
    assert!(found, "the uploaded message is on the server");

    // A second run with nothing changed is a no-op and still succeeds.
    mbsync();
    assert_eq!(count(&local.join("INBOX")), 4);
    assert_eq!(count(&server_inbox), 4);

    // Flags go up (local \Flagged on "server 1"), a local deletion (T) is expunged on the
    // server, and a flag set on the server (IMAP STORE) comes down.
    let find = |dir: &std::path::Path, needle: &str| {
        ["cur", "new"]
            .iter()
            .flat_map(|sub| {
                std::fs::read_dir(dir.join(sub))
                    .into_iter()
                    .flatten()
                    .flatten()
            })
            .map(|e| e.path())
            .find(|p| {
                std::fs::read_to_string(p)
                    .unwrap_or_default()
                    .contains(needle)
            })
            .unwrap_or_else(|| panic!("{needle} not in {}", dir.display()))
    };
    let flag_local = |needle: &str, flag: char| {
        let p = find(&local.join("INBOX"), needle);
        let name = p.file_name().unwrap().to_string_lossy().into_owned();
        let (base, flags) = name.split_once(":2,").unwrap_or((&name, ""));
        let mut f: Vec<char> = flags.chars().chain([flag]).collect();
        f.sort_unstable();
        f.dedup();
        let new = format!("{base}:2,{}", f.iter().collect::<String>());
        std::fs::rename(&p, p.with_file_name(new)).unwrap();
    };
    flag_local("server 1", 'F');
    flag_local("server 2", 'T');
    let port_s = port.to_string();
    python(
        r#"
import imaplib, sys
M = imaplib.IMAP4("127.0.0.1", int(sys.argv[1]))
M.login(sys.argv[2], sys.argv[3])
M.select("INBOX")
typ, data = M.search(None, "SUBJECT", '"server 3"')
M.store(data[0].decode(), "+FLAGS", r"(\Answered)")
M.logout()
"#,
        &[&port_s, USER, PASS],
    );
    mbsync();
    assert_eq!(
        count(&server_inbox),
        3,
        "the local deletion reached the server"
    );
    assert_eq!(count(&local.join("INBOX")), 3);
    let server_flags = |needle: &str| {
        let p = find(&server_inbox, needle);
        let name = p.file_name().unwrap().to_string_lossy().into_owned();
        name.split_once(":2,")
            .map(|x| x.1.to_string())
            .unwrap_or_default()
    };
    assert!(server_flags("server 1").contains('F'), "\\Flagged went up");
    let local_flags = {
        let p = find(&local.join("INBOX"), "server 3");
        p.file_name().unwrap().to_string_lossy().into_owned()
    };
    assert!(
        local_flags.split(":2,").nth(1).unwrap_or("").contains('R'),
        "\\Answered came down: {local_flags}"
    );
}

/// RFC 3501 §6.2.1 / RFC 2595 §3.1: commands pipelined after STARTTLS in plaintext are
/// discarded, never executed inside the TLS session.
#[test]
fn starttls_discards_pipelined_plaintext() {
    let d = Daemon::start();
    let out = python(
        r#"
import socket, ssl, sys
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=20)
f = s.makefile("rb")
print(f.readline().decode().strip())
s.sendall(b"a STARTTLS\r\nb LOGIN alice wonderland\r\n")
print(f.readline().decode().strip())
ctx = ssl.create_default_context()
ctx.check_hostname = False
ctx.verify_mode = ssl.CERT_NONE
t = ctx.wrap_socket(s)
g = t.makefile("rb")
t.sendall(b"c SELECT INBOX\r\n")
print(g.readline().decode().strip())
t.sendall(b"d CAPABILITY\r\n")
print(g.readline().decode().strip())
print(g.readline().decode().strip())
"#,
        &[&d.imap.unwrap().port().to_string()],
    );
    let lines: Vec<&str> = out.lines().collect();
    assert!(lines[0].starts_with("* OK [CAPABILITY"), "{out}");
    assert_eq!(lines[1], "a OK Begin TLS negotiation now.", "{out}");
    assert!(lines[2].starts_with("c BAD"), "not logged in: {out}");
    assert!(
        lines[3].starts_with("* CAPABILITY") && !lines[3].contains("STARTTLS"),
        "{out}"
    );
    assert!(lines[4].starts_with("d OK"), "{out}");
}

#[test]
fn curl_over_imaps() {
    if !have("curl") {
        common::skipped("curl is not installed");
        return;
    }
    let d = Daemon::start();
    let msg = "From: c@example.org\r\nSubject: tls\r\n\r\nover TLS\r\n";
    deliver(&d.data_dir(), USER, 1, msg);
    let out = Command::new("curl")
        .args([
            "-sS",
            "-k",
            "--max-time",
            "20",
            "-u",
            &format!("{USER}:{PASS}"),
        ])
        .arg(format!(
            "imaps://127.0.0.1:{}/INBOX;UID=1",
            d.imaps.unwrap().port()
        ))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout), msg);
}
