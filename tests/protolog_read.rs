//! `mailserver protolog ls|show|stats` (README.md, "mailserver protolog"): over the files of a
//! real level-5 run (POP3 and IMAP4, alice and bob at once, a failed login each) and over
//! generated files (one test per option, a file being appended to, a truncated last line,
//! `--follow` across a roll-over).
//!
//! The expected answers come from the test's own reader (`tests/common/logreader.rs`,
//! independent of the crate's parser) or from what the generating code wrote. Every wait is
//! bounded; nothing asserts on timing.

mod common;
#[path = "common/logreader.rs"]
mod logreader;

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use common::{bin, Daemon, Options};

const WAIT: Duration = Duration::from_secs(30);

/// Runs `mailserver protolog ARGS`; returns stdout (asserting success).
fn protolog(args: &[&str]) -> String {
    let out = Command::new(bin())
        .arg("protolog")
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "protolog {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

// ---------------------------------------------------------------------------------------
// A real run
// ---------------------------------------------------------------------------------------

/// What the client script did, as the tests check it.
struct RealRun {
    /// Kept so the logs stay.
    _dir: tempfile::TempDir,
    logs: PathBuf,
}

/// Python: alice and bob at once, over POP3 and IMAP, each also failing one login.
const CLIENTS: &str = r#"
import imaplib, poplib, sys, threading
pop_port, imap_port = int(sys.argv[1]), int(sys.argv[2])
errors = []
def pop(user, pw):
    try:
        p = poplib.POP3('127.0.0.1', pop_port, timeout=30)
        p.user(user); p.pass_(pw)
        p.retr(1)
        p.quit()
    except Exception as e:
        errors.append(repr(e))
def imap(user, pw):
    try:
        m = imaplib.IMAP4('127.0.0.1', imap_port, timeout=30)
        m.login(user, pw)
        m.select('INBOX')
        m.fetch('1', '(BODY[])')
        m.logout()
    except Exception as e:
        errors.append(repr(e))
def bad_imap(user):
    try:
        m = imaplib.IMAP4('127.0.0.1', imap_port, timeout=30)
        try:
            m.login(user, 'wrong')
        except imaplib.IMAP4.error:
            pass
        m.logout()
    except Exception as e:
        errors.append(repr(e))
ts = [threading.Thread(target=f, args=a) for f, a in [
    (pop, ('alice', 'wonderland')), (pop, ('bob', 'builder')),
    (imap, ('alice', 'wonderland')), (imap, ('bob', 'builder')),
    (bad_imap, ('alice',)), (bad_imap, ('bob',))]]
for t in ts: t.start()
for t in ts: t.join(60)
print('errors', errors)
"#;

/// The run, done once for every test of this file that reads it.
fn real_run() -> &'static RealRun {
    static RUN: OnceLock<RealRun> = OnceLock::new();
    RUN.get_or_init(|| {
        let keep = tempfile::tempdir().unwrap();
        let logs = keep.path().join("logs");
        let l = logs.clone();
        let mut d = Daemon::start_in(move |_| Options {
            registry: format!(
                "\"POP3 Protocol Logging Level\" = 5\n\"POP3 Protocol Log Path\" = \"{0}\"\n\
                 \"IMAP Protocol Logging Level\" = 5\n\"IMAP Protocol Log Path\" = \"{0}\"\n",
                l.display()
            ),
            users: "bob:{PLAIN}builder\n".into(),
            ..Options::default()
        });
        for user in ["alice", "bob"] {
            common::deliver(
                &d.data_dir(),
                user,
                1,
                &format!("Subject: for {user}\r\n\r\nline one for {user}\r\nline two\r\n"),
            );
        }
        let out = common::python(
            CLIENTS,
            &[
                &d.pop3.unwrap().port().to_string(),
                &d.imap.unwrap().port().to_string(),
            ],
        );
        assert_eq!(out.trim(), "errors []", "{out}");
        // Every record is in the file once the daemon has stopped.
        d.stop();
        RealRun { _dir: keep, logs }
    })
}

/// alice's sessions by the test's own reader: every session with an authentication record
/// naming her, and all its records.
fn sessions_of(logs: &Path, user: &str) -> BTreeMap<String, Vec<logreader::Rec>> {
    let mut all: BTreeMap<String, Vec<logreader::Rec>> = BTreeMap::new();
    for e in std::fs::read_dir(logs).unwrap() {
        for r in logreader::parse_log(&e.unwrap().path()).records {
            all.entry(r.id.clone()).or_default().push(r);
        }
    }
    all.retain(|_, recs| {
        recs.iter().any(|r| {
            r.event == '*'
                && r.text().starts_with("authentication ")
                && r.text().contains(&format!("user={user} mechanism="))
        })
    });
    all
}

