//! A private Debian Dovecot 2.3 on loopback as the reference peer (`../shared/DOVECOT.md`):
//! its own base/state directories and instance name, one plaintext listener on a free
//! `127.0.0.1` port, a passwd-file of PLAIN users, mail owned by `mail:mail`; stopped (and
//! waited for) on drop. Shared by the `*_dovecot.rs` tests, which include this file with
//! `#[path = "common/dovecot.rs"] mod dovecot;`. Each uses a different subset, so
//! `dead_code` is allowed for the whole file rather than item by item.
#![allow(dead_code)]

use std::fs;
use std::net::TcpStream;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

pub const DOVECOT: &str = "/usr/sbin/dovecot";
pub const DOVEADM: &str = "/usr/bin/doveadm";

/// Why Dovecot tests cannot run here, if they cannot (printed as `SKIPPED: ...`).
pub fn skip_reason() -> Option<String> {
    if !Path::new(DOVECOT).exists() {
        return Some(format!(
            "{DOVECOT} is not installed (Debian dovecot-imapd/dovecot-pop3d)"
        ));
    }
    if fs::metadata("/proc/self").map(|m| m.uid()).unwrap_or(1) != 0 {
        return Some("needs root to run Dovecot with mail_uid=mail".into());
    }
    None
}

/// Whether a Dovecot test must be skipped here; if so, says why (`SKIPPED: ...`). With
/// `python`, the test also needs `python3`.
pub fn skip(python: bool) -> bool {
    let python_missing = python
        && !Command::new("python3")
            .arg("--version")
            .output()
            .is_ok_and(|o| o.status.success());
    let why = if python_missing {
        Some("python3 is not installed".to_string())
    } else {
        skip_reason()
    };
    if let Some(why) = &why {
        eprintln!("\n**** SKIPPED: {why} ****\n");
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "CI=true and Dovecot is missing: {why}"
        );
    }
    why.is_some()
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// How to configure one instance.
pub struct Options<'a> {
    /// `imap` or `pop3`.
    pub protocol: &'a str,
    /// Instance name prefix (the port is appended).
    pub name: &'a str,
    /// `mail_location` (e.g. `maildir:/x/%u`).
    pub mail_location: String,
    /// passwd-file lines (`user:{PLAIN}password`).
    pub users: String,
    /// Lines inside `namespace inbox { }` (e.g. special-use mailboxes).
    pub namespace: String,
    /// Further top-level settings.
    pub extra: String,
    /// Trees to `chown -R mail:mail` (and make world-traversable) before starting.
    pub mail_dirs: Vec<PathBuf>,
}

/// `namespace inbox` lines for the special-use folders this server creates for every user
/// (auto-subscribed, as ours are, and INBOX subscribed with them), so Dovecot's answers can
/// be compared with ours.
pub fn special_use_namespace() -> String {
    let folders: String = ["Drafts", "Sent", "Trash", "Junk", "Archive"]
        .iter()
        .map(|n| format!("  mailbox {n} {{\n    special_use = \\{n}\n    auto = subscribe\n  }}\n"))
        .collect();
    format!("  mailbox INBOX {{\n    auto = subscribe\n  }}\n{folders}")
}

/// A private Dovecot IMAP serving `users` (passwd-file lines) from a fresh Maildir under
/// `dir/mail`, with [`special_use_namespace`] plus `more_namespace`, and `extra` settings.
pub fn start_imap(
    dir: &Path,
    name: &str,
    users: String,
    more_namespace: &str,
    extra: &str,
) -> Dovecot {
    Dovecot::start(
        dir,
        Options {
            protocol: "imap",
            name,
            mail_location: format!("maildir:{}/mail/%u", dir.display()),
            users,
            namespace: special_use_namespace() + more_namespace,
            extra: extra.into(),
            mail_dirs: vec![dir.join("mail")],
        },
    )
}

/// A running instance; stopped on drop.
pub struct Dovecot {
    pub dir: PathBuf,
    pub port: u16,
}

impl Dovecot {
    pub fn conf(&self) -> PathBuf {
        self.dir.join("dovecot.conf")
    }

