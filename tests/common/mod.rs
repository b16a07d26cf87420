//! Shared helpers for integration tests that drive the real `mailserver` binary.
//!
//! [`Daemon::start`] writes a config into a tempdir (listeners on `127.0.0.1:0`), starts the
//! binary, and learns the bound ports from its log ("POP3 listening on ..."). The config
//! is written by the one test-config builder, [`test_config::TestConfig`].
//!
//! `mod common;` in many test crates, each using a different subset: `dead_code` is allowed
//! for the whole file rather than item by item.
#![allow(dead_code)]

pub mod cluster;
pub mod imap;
pub mod procstat;
pub mod test_config;
pub mod wait;

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use test_config::TestConfig;

/// The demo user of every test daemon.
pub const USER: &str = "alice";
pub const PASS: &str = "wonderland";

/// A running daemon with its tempdir, ports and captured log.
pub struct Daemon {
    pub child: Child,
    pub dir: tempfile::TempDir,
    pub config_path: PathBuf,
    pub pop3: Option<SocketAddr>,
    pub pop3s: Option<SocketAddr>,
    pub imap: Option<SocketAddr>,
    pub imaps: Option<SocketAddr>,
    /// The TCP LMTP listener, when the config has one (`Options::extra`).
    pub lmtp: Option<SocketAddr>,
    /// The PROXY protocol listeners, when the config has them (the last of each kind).
    pub imap_proxy: Option<SocketAddr>,
    pub imaps_proxy: Option<SocketAddr>,
    pub pop3_proxy: Option<SocketAddr>,
    pub pop3s_proxy: Option<SocketAddr>,
    pub log: Arc<Mutex<String>>,
}

/// Options for [`Daemon::start_with`].
#[derive(Default)]
pub struct Options {
    /// Extra `[ParametersSystem]` lines.
    pub registry: String,
    /// Extra `[limits]` lines.
    pub limits: String,
    /// Extra users lines (besides alice).
    pub users: String,
    /// Extra environment.
    pub env: Vec<(String, String)>,
    /// Shell commands run before the binary is exec'd in the same process (resource
    /// limits: `ulimit -f ...`); the daemon's pid stays the child's.
    pub wrap: Option<String>,
    /// More TOML, verbatim, at the end of the file (new tables such as `[lmtp]`).
    pub extra: String,
}

pub fn bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_mailserver"))
}

/// `strace -f <args> -o <out> -p <pid>`, once it has attached to every thread of `pid`
/// (strace says so in one line, "Process N attached with T threads"; threads made later are
/// followed). `None`, said SKIPPED, where strace may not attach (no ptrace here). Stop it
/// with [`strace_stop`]. Bounded: 30 s to attach.
#[allow(dead_code)]
pub fn strace_attached(pid: u32, args: &[&str], out: &Path) -> Option<Child> {
    let mut strace = Command::new("strace")
        .arg("-f")
        .args(args)
        .arg("-o")
        .arg(out)
        .arg("-p")
        .arg(pid.to_string())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("strace (Debian's strace package) is installed");
    let err = strace.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for l in BufReader::new(err).lines().map_while(Result::ok) {
            let _ = tx.send(l);
        }
    });
    let attached = format!("Process {pid} attached");
    let mut said = Vec::new();
    let failure = loop {
        let Ok(l) = rx.recv_timeout(Duration::from_secs(30)) else {
            break format!("strace did not attach: {said:?}");
        };
        if l.contains("Operation not permitted") {
            skipped(&format!("strace cannot attach here: {l}"));
            let _ = strace.kill();
            let _ = strace.wait();
            return None;
        }
        if l.contains(&attached) {
            return Some(strace);
        }
        said.push(l);
        if said.len() >= 100 {
            break format!("strace said: {said:?}");
        }
    };
    let _ = strace.kill();
    let _ = strace.wait();
    panic!("{failure}");
}

