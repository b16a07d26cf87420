//! A private Roundcube (Debian's `roundcube-core` 1.6 with `roundcube-sqlite3`) served by PHP's
//! built-in web server on loopback, and headless Chromium driving it as a user would
//! (`tests/roundcube/walk.py`, Selenium with Debian's `chromedriver`).
//!
//! Each instance lives in its own directory: `config/config.inc.php` (read through
//! `ROUNDCUBE_CONFIG_DIR`, beside a link to the package's `defaults.inc.php`) pointing
//! `imap_host` at one loopback IMAP port, an SQLite database initialised from the package's
//! schema, no plugins, and `imap_debug` with file logging into `logs/`, so a test can read
//! which IMAP commands Roundcube sent (`logs/imap.log`). `php -S` runs in its own process
//! group with a few workers (Roundcube sends requests in parallel); the group is stopped on
//! drop. Nothing system-wide is started or changed: no Apache, no `/etc/roundcube` edit.
//!
//! Included by `tests/roundcube.rs` with `#[path = "common/roundcube.rs"] mod roundcube;`.

use std::fs;
use std::net::TcpStream;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Roundcube's web root as the Debian package lays it out.
pub const WEB_ROOT: &str = "/var/lib/roundcube/public_html";
pub const DEFAULTS: &str = "/etc/roundcube/defaults.inc.php";
pub const SCHEMA: &str = "/usr/share/roundcube/SQL/sqlite.initial.sql";
pub const PHP: &str = "/usr/bin/php";
pub const CHROMIUM: &str = "/usr/bin/chromium";
pub const CHROMEDRIVER: &str = "/usr/bin/chromedriver";
/// Debian's Python, which has `python3-selenium` (a `python3` earlier in `PATH` may not).
pub const PYTHON: &str = "/usr/bin/python3";

/// The browser walk (tests/roundcube/walk.py).
fn walk_script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/roundcube/walk.py")
}

/// Why the Roundcube test cannot run here, if it cannot.
pub fn skip_reason() -> Option<String> {
    for (path, package) in [
        (WEB_ROOT, "roundcube-core"),
        (DEFAULTS, "roundcube-core"),
        (SCHEMA, "roundcube-sqlite3"),
        (PHP, "php-cli"),
        (CHROMIUM, "chromium"),
        (CHROMEDRIVER, "chromium-driver"),
        (PYTHON, "python3"),
    ] {
        if !Path::new(path).exists() {
            return Some(format!("{path} is missing (Debian {package})"));
        }
    }
    let selenium = Command::new(PYTHON)
        .args(["-c", "import selenium"])
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !selenium {
        return Some(format!(
            "{PYTHON} cannot import selenium (Debian python3-selenium)"
        ));
    }
    let sqlite = Command::new(PHP)
        .args(["-r", "exit(extension_loaded('pdo_sqlite') ? 0 : 1);"])
        .status()
        .is_ok_and(|s| s.success());
    if !sqlite {
        return Some("PHP has no pdo_sqlite (Debian roundcube-sqlite3)".into());
    }
    None
}

/// Whether the test must be skipped here; if so, prints why, loudly. Under `CI=true` a
/// missing component is a failure instead (`.ci/run` installs them all).
pub fn skip() -> bool {
    let Some(why) = skip_reason() else {
        return false;
    };
    if std::env::var("CI").is_ok_and(|v| v == "true") {
        panic!("CI=true and the Roundcube test cannot run: {why}");
    }
    eprintln!("\n**** SKIPPED: Roundcube test: {why} ****\n");
    true
}

/// A temporary directory in memory (`/dev/shm`) where there is one, else in the usual
/// place. Each server's folder is 10,000 files: on a loaded machine's disk, writing them took
/// 15 s and removing them 27 s per tree, which would be most of the test's wall time and
/// measures nothing Roundcube does.
pub fn tempdir() -> tempfile::TempDir {
    let shm = Path::new("/dev/shm");
    tempfile::Builder::new()
        .prefix("roundcube-test")
        .tempdir_in(shm)
        .or_else(|_| tempfile::tempdir())
        .unwrap()
}

