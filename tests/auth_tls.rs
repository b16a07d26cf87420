//! TLS server configuration (`[tls]`, ARCHITECTURE.md "Configuration and reload"): the
//! generated self-signed pair, loading given files, and a real handshake over `127.0.0.1:0`
//! with a `tokio-rustls` client.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use mailserver::config::{Config, TlsFiles};
use mailserver::tls;
use rustls::pki_types::{CertificateDer, ServerName};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

#[path = "common/test_config.rs"]
mod test_config;
use test_config::TestConfig;

/// Bounds every network step so a broken handshake fails the test instead of hanging it.
const STEP: Duration = Duration::from_secs(20);

/// The config of these tests, written as TOML into `data_dir/mailserver.toml` and loaded by the
/// crate's parser: `hostname`, `[tls]` from `files` (`None`: the generated pair in
/// `data_dir/tls/`), no listeners, 10 connections in all and per IP, the RFC minimum idle
/// timeouts (IMAP 1800 s, POP3 600 s), 1 MiB messages, a 1 s shutdown grace.
fn config(data_dir: &Path, hostname: &str, files: Option<TlsFiles>) -> Config {
    TestConfig {
        hostname: hostname.to_string(),
        tls: files.map(|f| (f.cert, f.key)),
        users_file: Some("users".into()),
        allow_plaintext: Some(false),
        max_connections: Some(10),
        max_connections_per_ip: Some(10),
        imap_idle_timeout_secs: Some(1800),
        pop3_idle_timeout_secs: Some(600),
        max_message_bytes: Some(1 << 20),
        shutdown_grace_secs: Some(1),
        ..TestConfig::new(data_dir)
    }
    .load(&data_dir.join("mailserver.toml"))
}

fn read_certs(path: &Path) -> Vec<CertificateDer<'static>> {
    let pem = std::fs::read(path).unwrap();
    rustls_pemfile::certs(&mut pem.as_slice())
        .collect::<Result<Vec<_>, _>>()
        .unwrap()
}

/// A client that trusts exactly the certificates in `trusted`.
fn client(
    trusted: &Path,
    version: &'static rustls::SupportedProtocolVersion,
) -> tokio_rustls::TlsConnector {
    let mut roots = rustls::RootCertStore::empty();
    for cert in read_certs(trusted) {
        roots.add(cert).unwrap();
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[version])
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    tokio_rustls::TlsConnector::from(Arc::new(config))
}

/// Accepts one connection with `server`, handshakes, echoes one line back; the client
/// connects as `name` and returns what it read and the negotiated version.
async fn handshake(
    server: Arc<rustls::ServerConfig>,
    connector: tokio_rustls::TlsConnector,
    name: &str,
) -> Result<(String, rustls::ProtocolVersion), String> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(server);
    let server_task = tokio::spawn(async move {
        let (tcp, _) = listener.accept().await.map_err(|e| e.to_string())?;
        let mut tls = acceptor.accept(tcp).await.map_err(|e| e.to_string())?;
        let mut buf = [0u8; 64];
        let n = tls.read(&mut buf).await.map_err(|e| e.to_string())?;
        tls.write_all(&buf[..n]).await.map_err(|e| e.to_string())?;
        tls.shutdown().await.map_err(|e| e.to_string())
    });
    let name = ServerName::try_from(name.to_string()).unwrap();
    let client = async {
        let tcp = tokio::net::TcpStream::connect(addr)
            .await
            .map_err(|e| e.to_string())?;
        let mut tls = connector
            .connect(name, tcp)
            .await
            .map_err(|e| e.to_string())?;
        let version = tls.get_ref().1.protocol_version().unwrap();
        tls.write_all(b"A001 NOOP\r\n")
            .await
            .map_err(|e| e.to_string())?;
        let mut out = Vec::new();
        tls.read_to_end(&mut out).await.map_err(|e| e.to_string())?;
        Ok::<_, String>((String::from_utf8(out).unwrap(), version))
    };
    let result = tokio::time::timeout(STEP, client)
        .await
        .map_err(|_| "client timed out".to_string())?;
    let server_result = tokio::time::timeout(STEP, server_task).await;
    match (&result, server_result) {
        (Ok(_), Ok(Ok(Ok(())))) => {}
        (Ok(_), other) => return Err(format!("server side failed: {other:?}")),
        (Err(_), _) => {}
    }
    result
}

#[test]
fn self_signed_is_generated_once_and_reused() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("var");
    let cfg = config(&data, "mail.example.org", None);
    tls::server_config(&cfg).unwrap();
    let (cert, key) = tls::self_signed_paths(&data);
    let first = (std::fs::read(&cert).unwrap(), std::fs::read(&key).unwrap());
    tls::server_config(&cfg).unwrap();
    let second = (std::fs::read(&cert).unwrap(), std::fs::read(&key).unwrap());
    assert!(
        first == second,
        "the second call must reuse the generated pair"
    );
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(&key).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "key file mode");
}

