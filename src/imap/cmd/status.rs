//! STATUS (RFC 3501 §6.3.10).

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
        if items.contains(&StatusDataItemName::HighestModSeq) {
            // RFC 7162 §3.1: a CONDSTORE-enabling command.
            self.enable_condstore(out);
        }
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
        let mut parts: Vec<String> = all
            .iter()
            .filter(|(item, _, _)| items.contains(item))
            .map(|(_, k, v)| format!("{k} {v}"))
            .collect();
        if items.contains(&StatusDataItemName::HighestModSeq) {
            parts.push(format!("HIGHESTMODSEQ {}", st.highest_modseq.max(1)));
        }
        let mut line = b"* STATUS ".to_vec();
        push_mailbox(&mut line, &name);
        line.extend_from_slice(format!(" ({})", parts.join(" ")).as_bytes());
        out.reply(line);
        Ok("Status completed.".into())
    }
}
