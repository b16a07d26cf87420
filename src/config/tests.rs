//! Unit tests of `parse`, `render_effective` and `diff`.

use super::*;

fn p(src: &str) -> Result<Config, ConfigError> {
    parse(Path::new("/etc/ms/mailserver.toml"), src.as_bytes())
}

#[test]
fn empty_file_gives_defaults() {
    let c = p("").unwrap();
    assert_eq!(c.server.hostname, "localhost");
    assert_eq!(c.server.data_dir, PathBuf::from("/var/lib/mailserver"));
    assert!(c.imap.listen.is_empty() && c.pop3.tls_listen.is_empty());
    assert!(c.tls.is_none());
    assert!(c.imap_protocol.imap4rev2);
    assert_eq!(
        c.imap_protocol.idle_check_interval,
        Some(Duration::from_secs(30))
    );
    assert!(!c.server.require_data_marker);
    assert!(c.server.store_watch);
    assert_eq!(c.auth.users_file, PathBuf::from("/etc/ms/users"));
    assert!(!c.auth.allow_plaintext);
    assert_eq!(c.limits.max_connections, 10_000);
    assert_eq!(c.limits.max_connections_per_ip, 100);
    assert_eq!(c.limits.imap_idle_timeout, Duration::from_secs(1800));
    assert_eq!(c.limits.pop3_idle_timeout, Duration::from_secs(600));
    assert_eq!(c.limits.max_message_bytes, 52_428_800);
    assert_eq!(c.limits.shutdown_grace, Duration::from_secs(10));
    assert_eq!(c.limits.login_idle_timeout, Duration::from_secs(180));
    assert_eq!(c.limits.login_timeout, Duration::from_secs(300));
    assert_eq!(c.pop3_log.level, 0);
    assert_eq!(c.pop3_log.path, PathBuf::from("/var/lib/mailserver"));
    assert_eq!(c.imap_log.size_limit_kib, 0);
    assert!(c.warnings.is_empty());
}

const FULL: &str = r#"
[server]
hostname = "mail.example.org"
data_dir = "data"

[imap]
listen     = ["127.0.0.1:1143"]
tls_listen = ["[::1]:1993"]

[pop3]
listen     = ["127.0.0.1:1110"]

[tls]
cert = "tls/cert.pem"
key  = "/abs/key.pem"

[auth]
users_file = "../users"
allow_plaintext = true

[limits]
max_connections = 5
pop3_idle_timeout_secs = 700
shutdown_grace_secs = 3

[ParametersSystem]
"POP3 Protocol Logging Level" = 5   # REG_DWORD
"POP3 Protocol Log Path" = "./logs/pop3"
"IMAP Protocol Logging Level" = 2
"IMAP Protocol Log File Size Limit" = 1024
"#;

#[test]
fn full_file_resolves_relative_paths_against_config_dir() {
    let c = p(FULL).unwrap();
    assert_eq!(c.server.hostname, "mail.example.org");
    assert_eq!(c.server.data_dir, PathBuf::from("/etc/ms/data"));
    assert_eq!(c.imap.listen, vec!["127.0.0.1:1143".parse().unwrap()]);
    assert_eq!(c.imap.tls_listen, vec!["[::1]:1993".parse().unwrap()]);
    let tls = c.tls.clone().unwrap();
    assert_eq!(tls.cert, PathBuf::from("/etc/ms/tls/cert.pem"));
    assert_eq!(tls.key, PathBuf::from("/abs/key.pem"));
    assert_eq!(
        c.auth.users_file,
        PathBuf::from("/etc/users"),
        "`..` is folded lexically"
    );
    assert!(c.auth.allow_plaintext);
    assert_eq!(c.limits.max_connections, 5);
    assert_eq!(c.limits.shutdown_grace, Duration::from_secs(3));
    assert_eq!(c.pop3_log.level, 5);
    assert_eq!(c.pop3_log.path, PathBuf::from("/etc/ms/logs/pop3"));
    assert_eq!(c.imap_log.level, 2);
    assert_eq!(c.imap_log.path, PathBuf::from("/etc/ms/data"));
    assert_eq!(c.imap_log.size_limit_kib, 1024);
    assert_eq!(c.protocol_log(crate::service::Service::Pop3).level, 5);
}