#[tokio::test]
async fn handshake_with_the_generated_certificate() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path(), "mail.example.org", None);
    let server = tls::server_config(&cfg).unwrap();
    let (cert, _) = tls::self_signed_paths(dir.path());
    for (name, version, want) in [
        (
            "mail.example.org",
            &rustls::version::TLS13,
            rustls::ProtocolVersion::TLSv1_3,
        ),
        (
            "localhost",
            &rustls::version::TLS12,
            rustls::ProtocolVersion::TLSv1_2,
        ),
        (
            "127.0.0.1",
            &rustls::version::TLS13,
            rustls::ProtocolVersion::TLSv1_3,
        ),
    ] {
        let (echo, got) = handshake(server.clone(), client(&cert, version), name)
            .await
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(echo, "A001 NOOP\r\n");
        assert_eq!(got, want, "{name}");
    }
    // A name the certificate does not carry is refused by the client.
    let err = handshake(
        server,
        client(&cert, &rustls::version::TLS13),
        "other.example.org",
    )
    .await
    .unwrap_err();
    assert!(err.to_lowercase().contains("certificate"), "{err}");
}

#[tokio::test]
async fn configured_files_are_used() {
    // A pair made elsewhere (here: by the generator in another directory) named in [tls].
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) =
        tls::ensure_self_signed(&dir.path().join("elsewhere"), "imap.example.net").unwrap();
    let data = dir.path().join("data");
    let cfg = config(
        &data,
        "ignored.example",
        Some(TlsFiles {
            cert: cert.clone(),
            key,
        }),
    );
    let server = tls::server_config(&cfg).unwrap();
    assert!(
        !tls::self_signed_paths(&data).0.exists(),
        "with [tls], nothing is generated"
    );
    let (echo, _) = handshake(
        server,
        client(&cert, &rustls::version::TLS13),
        "imap.example.net",
    )
    .await
    .unwrap();
    assert_eq!(echo, "A001 NOOP\r\n");
}

#[test]
fn rsa_pkcs1_and_ec_sec1_keys_load() {
    // Keys in the traditional (non-PKCS#8) PEM forms, made by openssl when it is installed.
    let Some(openssl) = which("openssl") else {
        eprintln!("SKIP rsa_pkcs1_and_ec_sec1_keys_load: openssl not found on PATH");
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    // `openssl req` writes PKCS#8; `openssl rsa -traditional` gives PKCS#1 and `openssl ec`
    // gives SEC1.
    for (kind, newkey, convert, header) in [
        (
            "rsa",
            vec!["-newkey", "rsa:2048"],
            vec!["rsa", "-traditional"],
            "BEGIN RSA PRIVATE KEY",
        ),
        (
            "ec",
            vec!["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256"],
            vec!["ec"],
            "BEGIN EC PRIVATE KEY",
        ),
    ] {
        let cert = dir.path().join(format!("{kind}.crt"));
        let key = dir.path().join(format!("{kind}.key"));
        let out = std::process::Command::new(&openssl)
            .args([
                "req",
                "-x509",
                "-nodes",
                "-days",
                "2",
                "-subj",
                "/CN=localhost",
            ])
            .args(&newkey)
            .arg("-keyout")
            .arg(&key)
            .arg("-out")
            .arg(&cert)
            .output()
            .unwrap();
        assert!(out.status.success(), "{out:?}");
        let out = std::process::Command::new(&openssl)
            .args(&convert)
            .arg("-in")
            .arg(&key)
            .arg("-out")
            .arg(&key)
            .output()
            .unwrap();
        assert!(out.status.success(), "{out:?}");
        let pem = std::fs::read_to_string(&key).unwrap();
        assert!(pem.contains(header), "{kind}: {pem}");
        tls::build(&cert, &key).unwrap_or_else(|e| panic!("{kind}: {e:#}"));
    }
}

fn which(program: &str) -> Option<PathBuf> {
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|d| d.join(program))
            .find(|p| p.is_file())
    })
}

#[test]
fn errors_name_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("no-such-cert.pem");
    let key = dir.path().join("key.pem");
    std::fs::write(&key, "").unwrap();
    let cfg = config(
        dir.path(),
        "x",
        Some(TlsFiles {
            cert: missing.clone(),
            key: key.clone(),
        }),
    );
    let err = format!("{:#}", tls::server_config(&cfg).unwrap_err());
    assert!(err.contains(&missing.display().to_string()), "{err}");

    // A readable certificate with a missing key names the key file.
    let (cert, _) = tls::ensure_self_signed(&dir.path().join("a"), "a.example").unwrap();
    let no_key = dir.path().join("no-such-key.pem");
    let cfg = config(
        dir.path(),
        "x",
        Some(TlsFiles {
            cert: cert.clone(),
            key: no_key.clone(),
        }),
    );
    let err = format!("{:#}", tls::server_config(&cfg).unwrap_err());
    assert!(err.contains(&no_key.display().to_string()), "{err}");

    // A key that belongs to another certificate is refused, naming both files.
    let (_, other_key) = tls::ensure_self_signed(&dir.path().join("b"), "b.example").unwrap();
    let cfg = config(
        dir.path(),
        "x",
        Some(TlsFiles {
            cert: cert.clone(),
            key: other_key.clone(),
        }),
    );
    let err = format!("{:#}", tls::server_config(&cfg).unwrap_err());
    assert!(
        err.contains(&cert.display().to_string()) && err.contains(&other_key.display().to_string()),
        "{err}"
    );
}
