//! Mailbox management: SELECT/EXAMINE (RFC 3501 §6.3.1-2), CREATE (§6.3.3), DELETE (§6.3.4),
//! RENAME (§6.3.5), SUBSCRIBE/UNSUBSCRIBE (§6.3.6-7).

use imap_codec::imap_types::command::SelectParameter;
use imap_codec::imap_types::mailbox::Mailbox as ImapMailbox;
use imap_codec::imap_types::sequence::SequenceSet;

use super::super::state::{Fail, ImapSession, Res, Selected, State};
use super::super::flags::{keywords_in, write_flags};
use super::super::flags::flags_list;
use super::super::state::{announce_new_keywords, forget_recent};
use super::super::search::set_contains;
use super::{blocking, mailbox_name, push_mailbox, uid_set};
use crate::session::Output;
use crate::store::{ErrorKind, MessageMeta, UserStore, View};

/// What a `SELECT (QRESYNC (...))` client knows (RFC 7162 §3.2.5).
struct Known {
    uid_validity: u32,
    modseq: u64,
    uids: Option<SequenceSet>,
}

impl ImapSession {
    /// SELECT / EXAMINE: opens the mailbox, syncs a fresh view and lists the §6.3.1 untagged
    /// data. A failed SELECT leaves no mailbox selected (§6.3.1).
    pub(crate) async fn select(
        &mut self,
        m: &ImapMailbox<'_>,
        read_only: bool,
        params: &[SelectParameter],
        out: &mut Output,
    ) -> Res {
        let name = mailbox_name(m, self.enabled.utf8_names())?;
        if matches!(self.state, State::Selected(_)) {
            self.state = State::Authenticated;
            // RFC 7162 §3.2.11's marker (Dovecot sends it to every client): what follows
            // belongs to the new mailbox.
            out.reply("* OK [CLOSED] Previous mailbox closed.");
        }
        let mut known = None;
        for p in params {
            match p {
                SelectParameter::CondStore => self.enable_condstore(out),
                SelectParameter::QResync {
                    uid_validity,
                    mod_sequence_value,
                    known_uids,
                    ..
                } => {
                    // §3.2.5: only once QRESYNC is enabled.
                    if !self.enabled.qresync {
                        return Err(Fail::Bad("QRESYNC not enabled.".into()));
                    }
                    known = Some(Known {
                        uid_validity: uid_validity.get(),
                        modseq: mod_sequence_value.get(),
                        uids: known_uids.clone(),
                    });
                }
            }
        }
        let user = self.user_store()?;
        let since = known
            .as_ref()
            .map(|k| (k.uid_validity, k.modseq))
            .filter(|_| self.enabled.qresync);
        let peek_recent = read_only || self.enabled.rev2;
        let (mailbox, view, changes, vanished) = blocking(move || {
            let mb = user.open(&name)?;
            // Watch before syncing: a change made during the sync is seen by the next one.
            let mut changes = mb.changes();
            changes.mark_unchanged();
            let mut view = View {
                peek_recent,
                ..View::default()
            };
            mb.sync(&mut view)?;
            let vanished = match since {
                Some((v, m)) if v == view.uid_validity => Some(mb.vanished_since(m)?),
                _ => None,
            };
            Ok((mb, view, changes, vanished))
        })
        .await?;
        let mut view = view;
        let keywords = keywords_in(&view.messages);
        write_flags(&keywords, read_only, mailbox.keyword_room(), out);
        out.reply(format!("* {} EXISTS", view.messages.len()));
        if self.enabled.rev2 {
            // RFC 9051 §6.3.2: no RECENT, no [UNSEEN]; a LIST response with the name.
            forget_recent(&mut view);
            let mut line = b"* LIST () \"/\" ".to_vec();
            push_mailbox(&mut line, mailbox.name(), true);
            out.reply(line);
        } else {
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
        }
        out.reply(format!(
            "* OK [UIDVALIDITY {}] UIDs valid",
            view.uid_validity
        ));
        out.reply(format!(
            "* OK [UIDNEXT {}] Predicted next UID",
            view.uid_next
        ));
        // RFC 7162 §3.1.2.1: mod-sequences are kept for every mailbox, so every SELECT
        // says the highest, CONDSTORE enabled or not.
        out.reply(format!(
            "* OK [HIGHESTMODSEQ {}] Highest",
            view.highest_modseq.max(1)
        ));
        let mut sel = Selected {
            label: format!("selected {}", mailbox.name()),
            mailbox,
            view,
            read_only,
            changes,
            keywords,
            saved: Vec::new(),
        };
        if let (Some(k), Some(history)) = (known, vanished) {
            resync(&mut sel, &k, history, out);
        }
        self.state = State::Selected(sel);
        Ok(if read_only {
            "[READ-ONLY] Examine completed.".into()
        } else {
            "[READ-WRITE] Select completed.".into()
        })
    }

    pub(crate) async fn create(&mut self, m: &ImapMailbox<'_>) -> Res {
        let name = mailbox_name(m, self.enabled.utf8_names())?;
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
        let name = mailbox_name(m, self.enabled.utf8_names())?;
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
        let rev2 = self.enabled.rev2;
        let has_children_only = blocking(move || match user.delete(&name) {
            Ok(()) => Ok(false),
            // RFC 9051 §6.3.4, §7.1: a level that exists only through its children
            // (`\Noselect`) cannot be deleted; a rev2 session is told why (a rev1 one still
            // gets NONEXISTENT).
            Err(e) if rev2 && e.kind == ErrorKind::NotFound && has_children(&*user, &name) => {
                Ok(true)
            }
            Err(e) => Err(e),
        })
        .await?;
        if has_children_only {
            return Err(Fail::No(
                "[HASCHILDREN] Mailbox has children, delete them first.".into(),
            ));
        }
        Ok("Delete completed.".into())
    }

