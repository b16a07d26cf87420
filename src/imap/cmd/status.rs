//! STATUS (RFC 3501 §6.3.10) with RFC 7162's HIGHESTMODSEQ, RFC 8438's SIZE and RFC 7889's `APPENDLIMIT` (taken out
//! of the item list before imap-codec decodes it: [`crate::imap::decode::rewrite_extensions`]).

use imap_codec::imap_types::mailbox::Mailbox as ImapMailbox;
use imap_codec::imap_types::status::StatusDataItemName;

use super::super::state::{Fail, ImapSession, Res, State};
use super::{blocking, mailbox_name, push_mailbox};
use crate::session::Output;
use crate::store::MailboxStatus;

impl ImapSession {
    pub(crate) async fn status(
        &mut self,
        m: &ImapMailbox<'_>,
        items: &[StatusDataItemName],
        out: &mut Output,
    ) -> Res {
        let name = mailbox_name(m, self.enabled.utf8_names())?;
        if items.contains(&StatusDataItemName::HighestModSeq) {
            // RFC 7162 §3.1: a CONDSTORE-enabling command.
            self.enable_condstore(out);
        }
        let st = self.status_of(&name).await?;
        let rewrite = std::mem::take(&mut self.ext.rewrite);
        let mut parts = if rewrite.status_appendlimit_only {
            Vec::new()
        } else {
            status_items(&st, items)
        };
        if rewrite.status_appendlimit {
            // The same for every mailbox: the session's `max_message_bytes`.
            parts.push(format!("APPENDLIMIT {}", self.append_limit()));
        }
        let mut line = b"* STATUS ".to_vec();
        push_mailbox(&mut line, &name, self.enabled.utf8_names());
        line.extend_from_slice(format!(" ({})", parts.join(" ")).as_bytes());
        out.reply(line);
        // RFC 9051 §6.3.11: a client SHOULD NOT ask for the selected mailbox's STATUS;
        // Dovecot says so with RFC 5530's CLIENTBUG, and so do we.
        let selected = matches!(&self.state, State::Selected(s) if s.mailbox.name() == name);
        Ok(if selected {
            "[CLIENTBUG] Status on selected mailbox completed.".into()
        } else {
            "Status completed.".into()
        })
    }

    /// The counts of mailbox `name` (store name) as STATUS reports them.
    pub(crate) async fn status_of(&self, name: &str) -> Result<MailboxStatus, Fail> {
        let user = self.user_store()?;
        let n = name.to_string();
        let mut st = blocking(move || user.status(&n)).await?;
        // The store counts `\Recent` nobody has claimed; on the selected mailbox this
        // session's own recent messages count too (as Dovecot answers). IMAP4rev2 has no
        // RECENT (RFC 9051 Appendix E; imap-codec still decodes the item): always 0.
        if self.enabled.rev2 {
            st.recent = 0;
        } else if let State::Selected(sel) = &self.state {
            let here = sel.mailbox.name();
            if here == name || (name == "INBOX" && here.eq_ignore_ascii_case("INBOX")) {
                st.recent += sel.view.messages.iter().filter(|m| m.recent).count() as u32;
            }
        }
        Ok(st)
    }
}

/// The `item value` pairs of a STATUS answer (also LIST-STATUS's, RFC 5819), in Dovecot's
/// (and RFC 3501 §6.3.10's) order, whatever order they were asked in.
pub(crate) fn status_items(st: &MailboxStatus, items: &[StatusDataItemName]) -> Vec<String> {
    let all = [
        (StatusDataItemName::Messages, "MESSAGES", u64::from(st.messages)),
        (StatusDataItemName::Recent, "RECENT", u64::from(st.recent)),
        (StatusDataItemName::UidNext, "UIDNEXT", u64::from(st.uid_next)),
        (StatusDataItemName::UidValidity, "UIDVALIDITY", u64::from(st.uid_validity)),
        (StatusDataItemName::Unseen, "UNSEEN", u64::from(st.unseen)),
        // RFC 7162 §3.1.1 (at least 1: 0 would mean NOMODSEQ).
        (StatusDataItemName::HighestModSeq, "HIGHESTMODSEQ", st.highest_modseq.max(1)),
        // RFC 8438.
        (StatusDataItemName::Size, "SIZE", st.size),
        // RFC 9051 §6.3.11 (IMAP4rev2; answered to every session, as the item is
        // unambiguous).
        (StatusDataItemName::Deleted, "DELETED", u64::from(st.deleted)),
    ];
    all.iter()
        .filter(|(item, _, _)| items.contains(item))
        .map(|(_, k, v)| format!("{k} {v}"))
        .collect()
}