#[test]
fn user_transcript_is_exactly_the_users_whole_sessions() {
    let run = real_run();
    let logs = run.logs.to_str().unwrap();
    let want = sessions_of(&run.logs, "alice");
    // POP3, IMAP, the failed IMAP login.
    assert_eq!(want.len(), 3, "{want:#?}");
    let out = protolog(&["show", "--user", "alice", "--transcript", logs]);
    assert!(!out.contains("bob"), "{out}");
    let blocks: Vec<&str> = out.split("\n\n").filter(|b| !b.trim().is_empty()).collect();
    assert_eq!(blocks.len(), 3, "{out}");
    let mut seen = BTreeSet::new();
    for block in blocks {
        let mut lines = block.lines();
        let head = lines.next().unwrap();
        let id = head.split(' ').nth(2).unwrap().to_string();
        let recs = &want[&id];
        let body: Vec<&str> = lines.collect();
        // Whole: one line per record, from the connect to the disconnect, pre-login
        // greeting and login command included.
        assert_eq!(body.len(), recs.len(), "{block}");
        assert!(body[0].ends_with(" * connected"), "{block}");
        assert!(body.last().unwrap().contains(" * disconnected "), "{block}");
        assert!(
            body[1].contains(" S: +OK") || body[1].contains(" S: * OK"),
            "{block}"
        );
        for (line, r) in body.iter().zip(recs) {
            let tag = match r.event {
                '<' => " C: ",
                '>' => " S: ",
                _ => " * ",
            };
            assert!(line.starts_with(&r.time[11..23]), "{line} / {r:?}");
            assert!(line.contains(tag), "{line} / {r:?}");
            if r.event == '<' || r.event == '>' {
                assert!(
                    line.ends_with(&r.text().replace('\r', "\\x0D")),
                    "{line} / {r:?}"
                );
            }
        }
        seen.insert(id);
    }
    assert_eq!(seen, want.keys().cloned().collect());
    // The message content is there in full (level 5), and the password is not.
    assert!(out.contains("S: line one for alice"), "{out}");
    assert!(out.contains("C: USER alice"), "{out}");
    assert!(!out.contains("wonderland"), "{out}");
}

#[test]
fn json_output_validates_against_the_committed_schema() {
    let run = real_run();
    let out = protolog(&["show", "--json", run.logs.to_str().unwrap()]);
    let total: usize = std::fs::read_dir(&run.logs)
        .unwrap()
        .map(|e| logreader::parse_log(&e.unwrap().path()).records.len())
        .sum();
    assert_eq!(out.lines().count(), total);
    let json = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(json.path(), &out).unwrap();
    let schema = Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/protolog-record.schema.json");
    let checked = common::python(
        r#"
import json, sys, jsonschema
schema = json.load(open(sys.argv[1]))
jsonschema.Draft202012Validator.check_schema(schema)
v = jsonschema.Draft202012Validator(schema)
n, users, prev = 0, set(), ''
for line in open(sys.argv[2]):
    o = json.loads(line)
    v.validate(o)
    assert o['date-time'] >= prev, (prev, o)
    prev = o['date-time']
    if 'user' in o: users.add(o['user'])
    n += 1
# and the schema refuses what it must
for bad in [{}, {'event': '!'}]:
    assert not v.is_valid(bad)
print(n, sorted(users))
"#,
        &[schema.to_str().unwrap(), json.path().to_str().unwrap()],
    );
    assert_eq!(checked.trim(), format!("{total} ['alice', 'bob']"));
}

