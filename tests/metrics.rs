//! `[metrics] listen` (README.md, "Metrics"): after scripted IMAP and POP3 traffic the
//! counters moved by exactly what the script did, read through a real OpenMetrics parser
//! (Python's `prometheus_client`); `/healthz`, `/readyz` (503 while the store is gone), 404;
//! a private Prometheus scrapes us and PromQL finds our series; `promtool` checks a scrape
//! and the README's scrape config and alert rules.

mod common;

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{Daemon, Options, PASS, USER};

/// Debian's interpreter: `python3-prometheus-client` is installed for it (a `python3` earlier
/// on PATH may be another one).
const PY: &str = "/usr/bin/python3";

fn metrics_daemon(dir: &Path) -> Options {
    Options {
        registry: format!(
            "\"IMAP Protocol Logging Level\" = 1\n\"IMAP Protocol Log Path\" = \"{0}\"\n\
             \"POP3 Protocol Logging Level\" = 1\n\"POP3 Protocol Log Path\" = \"{0}\"\n",
            dir.join("logs").display()
        ),
        extra: "[metrics]\nlisten = \"127.0.0.1:0\"\n".into(),
        ..Options::default()
    }
}

/// The metrics address the daemon logged.
fn metrics_addr(d: &Daemon) -> SocketAddr {
    let log = d.log_text();
    let rest = log
        .split("metrics served at http://")
        .nth(1)
        .unwrap_or_else(|| panic!("no metrics line in:\n{log}"));
    rest.split('/').next().unwrap().parse().unwrap()
}

/// One HTTP/1.1 GET: (status, content type, body).
fn get(addr: SocketAddr, path: &str) -> (u16, String, String) {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut text = String::new();
    s.read_to_string(&mut text).unwrap();
    let (head, body) = text.split_once("\r\n\r\n").expect("a header block");
    let status = head.split(' ').nth(1).unwrap().parse().unwrap();
    let ctype = head
        .lines()
        .find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.eq_ignore_ascii_case("content-type")
                .then(|| v.trim().to_string())
        })
        .unwrap_or_default();
    (status, ctype, body.to_string())
}

fn have_parser() -> bool {
    Command::new(PY)
        .args(["-c", "import prometheus_client.openmetrics.parser"])
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// Every sample of an OpenMetrics text, parsed by `prometheus_client`'s OpenMetrics parser,
/// keyed `name{k="v",...}` with the labels sorted.
fn parse(text: &str, scratch: &Path) -> HashMap<String, f64> {
    let file = scratch.join("scrape.txt");
    std::fs::write(&file, text).unwrap();
    let script = r#"
import sys
from prometheus_client.openmetrics.parser import text_string_to_metric_families
for fam in text_string_to_metric_families(open(sys.argv[1]).read()):
    for s in fam.samples:
        labels = ",".join('%s="%s"' % (k, v) for k, v in sorted(s.labels.items()))
        print("%s{%s} %r" % (s.name, labels, float(s.value)))
"#;
    let out = Command::new(PY)
        .arg("-c")
        .arg(script)
        .arg(&file)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "parser: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| {
            let (k, v) = l.rsplit_once(' ').unwrap();
            (k.to_string(), v.parse().unwrap())
        })
        .collect()
}

fn scrape(addr: SocketAddr, scratch: &Path) -> HashMap<String, f64> {
    let (status, ctype, body) = get(addr, "/metrics");
    assert_eq!(status, 200);
    assert_eq!(
        ctype,
        "application/openmetrics-text; version=1.0.0; charset=utf-8"
    );
    parse(&body, scratch)
}

fn value(m: &HashMap<String, f64>, key: &str) -> f64 {
    *m.get(key).unwrap_or_else(|| {
        let near: Vec<&String> = m
            .keys()
            .filter(|k| k.starts_with(key.split('{').next().unwrap()))
            .collect();
        panic!("no sample {key}; have {near:?}")
    })
}

/// Reads lines until one starts with `prefix`.
fn read_until(r: &mut BufReader<TcpStream>, prefix: &str) {
    for _ in 0..100 {
        let mut l = String::new();
        assert!(r.read_line(&mut l).unwrap() > 0, "closed before {prefix}");
        if l.starts_with(prefix) {
            return;
        }
    }
    panic!("no {prefix}");
}