/// Detaches [`strace_attached`]'s strace (SIGINT: it writes the rest of its log first) and
/// waits for it, at most 30 s.
#[allow(dead_code)]
pub fn strace_stop(mut strace: Child) {
    let st = Command::new("kill")
        .args(["-INT", &strace.id().to_string()])
        .status()
        .unwrap();
    assert!(st.success());
    wait::wait_for("strace to exit", Duration::from_secs(30), || {
        strace
            .try_wait()
            .unwrap()
            .ok_or_else(|| "running".to_string())
    });
}

/// The value of the sample line `key` (name and labels as the exposition writes them) in a
/// `/metrics` text.
#[allow(dead_code)]
pub fn metric_sample(text: &str, key: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(key)?.strip_prefix(' ')?.trim().parse().ok())
}

/// The config every test daemon uses, with `opts` spliced in: data in `dir/data`, the users
/// file `dir/users`, every listener on a free loopback port, a 5 s shutdown grace.
pub fn daemon_config(dir: &Path, opts: &Options) -> TestConfig {
    let any = || vec![test_config::ANY_LOOPBACK_PORT.to_string()];
    TestConfig {
        imap_listen: any(),
        imap_tls_listen: any(),
        pop3_listen: any(),
        pop3_tls_listen: any(),
        users_file: Some("users".into()),
        shutdown_grace_secs: Some(5),
        extra_limits: opts.limits.clone(),
        extra_registry: opts.registry.clone(),
        extra_toml: opts.extra.clone(),
        ..TestConfig::new(dir.join("data"))
    }
}

/// The text of [`daemon_config`], for a config file in `dir`.
pub fn config_text(dir: &Path, opts: &Options) -> String {
    daemon_config(dir, opts).text()
}

impl Daemon {
    pub fn start() -> Daemon {
        Daemon::start_with(Options::default())
    }

    pub fn start_with(opts: Options) -> Daemon {
        Daemon::start_in(|_| opts)
    }

    /// [`Daemon::start_with`] the options `opts` makes from the daemon's tempdir, for configs
    /// that name paths inside it (protocol-log directories).
    pub fn start_in(opts: impl FnOnce(&Path) -> Options) -> Daemon {
        let dir = tempfile::tempdir().unwrap();
        let opts = opts(dir.path());
        std::fs::write(
            dir.path().join("users"),
            format!("{USER}:{{PLAIN}}{PASS}\n{}", opts.users),
        )
        .unwrap();
        let config_path = dir.path().join("mailserver.toml");
        std::fs::write(&config_path, config_text(dir.path(), &opts)).unwrap();
        Daemon::spawn_wrapped(dir, config_path, &opts.env, opts.wrap.as_deref())
    }

    /// Starts the binary on an existing config; waits (bounded) until it says it is ready.
    pub fn spawn(dir: tempfile::TempDir, config_path: PathBuf, env: &[(String, String)]) -> Daemon {
        Daemon::spawn_wrapped(dir, config_path, env, None)
    }