#[test]
fn stats_count_what_the_clients_did() {
    let run = real_run();
    let out = protolog(&["stats", "--json", run.logs.to_str().unwrap()]);
    let got = common::python(
        r#"
import json, sys
s = json.loads(sys.argv[1])
print(s['sessions'])
print(sorted((u, v['ok'], v['failed']) for u, v in s['logins_by_user'].items()))
print(sorted((a, v['ok'], v['failed']) for a, v in s['logins_by_address'].items()))
print({c['command']: c['count'] for c in s['top_commands']}.get('RETR'))
print({c['command']: c['count'] for c in s['top_commands']}.get('LOGIN'))
print(s['bytes_in'] > 0 and s['bytes_out'] > s['bytes_in'])
"#,
        &[&out],
    );
    assert_eq!(
        got, "6\n[('alice', 2, 1), ('bob', 2, 1)]\n[('127.0.0.1', 4, 2)]\n2\n4\nTrue\n",
        "{out}"
    );
    // The byte counts are those of the `-` records.
    let (mut bin_, mut bout) = (0u64, 0u64);
    for e in std::fs::read_dir(&run.logs).unwrap() {
        for r in logreader::parse_log(&e.unwrap().path()).records {
            if r.event == '-' {
                for w in r.text().split(' ') {
                    if let Some(n) = w.strip_prefix("bytes-in=") {
                        bin_ += n.parse::<u64>().unwrap();
                    }
                    if let Some(n) = w.strip_prefix("bytes-out=") {
                        bout += n.parse::<u64>().unwrap();
                    }
                }
            }
        }
    }
    assert!(
        out.contains(&format!("\"bytes_in\":{bin_},\"bytes_out\":{bout}")),
        "{out}"
    );
    // Restricted to a user.
    let text = protolog(&[
        "stats",
        "--user",
        "bob",
        "--service",
        "pop3",
        run.logs.to_str().unwrap(),
    ]);
    assert!(text.contains("sessions 1\n"), "{text}");
    assert!(text.contains("  bob 1 0\n"), "{text}");
}

#[test]
fn ls_lists_each_file_with_its_service() {
    let run = real_run();
    let out = protolog(&["ls", run.logs.to_str().unwrap()]);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 2, "{out}");
    let services: BTreeSet<&str> = lines
        .iter()
        .map(|l| l.split('\t').nth(1).unwrap())
        .collect();
    assert_eq!(services, BTreeSet::from(["IMAP4", "POP3"]));
    for l in lines {
        let f: Vec<&str> = l.split('\t').collect();
        assert!(
            logreader::valid_time(f[2]) && logreader::valid_time(f[3]),
            "{l}"
        );
        assert!(f[2] <= f[3]);
        assert_eq!(f[4], std::fs::metadata(f[0]).unwrap().len().to_string());
        // The daemon has stopped: nobody holds them.
        assert_eq!(f[5], "closed", "{l}");
    }
}

/// While the daemon runs, `ls` sees its lock (through /proc/locks, taking none).
#[test]
fn ls_sees_the_daemons_lock() {
    let d = Daemon::start_in(|root| Options {
        registry: format!(
            "\"POP3 Protocol Logging Level\" = 1\n\"POP3 Protocol Log Path\" = \"{}\"\n",
            root.join("logs").display()
        ),
        ..Options::default()
    });
    let mut s = std::net::TcpStream::connect(d.pop3.unwrap()).unwrap();
    s.set_read_timeout(Some(WAIT)).unwrap();
    let mut greeting = [0u8; 3];
    std::io::Read::read_exact(&mut s, &mut greeting).unwrap();
    let logs = d.dir.path().join("logs");
    let out = protolog(&["ls", logs.to_str().unwrap()]);
    assert!(
        out.contains(&format!("open(pid {})", d.pid())),
        "{out}\n{}",
        std::fs::read_to_string("/proc/locks").unwrap_or_default()
    );
    // Ours took no lock: the file can still be locked exclusively by someone else.
    let file = logs.join("L0000001.log");
    let ok = Command::new("flock")
        .args(["-n", "-s", file.to_str().unwrap(), "true"])
        .status()
        .unwrap();
    assert!(!ok.success(), "the daemon's lock is exclusive");
    // Default directories come from the config.
    let out = protolog(&["--config", d.config_path.to_str().unwrap(), "ls"]);
    assert!(out.contains("L0000001.log\tPOP3\t"), "{out}");
}

// ---------------------------------------------------------------------------------------
// Generated files
// ---------------------------------------------------------------------------------------

fn header(service: &str) -> String {
    format!(
        "#Service: {service}\n#Software: mailserver 0.1.0\n#Date: 2026-11-27T10:00:00.000Z\n{}\n",
        logreader::FIELDS_LINE
    )
}

/// A record line as the writer makes it (quoting when needed; the data is ASCII here).
fn rec(ms: u64, sid: u64, seq: u64, remote: &str, ev: char, data: &str) -> String {
    let t = format!(
        "2026-11-27T10:{:02}:{:02}.{:03}Z",
        ms / 60_000,
        ms / 1000 % 60,
        ms % 1000
    );
    let d = if data.contains(',') || data.contains('"') {
        format!("\"{}\"", data.replace('"', "\"\""))
    } else {
        data.to_string()
    };
    format!("{t},{sid:016x},{seq},127.0.0.1:110,{remote},{ev},{d}\n")
}