/// A PHP string literal holding `s` (single-quoted).
fn php_str(s: &str) -> String {
    format!("'{}'", s.replace('\\', "\\\\").replace('\'', "\\'"))
}

/// One running instance; its web server is stopped on drop.
pub struct Roundcube {
    pub dir: PathBuf,
    pub port: u16,
    php: Child,
}

/// What the list showed after one step of the walk: `key=value` fields as `walk.py` prints
/// them (`first`, `last`, `count`, `messagecount`, `page`, `pages`, `sort_col`, `threading`,
/// `roots`, `nested`, `root_subjects`, `seconds`, ...).
#[derive(Debug)]
pub struct Step {
    pub name: String,
    pub fields: Vec<(String, String)>,
}

impl Step {
    pub fn get(&self, key: &str) -> &str {
        self.fields
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
            .unwrap_or_else(|| panic!("step {} has no {key}: {self:?}", self.name))
    }

    pub fn num(&self, key: &str) -> f64 {
        self.get(key)
            .parse()
            .unwrap_or_else(|_| panic!("step {} {key} is not a number: {self:?}", self.name))
    }
}

impl Roundcube {
    /// A fresh instance in `dir` (created) for the IMAP server on `127.0.0.1:imap_port`;
    /// returns once the web server answers.
    pub fn start(dir: &Path, imap_port: u16) -> Roundcube {
        let config = dir.join("config");
        for sub in ["config", "logs", "temp"] {
            fs::create_dir_all(dir.join(sub)).unwrap();
        }
        std::os::unix::fs::symlink(DEFAULTS, config.join("defaults.inc.php")).unwrap();
        let db = dir.join("roundcube.db");
        let path = |p: PathBuf| php_str(&format!("{}/", p.display()));
        let settings = [
            (
                "db_dsnw",
                php_str(&format!("sqlite:///{}?mode=0600", db.display())),
            ),
            ("imap_host", php_str(&format!("127.0.0.1:{imap_port}"))),
            ("smtp_host", php_str("")),
            // Any 24 characters: the key of this throw-away instance's session cookies.
            ("des_key", php_str("mailserver-roundcube-tst")),
            ("plugins", "[]".into()),
            ("skin", php_str("elastic")),
            ("language", php_str("en_US")),
            ("log_driver", php_str("file")),
            ("log_dir", path(dir.join("logs"))),
            ("temp_dir", path(dir.join("temp"))),
            ("imap_debug", "true".into()),
            ("imap_cache", "null".into()),
            ("messages_cache", "false".into()),
            ("enable_installer", "false".into()),
            ("enable_spellcheck", "false".into()),
        ];
        let mut php = String::from("<?php\n$config = [];\n");
        for (k, v) in settings {
            php.push_str(&format!("$config['{k}'] = {v};\n"));
        }
        fs::write(config.join("config.inc.php"), php).unwrap();
        // The package's schema, as `bin/initdb.sh` would load it (PHP's own SQLite, so no
        // sqlite3 command-line tool is needed).
        let init = Command::new(PHP)
            .arg("-r")
            .arg(format!(
                "$db = new PDO({}); $db->exec(file_get_contents({})) !== false || exit(1);",
                php_str(&format!("sqlite:{}", db.display())),
                php_str(SCHEMA)
            ))
            .output()
            .unwrap();
        assert!(
            init.status.success(),
            "Roundcube schema: {}",
            String::from_utf8_lossy(&init.stderr)
        );
        let port = crate::common::free_port();
        let log = fs::File::create(dir.join("php.log")).unwrap();
        let php = Command::new(PHP)
            .arg("-S")
            .arg(format!("127.0.0.1:{port}"))
            .arg("-t")
            .arg(WEB_ROOT)
            .env("ROUNDCUBE_CONFIG_DIR", &config)
            .env("PHP_CLI_SERVER_WORKERS", "4")
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .process_group(0)
            .spawn()
            .expect("php -S");
        let rc = Roundcube {
            dir: dir.to_path_buf(),
            port,
            php,
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "php -S never listened: {}",
                rc.file("php.log")
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        rc
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}/", self.port)
    }

