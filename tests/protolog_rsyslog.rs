//! The shipped rsyslog config (`deploy/rsyslog/mailserver-protolog.conf`; README.md,
//! "Shipping the protocol logs") proved against the real daemon and a private `rsyslogd`
//! (Debian's `rsyslog`: `imfile` and RainerScript only): its own work directory and pid file,
//! no `/dev/log`, no system config. The committed file is used as it is, with only its two
//! paths (the log directory and the JSON output) pointed into the test's tempdir.
//!
//! The daemon logs IMAP4 at level 5; a level change 5 → 0 → 5 by hot reload makes a second
//! file (`L0000002.log`), which rsyslog must follow. Every record of both files must arrive
//! as one JSON object, exactly once, with every field equal to the file's (the data field
//! compared after `\xNN` decoding on both sides), and no header line may arrive. Every wait
//! is bounded; nothing asserts on timing.

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::{Daemon, Options, PASS, USER};

#[path = "common/logreader.rs"]
mod logreader;

const WAIT: Duration = Duration::from_secs(30);
const RSYSLOGD: &str = "/usr/sbin/rsyslogd";
/// The two paths of the shipped config, replaced by the test's.
const SHIPPED_LOG_GLOB: &str = "/var/log/mailserver/L*.log";
const SHIPPED_OUTPUT: &str = "/var/log/mailserver-protolog.json";