#[test]
fn relative_config_path_is_made_absolute() {
    let c = parse(
        Path::new("mailserver.toml"),
        b"[server]\ndata_dir = \"d\"\n",
    )
    .unwrap();
    assert!(c.server.data_dir.is_absolute());
    assert!(c.server.data_dir.ends_with("d"));
}

#[test]
fn unknown_key_is_an_error_with_position() {
    let e = p("[server]\nhostname = \"a\"\nhostnme = \"b\"\n")
        .unwrap_err()
        .0;
    assert!(e.starts_with("/etc/ms/mailserver.toml:3:1: "), "{e}");
    assert!(e.contains("hostnme"), "{e}");
    let e = p("[pop3]\nimap4rev2 = false\n").unwrap_err().0;
    assert!(e.starts_with("/etc/ms/mailserver.toml:2:1: "), "{e}");
    let e = p("[imap]\nimap4rev2 = 1\n").unwrap_err().0;
    assert!(e.starts_with("/etc/ms/mailserver.toml:2:"), "{e}");
    let c = p("[imap]\nimap4rev2 = false\n").unwrap();
    assert!(!c.imap_protocol.imap4rev2);
    let e = p("[imapp]\n").unwrap_err().0;
    assert!(e.starts_with("/etc/ms/mailserver.toml:1:"), "{e}");
}

#[test]
fn shared_storage_keys() {
    let c = p("[server]\nrequire_data_marker = true\nstore_watch = false\n\
               [imap]\nidle_check_interval_secs = 0\n")
    .unwrap();
    assert!(c.server.require_data_marker && !c.server.store_watch);
    assert_eq!(c.imap_protocol.idle_check_interval, None, "0 is off");
    let c = p("[imap]\nidle_check_interval_secs = 1\n").unwrap();
    assert_eq!(
        c.imap_protocol.idle_check_interval,
        Some(Duration::from_secs(1))
    );
    let e = p("[imap]\nidle_check_interval_secs = 99999999999\n")
        .unwrap_err()
        .0;
    assert!(e.starts_with("/etc/ms/mailserver.toml:2:"), "{e}");
    assert!(e.contains("idle_check_interval_secs must be at most"), "{e}");
    let e = p("[server]\nstore_watch = \"no\"\n").unwrap_err().0;
    assert!(e.starts_with("/etc/ms/mailserver.toml:2:"), "{e}");
    // A reload cannot turn the watcher on or off; it can change the others.
    let old = p("").unwrap();
    let new = p("[server]\nrequire_data_marker = true\nstore_watch = false\n\
                 [imap]\nidle_check_interval_secs = 5\n")
    .unwrap();
    let changes = crate::config::diff(&old, &new);
    let restart = |k: &str| changes.iter().find(|c| c.key == k).map(|c| c.needs_restart);
    assert_eq!(restart("server.store_watch"), Some(true));
    assert_eq!(restart("server.require_data_marker"), Some(false));
    assert_eq!(restart("imap.idle_check_interval_secs"), Some(false));
}

#[test]
fn syntax_error_has_position() {
    let e = p("[server]\nhostname = \n").unwrap_err().0;
    assert!(e.starts_with("/etc/ms/mailserver.toml:2:"), "{e}");
}

#[test]
fn bad_listen_address_is_named() {
    let e = p("[pop3]\nlisten = [\"127.0.0.1:110\", \"localhost:110\"]\n")
        .unwrap_err()
        .0;
    assert!(e.starts_with("/etc/ms/mailserver.toml:2:28: "), "{e}");
    assert!(
        e.contains("pop3.listen") && e.contains("localhost:110"),
        "{e}"
    );
    let e = p("[pop3]\nlisten = [\"127.0.0.1:110\"]\n[imap]\nlisten = [\"127.0.0.1:110\"]\n")
        .unwrap_err()
        .0;
    assert!(e.contains("listed twice"), "{e}");
    // port 0 = any free port, several times is fine
    let c = p("[pop3]\nlisten = [\"127.0.0.1:0\"]\ntls_listen = [\"127.0.0.1:0\"]\n[imap]\nlisten = [\"127.0.0.1:0\"]\n").unwrap();
    assert_eq!(c.imap.listen[0].port(), 0);
}

