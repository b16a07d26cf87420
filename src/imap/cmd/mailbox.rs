//! Mailbox management: SELECT/EXAMINE (RFC 3501 §6.3.1-2), CREATE (§6.3.3), DELETE (§6.3.4),
//! RENAME (§6.3.5), SUBSCRIBE/UNSUBSCRIBE (§6.3.6-7).

use imap_codec::imap_types::mailbox::Mailbox as ImapMailbox;

use super::super::state::{Fail, ImapSession, Res, Selected, State};
use super::super::flags::{keywords_in, write_flags};
use super::{blocking, mailbox_name};
use crate::session::Output;
use crate::store::View;

impl ImapSession {
    /// SELECT / EXAMINE: opens the mailbox, syncs a fresh view and lists the §6.3.1 untagged
    /// data. A failed SELECT leaves no mailbox selected (§6.3.1).
    pub(crate) async fn select(
        &mut self,
        m: &ImapMailbox<'_>,
        read_only: bool,
        out: &mut Output,
    ) -> Res {
        let name = mailbox_name(m)?;
        if matches!(self.state, State::Selected(_)) {
            self.state = State::Authenticated;
            // RFC 7162 §3.2.11's marker (Dovecot sends it to every client): what follows
            // belongs to the new mailbox.
            out.reply("* OK [CLOSED] Previous mailbox closed.");
        }
        let user = self.user_store()?;
        let (mailbox, view, changes) = blocking(move || {
            let mb = user.open(&name)?;
            // Watch before syncing: a change made during the sync is seen by the next one.
            let mut changes = mb.changes();
            changes.mark_unchanged();
            let mut view = View::default();
            mb.sync(&mut view)?;
            Ok((mb, view, changes))
        })
        .await?;
        let keywords = keywords_in(&view.messages);
        write_flags(&keywords, read_only, mailbox.keyword_room(), out);
        out.reply(format!("* {} EXISTS", view.messages.len()));
        out.reply(format!(
            "* {} RECENT",
            view.messages.iter().filter(|m| m.recent).count()
        ));
        if let Some(i) = view
            .messages
            .iter()
            .position(|m| !m.flags.contains(crate::store::Flags::SEEN))
        {
            out.reply(format!("* OK [UNSEEN {}] First unseen.", i + 1));
        }
        out.reply(format!(
            "* OK [UIDVALIDITY {}] UIDs valid",
            view.uid_validity
        ));
        out.reply(format!(
            "* OK [UIDNEXT {}] Predicted next UID",
            view.uid_next
        ));
        self.state = State::Selected(Selected {
            mailbox,
            view,
            read_only,
            changes,
            keywords,
            saved: Vec::new(),
        });
        Ok(if read_only {
            "[READ-ONLY] Examine completed.".into()
        } else {
            "[READ-WRITE] Select completed.".into()
        })
    }

    pub(crate) async fn create(&mut self, m: &ImapMailbox<'_>) -> Res {
        let name = mailbox_name(m)?;
        // §6.3.3: a trailing delimiter says the name is meant to hold children.
        let name = name.trim_end_matches('/').to_string();
        if name.eq_ignore_ascii_case("INBOX") {
            return Err(Fail::No("[ALREADYEXISTS] Mailbox already exists.".into()));
        }
        if name.is_empty() {
            return Err(Fail::Bad("Invalid mailbox name.".into()));
        }
        let user = self.user_store()?;
        blocking(move || user.create(&name)).await?;
        Ok("Create completed.".into())
    }

    pub(crate) async fn delete(&mut self, m: &ImapMailbox<'_>) -> Res {
        let name = mailbox_name(m)?;
        if name == "INBOX" {
            return Err(Fail::No("INBOX can't be deleted.".into()));
        }
        if let State::Selected(sel) = &self.state {
            if sel.mailbox.name() == name {
                // Dovecot: deleting the selected mailbox unselects it first.
                self.state = State::Authenticated;
            }
        }
        let user = self.user_store()?;
        blocking(move || user.delete(&name)).await?;
        Ok("Delete completed.".into())
    }

    pub(crate) async fn rename(&mut self, from: &ImapMailbox<'_>, to: &ImapMailbox<'_>) -> Res {
        let from = mailbox_name(from)?;
        let to = mailbox_name(to)?;
        if to == "INBOX" {
            return Err(Fail::No("[ALREADYEXISTS] Mailbox already exists.".into()));
        }
        let user = self.user_store()?;
        blocking(move || user.rename(&from, &to)).await?;
        Ok("Rename completed.".into())
    }

    /// Subscribing needs an existing mailbox (Dovecot's rule); unsubscribing does not, so a
    /// deleted mailbox can still be unsubscribed.
    pub(crate) async fn subscribe(&mut self, m: &ImapMailbox<'_>, on: bool) -> Res {
        let name = mailbox_name(m)?;
        let user = self.user_store()?;
        blocking(move || {
            if on && !user.list()?.iter().any(|i| i.name == name && !i.no_select) {
                return Err(crate::store::Error::new(
                    crate::store::ErrorKind::NotFound,
                    format!("subscribe: no mailbox {name}"),
                ));
            }
            user.subscribe(&name, on)
        })
        .await?;
        Ok(if on {
            "Subscribe completed.".into()
        } else {
            "Unsubscribe completed.".into()
        })
    }
}
