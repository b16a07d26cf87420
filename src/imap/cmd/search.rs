//! SEARCH and UID SEARCH (RFC 3501 §6.4.4, §6.4.8) over the selected view; each key is
//! evaluated by [`crate::imap::search`], message bytes are read only for keys that need them.
//! The search stops early (before each message and each key) when the connection is going
//! away ([`crate::session::SessionEnv::cancel`]) or this command's future is dropped. A
//! content key that meets a message another session expunged does not match it, and the
//! completion says `[EXPUNGEISSUED]` (as Dovecot's).
//!
//! `SEARCH RETURN (..)` (and every SEARCH of an IMAP4rev2 session, RFC 9051 §6.4.4)
//! answers with `* ESEARCH` (RFC 4731) and `RETURN (SAVE)` keeps the
//! result for `$` (RFC 5182) in [`Selected::saved`](super::super::state::Selected), as UIDs;
//! [`ImapSession::substitute_saved`] puts it in place of `$` before a command runs.

use imap_codec::imap_types::command::CommandBody;
use imap_codec::imap_types::core::{Charset, Vec1};
use imap_codec::imap_types::search::SearchKey;
use imap_codec::imap_types::sequence::SequenceSet;

use super::super::search::{
    check_charset, check_limits, matches_all, uses_modseq, Bounds, Candidate, LazyMessage,
};
use super::super::state::{Fail, ImapSession, Res};
use super::super::decode::ext::SearchReturn;
use super::{blocking, uid_set};
use crate::session::Output;
use crate::store::{ErrorKind, Mailbox, MessageMeta};
use tokio_util::sync::CancellationToken;

impl ImapSession {
    pub(crate) async fn search(
        &mut self,
        tag: &str,
        charset: Option<Charset<'static>>,
        criteria: Vec1<SearchKey<'static>>,
        uid: bool,
        out: &mut Output,
    ) -> Res {
        // RFC 9051 §6.4.4: an IMAP4rev2 SEARCH without RETURN is `RETURN (ALL)`: ESEARCH.
        let rev2 = self.enabled.rev2.then_some(SearchReturn {
            all: true,
            ..SearchReturn::default()
        });
        let ret = self.ext.search_return.take().or(rev2);
        if ret.is_some_and(|r| r.save) {
            // RFC 5182 §2.1: a failed SEARCH ... RETURN (SAVE) leaves `$` empty.
            self.selected()?.saved.clear();
        }
        if charset.is_some() && self.enabled.utf8 {
            // RFC 6855 §3 (erratum 4029): strings are UTF-8 once enabled; a CHARSET
            // label conflicts with that.
            return Err(Fail::Bad(
                "Error in IMAP command SEARCH: CHARSET not allowed after ENABLE UTF8=ACCEPT"
                    .into(),
            ));
        }
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
        let (hits, highest, gone) = blocking(move || Ok(find(&*mailbox, &messages, &keys, &stop)))
            .await?
        .ok_or_else(|| Fail::No("[UNAVAILABLE] Search cancelled.".into()))?;
        match ret {
            None => {
                let mut line = String::from("* SEARCH");
                for (seq, id) in &hits {
                    line.push(' ');
                    line.push_str(&(if uid { id } else { seq }).to_string());
                }
                // RFC 7162 §3.1.5: the highest mod-sequence of the messages found.
                if modseq && highest > 0 {
                    line.push_str(&format!(" (MODSEQ {highest})"));
                }
                out.reply(line);
            }
            Some(r) => {
                if r.save {
                    self.selected()?.saved = saved_uids(r, &hits);
                }
                let numbers: Vec<u32> = hits
                    .iter()
                    .map(|&(seq, id)| if uid { id } else { seq })
                    .collect();
                let modseq = (modseq && highest > 0).then_some(highest);
                if let Some(line) = (Esearch { uid, numbers, modseq }).line(tag, r) {
                    out.reply(line);
                }
            }
        }
        // A content key met a message another session expunged (it cannot match): said
        // as Dovecot says it.
        Ok(if gone {
            "[EXPUNGEISSUED] Search completed.".into()
        } else {
            "Search completed.".into()
        })
    }
}