#[test]
fn login_timeouts_are_validated_like_the_other_limits() {
    let c = p("[limits]\nlogin_idle_timeout_secs = 5\nlogin_timeout_secs = 20\n").unwrap();
    assert_eq!(c.limits.login_idle_timeout, Duration::from_secs(5));
    assert_eq!(c.limits.login_timeout, Duration::from_secs(20));
    assert!(c.warnings.is_empty(), "{:?}", c.warnings);
    let r = render_effective(&c);
    assert!(r.contains("login_idle_timeout_secs = 5"), "{r}");
    assert!(r.contains("login_timeout_secs = 20"), "{r}");
    let e = p("[limits]\nlogin_idle_timeout_secs = 0\nlogin_timeout_secs = 31536001\n")
        .unwrap_err()
        .0;
    assert_eq!(e.lines().count(), 2, "{e}");
    assert!(e.contains("login_idle_timeout_secs must be at least 1"), "{e}");
    assert!(e.contains("login_timeout_secs must be at most 31536000"), "{e}");
}

#[test]
fn low_idle_timeouts_warn_zero_errors() {
    let c = p("[limits]\nimap_idle_timeout_secs = 60\n").unwrap();
    assert_eq!(c.limits.imap_idle_timeout, Duration::from_secs(60));
    assert_eq!(c.warnings.len(), 1);
    assert!(c.warnings[0].contains("RFC 3501"), "{:?}", c.warnings);
    let e = p("[limits]\npop3_idle_timeout_secs = 0\n").unwrap_err().0;
    assert!(e.contains("at least 1"), "{e}");
    let e = p(
        "[limits]\nimap_idle_timeout_secs = 9223372036854775807\nshutdown_grace_secs = 31536001\n",
    )
    .unwrap_err()
    .0;
    assert_eq!(e.lines().count(), 2, "{e}");
    assert!(e.contains("at most 31536000"), "{e}");
    let e = p("[limits]\nmax_connections = -1\n").unwrap_err().0;
    assert!(e.starts_with("/etc/ms/mailserver.toml:2:"), "{e}");
}

#[test]
fn all_registry_errors_are_reported_together() {
    let e = p("[ParametersSystem]\n\"POP3 Protocol Logging Level\" = 7\n\"IMAP Protocol Log Path\" = 'c:\\exchsrvr'\n")
        .unwrap_err()
        .0;
    let lines: Vec<&str> = e.lines().collect();
    assert_eq!(lines.len(), 2, "{e}");
    assert_eq!(
        lines[0],
        "/etc/ms/mailserver.toml:2:33: \"POP3 Protocol Logging Level\" must be REG_DWORD 0 through 5, got 7"
    );
    assert!(
        lines[1].starts_with("/etc/ms/mailserver.toml:3:28: "),
        "{e}"
    );
    assert!(lines[1].contains("Windows path"), "{e}");
}

#[test]
fn not_utf8_is_an_error() {
    let e = parse(Path::new("x.toml"), b"a = \"\xff\"").unwrap_err().0;
    assert!(e.starts_with("x.toml:1:6: "), "{e}");
}

#[test]
fn render_lists_every_setting_and_registry_source() {
    let c =
        p("[ParametersSystem]\n\"POP3 Protocol Logging Level\" = 5\n\"Custom\" = \"x\"\n").unwrap();
    let r = render_effective(&c);
    for needle in [
        "hostname = \"localhost\"",
        "data_dir = \"/var/lib/mailserver\"",
        "max_message_bytes = 52428800",
        "shutdown_grace_secs = 10",
        "\"POP3 Protocol Logging Level\" = 5  # REG_DWORD 0x5 (file)",
        "\"IMAP Protocol Logging Level\" = 0  # REG_DWORD 0x0 (default)",
        "\"POP3 Protocol Log Path\" = \"/var/lib/mailserver\"  # REG_SZ /var/lib/mailserver (default)",
        "\"Custom\" = \"x\"  # REG_SZ x (file; unknown value: kept, not used)",
        "[ParametersSystem]  # HKEY_LOCAL_MACHINE\\SYSTEM",
    ] {
        assert!(r.contains(needle), "missing {needle:?} in\n{r}");
    }
}

