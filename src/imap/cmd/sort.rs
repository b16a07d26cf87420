//! SORT and THREAD (RFC 5256), SORT=DISPLAY (RFC 5957), ESORT (RFC 5267 §3: `SORT RETURN
//! (..)` answered with `* ESEARCH`) and `RETURN (SAVE)` (RFC 5182). The messages are those
//! SEARCH finds ([`super::search::find`], the same keys and charsets); what they are ordered
//! or threaded by is [`SortKeys`], taken from the folder's cache ([`Derived::SortKeys`]) and
//! derived from the message's header only when the cache lacks it — so once the cache is
//! warm a SORT or THREAD opens no message file (`tests/imap_sort.rs` proves it by rewriting
//! the files after warming).
//!
//! Ties are broken by mailbox order, never reversed (RFC 5256 §3, as Dovecot).
//!
//! **The answer memo** ([`memo`]): the last answers of plain SORT and THREAD commands are
//! kept per (user, folder, UIDVALIDITY, command) with a digest of the session's view, so a
//! client that repeats a SORT (Roundcube sends the same one for every page it shows, from a
//! new session each time) gets it without sorting again. The answer is a function of the
//! view (UIDs, sizes, INTERNALDATEs, and when the search looks at them flags, keywords,
//! `\Recent` and mod-sequences: all in the digest) and of the messages' contents, which
//! never change under (UIDVALIDITY, UID); so any change that can alter it (EXPUNGE, APPEND,
//! a flag change the search sees, another program's change once a sync brought it into
//! the view) changes the digest. Not memoized: `OLDER`/`YOUNGER`
//! (they depend on the clock), ESORT's `RETURN` (it may save `$`), and an answer for which
//! a message could not be read.

use std::cmp::Ordering;
use std::time::UNIX_EPOCH;

use imap_codec::imap_types::core::{Charset, Vec1};
use imap_codec::imap_types::extensions::sort::{SortCriterion, SortKey};
use imap_codec::imap_types::extensions::thread::ThreadingAlgorithm;
use imap_codec::imap_types::search::SearchKey;

use super::super::search::{check_charset, check_limits, uses_modseq};
use super::super::sortkey::{SortKeys, Wanted};
use super::super::state::{Fail, ImapSession, Res};
use super::super::thread::{self, Algorithm, ThreadMsg};
use super::search::{find, saved_uids, Esearch};
use super::blocking;
use crate::session::Output;
use crate::store::{Derived, Mailbox, MessageMeta};

/// One message found: its position, UID, what SORT/THREAD compare.
struct Found {
    seq: u32,
    uid: u32,
    size: u64,
    arrival: i64,
    keys: Option<SortKeys>,
}

impl Found {
    /// The sent date, or the INTERNALDATE when the `Date:` header is missing or bad.
    fn date(&self) -> i64 {
        self.keys.as_ref().and_then(|k| k.date).unwrap_or(self.arrival)
    }

    fn text(&self, key: &SortKey) -> &str {
        let Some(k) = &self.keys else { return "" };
        match key {
            SortKey::Cc => &k.cc,
            SortKey::From => &k.from,
            SortKey::To => &k.to,
            SortKey::Subject => &k.subject,
            SortKey::DisplayFrom => &k.display_from,
            SortKey::DisplayTo => &k.display_to,
            _ => "",
        }
    }
}

/// Memo of SORT and THREAD answers (see the module docs).
mod memo {
    use std::collections::hash_map::DefaultHasher;
    use std::collections::VecDeque;
    use std::hash::{Hash, Hasher};
    use std::sync::{Arc, Mutex};
    use std::time::UNIX_EPOCH;

    use imap_codec::imap_types::search::SearchKey;

    use crate::store::View;

    /// Answers kept (process-wide, most recent first). Each is one response line.
    const ENTRIES: usize = 16;
    /// Folders smaller than this are sorted each time (cheap, and not worth the memory).
    pub(super) const FROM_MESSAGES: usize = 64;

    struct Entry {
        key: String,
        view: u128,
        line: Arc<str>,
    }

    static MEMO: Mutex<VecDeque<Entry>> = Mutex::new(VecDeque::new());