/// What [`find`] found: (sequence number, UID) of each message, the highest mod-sequence
/// among them, and whether a content key met a message expunged meanwhile.
pub(crate) type Found = (Vec<(u32, u32)>, u64, bool);

/// The messages of `messages` (a view, in order) that match `keys`; `None` when `stop`
/// fired. Runs on the blocking pool; SEARCH, SORT and THREAD share it.
pub(crate) fn find(
    mailbox: &dyn Mailbox,
    messages: &[MessageMeta],
    keys: &[SearchKey<'_>],
    stop: &CancellationToken,
) -> Option<Found> {
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
            return None;
        }
        let id = m.uid;
        let gone = &gone;
        let load = move || {
            let r = mailbox.read(id);
            gone.set(gone.get() || r.as_ref().is_err_and(|e| e.kind == ErrorKind::NotFound));
            r.ok()
        };
        let mut c = Candidate {
            seq: i as u32 + 1,
            meta: m,
            message: LazyMessage::new(load),
            cancelled: &cancelled,
        };
        if matches_all(keys, &mut c, bounds) {
            hits.push((i as u32 + 1, m.uid));
            highest = highest.max(m.modseq);
        }
    }
    (!cancelled()).then_some((hits, highest, gone.get()))
}

/// What `RETURN (SAVE)` keeps (RFC 5182 §2.4): the messages MIN and MAX found when those are
/// the only other options, else the whole result.
pub(crate) fn saved_uids(r: SearchReturn, hits: &[(u32, u32)]) -> Vec<u32> {
    if (r.min || r.max) && !(r.all || r.count) {
        let mut v: Vec<u32> = Vec::new();
        if r.min {
            v.extend(hits.first().map(|h| h.1));
        }
        if r.max {
            v.extend(hits.last().map(|h| h.1));
        }
        v.dedup();
        v
    } else {
        hits.iter().map(|h| h.1).collect()
    }
}

/// One ESEARCH result (RFC 4731 §3.1), ascending message numbers or UIDs. The return data
/// is written in Dovecot's order (MIN MAX ALL COUNT); a CONDSTORE search adds its `MODSEQ`
/// item here (RFC 7162 §3.1.5).
pub(crate) struct Esearch {
    /// The numbers are UIDs (`UID` in the response).
    pub uid: bool,
    pub numbers: Vec<u32>,
    /// A search with a MODSEQ key: the highest mod-sequence of the messages found.
    pub modseq: Option<u64>,
}

impl Esearch {
    /// `* ESEARCH (TAG "t") [UID] ...` for return options `r`; `None` for `RETURN (SAVE)`
    /// alone, which answers nothing (RFC 5182 §2.1).
    pub(crate) fn line(&self, tag: &str, r: SearchReturn) -> Option<String> {
        self.line_with(tag, r, uid_set)
    }

    /// [`Esearch::line`] with `set` writing the `ALL` numbers (ESORT keeps sort order).
    pub(crate) fn line_with(
        &self,
        tag: &str,
        r: SearchReturn,
        set: fn(&[u32]) -> String,
    ) -> Option<String> {
        if !(r.min || r.max || r.all || r.count) {
            return None;
        }
        let mut line = format!("* ESEARCH (TAG \"{tag}\")");
        if self.uid {
            line.push_str(" UID");
        }
        if let (true, Some(n)) = (r.min, self.numbers.first()) {
            line.push_str(&format!(" MIN {n}"));
        }
        if let (true, Some(n)) = (r.max, self.numbers.last()) {
            line.push_str(&format!(" MAX {n}"));
        }
        if r.all && !self.numbers.is_empty() {
            line.push_str(&format!(" ALL {}", set(&self.numbers)));
        }
        if r.count {
            line.push_str(&format!(" COUNT {}", self.numbers.len()));
        }
        if let Some(m) = self.modseq {
            line.push_str(&format!(" MODSEQ {m}"));
        }
        Some(line)
    }
}