fn shipped_config() -> String {
    let path =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/rsyslog/mailserver-protolog.conf");
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// A private rsyslogd, stopped (SIGTERM, then SIGKILL) when dropped.
struct Rsyslogd {
    child: Child,
    log: PathBuf,
}

impl Rsyslogd {
    fn start(dir: &Path, log_dir: &Path, output: &Path) -> Rsyslogd {
        let shipped = shipped_config();
        assert!(shipped.contains(SHIPPED_LOG_GLOB) && shipped.contains(SHIPPED_OUTPUT));
        let work = dir.join("work");
        std::fs::create_dir_all(&work).unwrap();
        let conf = dir.join("rsyslog.conf");
        // What /etc/rsyslog.conf would say before including the file (README.md).
        let text = format!(
            "global(workDirectory=\"{}\" maxMessageSize=\"320k\")\n{}",
            work.display(),
            shipped
                .replace(
                    SHIPPED_LOG_GLOB,
                    &log_dir.join("L*.log").display().to_string()
                )
                .replace(SHIPPED_OUTPUT, &output.display().to_string())
        );
        std::fs::write(&conf, text).unwrap();
        let log = dir.join("rsyslogd.out");
        let out = std::fs::File::create(&log).unwrap();
        let child = Command::new(RSYSLOGD)
            .arg("-n")
            .arg("-f")
            .arg(&conf)
            .arg("-i")
            .arg(dir.join("rsyslogd.pid"))
            .stdin(Stdio::null())
            .stdout(out.try_clone().unwrap())
            .stderr(out)
            .spawn()
            .expect("rsyslogd");
        Rsyslogd { child, log }
    }

    fn output(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// SIGTERM and a bounded wait for the exit (rsyslogd finishes its queue first).
    fn stop(&mut self) {
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(self.child.id().to_string())
            .status();
        for _ in 0..300 {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        panic!("rsyslogd did not exit on SIGTERM:\n{}", self.output());
    }
}

impl Drop for Rsyslogd {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

fn options(root: &Path, level: u32) -> Options {
    Options {
        registry: format!(
            "\"IMAP Protocol Logging Level\" = {level}\n\"IMAP Protocol Log Path\" = \"{}\"\n",
            root.join("logs").display()
        ),
        ..Options::default()
    }
}

/// One IMAP session: LOGIN, FETCH of the message, LOGOUT; read to the server's close, when
/// its records are in the file.
fn session(addr: SocketAddr) {
    let s = TcpStream::connect_timeout(&addr, WAIT).unwrap();
    s.set_read_timeout(Some(WAIT)).unwrap();
    let mut r = BufReader::new(s.try_clone().unwrap());
    let mut w = s;
    w.write_all(
        format!("a LOGIN {USER} {PASS}\r\nb SELECT INBOX\r\nc FETCH 1 BODY[]\r\nd LOGOUT\r\n")
            .as_bytes(),
    )
    .unwrap();
    let mut line = String::new();
    let mut saw_logout = false;
    for _ in 0..10_000 {
        line.clear();
        if r.read_line(&mut line).unwrap() == 0 {
            break;
        }
        saw_logout |= line.starts_with("d OK");
    }
    assert!(saw_logout, "no LOGOUT completion");
    let mut rest = Vec::new();
    let _ = r.read_to_end(&mut rest);
}

fn reload(d: &Daemon, from: u32, to: u32) {
    let needle = format!("Protocol Logging Level\": {from} (REG_DWORD 0x{from:x}) -> {to}");
    let before = d.log_count(&needle);
    d.rewrite_config(&options(d.dir.path(), to));
    d.wait_log_more(&needle, before, WAIT);
}

fn unhex(s: &str) -> String {
    let bytes: Vec<u8> = (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect();
    String::from_utf8(bytes).unwrap()
}

/// The JSON objects of `output`, each checked by Python's `json` (an object with exactly
/// the eight keys, `seq` a number), as `[file, time, session, seq, local, remote, event,
/// data]`.
fn json_records(output: &Path) -> Vec<[String; 8]> {
    let script = r#"
import json, sys
keys = ["file", "time", "session", "seq", "local", "remote", "event", "data"]
for line in open(sys.argv[1], encoding="utf-8"):
    o = json.loads(line)
    assert isinstance(o, dict) and sorted(o) == sorted(keys), line
    assert isinstance(o["seq"], int), line
    print(" ".join(str(o[k]).encode().hex() for k in keys))
"#;
    common::python(script, &[&output.display().to_string()])
        .lines()
        .map(|l| {
            let v: Vec<String> = l.split(' ').map(unhex).collect();
            v.try_into().unwrap()
        })
        .collect()
}

#[test]
fn rsyslog_ships_every_record_as_json_once_across_a_new_file() {
    if !Path::new(RSYSLOGD).exists() {
        common::skipped("rsyslogd (Debian package rsyslog) is not installed");
        return;
    }
    let d = Daemon::start_in(|root| options(root, 5));
    // A body with what the CSV quoting and escaping must carry: a comma, quotes, a
    // backslash, a space at the end, a non-ASCII byte.
    common::deliver(
        &d.data_dir(),
        USER,
        1,
        "Subject: ship, \"it\"\r\n\r\nback\\slash and caf\u{e9} \r\n,leading comma\r\n",
    );
    let logs = d.dir.path().join("logs");
    std::fs::create_dir_all(&logs).unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let output = tmp.path().join("protolog.json");
    let mut rsyslogd = Rsyslogd::start(tmp.path(), &logs, &output);

    let addr = d.imap.unwrap();
    session(addr);
    reload(&d, 5, 0);
    session(addr); // releases L0000001.log, writes nothing
    reload(&d, 0, 5);
    session(addr); // opens L0000002.log
    assert_eq!(
        logreader::log_files(&logs),
        ["L0000001.log", "L0000002.log"]
    );

    let mut expected: Vec<[String; 8]> = Vec::new();
    for name in logreader::log_files(&logs) {
        let path = logs.join(&name);
        for r in logreader::read_log_of(&path, "IMAP4").records {
            expected.push([
                path.display().to_string(),
                r.time.clone(),
                r.id.clone(),
                r.seq.to_string(),
                r.local.clone(),
                r.remote.clone(),
                r.event.to_string(),
                String::from_utf8_lossy(&r.data).into_owned(),
            ]);
        }
    }
    assert!(expected.len() > 20, "{expected:#?}");
    common::wait::wait_until(
        "rsyslog to write a JSON line per record",
        WAIT,
        || {
            std::fs::read_to_string(&output)
                .map(|t| t.lines().count() >= expected.len())
                .unwrap_or(false)
        },
        || {
            format!(
                "{}\nrsyslogd said:\n{}",
                std::fs::read_to_string(&output).unwrap_or_default(),
                rsyslogd.output()
            )
        },
    );
    // Stopped, so nothing can arrive late: then every record exactly once.
    rsyslogd.stop();
    let mut got: Vec<[String; 8]> = json_records(&output)
        .into_iter()
        .map(|mut r| {
            // JSON carries the file's text; decode its \xNN escapes as the file reader did.
            let data = logreader::unescape(&r[7]).unwrap_or_else(|e| panic!("{e}: {r:?}"));
            r[7] = String::from_utf8_lossy(&data).into_owned();
            r
        })
        .collect();
    got.sort();
    expected.sort();
    assert_eq!(got, expected);
}