    /// [`Daemon::spawn`], with `wrap` (shell commands) run first by `sh`, which then
    /// execs the binary.
    pub fn spawn_wrapped(
        dir: tempfile::TempDir,
        config_path: PathBuf,
        env: &[(String, String)],
        wrap: Option<&str>,
    ) -> Daemon {
        let mut cmd = match wrap {
            None => Command::new(bin()),
            Some(w) => {
                let mut c = Command::new("sh");
                c.arg("-c")
                    .arg(format!("{w}\nexec \"$0\" \"$@\""))
                    .arg(bin());
                c
            }
        };
        cmd.arg("--config")
            .arg(&config_path)
            .arg("run")
            .env("RUST_LOG", "info")
            .env_remove("NOTIFY_SOCKET")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().expect("spawn mailserver");
        let stderr = child.stderr.take().unwrap();
        let log = Arc::new(Mutex::new(String::new()));
        let (tx, rx) = std::sync::mpsc::channel::<String>();
        let log2 = log.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                if std::env::var_os("MAILSERVER_TEST_ECHO").is_some() {
                    eprintln!("[daemon] {line}");
                }
                log2.lock().unwrap().push_str(&line);
                log2.lock().unwrap().push('\n');
                let _ = tx.send(line);
            }
        });
        let mut d = Daemon {
            child,
            dir,
            config_path,
            pop3: None,
            pop3s: None,
            imap: None,
            imaps: None,
            lmtp: None,
            imap_proxy: None,
            imaps_proxy: None,
            pop3_proxy: None,
            pop3s_proxy: None,
            log,
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let line = match rx.recv_timeout(left) {
                Ok(l) => l,
                Err(_) => panic!("daemon not ready in 30 s; log:\n{}", d.log_text()),
            };
            if line.contains("(cluster internal)") {
                // Not a client listener (tests/common/cluster.rs knows these addresses).
            } else if let Some(rest) = line.split("LMTP listening on ").nth(1) {
                if let Ok(addr) = rest.trim().parse() {
                    d.lmtp = Some(addr);
                }
            } else if let Some(rest) = line.split(" listening on ").nth(1) {
                let tls = rest.contains("TLS)");
                let proxy = rest.contains("(PROXY");
                let addr: SocketAddr = rest.split_whitespace().next().unwrap().parse().unwrap();
                let slot = match (line.contains("POP3"), tls, proxy) {
                    (true, false, false) => &mut d.pop3,
                    (true, true, false) => &mut d.pop3s,
                    (false, false, false) => &mut d.imap,
                    (false, true, false) => &mut d.imaps,
                    (true, false, true) => &mut d.pop3_proxy,
                    (true, true, true) => &mut d.pop3s_proxy,
                    (false, false, true) => &mut d.imap_proxy,
                    (false, true, true) => &mut d.imaps_proxy,
                };
                *slot = Some(addr);
            }
            if line.contains(" ready") {
                break;
            }
        }
        d
    }

    pub fn log_text(&self) -> String {
        self.log.lock().unwrap().clone()
    }

    pub fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// The daemon's `/metrics` text: one HTTP/1.1 GET to the address its log gave (the
    /// config needs `[metrics] listen = "127.0.0.1:0"`). Bounded by a 20 s timeout.
    pub fn metrics_text(&self) -> String {
        use std::io::{Read, Write};
        let log = self.log_text();
        let addr: SocketAddr = log
            .split("metrics served at http://")
            .nth(1)
            .and_then(|rest| rest.split('/').next())
            .unwrap_or_else(|| panic!("no metrics line in:\n{log}"))
            .parse()
            .unwrap();
        let wait = Duration::from_secs(20);
        let mut s = std::net::TcpStream::connect_timeout(&addr, wait).unwrap();
        s.set_read_timeout(Some(wait)).unwrap();
        s.write_all(b"GET /metrics HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
            .unwrap();
        let mut body = String::new();
        s.read_to_string(&mut body).unwrap();
        body
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Sends a signal with the `kill` command (no unsafe code in tests either).
    pub fn signal(&self, sig: &str) {
        let st = Command::new("kill")
            .arg(format!("-{sig}"))
            .arg(self.pid().to_string())
            .status()
            .unwrap();
        assert!(st.success());
    }

    /// Waits until `needle` appears in the daemon log (bounded); panics with the log if not.
    pub fn wait_log(&self, needle: &str, within: Duration) {
        self.wait_log_more(needle, 0, within)
    }

    /// How often `needle` occurs in the daemon log so far.
    pub fn log_count(&self, needle: &str) -> usize {
        self.log_text().matches(needle).count()
    }

    /// Waits (bounded) until `needle` occurs more than `before` times in the daemon log;
    /// panics with the log if not. The harness reads the daemon's stderr on a thread, so a
    /// line the daemon wrote before answering a client may not be here yet: every test that
    /// looks for a line waits for it with this (or [`Daemon::wait_log`]).
    pub fn wait_log_more(&self, needle: &str, before: usize, within: Duration) {
        wait::wait_for(
            &format!(
                "{needle:?} to occur a {}th time in the daemon log",
                before + 1
            ),
            within,
            || {
                let text = self.log_text();
                if text.matches(needle).count() > before {
                    Ok(())
                } else {
                    Err(text)
                }
            },
        )
    }

    /// Rewrites the config file in place with `opts` (hot reload).
    pub fn rewrite_config(&self, opts: &Options) {
        std::fs::write(&self.config_path, config_text(self.dir.path(), opts)).unwrap();
    }

    /// SIGTERM and wait (bounded) for the exit status.
    pub fn stop(&mut self) -> std::process::ExitStatus {
        self.signal("TERM");
        self.wait_exit(Duration::from_secs(20))
    }

    /// Waits (bounded) for the daemon to exit; panics with its log if it does not (and
    /// `Drop` then kills it).
    pub fn wait_exit(&mut self, within: Duration) -> std::process::ExitStatus {
        let log = Arc::clone(&self.log);
        let child = &mut self.child;
        wait::wait_for("the daemon to exit", within, || {
            child
                .try_wait()
                .unwrap()
                .ok_or_else(|| log.lock().unwrap().clone())
        })
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Runs a Python 3 snippet; returns stdout. Panics with stderr on failure.
pub fn python(script: &str, args: &[&str]) -> String {
    let out = Command::new("python3")
        .arg("-c")
        .arg(script)
        .args(args)
        .output()
        .expect("python3");
    assert!(
        out.status.success(),
        "python failed: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// Says loudly that a test cannot get a component and returns (the caller skips); under
/// `CI=true` (`.ci/run` sets it, and installs every component) that is a failure instead.
pub fn skipped(why: &str) {
    eprintln!("\n**** SKIPPED: {why} ****\n");
    assert!(
        std::env::var("CI").as_deref() != Ok("true"),
        "CI=true and a component is missing: {why}"
    );
}

/// Whether an external tool is installed (tests that need it skip with a message otherwise).
pub fn have(tool: &str) -> bool {
    Command::new("sh")
        .arg("-c")
        .arg(format!("command -v {tool} >/dev/null 2>&1"))
        .status()
        .map(|s| s.success())
        .unwrap_or(false)
}

/// Delivers a message into `new/` of a user's INBOX the way an MTA does (tmp, then rename).
pub fn deliver(data_dir: &Path, user: &str, n: usize, body: &str) -> PathBuf {
    let root = data_dir.join("mail").join(user);
    for d in ["tmp", "new", "cur"] {
        std::fs::create_dir_all(root.join(d)).unwrap();
    }
    let name = format!("{}.M{}P{}.mta", 1_700_000_000 + n, n, std::process::id());
    let tmp = root.join("tmp").join(&name);
    std::fs::write(&tmp, body).unwrap();
    let dest = root.join("new").join(&name);
    std::fs::rename(&tmp, &dest).unwrap();
    dest
}

/// A port free on 127.0.0.1 now (bound and released): for a component the test starts
/// (Prometheus, HAProxy, Postfix, PHP), which binds it a moment later.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// HAProxy's `show stat` CSV as (proxy, server, status, check_status) rows.
pub fn haproxy_stat(
    sock: &std::path::Path,
) -> Result<Vec<(String, String, String, String)>, String> {
    let out = Command::new("timeout")
        .arg("15")
        .arg("python3")
        .arg("-c")
        .arg(
            r#"
import socket, sys
s = socket.socket(socket.AF_UNIX)
s.settimeout(10)
s.connect(sys.argv[1])
s.sendall(b"show stat\n")
data = b""
while True:
    b = s.recv(65536)
    if not b:
        break
    data += b
sys.stdout.write(data.decode())
"#,
        )
        .arg(sock)
        .output()
        .map_err(|e| e.to_string())?;
    if !out.status.success() {
        return Err(String::from_utf8_lossy(&out.stderr).into_owned());
    }
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let mut lines = text.lines();
    let head: Vec<&str> = lines
        .next()
        .ok_or("empty stats")?
        .trim_start_matches("# ")
        .split(',')
        .collect();
    let col = |name: &str| {
        head.iter()
            .position(|h| *h == name)
            .ok_or(format!("no {name}"))
    };
    let (px, sv, st, chk) = (
        col("pxname")?,
        col("svname")?,
        col("status")?,
        col("check_status")?,
    );
    Ok(lines
        .filter(|l| !l.is_empty())
        .map(|l| {
            let f: Vec<&str> = l.split(',').collect();
            let g = |i: usize| f.get(i).unwrap_or(&"").to_string();
            (g(px), g(sv), g(st), g(chk))
        })
        .collect())
}