    /// Writes the configuration into `dir` and starts Dovecot; returns once it listens.
    pub fn start(dir: &Path, opts: Options<'_>) -> Dovecot {
        let port = free_port();
        let d = Dovecot {
            dir: dir.to_path_buf(),
            port,
        };
        for sub in ["run", "state"] {
            fs::create_dir_all(dir.join(sub)).unwrap();
        }
        fs::write(dir.join("users"), &opts.users).unwrap();
        let listener = if opts.protocol == "pop3" {
            format!(
                "service pop3-login {{\n  inet_listener pop3 {{\n    port = {port}\n  }}\n  inet_listener pop3s {{\n    port = 0\n  }}\n}}\n"
            )
        } else {
            format!(
                "service imap-login {{\n  inet_listener imap {{\n    port = {port}\n  }}\n  inet_listener imaps {{\n    port = 0\n  }}\n}}\n"
            )
        };
        let conf = format!(
            r#"base_dir = {dir}/run
state_dir = {dir}/state
instance_name = {name}-{port}
listen = 127.0.0.1
protocols = {protocol}
log_path = {dir}/dovecot.log
ssl = no
disable_plaintext_auth = no
auth_mechanisms = plain login
mail_uid = mail
mail_gid = mail
first_valid_uid = 1
first_valid_gid = 1
mail_location = {location}
mail_max_userip_connections = 100
{extra}
namespace inbox {{
  inbox = yes
  separator = /
{namespace}}}
passdb {{
  driver = passwd-file
  args = scheme=PLAIN username_format=%u {dir}/users
}}
userdb {{
  driver = static
  args = uid=mail gid=mail home={dir}/home/%u
}}
{listener}service anvil {{
  chroot =
}}
"#,
            dir = dir.display(),
            name = opts.name,
            protocol = opts.protocol,
            location = opts.mail_location,
            extra = opts.extra,
            namespace = opts.namespace,
        );
        fs::write(d.conf(), conf).unwrap();
        let _ = fs::set_permissions(dir, fs::Permissions::from_mode(0o755));
        fs::set_permissions(dir.join("users"), fs::Permissions::from_mode(0o644)).unwrap();
        for p in &opts.mail_dirs {
            fs::create_dir_all(p).unwrap();
            let _ = fs::set_permissions(p, fs::Permissions::from_mode(0o755));
            let st = Command::new("chown")
                .args(["-R", "mail:mail"])
                .arg(p)
                .status()
                .unwrap();
            assert!(st.success(), "chown {}", p.display());
        }
        let out = fs::File::create(dir.join("stdout.txt")).unwrap();
        let st = Command::new("timeout")
            .arg("30")
            .arg(DOVECOT)
            .arg("-c")
            .arg(d.conf())
            .stdout(out.try_clone().unwrap())
            .stderr(out)
            .status()
            .unwrap();
        assert!(st.success(), "dovecot did not start: {}", d.log());
        let deadline = Instant::now() + Duration::from_secs(15);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "dovecot never listened: {}",
                d.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        d
    }

    /// Dovecot's log and its start-up output.
    pub fn log(&self) -> String {
        fs::read_to_string(self.dir.join("dovecot.log")).unwrap_or_default()
            + &fs::read_to_string(self.dir.join("stdout.txt")).unwrap_or_default()
    }
}

impl Drop for Dovecot {
    fn drop(&mut self) {
        let pid = fs::read_to_string(self.dir.join("run/master.pid")).unwrap_or_default();
        let _ = Command::new("timeout")
            .arg("20")
            .arg(DOVEADM)
            .arg("-c")
            .arg(self.conf())
            .arg("stop")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        let pid = pid.trim();
        if pid.is_empty() {
            return;
        }
        let deadline = Instant::now() + Duration::from_secs(10);
        while Path::new(&format!("/proc/{pid}")).exists() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(50));
        }
        if Path::new(&format!("/proc/{pid}")).exists() {
            let _ = Command::new("kill").args(["-9", pid]).status();
        }
    }
}