    /// RENAME; in an IMAP4rev2 session the optional `* LIST` of RFC 9051 §6.3.6 follows,
    /// with the OLDNAME extended data item (§6.3.9.7: "included when a mailbox name is ...
    /// renamed"): `* LIST () "/" new ("OLDNAME" (old))`. The RFC asks for it (SHOULD) when
    /// the server normalized a name; ours are kept as given (only `INBOX`'s case is folded),
    /// so it is sent for every rename but one of INBOX (§6.3.6: none is needed for INBOX).
    pub(crate) async fn rename(
        &mut self,
        from: &ImapMailbox<'_>,
        to: &ImapMailbox<'_>,
        out: &mut Output,
    ) -> Res {
        let from = mailbox_name(from, self.enabled.utf8_names())?;
        let to = mailbox_name(to, self.enabled.utf8_names())?;
        if to == "INBOX" {
            return Err(Fail::No("[ALREADYEXISTS] Mailbox already exists.".into()));
        }
        let user = self.user_store()?;
        let (old, new) = (from.clone(), to.clone());
        blocking(move || user.rename(&from, &to)).await?;
        if self.enabled.rev2 && old != "INBOX" {
            let mut line = b"* LIST () \"/\" ".to_vec();
            push_mailbox(&mut line, &new, true);
            line.extend_from_slice(b" (\"OLDNAME\" (");
            push_mailbox(&mut line, &old, true);
            line.extend_from_slice(b"))");
            out.reply(line);
        }
        Ok("Rename completed.".into())
    }

    /// Subscribing needs an existing mailbox (Dovecot's rule); unsubscribing does not, so a
    /// deleted mailbox can still be unsubscribed.
    pub(crate) async fn subscribe(&mut self, m: &ImapMailbox<'_>, on: bool) -> Res {
        let name = mailbox_name(m, self.enabled.utf8_names())?;
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

/// RFC 7162 §3.2.5.2: after SELECT's usual data, what changed since the client's
/// `known-modseq` — one `VANISHED (EARLIER)` for the expunged UIDs among its `known-uids`
/// (all the UIDs that no longer exist when the store's history does not reach back that
/// far), then a FETCH (UID FLAGS MODSEQ) for every message changed since.
fn resync(
    sel: &mut Selected,
    k: &Known,
    history: Option<Vec<u32>>,
    out: &mut Output,
) {
    let view = &sel.view;
    let max = view.uid_next.saturating_sub(1);
    let in_known = |u: u32| {
        k.uids
            .as_ref()
            .is_none_or(|set| set_contains(set, u, max.max(1)))
    };
    let gone = vanished_text(view, history, in_known);
    if !gone.is_empty() {
        out.reply(format!("* VANISHED (EARLIER) {gone}"));
    }
    let changed: Vec<MessageMeta> = view
        .messages
        .iter()
        .filter(|m| m.modseq > k.modseq)
        .cloned()
        .collect();
    announce_new_keywords(sel, changed.iter(), out);
    for m in &changed {
        if let Some(seq) = sel.view.seq_of(m.uid) {
            // Dovecot's order here: UID, FLAGS, MODSEQ.
            out.reply(format!(
                "* {seq} FETCH (UID {} FLAGS {} MODSEQ ({}))",
                m.uid,
                flags_list(m.flags, &m.keywords, m.recent),
                m.modseq
            ));
        }
    }
}

/// The UID set of a `VANISHED (EARLIER)` (RFC 7162 §3.2.5.2, §3.2.6): the expunged UIDs
/// the store remembers, among those `wanted`; when its history does not reach back far
/// enough, every UID below UIDNEXT that is not in the view, as ranges (a client ignores
/// the ones it never knew).
pub(crate) fn vanished_text(
    view: &View,
    history: Option<Vec<u32>>,
    wanted: impl Fn(u32) -> bool,
) -> String {
    let max = view.uid_next.saturating_sub(1);
    match history {
        Some(uids) => {
            let uids: Vec<u32> = uids.into_iter().filter(|u| *u <= max && wanted(*u)).collect();
            uid_set(&uids)
        }
        None => {
            let mut ranges = Vec::new();
            let mut next = 1u32;
            for u in view.messages.iter().map(|m| m.uid).chain([max.saturating_add(1)]) {
                match u.checked_sub(1) {
                    Some(last) if last > next => ranges.push(format!("{next}:{last}")),
                    Some(last) if last == next => ranges.push(format!("{next}")),
                    _ => {}
                }
                next = u.saturating_add(1);
            }
            ranges.join(",")
        }
    }
}

/// Whether `name` is a hierarchy level above another mailbox.
fn has_children(user: &dyn UserStore, name: &str) -> bool {
    user.list().is_ok_and(|all| {
        all.iter().any(|m| {
            m.name.len() > name.len()
                && m.name.as_bytes()[name.len()] == b'/'
                && m.name.starts_with(name)
        })
    })
}