/// The `bytes-in`/`bytes-out` sums of the `-` records of every protocol-log file under `dir`
/// whose header says `service`.
fn logged_bytes(dir: &Path, service: &str) -> (u64, u64) {
    let (mut bi, mut bo) = (0, 0);
    for e in std::fs::read_dir(dir).unwrap() {
        let text = std::fs::read_to_string(e.unwrap().path()).unwrap();
        if !text.starts_with(&format!("#Service: {service}")) {
            continue;
        }
        for line in text.lines().filter(|l| !l.starts_with('#')) {
            let fields: Vec<&str> = line.splitn(7, ',').collect();
            if fields.get(5) != Some(&"-") {
                continue;
            }
            for part in fields[6].split_whitespace() {
                if let Some(n) = part.strip_prefix("bytes-in=") {
                    bi += n.parse::<u64>().unwrap();
                }
                if let Some(n) = part.strip_prefix("bytes-out=") {
                    bo += n.parse::<u64>().unwrap();
                }
            }
        }
    }
    (bi, bo)
}

/// Scrapes until no connection is open (sessions end just after the client sees the last
/// reply), at most 10 s.
fn scrape_quiet(addr: SocketAddr, scratch: &Path) -> HashMap<String, f64> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let m = scrape(addr, scratch);
        let open: f64 = ["imap", "pop3"]
            .iter()
            .map(|s| {
                value(
                    &m,
                    &format!("mailserver_connections_open{{service=\"{s}\"}}"),
                )
            })
            .sum();
        if open == 0.0 || Instant::now() > deadline {
            return m;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

const SCRIPT: &str = r#"
import imaplib, poplib, sys
host, imap, pop = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
user, pw = sys.argv[4], sys.argv[5]
m = imaplib.IMAP4(host, imap)
m.login(user, pw)
m.select("INBOX")
m.fetch("1", "(BODY[])")
m.fetch("2", "(BODY.PEEK[])")
m.fetch("1:*", "(FLAGS)")
m.uid("FETCH", "1:*", "(UID)")
m.logout()
for _ in range(2):
    m = imaplib.IMAP4(host, imap)
    m.login(user, pw)
    m.logout()
p = poplib.POP3(host, pop)
p.user(user)
p.pass_(pw)
p.stat()
p.retr(1)
p.retr(2)
p.quit()
for _ in range(2):
    m = imaplib.IMAP4(host, imap)
    try:
        m.login(user, "wrong")
        sys.exit("a wrong password logged in")
    except imaplib.IMAP4.error:
        pass
    m.logout()
print("done")
"#;

#[test]
fn counters_move_by_exactly_what_the_clients_did() {
    if !have_parser() {
        return common::skipped("python3-prometheus-client (for its OpenMetrics parser)");
    }
    let d = Daemon::start_in(metrics_daemon);
    let addr = metrics_addr(&d);
    let scratch = d.dir.path().to_path_buf();
    for i in 0..2 {
        common::deliver(
            &d.data_dir(),
            USER,
            i,
            &format!("Subject: m{i}\n\nbody {i}\n"),
        );
    }
    let before = scrape(addr, &scratch);
    assert_eq!(
        value(&before, "mailserver_build_info{version=\"0.1.0\"}"),
        1.0
    );
    assert_eq!(
        value(
            &before,
            "mailserver_commands_total{command=\"fetch\",service=\"imap\"}"
        ),
        0.0
    );

    // A session that stays selected while we look at the state gauge.
    let imap = d.imap.unwrap();
    let s = TcpStream::connect(imap).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let mut r = BufReader::new(s.try_clone().unwrap());
    let mut w = s;
    read_until(&mut r, "* OK");
    write!(w, "a LOGIN {USER} {PASS}\r\nb SELECT INBOX\r\n").unwrap();
    read_until(&mut r, "b OK");
    let m = scrape(addr, &scratch);
    assert_eq!(
        value(
            &m,
            "mailserver_sessions{service=\"imap\",state=\"selected\"}"
        ),
        1.0
    );
    assert_eq!(
        value(&m, "mailserver_connections_open{service=\"imap\"}"),
        1.0
    );
    write!(w, "c LOGOUT\r\n").unwrap();
    read_until(&mut r, "c OK");
    drop((r, w));

    let out = common::python(
        SCRIPT,
        &[
            "127.0.0.1",
            &d.imap.unwrap().port().to_string(),
            &d.pop3.unwrap().port().to_string(),
            USER,
            PASS,
        ],
    );
    assert_eq!(out.trim(), "done");
    let m = scrape_quiet(addr, &scratch);
    let expect = [
        (
            "mailserver_logins_total{mechanism=\"login\",result=\"ok\",service=\"imap\"}",
            4.0,
        ),
        (
            "mailserver_logins_total{mechanism=\"login\",result=\"failed\",service=\"imap\"}",
            2.0,
        ),
        (
            "mailserver_logins_total{mechanism=\"user\",result=\"ok\",service=\"pop3\"}",
            1.0,
        ),
        (
            "mailserver_commands_total{command=\"login\",service=\"imap\"}",
            6.0,
        ),
        (
            "mailserver_commands_total{command=\"select\",service=\"imap\"}",
            2.0,
        ),
        (
            "mailserver_commands_total{command=\"fetch\",service=\"imap\"}",
            3.0,
        ),
        (
            "mailserver_commands_total{command=\"uid_fetch\",service=\"imap\"}",
            1.0,
        ),
        (
            "mailserver_commands_total{command=\"logout\",service=\"imap\"}",
            6.0,
        ),
        (
            "mailserver_command_duration_seconds_count{command=\"fetch\",service=\"imap\"}",
            3.0,
        ),
        (
            "mailserver_commands_total{command=\"user\",service=\"pop3\"}",
            1.0,
        ),
        (
            "mailserver_commands_total{command=\"pass\",service=\"pop3\"}",
            1.0,
        ),
        (
            "mailserver_commands_total{command=\"stat\",service=\"pop3\"}",
            1.0,
        ),
        (
            "mailserver_commands_total{command=\"retr\",service=\"pop3\"}",
            2.0,
        ),
        (
            "mailserver_commands_total{command=\"quit\",service=\"pop3\"}",
            1.0,
        ),
        (
            "mailserver_connections_accepted_total{service=\"imap\"}",
            6.0,
        ),
        (
            "mailserver_connections_accepted_total{service=\"pop3\"}",
            1.0,
        ),
        ("mailserver_connections_open{service=\"imap\"}", 0.0),
        ("mailserver_connections_open{service=\"pop3\"}", 0.0),
        (
            "mailserver_sessions{service=\"imap\",state=\"selected\"}",
            0.0,
        ),
        (
            "mailserver_sessions{service=\"imap\",state=\"not_authenticated\"}",
            0.0,
        ),
        (
            "mailserver_sessions{service=\"pop3\",state=\"transaction\"}",
            0.0,
        ),
        // Two failures, each delayed in its session; the second also waited for the
        // address penalty of the first.
        ("mailserver_penalty_delays_total{kind=\"session\"}", 2.0),
        ("mailserver_penalty_delays_total{kind=\"address\"}", 1.0),
        (
            "mailserver_connections_refused_total{reason=\"total\",service=\"imap\"}",
            0.0,
        ),
        ("mailserver_config_reloads_total{result=\"ok\"}", 0.0),
    ];
    let mut wrong = Vec::new();
    for (k, v) in expect {
        let got = value(&m, k);
        if got != v {
            wrong.push(format!("{k}: {got}, expected {v}"));
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
    // Every connection's wire octets, as the protocol log's `-` records say.
    let logs = d.dir.path().join("logs");
    for (svc, header) in [("imap", "IMAP4"), ("pop3", "POP3")] {
        let (bi, bo) = logged_bytes(&logs, header);
        assert!(bi > 0 && bo > 0);
        assert_eq!(
            value(
                &m,
                &format!("mailserver_received_bytes_total{{service=\"{svc}\"}}")
            ),
            bi as f64
        );
        assert_eq!(
            value(
                &m,
                &format!("mailserver_sent_bytes_total{{service=\"{svc}\"}}")
            ),
            bo as f64
        );
    }
    // The delay seconds are at least the session delays (0.5 s << 1 each).
    assert!(
        value(
            &m,
            "mailserver_penalty_delay_seconds_total{kind=\"session\"}"
        ) >= 2.0
    );
    // The store: RETR does not write; the FETCH BODY[] set \Seen once.
    assert!(value(&m, "mailserver_store_operations_total{op=\"store\"}") >= 1.0);
    assert!(value(&m, "mailserver_protolog_records_total{service=\"imap\"}") > 0.0);
    assert!(
        value(
            &m,
            "mailserver_protolog_written_bytes_total{service=\"imap\"}"
        ) > 0.0
    );
    assert_eq!(
        value(&m, "mailserver_protolog_files_open{service=\"imap\"}"),
        1.0
    );
    assert_eq!(
        value(
            &m,
            "mailserver_protolog_dropped_records_total{service=\"imap\"}"
        ),
        0.0
    );
    let hash = m
        .keys()
        .filter(|k| k.starts_with("mailserver_config_info{"))
        .collect::<Vec<_>>();
    assert_eq!(hash.len(), 1, "{hash:?}");
    let md5 = md5_hex(&std::fs::read(&d.config_path).unwrap());
    assert_eq!(
        hash[0],
        &format!("mailserver_config_info{{hash=\"{md5}\"}}")
    );
}

/// `md5sum`'s hex digest.
fn md5_hex(data: &[u8]) -> String {
    let mut c = Command::new("md5sum")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    c.stdin.take().unwrap().write_all(data).unwrap();
    let out = c.wait_with_output().unwrap();
    String::from_utf8(out.stdout)
        .unwrap()
        .split_whitespace()
        .next()
        .unwrap()
        .to_string()
}

#[test]
fn health_readiness_and_unknown_paths() {
    let d = Daemon::start_in(metrics_daemon);
    let addr = metrics_addr(&d);
    assert_eq!(get(addr, "/healthz").0, 200);
    let (status, _, body) = get(addr, "/readyz");
    assert_eq!((status, body.as_str()), (200, "ready\n"));
    assert_eq!(get(addr, "/").0, 404);
    assert_eq!(get(addr, "/metrics/x").0, 404);
    // The store's directory gone: not ready, with the reason; back: ready again. (Tests
    // run as root, so a chmod would not lock us out; a file in place of `mail/` does.)
    let data = d.data_dir();
    let aside = d.dir.path().join("data.aside");
    std::fs::rename(&data, &aside).unwrap();
    let (status, _, body) = get(addr, "/readyz");
    assert_eq!(status, 503, "{body}");
    assert!(
        body.starts_with("not ready: ") && body.contains("data"),
        "{body}"
    );
    assert_eq!(body.lines().count(), 1, "{body}");
    assert_eq!(get(addr, "/healthz").0, 200, "alive while not ready");
    std::fs::rename(&aside, &data).unwrap();
    assert_eq!(get(addr, "/readyz").0, 200);
    std::fs::write(data.join("mail"), "not a directory").unwrap();
    let (status, _, body) = get(addr, "/readyz");
    assert_eq!(status, 503, "{body}");
    assert!(body.contains("mail is not a directory"), "{body}");
    std::fs::remove_file(data.join("mail")).unwrap();
    assert_eq!(get(addr, "/readyz").0, 200);
    // Not GET: 405; a request over the header limit: refused, the daemon goes on.
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(
        s,
        "POST /metrics HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut text = String::new();
    s.read_to_string(&mut text).unwrap();
    assert!(text.starts_with("HTTP/1.1 405"), "{text}");
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let big = format!(
        "GET /metrics HTTP/1.1\r\nX-Big: {}\r\n\r\n",
        "a".repeat(64 * 1024)
    );
    let _ = s.write_all(big.as_bytes());
    let mut text = String::new();
    let _ = s.read_to_string(&mut text);
    assert!(!text.starts_with("HTTP/1.1 200"), "{text}");
    assert_eq!(get(addr, "/healthz").0, 200);
}

#[test]
fn a_reload_that_moves_the_metrics_listener_keeps_it_and_updates_the_hash() {
    if !have_parser() {
        return common::skipped("python3-prometheus-client (for its OpenMetrics parser)");
    }
    let d = Daemon::start_in(metrics_daemon);
    let addr = metrics_addr(&d);
    let scratch = d.dir.path().to_path_buf();
    let text = std::fs::read_to_string(&d.config_path).unwrap();
    let moved = text.replace("listen = \"127.0.0.1:0\"\n", "listen = \"127.0.0.1:1\"\n");
    assert_ne!(moved, text);
    let before = d.log_count("needs a restart");
    write_atomic(&d.config_path, &moved);
    d.wait_log_more("needs a restart", before, Duration::from_secs(20));
    assert!(d.log_text().contains("metrics.listen"), "{}", d.log_text());
    let m = scrape(addr, &scratch);
    assert_eq!(
        value(&m, "mailserver_config_reloads_total{result=\"ok\"}"),
        1.0
    );
    let md5 = md5_hex(moved.as_bytes());
    assert_eq!(
        value(&m, &format!("mailserver_config_info{{hash=\"{md5}\"}}")),
        1.0
    );
    assert_eq!(
        m.keys()
            .filter(|k| k.starts_with("mailserver_config_info{"))
            .count(),
        1
    );
    // An invalid file is rejected and counted; the hash stays.
    let before = d.log_count("reload rejected");
    write_atomic(&d.config_path, &format!("{moved}\n[nonsense]\nx = 1\n"));
    d.wait_log_more("reload rejected", before, Duration::from_secs(20));
    let m = scrape(addr, &scratch);
    assert_eq!(
        value(&m, "mailserver_config_reloads_total{result=\"rejected\"}"),
        1.0
    );
    assert_eq!(
        value(&m, &format!("mailserver_config_info{{hash=\"{md5}\"}}")),
        1.0
    );
}

/// Replaces `path` by a rename, so the watcher never reads a half-written file.
fn write_atomic(path: &Path, text: &str) {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, text).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

/// A fenced block of README.md that follows the line holding `marker`.
fn readme_block(marker: &str) -> String {
    let readme =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md")).unwrap();
    let at = readme
        .find(marker)
        .unwrap_or_else(|| panic!("README.md has no {marker}"));
    let rest = &readme[at..];
    let start = rest.find("```yaml\n").expect("a yaml block") + "```yaml\n".len();
    let end = rest[start..].find("```").unwrap();
    rest[start..start + end].to_string()
}

#[test]
fn promtool_accepts_a_scrape_and_the_readme_rules_and_scrape_config() {
    if !common::have("promtool") {
        return common::skipped("promtool (Debian's prometheus)");
    }
    let d = Daemon::start_in(metrics_daemon);
    let addr = metrics_addr(&d);
    let (_, _, body) = get(addr, "/metrics");
    let mut c = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    c.stdin.take().unwrap().write_all(body.as_bytes()).unwrap();
    let out = c.wait_with_output().unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    // promtool reads the classic text format, where a counter's HELP names the sample
    // (`x_total`); OpenMetrics names the family (`x`). That lint is the only finding allowed.
    let findings: Vec<&str> = text
        .lines()
        .filter(|l| !(l.ends_with("_total no help text")))
        .filter(|l| !l.trim().is_empty())
        .collect();
    assert!(findings.is_empty(), "promtool check metrics:\n{text}");
    assert!(!text.contains("error"), "{text}");

    let dir = d.dir.path();
    let rules = dir.join("rules.yml");
    std::fs::write(&rules, readme_block("<!-- alert rules -->")).unwrap();
    let out = Command::new("promtool")
        .args(["check", "rules"])
        .arg(&rules)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("SUCCESS: 2 rules found"));
    let scrape = dir.join("prometheus.yml");
    std::fs::write(&scrape, readme_block("<!-- scrape config -->")).unwrap();
    let out = Command::new("promtool")
        .args(["check", "config"])
        .arg(&scrape)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Kills the child when dropped.
struct Child(std::process::Child);
impl Drop for Child {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn a_private_prometheus_scrapes_us_and_promql_finds_our_series() {
    let bin = PathBuf::from("/usr/bin/prometheus");
    if !bin.exists() {
        return common::skipped("/usr/bin/prometheus (Debian's prometheus)");
    }
    let d = Daemon::start_in(metrics_daemon);
    let addr = metrics_addr(&d);
    let dir = d.dir.path();
    let config = dir.join("prometheus.yml");
    std::fs::write(
        &config,
        format!(
            "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\nscrape_configs:\n  \
             - job_name: mailserver\n    static_configs:\n      - targets: ['{addr}']\n"
        ),
    )
    .unwrap();
    let port = common::free_port();
    let web = format!("127.0.0.1:{port}");
    let _prom = Child(
        Command::new(&bin)
            .arg(format!("--config.file={}", config.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.join("tsdb").display()
            ))
            .arg(format!("--web.listen-address={web}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let query = "/api/v1/query?query=mailserver_build_info";
    let deadline = Instant::now() + Duration::from_secs(60);
    let body = loop {
        assert!(
            Instant::now() < deadline,
            "no mailserver_build_info from Prometheus in 60 s"
        );
        std::thread::sleep(Duration::from_millis(500));
        let Ok(s) = TcpStream::connect(&web) else {
            continue;
        };
        drop(s);
        let (status, _, body) = get(web.parse().unwrap(), query);
        if status == 200 && body.contains("\"version\":\"0.1.0\"") {
            break body;
        }
    };
    assert!(
        body.contains("\"__name__\":\"mailserver_build_info\""),
        "{body}"
    );
    assert!(body.contains("\"job\":\"mailserver\""), "{body}");
    // A counter with labels, as the scrape stored it.
    let (status, _, body) = get(
        web.parse().unwrap(),
        "/api/v1/query?query=mailserver_connections_accepted_total%7Bservice%3D%22imap%22%7D",
    );
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("\"service\":\"imap\""), "{body}");
}
