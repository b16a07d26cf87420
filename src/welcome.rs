//! The first five minutes: with `[demo] seed_welcome = true` (set only in the embedded
//! default, `etc/mailserver.toml`) the demo user's INBOX gets one welcome message — how to
//! connect (the actual listeners) and how to turn protocol logging on — when the daemon
//! starts and the demo user's Maildir does not exist yet, so a newcomer's first `curl` shows
//! something. Never for any other config (the key defaults to off), never twice (the
//! Maildir then exists), never into a tree that already has mail.

use crate::config::Config;
use crate::store::Store;

/// The user the embedded default's `etc/users` has.
pub const DEMO_USER: &str = "demo";

/// Seeds the welcome message if the config asks for it and the demo Maildir is new.
/// Failures are logged, never fatal.
pub fn seed(config: &Config) {
    if !config.seed_welcome {
        return;
    }
    let root = config.server.data_dir.join("mail");
    if root.join(DEMO_USER).exists() {
        return;
    }
    let store = crate::store::maildir::MaildirStore::new(root);
    let message = message(config, chrono::Utc::now());
    let saved = store
        .user(DEMO_USER)
        .and_then(|u| u.open("INBOX"))
        .and_then(|inbox| inbox.append(&message, Default::default(), &[], None));
    match saved {
        Ok(_) => tracing::info!("seeded a welcome message into {DEMO_USER}'s INBOX"),
        Err(e) => tracing::warn!("cannot seed the welcome message: {e}"),
    }
}

/// The welcome message (RFC 5322, LF line ends as stored in a Maildir).
pub fn message(config: &Config, now: chrono::DateTime<chrono::Utc>) -> Vec<u8> {
    let host = &config.server.hostname;
    let mut how = String::new();
    for a in &config.pop3.listen {
        how.push_str(&format!("  curl -s pop3://{a}/1 -u demo:demo                # POP3\n"));
    }
    for a in &config.pop3.tls_listen {
        how.push_str(&format!("  curl -sk pop3s://{a}/1 -u demo:demo              # POP3S\n"));
    }
    for a in &config.imap.listen {
        how.push_str(&format!(
            "  curl -s 'imap://{a}/INBOX;UID=1' -u demo:demo    # IMAP\n"
        ));
    }
    for a in &config.imap.tls_listen {
        how.push_str(&format!(
            "  curl -sk 'imaps://{a}/INBOX;UID=1' -u demo:demo  # IMAPS\n"
        ));
    }
    let date = now.format("%a, %d %b %Y %H:%M:%S +0000");
    let id = format!("<welcome.{}@{host}>", now.timestamp());
    format!(
        "Date: {date}\n\
         From: mailserver <postmaster@{host}>\n\
         To: demo <demo@{host}>\n\
         Subject: Welcome to mailserver\n\
         Message-ID: {id}\n\
         MIME-Version: 1.0\n\
         Content-Type: text/plain; charset=us-ascii\n\
         \n\
         Hello,\n\
         \n\
         this message was put here once, when the server first started with the\n\
         embedded default configuration (etc/mailserver.toml, [demo] seed_welcome).\n\
         The account is demo / demo. To read it:\n\
         \n\
         {how}\
         \n\
         Protocol logging (Exchange 5.5, KB Q182504) is off. Turn it on, level 5\n\
         records everything but passwords; the files appear under var/log/ at the\n\
         next session:\n\
         \n\
         \x20 mailserver reg add \"POP3 Protocol Logging Level\" /t REG_DWORD /d 5 /f\n\
         \x20 mailserver reg add \"IMAP Protocol Logging Level\" /t REG_DWORD /d 5 /f\n\
         \n\
         See who is connected with `mailserver who`. README.md has the rest.\n"
    )
    .into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_welcome_message_is_a_message_with_the_listeners() {
        let base = std::env::current_dir().unwrap().join("etc/mailserver.toml");
        let config = crate::config::load(&base).unwrap();
        assert!(config.seed_welcome, "the embedded default seeds");
        let now = chrono::DateTime::from_timestamp(1_700_000_000, 0).unwrap();
        let m = message(&config, now);
        let text = String::from_utf8(m.clone()).unwrap();
        let parsed = mail_parser::MessageParser::default().parse(&m).unwrap();
        assert_eq!(parsed.subject(), Some("Welcome to mailserver"));
        assert!(parsed.date().is_some() && parsed.message_id().is_some());
        assert!(parsed.from().is_some() && parsed.to().is_some());
        assert!(text.contains("pop3://127.0.0.1:1110/1"), "{text}");
        assert!(text.contains("imap://127.0.0.1:1143/INBOX;UID=1"), "{text}");
        assert!(text.contains("reg add \"IMAP Protocol Logging Level\""));
        assert!(text.lines().all(|l| l.len() <= 78), "{text}");
    }
}