#[test]
fn diff_flags_restart_settings() {
    let a = p("[server]\ndata_dir = \"/a\"\n[pop3]\nlisten = [\"127.0.0.1:1\"]\n").unwrap();
    let b = p("[server]\ndata_dir = \"/b\"\n[pop3]\nlisten = [\"127.0.0.1:2\"]\n[ParametersSystem]\n\"POP3 Protocol Logging Level\" = 3\n").unwrap();
    let d = diff(&a, &b);
    let keys: Vec<(&str, bool)> = d
        .iter()
        .map(|c| (c.key.as_str(), c.needs_restart))
        .collect();
    assert!(keys.contains(&("server.data_dir", true)), "{d:?}");
    assert!(keys.contains(&("pop3.listen", true)), "{d:?}");
    assert!(
        keys.contains(&("ParametersSystem.\"POP3 Protocol Logging Level\"", false)),
        "{d:?}"
    );
    let level = d
        .iter()
        .find(|c| c.key.contains("POP3 Protocol Logging Level"))
        .unwrap();
    assert_eq!(
        (level.old.as_str(), level.new.as_str()),
        ("0 (REG_DWORD 0x0)", "3 (REG_DWORD 0x3)")
    );
    let dd = d.iter().find(|c| c.key == "server.data_dir").unwrap();
    assert_eq!((dd.old.as_str(), dd.new.as_str()), ("\"/a\"", "\"/b\""));
    // the log paths default to data_dir, so they change too; nothing else does
    assert!(d.iter().all(|c| !c.key.starts_with("limits")), "{d:?}");
    assert!(diff(&a, &a).is_empty());
    // same value from the file as the default: no change
    let c = p("[server]\ndata_dir = \"/a\"\n[pop3]\nlisten = [\"127.0.0.1:1\"]\n[ParametersSystem]\n\"POP3 Protocol Logging Level\" = 0\n").unwrap();
    assert!(diff(&a, &c).is_empty(), "{:?}", diff(&a, &c));
}

#[test]
fn quota_defaults_and_errors_with_position() {
    let c = p("").unwrap();
    assert!(c.quota.default.is_unlimited());
    assert!(!c.quota.full_tempfail);
    let c = p("[quota]\nstorage = \"1G\"\nmessages = 1000\nfull_tempfail = true\n").unwrap();
    assert_eq!(c.quota.default.bytes, 1 << 30);
    assert_eq!(c.quota.default.messages, 1000);
    assert!(c.quota.full_tempfail);
    assert_eq!(c.quota.grace, crate::store::quota::Grace::Percent(10), "Dovecot's default");
    let g = p("[quota]\ngrace = \"5M\"\n").unwrap().quota.grace;
    assert_eq!(g, crate::store::quota::Grace::Bytes(5 << 20));
    let e = p("[quota]\ngrace = \"ten\"\n").unwrap_err().0;
    assert!(e.starts_with("/etc/ms/mailserver.toml:2:9: quota.grace"), "{e}");
    // Without a unit: KiB, as Dovecot's `storage=`.
    assert_eq!(p("[quota]\nstorage = \"100\"\n").unwrap().quota.default.bytes, 102_400);
    let e = p("[quota]\nstorage = \"1X\"\n").unwrap_err().0;
    assert!(e.starts_with("/etc/ms/mailserver.toml:2:11: quota.storage"), "{e}");
    let e = p("[quota]\nmessages = -1\n").unwrap_err().0;
    assert!(e.starts_with("/etc/ms/mailserver.toml:2:"), "{e}");
    let e = p("[quota]\nstorag = \"1G\"\n").unwrap_err().0;
    assert!(e.starts_with("/etc/ms/mailserver.toml:2:1: "), "{e}");
    let text = render_effective(&p("[quota]\nstorage = \"512M\"\n").unwrap());
    assert!(text.contains("[quota]\nstorage = \"512M\"\n"), "{text}");
}