/// One session: connect, greeting, USER/PASS, auth record, a command, disconnect.
fn session(ms: u64, sid: u64, remote: &str, user: &str, ok: bool, step: u64) -> Vec<(u64, String)> {
    let auth = if ok {
        format!("authentication succeeded: user={user} mechanism=USER")
    } else {
        format!("authentication failed: user={user} mechanism=USER")
    };
    let lines = [
        ('+', String::new()),
        ('>', "+OK ready".to_string()),
        ('<', format!("USER {user}")),
        ('<', "PASS ***".to_string()),
        ('*', auth),
        ('<', "STAT".to_string()),
        ('>', "+OK 1 10, \"x\"".to_string()),
        ('-', "duration=0.1s bytes-in=30 bytes-out=40".to_string()),
    ];
    lines
        .into_iter()
        .enumerate()
        .map(|(i, (ev, d))| {
            let t = ms + i as u64 * step;
            (t, rec(t, sid, i as u64, remote, ev, &d))
        })
        .collect()
}

/// Two files (POP3 and IMAP4 headers) with interleaved sessions: (dir, every record line in
/// time order with its service).
fn generated() -> (tempfile::TempDir, Vec<(String, String)>) {
    let dir = tempfile::tempdir().unwrap();
    let a = [
        session(0, 1, "10.0.0.1:4000", "alice", true, 10),
        session(5, 2, "10.0.0.2:4000", "bob", true, 10),
        session(60_000, 3, "[2001:db8::1]:4000", "alice", false, 10),
    ];
    let b = [
        session(3, 4, "10.0.0.1:4001", "carol", true, 10),
        session(120_000, 5, "10.0.0.3:4001", "alice", true, 10),
    ];
    let mut all = Vec::new();
    for (name, service, sessions) in [
        ("L0000001.log", "POP3", &a[..]),
        ("L0000002.log", "IMAP4", &b[..]),
    ] {
        let mut recs: Vec<(u64, String)> = sessions.iter().flatten().cloned().collect();
        recs.sort();
        let mut text = header(service);
        for (t, l) in &recs {
            text.push_str(l);
            all.push((*t, service.to_string(), l.clone()));
        }
        // A truncated last line (the writer was in the middle of it).
        text.push_str("2026-11-27T10:59:59.999Z,00000000000000ff,0,127.0.0.1:1");
        std::fs::write(dir.path().join(name), text).unwrap();
    }
    all.sort_by_key(|x| x.0);
    (
        dir,
        all.into_iter()
            .map(|(_, s, l)| (s, l.trim_end().to_string()))
            .collect(),
    )
}

fn lines_of(out: &str) -> Vec<String> {
    out.lines().map(str::to_string).collect()
}

fn expect(all: &[(String, String)], keep: impl Fn(&str, &logreader::Rec) -> bool) -> Vec<String> {
    all.iter()
        .filter(|(s, l)| keep(s, &logreader::parse_record(l).unwrap()))
        .map(|(_, l)| l.clone())
        .collect()
}