    /// Whether the answer depends only on the view and the messages' contents.
    pub(super) fn cacheable(keys: &[SearchKey<'_>]) -> bool {
        keys.iter().all(|k| match k {
            SearchKey::Older(_) | SearchKey::Younger(_) => false,
            SearchKey::And(ks) => cacheable(ks.as_ref()),
            SearchKey::Or(a, b) => cacheable(std::slice::from_ref(&**a)) && cacheable(std::slice::from_ref(&**b)),
            SearchKey::Not(a) => cacheable(std::slice::from_ref(&**a)),
            _ => true,
        })
    }

    /// Whether the search looks at flags, keywords, `\Recent` or mod-sequences (when it
    /// does not, a flag change cannot alter the answer: Roundcube marking a message seen
    /// keeps its SORT memoized).
    pub(super) fn uses_flags(keys: &[SearchKey<'_>]) -> bool {
        keys.iter().any(|k| match k {
            SearchKey::And(ks) => uses_flags(ks.as_ref()),
            SearchKey::Or(a, b) => {
                uses_flags(std::slice::from_ref(&**a)) || uses_flags(std::slice::from_ref(&**b))
            }
            SearchKey::Not(a) => uses_flags(std::slice::from_ref(&**a)),
            SearchKey::Answered
            | SearchKey::Unanswered
            | SearchKey::Deleted
            | SearchKey::Undeleted
            | SearchKey::Draft
            | SearchKey::Undraft
            | SearchKey::Flagged
            | SearchKey::Unflagged
            | SearchKey::Seen
            | SearchKey::Unseen
            | SearchKey::Recent
            | SearchKey::Old
            | SearchKey::New
            | SearchKey::Keyword(_)
            | SearchKey::Unkeyword(_)
            | SearchKey::ModSequence { .. } => true,
            _ => false,
        })
    }

    /// A 128-bit digest of everything of the view an answer can depend on: the UIDs, sizes
    /// and INTERNALDATEs, and with `flags` the flags, keywords, `\Recent` and mod-sequences.
    pub(super) fn digest(view: &View, flags: bool) -> u128 {
        let mut a = DefaultHasher::new();
        let mut b = DefaultHasher::new();
        0xa5u8.hash(&mut b);
        for h in [&mut a, &mut b] {
            view.uid_validity.hash(h);
            view.messages.len().hash(h);
        }
        for m in &view.messages {
            let t = match m.internal_date.duration_since(UNIX_EPOCH) {
                Ok(d) => d.as_nanos() as i128,
                Err(e) => -(e.duration().as_nanos() as i128),
            };
            for h in [&mut a, &mut b] {
                (m.uid, m.size, t).hash(h);
                if flags {
                    (m.flags.0, m.recent, m.modseq).hash(h);
                    m.keywords.hash(h);
                }
            }
        }
        (u128::from(a.finish()) << 64) | u128::from(b.finish())
    }

    fn lock() -> std::sync::MutexGuard<'static, VecDeque<Entry>> {
        MEMO.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub(super) fn get(key: &str, view: u128) -> Option<Arc<str>> {
        let mut m = lock();
        let i = m.iter().position(|e| e.key == key)?;
        if m[i].view != view {
            // The folder changed: this answer can never be asked for again.
            m.remove(i);
            return None;
        }
        let e = m.remove(i)?;
        let line = e.line.clone();
        m.push_front(e);
        Some(line)
    }

    pub(super) fn put(key: String, view: u128, line: Arc<str>) {
        let mut m = lock();
        m.retain(|e| e.key != key);
        m.push_front(Entry { key, view, line });
        m.truncate(ENTRIES);
    }
}

fn compare(a: &Found, b: &Found, criteria: &[SortCriterion]) -> Ordering {
    for c in criteria {
        let o = match c.key {
            SortKey::Arrival => a.arrival.cmp(&b.arrival),
            SortKey::Size => a.size.cmp(&b.size),
            SortKey::Date => a.date().cmp(&b.date()),
            ref k => a.text(k).cmp(b.text(k)),
        };
        let o = if c.reverse { o.reverse() } else { o };
        if o != Ordering::Equal {
            return o;
        }
    }
    a.seq.cmp(&b.seq)
}

/// What of [`SortKeys`] the criteria compare; `None` when only the store's metadata.
fn wanted(criteria: &[SortCriterion]) -> Option<Wanted> {
    let mut w = Wanted::default();
    let mut any = false;
    for c in criteria {
        any |= !matches!(c.key, SortKey::Arrival | SortKey::Size);
        match c.key {
            SortKey::Subject => w.subject = true,
            SortKey::From => w.from = true,
            SortKey::To => w.to = true,
            SortKey::Cc => w.cc = true,
            SortKey::DisplayFrom => w.display_from = true,
            SortKey::DisplayTo => w.display_to = true,
            _ => {}
        }
    }
    any.then_some(w)
}

fn seconds(meta: &MessageMeta) -> i64 {
    match meta.internal_date.duration_since(UNIX_EPOCH) {
        Ok(d) => d.as_secs() as i64,
        Err(e) => -(e.duration().as_secs() as i64),
    }
}

/// With at least this many messages to read, a cold SORT or THREAD reads and parses them on
/// several threads: the work is opening and reading each file's header, which is as
/// independent per message as it is slow (Dovecot's cold sort reads the same headers).
const PARALLEL_FROM: usize = 512;
/// At most this many threads read messages for one command.
const MAX_READERS: usize = 4;

/// The sort keys of the messages at `missing` (indexes into `uids`) that the cache did not
/// have, read from their files: `(index, keys)`, `None` keys for a message that is gone;
/// `None` if the command was cancelled.
fn derive_missing(
    mailbox: &dyn Mailbox,
    uids: &[u32],
    missing: &[usize],
    stop: &tokio_util::sync::CancellationToken,
) -> Option<Vec<(usize, Option<SortKeys>)>> {
    let read_part = |part: &[usize]| -> Option<Vec<(usize, Option<SortKeys>)>> {
        let part_uids: Vec<u32> = part.iter().map(|&i| uids[i]).collect();
        let mut out = Vec::with_capacity(part.len());
        mailbox.for_each_header(&part_uids, &mut |j, header| {
            out.push((part[j], header.map(SortKeys::from_message)));
            !stop.is_cancelled()
        });
        (!stop.is_cancelled()).then_some(out)
    };
    let readers = std::thread::available_parallelism().map_or(1, |n| n.get().min(MAX_READERS));
    if readers < 2 || missing.len() < PARALLEL_FROM {
        return read_part(missing);
    }
    let read_part = &read_part;
    std::thread::scope(|scope| {
        let workers: Vec<_> = missing
            .chunks(missing.len().div_ceil(readers))
            .map(|part| scope.spawn(move || read_part(part)))
            .collect();
        let mut all = Vec::with_capacity(missing.len());
        for worker in workers {
            match worker.join() {
                Ok(part) => all.extend(part?),
                Err(panic) => std::panic::resume_unwind(panic),
            }
        }
        Some(all)
    })
}

/// Searches and gathers what SORT and THREAD need of each message found: sort keys from
/// the cache, else from the message files (and offered to the cache).
fn gather(
    mailbox: &dyn Mailbox,
    messages: &[MessageMeta],
    keys: &[SearchKey<'_>],
    stop: &tokio_util::sync::CancellationToken,
    wanted: Option<Wanted>,
) -> Option<(Vec<Found>, u64, bool)> {
    let (hits, highest, gone) = find(mailbox, messages, keys, stop)?;
    let uids: Vec<u32> = hits.iter().map(|h| h.1).collect();
    let mut sort_keys: Vec<Option<SortKeys>> = vec![None; hits.len()];
    if let Some(w) = wanted {
        let cached = mailbox.derived_many(&uids, Derived::SortKeys);
        let mut cached = cached.into_iter();
        let mut missing = Vec::new();
        for (i, slot) in sort_keys.iter_mut().enumerate() {
            match cached.next().flatten().and_then(|v| SortKeys::decode_only(&v, w)) {
                Some(k) => *slot = Some(k),
                None => missing.push(i),
            }
        }
        let mut learned = Vec::new();
        for (i, k) in derive_missing(mailbox, &uids, &missing, stop)? {
            if let Some(k) = k {
                learned.push((uids[i], Derived::SortKeys, k.encode().into()));
                sort_keys[i] = Some(k);
            }
        }
        if !learned.is_empty() {
            mailbox.set_derived(learned);
        }
    }
    let found = hits
        .into_iter()
        .zip(sort_keys)
        .map(|((seq, uid), keys)| {
            let meta = &messages[seq as usize - 1];
            Found {
                seq,
                uid,
                size: meta.size,
                arrival: seconds(meta),
                keys,
            }
        })
        .collect();
    Some((found, highest, gone))
}

impl ImapSession {
    /// Checks and runs the search part shared by SORT and THREAD.
    async fn sorted_search(
        &mut self,
        charset: &Charset<'static>,
        criteria: Vec1<SearchKey<'static>>,
        wanted: Option<Wanted>,
        out: &mut Output,
    ) -> Result<(Vec<Found>, u64, bool), Fail> {
        check_charset(Some(charset)).map_err(|t| Fail::No(t.into()))?;
        check_limits(criteria.as_ref()).map_err(|t| Fail::No(t.into()))?;
        if uses_modseq(criteria.as_ref()) {
            self.enable_condstore(out);
        }
        let sel = self.selected()?;
        let messages = sel.view.messages.clone();
        let mailbox = sel.mailbox.clone();
        let keys = criteria.into_inner();
        let stop = self.env.cancel.child_token();
        let _stop_when_dropped = stop.clone().drop_guard();
        blocking(move || Ok(gather(&*mailbox, &messages, &keys, &stop, wanted)))
            .await?
            .ok_or_else(|| Fail::No("[UNAVAILABLE] Search cancelled.".into()))
    }

    /// The memo key of a plain SORT or THREAD `command` (with the checks and side effects
    /// its search has before it runs) and the view's digest; `None` when not memoized.
    fn memo_key(
        &mut self,
        command: &str,
        charset: &Charset<'static>,
        search: &Vec1<SearchKey<'static>>,
        out: &mut Output,
    ) -> Result<Option<(String, u128)>, Fail> {
        check_charset(Some(charset)).map_err(|t| Fail::No(t.into()))?;
        check_limits(search.as_ref()).map_err(|t| Fail::No(t.into()))?;
        if uses_modseq(search.as_ref()) {
            self.enable_condstore(out);
        }
        if !memo::cacheable(search.as_ref()) {
            return Ok(None);
        }
        let user = self.user.as_ref().map(|u| u.0.clone()).unwrap_or_default();
        let sel = self.selected()?;
        if sel.view.messages.len() < memo::FROM_MESSAGES {
            return Ok(None);
        }
        let key = format!("{user}\0{}\0{}\0{command}", sel.mailbox.name(), sel.view.uid_validity);
        Ok(Some((key, memo::digest(&sel.view, memo::uses_flags(search.as_ref())))))
    }

    /// SORT / UID SORT (RFC 5256 §3), ESORT (RFC 5267 §3) with `RETURN (..)`.
    pub(crate) async fn sort(
        &mut self,
        tag: &str,
        criteria: Vec1<SortCriterion>,
        charset: Charset<'static>,
        search: Vec1<SearchKey<'static>>,
        uid: bool,
        out: &mut Output,
    ) -> Res {
        let ret = self.ext.search_return.take();
        if ret.is_some_and(|r| r.save) {
            self.selected()?.saved.clear();
        }
        let modseq = uses_modseq(search.as_ref());
        let criteria = criteria.into_inner();
        let memo_key = match ret {
            None => self.memo_key(&format!("{uid} SORT {criteria:?} {charset:?} {search:?}"), &charset, &search, out)?,
            Some(_) => None,
        };
        if let Some((key, view)) = &memo_key {
            if let Some(line) = memo::get(key, *view) {
                out.reply(line.as_bytes());
                return Ok("Sort completed.".into());
            }
        }
        let (found, highest, gone) = self
            .sorted_search(&charset, search, wanted(&criteria), out)
            .await?;
        let complete = !gone && (wanted(&criteria).is_none() || found.iter().all(|f| f.keys.is_some()));
        // An order of indexes is sorted, not the (large) entries themselves.
        let mut order: Vec<u32> = (0..found.len() as u32).collect();
        order.sort_by(|&a, &b| compare(&found[a as usize], &found[b as usize], &criteria));
        let found: Vec<&Found> = order.iter().map(|&i| &found[i as usize]).collect();
        let numbers: Vec<u32> = found
            .iter()
            .map(|f| if uid { f.uid } else { f.seq })
            .collect();
        let modseq = (modseq && highest > 0).then_some(highest);
        match ret {
            None => {
                let mut line = String::from("* SORT");
                for n in &numbers {
                    line.push(' ');
                    line.push_str(&n.to_string());
                }
                if let Some(m) = modseq {
                    line.push_str(&format!(" (MODSEQ {m})"));
                }
                if let (Some((key, view)), true) = (memo_key, complete) {
                    memo::put(key, view, line.as_str().into());
                }
                out.reply(line);
            }
            Some(r) => {
                if r.save {
                    let hits: Vec<(u32, u32)> = found.iter().map(|f| (f.seq, f.uid)).collect();
                    let mut saved = saved_uids(r, &hits);
                    saved.sort_unstable();
                    saved.dedup();
                    self.selected()?.saved = saved;
                }
                let e = Esearch {
                    uid,
                    numbers,
                    modseq,
                };
                if let Some(line) = e.sorted_line(tag, r) {
                    out.reply(line);
                }
            }
        }
        Ok(if gone {
            "[EXPUNGEISSUED] Sort completed.".into()
        } else {
            "Sort completed.".into()
        })
    }

    /// THREAD / UID THREAD (RFC 5256 §3, and REFS).
    pub(crate) async fn thread(
        &mut self,
        algorithm: ThreadingAlgorithm<'static>,
        charset: Charset<'static>,
        search: Vec1<SearchKey<'static>>,
        uid: bool,
        out: &mut Output,
    ) -> Res {
        let alg = match &algorithm {
            ThreadingAlgorithm::OrderedSubject => Algorithm::OrderedSubject,
            ThreadingAlgorithm::References => Algorithm::References,
            ThreadingAlgorithm::Other(o) if o.as_ref().eq_ignore_ascii_case("REFS") => Algorithm::Refs,
            ThreadingAlgorithm::Other(_) => {
                return Err(Fail::Bad("Unknown thread algorithm".into()));
            }
        };
        let want = Wanted {
            subject: true,
            ids: true,
            ..Wanted::default()
        };
        let memo_key = self.memo_key(&format!("{uid} THREAD {alg:?} {charset:?} {search:?}"), &charset, &search, out)?;
        if let Some((key, view)) = &memo_key {
            if let Some(line) = memo::get(key, *view) {
                out.reply(line.as_bytes());
                return Ok("Thread completed.".into());
            }
        }
        let (found, _, gone) = self.sorted_search(&charset, search, Some(want), out).await?;
        let complete = !gone && found.iter().all(|f| f.keys.is_some());
        let msgs: Vec<ThreadMsg> = found
            .into_iter()
            .map(|mut f| {
                let date = f.date();
                let k = f.keys.take().unwrap_or_default();
                ThreadMsg {
                    id: if uid { f.uid } else { f.seq },
                    date,
                    subject: k.subject,
                    reply: k.reply,
                    message_id: k.message_id,
                    references: k.references,
                }
            })
            .collect();
        let line = thread::response(&thread::thread(&msgs, alg));
        if let (Some((key, view)), true) = (memo_key, complete) {
            memo::put(key, view, line.as_str().into());
        }
        out.reply(line);
        Ok(if gone {
            "[EXPUNGEISSUED] Thread completed.".into()
        } else {
            "Thread completed.".into()
        })
    }
}

impl Esearch {
    /// RFC 5267 §3.2: MIN and MAX are the first and last message in sort order (as
    /// Dovecot), ALL the numbers in sort order (runs of consecutive ascending numbers as
    /// ranges).
    pub(crate) fn sorted_line(&self, tag: &str, r: super::super::decode::ext::SearchReturn) -> Option<String> {
        self.line_with(tag, r, ordered_set)
    }
}

/// A sequence set that keeps the order of `numbers`: `a:b` for each run of consecutive
/// ascending numbers.
fn ordered_set(numbers: &[u32]) -> String {
    let mut s = String::new();
    let mut i = 0;
    while i < numbers.len() {
        let mut j = i;
        while j + 1 < numbers.len() && numbers[j + 1] == numbers[j].wrapping_add(1) {
            j += 1;
        }
        if !s.is_empty() {
            s.push(',');
        }
        if j > i {
            s.push_str(&format!("{}:{}", numbers[i], numbers[j]));
        } else {
            s.push_str(&numbers[i].to_string());
        }
        i = j + 1;
    }
    s
}

#[cfg(test)]
mod tests {
    use super::ordered_set;

    #[test]
    fn ordered_sets_keep_the_order() {
        assert_eq!(ordered_set(&[5, 1, 2, 3, 9, 8]), "5,1:3,9,8");
        assert_eq!(ordered_set(&[]), "");
    }
}
