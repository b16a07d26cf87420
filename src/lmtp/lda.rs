//! `mailserver deliver -d USER [-m FOLDER] [-f SENDER] [-a ADDRESS] < message`: the LDA for
//! MTAs that pipe (Postfix `mailbox_command`, Exim pipe transports), as `dovecot-lda`.
//!
//! The same delivery as LMTP ([`super::deliver`]): the user is resolved with the same
//! address rules, the message streams into the folder's `tmp/` with `Return-Path` (when the
//! sender is known), `Delivered-To` and `Received`, and is fsynced and renamed before the
//! exit status 0. A missing `-m` folder falls back to INBOX (as `dovecot-lda` without `-n`).
//! With `[cluster] nats_url`, a change event is published after the delivery (best effort,
//! at most 1 s), so the owner's IDLE wakes at once.
//!
//! Exit codes are `dovecot-lda`'s (sysexits.h), which MTAs map to bounce or retry:
//! 0 delivered; 64 `EX_USAGE`; 65 `EX_DATAERR` (over `max_message_bytes`: retrying cannot
//! help); 67 `EX_NOUSER`; 75 `EX_TEMPFAIL` (config or users file unreadable, store errors,
//! input read errors: the MTA keeps the message and retries).

use std::io::{BufRead, BufReader, Read};
use std::path::PathBuf;

use super::deliver::{self, Copy};
use crate::store::maildir::MaildirStore;

pub const EX_OK: u8 = 0;
pub const EX_USAGE: u8 = 64;
pub const EX_DATAERR: u8 = 65;
pub const EX_NOUSER: u8 = 67;
pub const EX_TEMPFAIL: u8 = 75;
/// Over quota (dovecot-lda `-e`: the MTA bounces the message).
pub const EX_NOPERM: u8 = 77;

/// What `mailserver deliver` was asked.
#[derive(Debug, Clone)]
pub struct DeliverArgs {
    pub config: PathBuf,
    /// `-d`: the user (or an address, resolved as an LMTP recipient).
    pub user: String,
    /// `-m`: the folder (INBOX when absent or missing).
    pub folder: Option<String>,
    /// `-f`: the envelope sender (`Return-Path`); else the mbox `From ` line's, if any.
    pub from: Option<String>,
    /// `-a`: the original recipient address (`Delivered-To`); else the user.
    pub address: Option<String>,
}

/// Delivers the message read from `input`; returns the exit code (errors on stderr).
pub fn deliver(args: DeliverArgs, input: &mut dyn Read) -> u8 {
    let config = match crate::config::load(&args.config) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("mailserver deliver: {e}");
            return EX_TEMPFAIL;
        }
    };
    let users = match crate::auth::load_users_file(&config.auth.users_file) {
        Ok(u) => u,
        Err(e) => {
            eprintln!("mailserver deliver: {e}");
            return EX_TEMPFAIL;
        }
    };
    let found = deliver::resolve(&args.user, &config.lmtp.recipient_delimiter, |n| {
        Ok::<_, ()>(users.contains(n))
    });
    let Ok(Some(rcpt)) = found else {
        eprintln!("mailserver deliver: unknown user {:?}", args.user);
        return EX_NOUSER;
    };
    let folder = args.folder.clone().or(rcpt.detail.clone());
    let mut reader = BufReader::with_capacity(64 * 1024, input);
    // An mbox `From sender date` line first (as some MTAs write) is not part of the message.
    let mut from = args.from.clone();
    match reader.fill_buf() {
        Ok(head) if head.starts_with(b"From ") => {
            if let Some(end) = memchr::memchr(b'\n', head) {
                let line = String::from_utf8_lossy(&head[5..end]).into_owned();
                if from.is_none() {
                    from = line.split_whitespace().next().map(str::to_string);
                }
                reader.consume(end + 1);
            }
        }
        Ok(_) => {}
        Err(e) => {
            eprintln!("mailserver deliver: reading the message: {e}");
            return EX_TEMPFAIL;
        }
    }
    let delivered_to = args.address.clone().unwrap_or_else(|| rcpt.user.clone());
    let id = format!("{:016x}", rand::random::<u64>());
    let received = deliver::received(
        None,
        &config.server.hostname,
        "local (mailserver deliver)",
        &id,
        &delivered_to,
    );
    let headers = deliver::trace_headers(from.as_deref(), &format!("<{delivered_to}>"), &received);
    let store = MaildirStore::new(config.server.data_dir.join("mail"));
    let (users_file, quota) = (config.auth.users_file.clone(), config.quota);
    store.set_quota_limits(std::sync::Arc::new(crate::auth::UserQuotas::new(
        std::sync::Arc::new(crate::auth::Users::new()),
        Box::new(move || (users_file.clone(), quota.default, quota.grace)),
    )));
    // As the daemon (README.md, "Shared storage"): no marker, no write into a bare mount
    // point; the store's refusal is a temporary failure (75), the MTA retries.
    let marker = config
        .server
        .require_data_marker
        .then(|| crate::config::marker::path(&config.server.data_dir));
    store.require_marker(crate::store::maildir::MarkerRule(std::sync::Arc::new(
        move || marker.clone(),
    )));
    let mut copy = match Copy::begin(&store, &rcpt.user, folder.as_deref(), &headers) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("mailserver deliver: {}: {e}", rcpt.user);
            return EX_TEMPFAIL;
        }
    };
    let max = config.limits.max_message_bytes;
    let mut size = 0u64;
    loop {
        let n = match reader.fill_buf() {
            Ok([]) => break,
            Ok(data) => {
                size += data.len() as u64;
                if size > max {
                    eprintln!("mailserver deliver: the message is over {max} octets");
                    return EX_DATAERR;
                }
                if let Err(e) = copy.write(data) {
                    eprintln!("mailserver deliver: {}: {e}", rcpt.user);
                    return EX_TEMPFAIL;
                }
                data.len()
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => 0,
            Err(e) => {
                eprintln!("mailserver deliver: reading the message: {e}");
                return EX_TEMPFAIL;
            }
        };
        reader.consume(n);
    }
    let folder = copy.folder.clone();
    match copy.finish() {
        Ok(uid) => {
            let uid = uid.map(|u| format!(" (uid {u})")).unwrap_or_default();
            tracing::info!("deliver({}): saved mail to {folder}{uid}", rcpt.user);
            // Wakes the owner's IDLE at once (README.md, "Cluster", "Change events").
            if let Some(cluster) = &config.cluster {
                crate::cluster::nats::publish_once(cluster, &rcpt.user, &folder);
            }
            EX_OK
        }
        // As dovecot-lda -e: the reason on stderr, EX_NOPERM so the MTA bounces; with
        // quota.full_tempfail EX_TEMPFAIL so it tries again later.
        Err(e) if e.kind == crate::store::ErrorKind::OverQuota => {
            eprintln!("mailserver deliver: {}: Quota exceeded (mailbox for user is full)", rcpt.user);
            tracing::info!("deliver({}): {e}", rcpt.user);
            if config.quota.full_tempfail {
                EX_TEMPFAIL
            } else {
                EX_NOPERM
            }
        }
        Err(e) => {
            eprintln!("mailserver deliver: {}: saving to {folder}: {e}", rcpt.user);
            EX_TEMPFAIL
        }
    }
}