impl ImapSession {
    /// Puts the saved result in place of `$` (the sets equal to `marker`, RFC 5182 §2.1)
    /// in `body`: UIDs or message numbers of the messages still in the view. Returns the
    /// completion when a command other than SEARCH has no message to work on (as Dovecot
    /// answers it); a SEARCH over an empty `$` matches nothing.
    pub(crate) fn substitute_saved(&mut self, body: &mut CommandBody<'static>, marker: u32) -> Option<Res> {
        let sel = match self.selected() {
            Ok(s) => s,
            Err(f) => return Some(Err(f)),
        };
        let mut uids: Vec<u32> = Vec::new();
        let mut seqs: Vec<u32> = Vec::new();
        for (i, m) in sel.view.messages.iter().enumerate() {
            if sel.saved.binary_search(&m.uid).is_ok() {
                uids.push(m.uid);
                seqs.push(i as u32 + 1);
            }
        }
        let as_set = |n: &[u32]| SequenceSet::try_from(uid_set(n).as_str()).ok();
        let (set, uid, nothing) = match body {
            CommandBody::Search { criteria, .. }
            | CommandBody::Sort {
                search_criteria: criteria,
                ..
            }
            | CommandBody::Thread {
                search_criteria: criteria,
                ..
            } => {
                replace_in_keys(criteria, marker, as_set(&uids).as_ref());
                return None;
            }
            CommandBody::Fetch { sequence_set, uid, .. } => (sequence_set, *uid, "Fetch completed."),
            CommandBody::Store { sequence_set, uid, .. } => (sequence_set, *uid, "Store completed."),
            CommandBody::Copy { sequence_set, uid, .. } => (sequence_set, *uid, "No messages found."),
            CommandBody::Move { sequence_set, uid, .. } => (sequence_set, *uid, "No messages found."),
            CommandBody::ExpungeUid { sequence_set } => (sequence_set, true, "Expunge completed."),
            _ => return None,
        };
        if !is_marker(set, marker) {
            return None;
        }
        match as_set(if uid { &uids } else { &seqs }) {
            Some(s) => {
                *set = s;
                None
            }
            None => Some(Ok(nothing.into())),
        }
    }
}

/// Whether `set` is the number [`crate::imap::decode::ext`] put in place of `$`.
fn is_marker(set: &SequenceSet, marker: u32) -> bool {
    use imap_codec::imap_types::sequence::{SeqOrUid, Sequence};
    matches!(set.0.as_ref(), [Sequence::Single(SeqOrUid::Value(v))] if v.get() == marker)
}

fn replace_in_keys(
    keys: &mut Vec1<SearchKey<'static>>,
    marker: u32,
    saved: Option<&SequenceSet>,
) {
    let mut v = std::mem::replace(keys, Vec1::from(SearchKey::All)).into_inner();
    for k in &mut v {
        replace_in_key(k, marker, saved);
    }
    *keys = Vec1::unvalidated(v);
}

/// `$` in a search key: the saved UIDs, or no message at all when there are none.
fn replace_in_key(key: &mut SearchKey<'static>, marker: u32, saved: Option<&SequenceSet>) {
    match key {
        SearchKey::SequenceSet(s) | SearchKey::Uid(s) if is_marker(s, marker) => {
            *key = match saved {
                Some(set) => SearchKey::Uid(set.clone()),
                None => SearchKey::Not(Box::new(SearchKey::All)),
            };
        }
        SearchKey::And(ks) => replace_in_keys(ks, marker, saved),
        SearchKey::Or(a, b) => {
            replace_in_key(a, marker, saved);
            replace_in_key(b, marker, saved);
        }
        SearchKey::Not(k) => replace_in_key(k, marker, saved),
        _ => {}
    }
}
