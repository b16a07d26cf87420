//! TLS server configuration (rustls with the ring provider), for STARTTLS (RFC 3501 §6.2.1,
//! RFC 2595 §3.1 and §4 for POP3 `STLS`) and the implicit-TLS ports (RFC 8314 §3.3).
//!
//! This module owns where certificates come from:
//! * `[tls] cert`/`key` (README.md, "Configuration"): a PEM certificate chain (leaf first) and a PEM private key in
//!   PKCS#8, PKCS#1 (RSA) or SEC1 (EC) form. Every error names the file.
//! * no `[tls]`: `data_dir/tls/cert.pem` + `key.pem`, a self-signed pair for
//!   `server.hostname`, `localhost` and `127.0.0.1`, generated with `rcgen` on first use and
//!   reused afterwards (the directory is created with mode 0700, the key written with mode 0600,
//!   each file atomically: temporary file, fsync, rename, fsync of the directory). The key is
//!   written before the certificate, so a crash leaves no certificate without its key; when
//!   either file is missing, or the certificate is not valid for `server.hostname` (it was
//!   changed), both are generated anew.
//!
//! Protocols: TLS 1.3 and 1.2 (RFC 8996 retired the older ones); no client certificates.
//!
//! INTERFACE CONTRACT: [`server_config`] is called once per config snapshot by the server.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{anyhow, Context};
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

use crate::config::Config;

/// Builds the server config from `[tls]`, or from the self-signed pair for `server.hostname`
/// generated once into `data_dir/tls/` when `[tls]` is absent.
pub fn server_config(config: &Config) -> anyhow::Result<Arc<rustls::ServerConfig>> {
    let (cert, key) = match &config.tls {
        Some(files) => (files.cert.clone(), files.key.clone()),
        None => ensure_self_signed(&config.server.data_dir, &config.server.hostname)?,
    };
    build(&cert, &key)
}

/// The self-signed pair's paths under `data_dir`: `(cert.pem, key.pem)`.
pub fn self_signed_paths(data_dir: &Path) -> (PathBuf, PathBuf) {
    let dir = data_dir.join("tls");
    (dir.join("cert.pem"), dir.join("key.pem"))
}

/// Loads a PEM certificate chain and private key into a rustls server config.
pub fn build(cert_path: &Path, key_path: &Path) -> anyhow::Result<Arc<rustls::ServerConfig>> {
    let certs = load_certs(cert_path)?;
    let key = load_key(key_path)?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .context("TLS protocol versions")?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .with_context(|| {
            format!(
                "TLS certificate {} and key {} do not form a usable pair",
                cert_path.display(),
                key_path.display()
            )
        })?;
    Ok(Arc::new(config))
}

fn load_certs(path: &Path) -> anyhow::Result<Vec<CertificateDer<'static>>> {
    let bytes = std::fs::read(path)
        .with_context(|| format!("TLS certificate file {}: cannot read", path.display()))?;
    let certs = rustls_pemfile::certs(&mut bytes.as_slice())
        .collect::<Result<Vec<_>, _>>()
        .with_context(|| format!("TLS certificate file {}: bad PEM", path.display()))?;
    if certs.is_empty() {
        return Err(anyhow!(
            "TLS certificate file {}: no CERTIFICATE found in it",
            path.display()
        ));
    }
    Ok(certs)
}

fn load_key(path: &Path) -> anyhow::Result<PrivateKeyDer<'static>> {
    let bytes = std::fs::read(path)
        .with_context(|| format!("TLS key file {}: cannot read", path.display()))?;
    rustls_pemfile::private_key(&mut bytes.as_slice())
        .with_context(|| format!("TLS key file {}: bad PEM", path.display()))?
        .ok_or_else(|| {
            anyhow!(
                "TLS key file {}: no private key (PKCS#8, PKCS#1 or SEC1 PEM) found in it",
                path.display()
            )
        })
}

/// Makes sure `data_dir/tls/{cert,key}.pem` exist, generating them for `hostname` if not.
/// Returns their paths.
pub fn ensure_self_signed(data_dir: &Path, hostname: &str) -> anyhow::Result<(PathBuf, PathBuf)> {
    let (cert, key) = self_signed_paths(data_dir);
    if cert.is_file() && key.is_file() {
        match names_other_host(&cert, hostname) {
            Some(true) => tracing::warn!(
                "{} is not valid for server.hostname {hostname}: generating a new one",
                cert.display()
            ),
            // Valid for the name, or not checkable here (`build` reports unreadable files).
            Some(false) | None => return Ok((cert, key)),
        }
    }
    let dir = cert.parent().expect("cert path has a parent");
    create_private_dir(dir)?;
    let (cert_pem, key_pem) = generate_self_signed(hostname)?;
    write_atomically(&key, key_pem.as_bytes(), 0o600)?;
    write_atomically(&cert, cert_pem.as_bytes(), 0o644)?;
    tracing::warn!(
        "no [tls] configured: generated a self-signed certificate for {hostname} in {}",
        cert.display()
    );
    Ok((cert, key))
}

/// `Some(true)` when the first certificate in `cert` parses and is not valid for `hostname`
/// (server.hostname changed since it was generated); `None` when that cannot be told.
fn names_other_host(cert: &Path, hostname: &str) -> Option<bool> {
    let der = load_certs(cert).ok()?.into_iter().next()?;
    let parsed = webpki::EndEntityCert::try_from(&der).ok()?;
    let name = rustls::pki_types::ServerName::try_from(hostname).ok()?;
    Some(parsed.verify_is_valid_for_subject_name(&name).is_err())
}

