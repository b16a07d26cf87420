//! APPEND (RFC 3501 §6.3.11) with UIDPLUS `[APPENDUID]` (RFC 4315 §3). The message size is
//! bounded before its literal is read (`[TOOBIG]`, in the session's literal check).

use imap_codec::imap_types::datetime::DateTime;
use imap_codec::imap_types::extensions::binary::LiteralOrLiteral8;
use imap_codec::imap_types::flag::Flag;
use imap_codec::imap_types::mailbox::Mailbox as ImapMailbox;

use super::super::state::{Fail, ImapSession, Res};
use super::{blocking, mailbox_name, split_flags, trycreate};
use crate::session::Output;

impl ImapSession {
    pub(crate) async fn append(
        &mut self,
        m: &ImapMailbox<'_>,
        flags: &[Flag<'_>],
        date: Option<DateTime>,
        message: LiteralOrLiteral8<'_>,
        out: &mut Output,
    ) -> Res {
        let _ = out;
        let name = mailbox_name(m)?;
        let data: Vec<u8> = match message {
            LiteralOrLiteral8::Literal(l) => l.data().to_vec(),
            LiteralOrLiteral8::Literal8(l) => l.data.to_vec(),
        };
        if data.is_empty() {
            // As Dovecot: an empty message is no message.
            return Err(Fail::No("Can't save a zero byte message.".into()));
        }
        if data.len() as u64 > self.env.snapshot.config.limits.max_message_bytes {
            return Err(Fail::No("[TOOBIG] Message is too large.".into()));
        }
        let (sys, keywords) = split_flags(flags);
        let when = date.map(|d| std::time::SystemTime::from(*d.as_ref()));
        let user = self.user_store()?;
        let (validity, uid) = blocking(move || {
            let mb = user.open(&name)?;
            // Before the save: once the message is saved nothing may fail the command, or a
            // client that retries has it twice.
            let validity = user.status(&name)?.uid_validity;
            let uid = mb.append(&data, sys, &keywords, when)?;
            Ok((validity, uid))
        })
        .await
        .map_err(trycreate)?;
        Ok(format!("[APPENDUID {validity} {uid}] Append completed."))
    }
}