    fn file(&self, name: &str) -> String {
        fs::read_to_string(self.dir.join(name)).unwrap_or_default()
    }

    /// Roundcube's IMAP debug log (`C:` and `S:` lines of every request's connection).
    pub fn imap_log(&self) -> String {
        self.file("logs/imap.log")
    }

    /// Roundcube's errors log and the web server's output, for failure messages.
    pub fn errors(&self) -> String {
        self.file("logs/errors.log") + &self.file("php.log")
    }

    /// The commands Roundcube sent, tag taken off, in order (`C: A0004 SELECT INBOX` →
    /// `SELECT INBOX`).
    pub fn commands(&self) -> Vec<String> {
        self.imap_log()
            .lines()
            .filter_map(|l| l.split_once("] C: ").map(|(_, c)| c))
            .map(|c| c.split_once(' ').map_or(c, |(_, rest)| rest).to_string())
            .collect()
    }

    /// Runs the browser walk as `user`; returns its steps. Panics with the walk's output and
    /// Roundcube's logs if it fails or does not finish in `within`. The walk (Python,
    /// chromedriver, Chromium) runs in its own process group, killed whole when it is over,
    /// so a walk cut short leaves no browser behind.
    pub fn walk(&self, user: &str, pass: &str, within: Duration) -> Vec<Step> {
        let (stdout_path, stderr_path) = (self.dir.join("walk.out"), self.dir.join("walk.err"));
        let mut child = Command::new(PYTHON)
            .arg(walk_script())
            .args([&self.url(), user, pass])
            .env("HOME", &self.dir)
            .stdin(Stdio::null())
            .stdout(fs::File::create(&stdout_path).unwrap())
            .stderr(fs::File::create(&stderr_path).unwrap())
            .process_group(0)
            .spawn()
            .expect("the Roundcube walk");
        let deadline = Instant::now() + within;
        let status = loop {
            if let Some(status) = child.try_wait().unwrap() {
                break Some(status);
            }
            if Instant::now() >= deadline {
                break None;
            }
            std::thread::sleep(Duration::from_millis(100));
        };
        kill_group(child.id());
        let _ = child.wait();
        let stdout = fs::read_to_string(&stdout_path).unwrap_or_default();
        assert!(
            status.is_some_and(|s| s.success()) && stdout.lines().any(|l| l == "step=done"),
            "the Roundcube walk failed ({}):\n{stdout}\n{}\n--- Roundcube:\n{}",
            status.map_or(format!("still running after {within:?}"), |s| s.to_string()),
            fs::read_to_string(&stderr_path).unwrap_or_default(),
            self.errors()
        );
        stdout
            .lines()
            .map(|l| {
                let mut fields: Vec<(String, String)> = l
                    .split('\t')
                    .filter_map(|f| f.split_once('='))
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect();
                let name = fields.remove(0).1;
                Step { name, fields }
            })
            .collect()
    }
}

/// Kills the process group `leader` started with `process_group(0)` (with the `kill`
/// command: no unsafe code in tests).
fn kill_group(leader: u32) {
    let _ = Command::new("kill")
        .args(["-KILL", "--", &format!("-{leader}")])
        .stderr(Stdio::null())
        .status();
}

impl Drop for Roundcube {
    fn drop(&mut self) {
        // The server and its workers share the process group `process_group(0)` gave them.
        kill_group(self.php.id());
        let _ = self.php.wait();
    }
}