#[test]
fn show_merges_files_in_time_order_and_skips_a_truncated_line() {
    let (dir, all) = generated();
    let d = dir.path().to_str().unwrap();
    let out = Command::new(bin())
        .args(["protolog", "show", d])
        .output()
        .unwrap();
    assert!(out.status.success());
    let got = lines_of(&String::from_utf8(out.stdout).unwrap());
    assert_eq!(got, expect(&all, |_, _| true));
    // The unfinished line is no error and no warning: it is not a line yet.
    assert!(
        out.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // A file given by name.
    let one = dir.path().join("L0000002.log");
    let got = lines_of(&protolog(&["show", one.to_str().unwrap()]));
    assert_eq!(got, expect(&all, |s, _| s == "IMAP4"));
}

#[test]
fn show_service() {
    let (dir, all) = generated();
    let got = lines_of(&protolog(&[
        "show",
        "--service",
        "pop3",
        dir.path().to_str().unwrap(),
    ]));
    assert_eq!(got, expect(&all, |s, _| s == "POP3"));
    assert!(!got.is_empty());
}

#[test]
fn show_session() {
    let (dir, all) = generated();
    let d = dir.path().to_str().unwrap();
    let got = lines_of(&protolog(&["show", "--session", "0000000000000002", d]));
    assert_eq!(got, expect(&all, |_, r| r.id == "0000000000000002"));
    assert_eq!(got.len(), 8);
}

#[test]
fn show_user() {
    let (dir, all) = generated();
    let d = dir.path().to_str().unwrap();
    let got = lines_of(&protolog(&["show", "--user", "alice", d]));
    let ids = ["0000000000000001", "0000000000000003", "0000000000000005"];
    assert_eq!(got, expect(&all, |_, r| ids.contains(&r.id.as_str())));
    assert_eq!(got.len(), 24);
}

#[test]
fn show_ip() {
    let (dir, all) = generated();
    let d = dir.path().to_str().unwrap();
    let got = lines_of(&protolog(&["show", "--ip", "10.0.0.1", d]));
    assert_eq!(got, expect(&all, |_, r| r.remote.starts_with("10.0.0.1:")));
    assert_eq!(got.len(), 16);
    let got = lines_of(&protolog(&["show", "--ip", "2001:db8::1", d]));
    assert_eq!(
        got,
        expect(&all, |_, r| r.remote.starts_with("[2001:db8::1]"))
    );
    assert_eq!(got.len(), 8);
}

#[test]
fn show_since_until() {
    let (dir, all) = generated();
    let d = dir.path().to_str().unwrap();
    let got = lines_of(&protolog(&[
        "show",
        "--since",
        "2026-11-27T10:01",
        "--until",
        "2026-11-27T11:02:00+01:00",
        d,
    ]));
    assert_eq!(
        got,
        expect(&all, |_, r| r.time.as_str() >= "2026-11-27T10:01:00.000Z"
            && r.time.as_str() < "2026-11-27T10:02:00.000Z")
    );
    assert_eq!(got.len(), 8);
    let bad = Command::new(bin())
        .args(["protolog", "show", "--since", "soon", d])
        .output()
        .unwrap();
    assert_eq!(bad.status.code(), Some(1));
}

#[test]
fn show_event() {
    let (dir, all) = generated();
    let d = dir.path().to_str().unwrap();
    let got = lines_of(&protolog(&["show", "--event", "+-", d]));
    assert_eq!(got, expect(&all, |_, r| r.event == '+' || r.event == '-'));
    assert_eq!(got.len(), 10);
    let got = lines_of(&protolog(&["show", "--event", "info", d]));
    assert_eq!(got, expect(&all, |_, r| r.event == '*'));
}

#[test]
fn show_json_fields_and_user() {
    let (dir, _all) = generated();
    let d = dir.path().to_str().unwrap();
    let out = protolog(&["show", "--json", "--session", "0000000000000001", d]);
    let first = out.lines().next().unwrap();
    assert_eq!(
        first,
        "{\"date-time\":\"2026-11-27T10:00:00.000Z\",\"session-id\":\"0000000000000001\",\
         \"sequence-number\":0,\"local-endpoint\":\"127.0.0.1:110\",\"remote-endpoint\":\
         \"10.0.0.1:4000\",\"event\":\"+\",\"data\":\"\",\"service\":\"POP3\",\"file\":\
         \"L0000001.log\"}"
    );
    // The user is known from the login record on; with --user, from the start.
    let users: Vec<bool> = out
        .lines()
        .map(|l| l.contains("\"user\":\"alice\""))
        .collect();
    assert_eq!(users, [false, false, false, false, true, true, true, true]);
    assert!(out.contains("\"data\":\"+OK 1 10, \\\"x\\\"\""), "{out}");
    let out = protolog(&[
        "show",
        "--json",
        "--user",
        "alice",
        "--session",
        "0000000000000001",
        d,
    ]);
    assert!(
        out.lines().all(|l| l.contains("\"user\":\"alice\"")),
        "{out}"
    );
}

#[test]
fn show_transcript_of_generated_sessions() {
    let (dir, _all) = generated();
    let d = dir.path().to_str().unwrap();
    let out = protolog(&["show", "--transcript", "--session", "0000000000000004", d]);
    assert_eq!(
        out,
        "== session 0000000000000004 IMAP4 10.0.0.1:4001 -> 127.0.0.1:110 user carol \
         (L0000002.log 2026-11-27T10:00:00.003Z)\n\
         10:00:00.003 * connected\n\
         10:00:00.013 S: +OK ready\n\
         10:00:00.023 C: USER carol\n\
         10:00:00.033 C: PASS ***\n\
         10:00:00.043 * authentication succeeded: user=carol mechanism=USER\n\
         10:00:00.053 C: STAT\n\
         10:00:00.063 S: +OK 1 10, \"x\"\n\
         10:00:00.073 * disconnected duration=0.1s bytes-in=30 bytes-out=40\n\n"
    );
}

/// `--follow`: records appended to the newest file come out as their lines complete (a
/// line written in two pieces comes out once, whole), and when the next number appears the
/// old file is read to its end before the new one is followed.
#[test]
fn follow_reads_a_growing_file_across_a_roll_over() {
    let dir = tempfile::tempdir().unwrap();
    let p1 = dir.path().join("L0000001.log");
    let mut f1 = std::fs::File::create(&p1).unwrap();
    let first = session(0, 1, "10.0.0.1:1", "alice", true, 10);
    f1.write_all(header("POP3").as_bytes()).unwrap();
    f1.write_all(first[0].1.as_bytes()).unwrap();
    f1.flush().unwrap();
    let mut child = Command::new(bin())
        .args(["protolog", "show", "--follow", dir.path().to_str().unwrap()])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    let stdout = child.stdout.take().unwrap();
    std::thread::spawn(move || {
        for l in BufReader::new(stdout).lines() {
            if tx.send(l.unwrap()).is_err() {
                break;
            }
        }
    });
    let next = || rx.recv_timeout(WAIT).expect("follow output");
    assert_eq!(next(), first[0].1.trim_end());
    // A line in two pieces.
    let (a, b) = first[1].1.split_at(20);
    f1.write_all(a.as_bytes()).unwrap();
    f1.flush().unwrap();
    std::thread::sleep(Duration::from_millis(300));
    assert!(rx.try_recv().is_err(), "half a line came out");
    f1.write_all(b.as_bytes()).unwrap();
    f1.flush().unwrap();
    assert_eq!(next(), first[1].1.trim_end());
    // Roll-over: the old file gets its last records, then the next number appears.
    for (_, l) in &first[2..5] {
        f1.write_all(l.as_bytes()).unwrap();
    }
    drop(f1);
    let second = session(1000, 2, "10.0.0.2:1", "bob", true, 10);
    let mut text = header("POP3");
    for (_, l) in &second {
        text.push_str(l);
    }
    std::fs::write(dir.path().join("L0000002.log"), text).unwrap();
    for (_, l) in first[2..5].iter().chain(&second) {
        assert_eq!(next(), l.trim_end());
    }
    let deadline = Instant::now() + Duration::from_millis(300);
    while Instant::now() < deadline {
        assert!(rx.try_recv().is_err(), "more than was written");
        std::thread::sleep(Duration::from_millis(50));
    }
    child.kill().unwrap();
    child.wait().unwrap();
}

/// `--follow --user`: a session is shown whole once its login names the user (its records
/// before that were held), and another user's session not at all.
#[test]
fn follow_with_user_shows_whole_sessions_as_they_log_in() {
    let dir = tempfile::tempdir().unwrap();
    let p1 = dir.path().join("L0000001.log");
    std::fs::write(&p1, header("IMAP4")).unwrap();
    let mut child = Command::new(bin())
        .args([
            "protolog",
            "show",
            "--follow",
            "--user",
            "alice",
            dir.path().to_str().unwrap(),
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    let stdout = child.stdout.take().unwrap();
    std::thread::spawn(move || {
        for l in BufReader::new(stdout).lines() {
            if tx.send(l.unwrap()).is_err() {
                break;
            }
        }
    });
    let bob = session(0, 9, "10.0.0.9:1", "bob", true, 1);
    let alice = session(2, 1, "10.0.0.1:1", "alice", true, 1);
    let mut both: Vec<(u64, String)> = bob.iter().chain(&alice).cloned().collect();
    both.sort();
    let mut f = std::fs::OpenOptions::new().append(true).open(&p1).unwrap();
    for (_, l) in &both {
        f.write_all(l.as_bytes()).unwrap();
    }
    f.flush().unwrap();
    for (_, l) in &alice {
        assert_eq!(rx.recv_timeout(WAIT).expect("follow output"), l.trim_end());
    }
    std::thread::sleep(Duration::from_millis(400));
    assert!(rx.try_recv().is_err(), "bob's session came out");
    child.kill().unwrap();
    child.wait().unwrap();
}
