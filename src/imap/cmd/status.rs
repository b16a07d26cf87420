//! STATUS (RFC 3501 §6.3.10), with RFC 7889 `APPENDLIMIT` (taken out of the item list before
//! imap-codec decodes it: [`crate::imap::decode::rewrite_extensions`]).

use imap_codec::imap_types::mailbox::Mailbox as ImapMailbox;
use imap_codec::imap_types::status::StatusDataItemName;

use super::super::state::{ImapSession, Res, State};
use super::{blocking, mailbox_name, push_mailbox};
use crate::session::Output;

impl ImapSession {
    pub(crate) async fn status(
        &mut self,
        m: &ImapMailbox<'_>,
        items: &[StatusDataItemName],
        out: &mut Output,
    ) -> Res {
        let name = mailbox_name(m)?;
        let user = self.user_store()?;
        let n = name.clone();
        let mut st = blocking(move || user.status(&n)).await?;
        // The store counts `\Recent` nobody has claimed; on the selected mailbox this
        // session's own recent messages count too (as Dovecot answers).
        if let State::Selected(sel) = &self.state {
            let here = sel.mailbox.name();
            if here == name || (name == "INBOX" && here.eq_ignore_ascii_case("INBOX")) {
                st.recent += sel.view.messages.iter().filter(|m| m.recent).count() as u32;
            }
        }
        // Dovecot's (and RFC 3501 §6.3.10's) order, whatever order they were asked in.
        let all = [
            (StatusDataItemName::Messages, "MESSAGES", st.messages),
            (StatusDataItemName::Recent, "RECENT", st.recent),
            (StatusDataItemName::UidNext, "UIDNEXT", st.uid_next),
            (
                StatusDataItemName::UidValidity,
                "UIDVALIDITY",
                st.uid_validity,
            ),
            (StatusDataItemName::Unseen, "UNSEEN", st.unseen),
        ];
        let ext = std::mem::take(&mut self.extensions);
        let mut parts: Vec<String> = all
            .iter()
            .filter(|(item, _, _)| items.contains(item) && !ext.status_appendlimit_only)
            .map(|(_, k, v)| format!("{k} {v}"))
            .collect();
        if ext.status_appendlimit {
            // The same for every mailbox: the session's `max_message_bytes`.
            parts.push(format!("APPENDLIMIT {}", self.append_limit()));
        }
        let mut line = b"* STATUS ".to_vec();
        push_mailbox(&mut line, &name);
        line.extend_from_slice(format!(" ({})", parts.join(" ")).as_bytes());
        out.reply(line);
        Ok("Status completed.".into())
    }
}