/// A new self-signed certificate and key, as PEM: `(certificate, PKCS#8 key)`.
fn generate_self_signed(hostname: &str) -> anyhow::Result<(String, String)> {
    let mut names = vec![hostname.to_string()];
    for extra in ["localhost", "127.0.0.1"] {
        if !names.iter().any(|n| n.eq_ignore_ascii_case(extra)) {
            names.push(extra.to_string());
        }
    }
    let mut params = rcgen::CertificateParams::new(names)
        .with_context(|| format!("self-signed certificate for {hostname:?}"))?;
    params.distinguished_name = rcgen::DistinguishedName::new();
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, hostname);
    let key = rcgen::KeyPair::generate().context("generating a TLS key")?;
    let cert = params
        .self_signed(&key)
        .with_context(|| format!("self-signed certificate for {hostname:?}"))?;
    Ok((cert.pem(), key.serialize_pem()))
}

fn create_private_dir(dir: &Path) -> anyhow::Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .with_context(|| format!("cannot create TLS directory {}", dir.display()))
}

/// Writes `bytes` to `path` via a temporary file in the same directory (created with `mode`),
/// fsync, rename, fsync of the directory.
fn write_atomically(path: &Path, bytes: &[u8], mode: u32) -> anyhow::Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    let dir = path.parent().expect("file path has a parent");
    let name = path
        .file_name()
        .expect("file path has a name")
        .to_string_lossy();
    // Unique, not just per pid: a daemon killed here left its temp file, and the next one
    // may well have the same pid (pid 1 in a container) — `create_new` would refuse it.
    let tmp = dir.join(format!(
        ".{name}.tmp.{}.{:08x}",
        std::process::id(),
        rand::random::<u32>()
    ));
    let result = (|| -> std::io::Result<()> {
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(mode)
            .open(&tmp)?;
        file.write_all(bytes)?;
        file.sync_all()?;
        std::fs::rename(&tmp, path)?;
        std::fs::File::open(dir)?.sync_all()
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result.with_context(|| format!("cannot write {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_pair_loads_and_key_is_private() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        let (cert, key) = ensure_self_signed(&data, "mail.example.org").unwrap();
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&key), 0o600);
        assert_eq!(mode(cert.parent().unwrap()), 0o700);
        build(&cert, &key).unwrap();
        // No temporary files left behind.
        let names: Vec<_> = std::fs::read_dir(cert.parent().unwrap())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        assert_eq!(names.len(), 2, "{names:?}");
    }

    #[test]
    fn temp_file_left_by_a_killed_daemon_with_our_pid_does_not_block() {
        let dir = tempfile::tempdir().unwrap();
        let tls = dir.path().join("tls");
        std::fs::create_dir_all(&tls).unwrap();
        // What the old naming left after a crash, for a daemon that had our pid.
        let left = tls.join(format!(".key.pem.tmp.{}", std::process::id()));
        std::fs::write(&left, "half").unwrap();
        let (cert, key) = ensure_self_signed(dir.path(), "a.example").unwrap();
        build(&cert, &key).unwrap();
    }

    #[test]
    fn missing_key_regenerates_both() {
        let dir = tempfile::tempdir().unwrap();
        let (cert, key) = ensure_self_signed(dir.path(), "a.example").unwrap();
        let before = std::fs::read(&cert).unwrap();
        std::fs::remove_file(&key).unwrap();
        ensure_self_signed(dir.path(), "a.example").unwrap();
        assert_ne!(std::fs::read(&cert).unwrap(), before);
        build(&cert, &key).unwrap();
    }

    #[test]
    fn hostname_change_regenerates() {
        let dir = tempfile::tempdir().unwrap();
        let (cert, _) = ensure_self_signed(dir.path(), "a.example").unwrap();
        let first = std::fs::read(&cert).unwrap();
        ensure_self_signed(dir.path(), "a.example").unwrap();
        assert_eq!(std::fs::read(&cert).unwrap(), first, "same name: reused");
        ensure_self_signed(dir.path(), "localhost").unwrap();
        assert_eq!(
            std::fs::read(&cert).unwrap(),
            first,
            "localhost is always covered"
        );
        ensure_self_signed(dir.path(), "b.example").unwrap();
        let second = std::fs::read(&cert).unwrap();
        assert_ne!(second, first, "new name: regenerated");
        assert_eq!(names_other_host(&cert, "b.example"), Some(false));
        assert_eq!(names_other_host(&cert, "a.example"), Some(true));
    }

    #[test]
    fn empty_files_are_reported_by_name() {
        let dir = tempfile::tempdir().unwrap();
        let cert = dir.path().join("c.pem");
        let key = dir.path().join("k.pem");
        std::fs::write(&cert, "nothing here\n").unwrap();
        std::fs::write(&key, "nothing here\n").unwrap();
        let err = format!("{:#}", build(&cert, &key).unwrap_err());
        assert!(
            err.contains("c.pem") && err.contains("no CERTIFICATE"),
            "{err}"
        );
        let (good_cert, _) = ensure_self_signed(dir.path(), "x").unwrap();
        let err = format!("{:#}", build(&good_cert, &key).unwrap_err());
        assert!(
            err.contains("k.pem") && err.contains("no private key"),
            "{err}"
        );
    }
}
