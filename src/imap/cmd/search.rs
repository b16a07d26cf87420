//! SEARCH and UID SEARCH (RFC 3501 §6.4.4, §6.4.8) over the selected view; each key is
//! evaluated by [`crate::imap::search`], message bytes are read only for keys that need them.
//! The search stops early (before each message and each key) when the connection is going
//! away ([`crate::session::SessionEnv::cancel`]) or this command's future is dropped. A
//! content key that meets a message another session expunged does not match it, and the
//! completion says `[EXPUNGEISSUED]` (as Dovecot's).

use imap_codec::imap_types::core::{Charset, Vec1};
use imap_codec::imap_types::search::SearchKey;

use super::super::search::{
    check_charset, check_limits, matches_all, uses_modseq, Bounds, Candidate, LazyMessage,
};
use super::super::state::{Fail, ImapSession, Res};
use super::blocking;
use crate::session::Output;
use crate::store::ErrorKind;

impl ImapSession {
    pub(crate) async fn search(
        &mut self,
        charset: Option<Charset<'static>>,
        criteria: Vec1<SearchKey<'static>>,
        uid: bool,
        out: &mut Output,
    ) -> Res {
        check_charset(charset.as_ref()).map_err(|t| Fail::No(t.into()))?;
        // Bounded before any message is looked at (the command size bounds the bytes only).
        check_limits(criteria.as_ref()).map_err(|t| Fail::No(t.into()))?;
        let modseq = uses_modseq(criteria.as_ref());
        if modseq {
            self.enable_condstore(out);
        }
        let sel = self.selected()?;
        let messages = sel.view.messages.clone();
        let mailbox = sel.mailbox.clone();
        let keys = criteria.into_inner();
        // The blocking task outlives a dropped future: the guard cancels it then.
        let stop = self.env.cancel.child_token();
        let _stop_when_dropped = stop.clone().drop_guard();
        let (hits, highest, gone) = blocking(move || {
            let bounds = Bounds {
                messages: messages.len() as u32,
                max_uid: messages.last().map_or(0, |m| m.uid),
            };
            let cancelled = || stop.is_cancelled();
            let mut hits = Vec::new();
            let mut highest = 0u64;
            let gone = std::cell::Cell::new(false);
            for (i, m) in messages.iter().enumerate() {
                if cancelled() {
                    return Ok(None);
                }
                let mb = &mailbox;
                let id = m.uid;
                let gone = &gone;
                let load = move || {
                    let r = mb.read(id);
                    gone.set(gone.get() || r.as_ref().is_err_and(|e| e.kind == ErrorKind::NotFound));
                    r.ok()
                };
                let mut c = Candidate {
                    seq: i as u32 + 1,
                    meta: m,
                    message: LazyMessage::new(load),
                    cancelled: &cancelled,
                };
                if matches_all(&keys, &mut c, bounds) {
                    hits.push(if uid { m.uid } else { i as u32 + 1 });
                    highest = highest.max(m.modseq);
                }
            }
            Ok((!cancelled()).then_some((hits, highest, gone.get())))
        })
        .await?
        .ok_or_else(|| Fail::No("[UNAVAILABLE] Search cancelled.".into()))?;
        let mut line = String::from("* SEARCH");
        for h in hits {
            line.push(' ');
            line.push_str(&h.to_string());
        }
        if modseq && highest > 0 {
            line.push_str(&format!(" (MODSEQ {highest})"));
        }
        out.reply(line);
        // A content key met a message another session expunged (it cannot match): said
        // as Dovecot says it.
        Ok(if gone {
            "[EXPUNGEISSUED] Search completed.".into()
        } else {
            "Search completed.".into()
        })
    }
}