#[test]
fn proxy_listeners_and_trusted_networks() {
    let c = p(r#"
[imap]
proxy_listen = ["127.0.0.1:10143"]
proxy_tls_listen = ["127.0.0.1:10993"]
[pop3]
proxy_listen = ["127.0.0.1:10110"]
[proxy]
trusted_networks = ["127.0.0.0/8", "10.0.0.0/8", "::1/128", "192.0.2.7"]
"#)
    .unwrap();
    assert_eq!(c.imap.proxy_listen, vec!["127.0.0.1:10143".parse().unwrap()]);
    assert_eq!(c.imap.proxy_tls_listen.len(), 1);
    assert_eq!(c.pop3.proxy_listen.len(), 1);
    assert!(c.imap.listen.is_empty() && c.pop3.proxy_tls_listen.is_empty());
    assert!(c.proxy.trusts("127.0.0.1".parse().unwrap()));
    assert!(c.proxy.trusts("10.9.8.7".parse().unwrap()));
    assert!(c.proxy.trusts("::1".parse().unwrap()));
    assert!(c.proxy.trusts("192.0.2.7".parse().unwrap()));
    assert!(!c.proxy.trusts("192.0.2.8".parse().unwrap()));
    assert!(c.warnings.is_empty(), "{:?}", c.warnings);
    assert!(!p("").unwrap().proxy.trusts("127.0.0.1".parse().unwrap()), "nothing by default");
    let r = render_effective(&c);
    assert!(r.contains("proxy.trusted_networks") || r.contains("trusted_networks"), "{r}");
}

#[test]
fn bad_trusted_network_is_an_error_with_position() {
    let e = p("[proxy]\ntrusted_networks = [\"10.0.0.0/8\",\n  \"10.0.0.1/8\"]\n")
        .unwrap_err()
        .0;
    assert!(e.starts_with("/etc/ms/mailserver.toml:3:3: "), "{e}");
    assert!(e.contains("10.0.0.0/8"), "{e}");
    let e = p("[proxy]\ntrusted_networks = [\"localhost\"]\n").unwrap_err().0;
    assert!(e.starts_with("/etc/ms/mailserver.toml:2:"), "{e}");
    let e = p("[proxy]\ntrusted = []\n").unwrap_err().0;
    assert!(e.contains("trusted"), "{e}");
    // The same address as a plain and a PROXY listener cannot both be bound.
    let e = p("[imap]\nlisten = [\"127.0.0.1:1\"]\nproxy_listen = [\"127.0.0.1:1\"]\n")
        .unwrap_err()
        .0;
    assert!(e.contains("listed twice"), "{e}");
}

#[test]
fn proxy_listeners_without_trusted_networks_warn() {
    let c = p("[imap]\nproxy_listen = [\"127.0.0.1:10143\"]\n").unwrap();
    assert!(
        c.warnings.iter().any(|w| w.starts_with("/etc/ms/mailserver.toml:2:")
            && w.contains("trusted_networks is empty")),
        "{:?}",
        c.warnings
    );
}

#[test]
fn diff_proxy_listeners_need_a_restart_trusted_networks_do_not() {
    let a = p("[imap]\nproxy_listen = [\"127.0.0.1:1\"]\n[proxy]\ntrusted_networks = [\"127.0.0.0/8\"]\n").unwrap();
    let b = p("[imap]\nproxy_listen = [\"127.0.0.1:2\"]\n[proxy]\ntrusted_networks = [\"10.0.0.0/8\"]\n").unwrap();
    let keys: Vec<(String, bool)> = diff(&a, &b)
        .into_iter()
        .map(|c| (c.key, c.needs_restart))
        .collect();
    assert!(keys.contains(&("imap.proxy_listen".into(), true)), "{keys:?}");
    assert!(keys.contains(&("proxy.trusted_networks".into(), false)), "{keys:?}");
}

#[test]
fn a_reg_sz_holding_a_nul_is_refused_with_position() {
    // Known and unknown values alike: the registry reads a REG_SZ up to its first NUL, so
    // such a value could not survive `reg export` / `reg import`.
    for name in ["IMAP Protocol Log Path", "New Value"] {
        let e = p(&format!("[ParametersSystem]\n\"{name}\" = \"log\\u0000x\"\n"))
            .unwrap_err()
            .0;
        assert!(e.starts_with("/etc/ms/mailserver.toml:2:"), "{e}");
        assert!(e.contains("NUL"), "{e}");
    }
    assert!(p("[ParametersSystem]\n\"New Value\" = \"tab\\tnl\\n\"\n").is_ok());
}

const CLUSTER: &str = r#"
[cluster]
node_id = "node2"
secret = "0123456789abcdef-cluster"
nats_url = "nats://127.0.0.1:4222"
heartbeat_ms = 500
dead_after_ms = 1500

[[cluster.nodes]]
id = "node1"
imap = "127.0.0.11:10143"
pop3 = "127.0.0.11:10110"

[[cluster.nodes]]
id = "node2"
imap = "127.0.0.12:10143"
pop3 = "127.0.0.12:10110"
"#;

#[test]
fn cluster_table_parses_and_shows_without_the_secret() {
    assert!(p("").unwrap().cluster.is_none());
    let c = p(CLUSTER).unwrap();
    let cl = c.cluster.as_ref().unwrap();
    assert_eq!(cl.node_id, "node2");
    assert_eq!(cl.this_node().imap, "127.0.0.12:10143".parse().unwrap());
    assert_eq!(cl.nodes.len(), 2);
    assert_eq!(cl.heartbeat, Duration::from_millis(500));
    assert_eq!(cl.dead_after, Duration::from_millis(1500));
    assert_eq!(cl.connect_timeout, Duration::from_millis(1000));
    assert_eq!(cl.subject_prefix, "mailserver");
    assert!(cl.is_node_ip("127.0.0.11".parse().unwrap()));
    assert!(!cl.is_node_ip("127.0.0.1".parse().unwrap()));
    let shown = render_effective(&c);
    assert!(shown.contains("node_id = \"node2\""), "{shown}");
    assert!(shown.contains("(hidden, 24 bytes)"), "{shown}");
    assert!(!shown.contains("0123456789abcdef"), "{shown}");
    let changed = CLUSTER.replace("heartbeat_ms = 500", "heartbeat_ms = 400");
    let d = diff(&c, &p(&changed).unwrap());
    assert_eq!(d.len(), 1, "{d:?}");
    assert!(d[0].key == "cluster.heartbeat_ms" && d[0].needs_restart);
}

#[test]
fn cluster_errors_name_the_place() {
    let cases = [
        (CLUSTER.replace("node_id = \"node2\"", "node_id = \"node9\""), "3:11", "not one of the [[cluster.nodes]] ids"),
        (CLUSTER.replace("0123456789abcdef-cluster", "short"), "4:10", "at least 16 bytes"),
        (CLUSTER.replace("nats://127", "http://127"), "5:12", "is not a NATS URL"),
        (CLUSTER.replace("dead_after_ms = 1500", "dead_after_ms = 400"), "7:17", "longer than"),
        (CLUSTER.replace("127.0.0.12:10110", "127.0.0.11:10110"), "17:8", "listed twice"),
        (CLUSTER.replace("127.0.0.12:10143", "0.0.0.0:10143"), "16:8", "a real address"),
        (CLUSTER.replace("id = \"node2\"", "id = \"node1\""), "15:6", "listed twice"),
        (CLUSTER.replace("secret = ", "secret_file = \"nope\"\nsecret = "), "5:10", "not both"),
        (CLUSTER.replace("secret = \"0123456789abcdef-cluster\"", ""), "3:11", "secret"),
        (CLUSTER.replace("pop3 = \"127.0.0.12:10110\"", "pop3 = \"127.0.0.12:0\""), "17:8", "port 0"),
    ];
    for (src, at, msg) in cases {
        let e = p(&src).unwrap_err().0;
        assert!(
            e.contains(&format!("/etc/ms/mailserver.toml:{at}:")) && e.contains(msg),
            "want {at} {msg}, got {e}"
        );
    }
}

#[test]
fn cluster_secret_file_is_read_relative_to_the_config() {
    let dir = std::env::temp_dir().join(format!("ms-cluster-secret-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("cluster.secret"), "fedcba9876543210fedcba\n").unwrap();
    let src = CLUSTER.replace(
        "secret = \"0123456789abcdef-cluster\"",
        "secret_file = \"cluster.secret\"",
    );
    let c = parse(&dir.join("mailserver.toml"), src.as_bytes()).unwrap();
    let cl = c.cluster.unwrap();
    assert_eq!(cl.secret.expose(), "fedcba9876543210fedcba");
    assert_eq!(cl.secret_file.as_deref(), Some(dir.join("cluster.secret").as_path()));
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn cluster_nodes_by_name_and_node_id_from_the_host_name() {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .unwrap()
        .trim()
        .to_string();
    let src = format!(
        "[cluster]\nsecret = \"0123456789abcdef\"\ntrusted_networks = [\"10.244.0.0/16\"]\n\
         [[cluster.nodes]]\nid = \"{host}\"\nimap = \"ms-0.ms.mail.svc.cluster.local:10143\"\n\
         pop3 = \"ms-0.ms.mail.svc.cluster.local:10110\"\n\
         [[cluster.nodes]]\nid = \"other\"\nimap = \"[::1]:10143\"\npop3 = \"127.0.0.12:10110\"\n"
    );
    let c = p(&src).unwrap();
    let cl = c.cluster.as_ref().unwrap();
    assert_eq!(cl.node_id, host);
    let me = cl.this_node();
    assert_eq!(me.imap.target(), ("ms-0.ms.mail.svc.cluster.local", 10143));
    assert_eq!(me.imap.bind_addr(), "0.0.0.0:10143".parse().unwrap());
    assert_eq!(me.imap.ip(), None);
    let other = &cl.nodes[1];
    assert_eq!(other.imap.to_string(), "[::1]:10143");
    assert_eq!(other.imap.bind_addr(), "[::1]:10143".parse().unwrap());
    assert!(cl.is_node_ip("::1".parse().unwrap()));
    assert!(cl.is_node_ip("10.244.3.7".parse().unwrap()));
    assert!(!cl.is_node_ip("10.245.0.1".parse().unwrap()));
    // Shown as loadable TOML and re-parsed to the same settings.
    let shown = render_effective(&c);
    assert!(shown.contains("\"ms-0.ms.mail.svc.cluster.local:10110\""), "{shown}");
    assert!(shown.contains("trusted_networks = [\"10.244.0.0/16\"]"), "{shown}");

    let bad = src.replace("ms-0.ms.mail", "ms_0.ms.mail");
    let e = p(&bad).unwrap_err().0;
    assert!(e.contains(":7:8:") && e.contains("neither an IP address nor a DNS name"), "{e}");
    let e = p(&src.replace(&format!("id = \"{host}\""), "id = \"n1\"")).unwrap_err().0;
    assert!(e.contains("(absent, so the host name)") && e.contains(":5:6:"), "{e}");
}

#[test]
fn cluster_nats_tls_files_and_url_credentials() {
    let dir = std::env::temp_dir().join(format!("ms-cluster-nats-tls-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    for f in ["ca.pem", "node.pem", "node.key"] {
        std::fs::write(dir.join(f), "x").unwrap();
    }
    let with = |extra: &str| {
        let src = CLUSTER.replace(
            "nats_url = \"nats://127.0.0.1:4222\"",
            &format!("nats_url = \"tls://node:pa55word@127.0.0.1:4222\"\n{extra}"),
        );
        parse(&dir.join("mailserver.toml"), src.as_bytes())
    };
    let c = with("nats_ca_file = \"ca.pem\"\nnats_cert_file = \"node.pem\"\nnats_key_file = \"node.key\"")
        .unwrap();
    let cl = c.cluster.as_ref().unwrap();
    assert!(cl.nats_tls.required());
    assert_eq!(cl.nats_tls.ca_file.as_deref(), Some(dir.join("ca.pem").as_path()));
    assert_eq!(
        cl.nats_tls.client,
        Some((dir.join("node.pem"), dir.join("node.key")))
    );
    let shown = render_effective(&c);
    assert!(shown.contains("tls://node:***@127.0.0.1:4222"), "{shown}");
    assert!(!shown.contains("pa55word"), "{shown}");
    assert!(shown.contains("nats_key_file"), "{shown}");
    // A certificate without its key, a missing file: refused where they are written.
    let e = with("nats_cert_file = \"node.pem\"").unwrap_err().0;
    assert!(e.contains("go together"), "{e}");
    let e = with("nats_ca_file = \"nope.pem\"").unwrap_err().0;
    assert!(e.contains(":6:16: cluster.nats_ca_file"), "{e}");
    std::fs::remove_dir_all(&dir).unwrap();

    use super::cluster::{redacted_url, url_credentials};
    assert_eq!(
        url_credentials("tls://u:p@h:1,nats://h2:2"),
        Some(("u".into(), Some("p".into())))
    );
    assert_eq!(url_credentials("nats://t0ken@h:1"), Some(("t0ken".into(), None)));
    assert_eq!(url_credentials("nats://h:1"), None);
    assert_eq!(
        redacted_url("nats://t0ken@h:1, tls://u:p@h2:2,nats://h3:3"),
        "nats://***@h:1,tls://u:***@h2:2,nats://h3:3"
    );
}
