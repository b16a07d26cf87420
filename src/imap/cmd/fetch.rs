//! FETCH and UID FETCH (RFC 3501 §6.4.5, §6.4.8, §7.4.2).
//!
//! Message bytes come from the store (`Mailbox::read`, CRLF), are parsed by [`crate::mime`]
//! and written by [`crate::imap::encode::fetch::FetchWriter`] straight into the output:
//! literal data as content pieces (the protocol log summarises it at level 4), the rest as
//! untagged lines. A non-PEEK body item sets `\Seen` (unless the mailbox was EXAMINEd) and
//! the FETCH then carries the new FLAGS. A message another session expunged meanwhile is
//! answered from what the session's view and the cache know, `NIL` for its content, and the
//! command ends `OK [EXPUNGEISSUED]` (Dovecot 2.3's answer; RFC 2180 §4.1.3). Large FETCHes are answered in batches
//! ([`Step::Continue`]): the driver writes each batch before the next is read from disk.

use std::cell::OnceCell;
use std::sync::Arc;

use bounded_static::IntoBoundedStatic;
use imap_codec::imap_types::command::FetchModifier;
use imap_codec::imap_types::fetch::{MacroOrMessageDataItemNames, MessageDataItemName};
use imap_codec::imap_types::sequence::SequenceSet;

use super::super::binary::binary_data;
use super::super::encode::bodystructure::write_structure;
use super::super::encode::envelope::write_envelope;
use super::super::encode::quote::requote_utf8;
use super::super::encode::fetch::FetchWriter;
use super::super::flags::flags_list;
use super::super::section::{Section, SectionSpec};
use super::super::state::{Fail, FetchJob, ImapSession, SyncMode};
use super::{blocking, check_seq_range, internal_date, resolve};
use crate::mime;
use crate::session::{Output, Piece, Step};
use crate::store::{Derived, ErrorKind, FlagOp, Flags, Mailbox, MessageMeta};

/// Messages per batch at most, and octets of message data per batch at most: after each
/// batch the driver may write what was produced ([`Step::Continue`]), so a `FETCH 1:*
/// BODY[]` never holds the whole mailbox in memory.
const BATCH_MESSAGES: usize = 500;
const BATCH_OCTETS: u64 = 256 * 1024;

impl ImapSession {
    /// FETCH / UID FETCH: checks, sets `\Seen` for non-PEEK body items, then answers in
    /// batches ([`ImapSession::fetch_more`]).
    pub(crate) async fn fetch(
        &mut self,
        tag: &str,
        set: &SequenceSet,
        items: MacroOrMessageDataItemNames<'static>,
        uid: bool,
        modifiers: &[FetchModifier],
        out: &mut Output,
    ) -> Step {
        let mut since = None;
        let mut vanished = false;
        for m in modifiers {
            match m {
                FetchModifier::ChangedSince(n) => since = Some(n.get()),
                FetchModifier::Vanished => vanished = true,
            }
        }
        // RFC 7162 §3.2.6: VANISHED only in UID FETCH with CHANGEDSINCE, QRESYNC enabled.
        if vanished && (!uid || since.is_none() || !self.enabled.qresync) {
            let f = Fail::Bad("Error in IMAP command: VANISHED not allowed here.".into());
            return self.complete(tag, Err(f), fetch_sync(uid), out).await;
        }
        let wants_modseq = since.is_some()
            || matches!(&items, MacroOrMessageDataItemNames::MessageDataItemNames(v)
                if v.iter().any(|n| matches!(n, MessageDataItemName::ModSeq)));
        if wants_modseq {
            self.enable_condstore(out);
        }
        if let (true, Some(n)) = (vanished, since) {
            if let Err(f) = self.fetch_vanished(set, n, out).await {
                return self.complete(tag, Err(f), fetch_sync(uid), out).await;
            }
        }
        match self.fetch_job(tag, set, items, uid, since).await {
            Ok(job) => {
                self.fetch_job = Some(job);
                self.fetch_more(out).await
            }
            Err(f) => self.complete(tag, Err(f), fetch_sync(uid), out).await,
        }
    }

    async fn fetch_job(
        &mut self,
        tag: &str,
        set: &SequenceSet,
        items: MacroOrMessageDataItemNames<'static>,
        uid: bool,
        since: Option<u64>,
    ) -> Result<FetchJob, Fail> {
        let mut names: Vec<MessageDataItemName<'static>> = match items {
            MacroOrMessageDataItemNames::Macro(m) => m.expand().into_static(),
            MacroOrMessageDataItemNames::MessageDataItemNames(v) => v,
        };
        // RFC 7162 §3.1.4.1: CHANGEDSINCE implies MODSEQ.
        if since.is_some() && !names.iter().any(|n| matches!(n, MessageDataItemName::ModSeq)) {
            names.push(MessageDataItemName::ModSeq);
        }
        let sel = self.selected()?;
        check_seq_range(&sel.view, set, uid)?;
        let mut idx = resolve(&sel.view, set, uid);
        if let Some(n) = since {
            idx.retain(|&i| sel.view.messages[i].modseq > n);
        }
        let sets_seen = !sel.read_only
            && names.iter().any(|n| {
                matches!(
                    n,
                    MessageDataItemName::BodyExt { peek: false, .. }
                        | MessageDataItemName::Binary { peek: false, .. }
                        | MessageDataItemName::Rfc822
                        | MessageDataItemName::Rfc822Text
                )
            });
        // §6.4.5: a non-PEEK body fetch sets \Seen; the FETCH response then shows FLAGS.
        let mut seen_now: Vec<u32> = Vec::new();
        if sets_seen {
            let unseen: Vec<u32> = idx
                .iter()
                .map(|&i| &sel.view.messages[i])
                .filter(|m| !m.flags.contains(Flags::SEEN))
                .map(|m| m.uid)
                .collect();
            if !unseen.is_empty() {
                let mb = sel.mailbox.clone();
                let u = unseen.clone();
                let metas =
                    blocking(move || mb.store_flags(&u, FlagOp::Add, Flags::SEEN, &[])).await?;
                let mut metas = metas.into_iter().peekable();
                for uid in unseen {
                    let Some(seq) = sel.view.seq_of(uid) else {
                        continue;
                    };
                    let v = &mut sel.view.messages[seq as usize - 1];
                    match metas.next_if(|m| m.uid == uid) {
                        Some(m) => {
                            v.flags = m.flags;
                            v.keywords = m.keywords;
                            v.modseq = m.modseq;
                        }
                        // Expunged by another session: as Dovecot, `\Seen` is set in
                        // this session's picture only (the FETCH answers NIL for it).
                        None => v.flags = v.flags.union(Flags::SEEN),
                    }
                    seen_now.push(uid);
                }
            }
        }
        seen_now.sort_unstable();
        let needs_body = names.iter().any(needs_body);
        Ok(FetchJob {
            tag: tag.to_string(),
            targets: idx
                .iter()
                .map(|&i| (i as u32 + 1, sel.view.messages[i].clone()))
                .collect(),
            names: Arc::new(names),
            uid,
            seen_now: Arc::new(seen_now),
            needs_body,
            missing: false,
            failed: None,
            mailbox: sel.mailbox.clone(),
        })
    }

    /// `UID FETCH ... (CHANGEDSINCE n VANISHED)` (RFC 7162 §3.2.6): the UIDs of the set
    /// expunged since `n`, before the FETCHes.
    async fn fetch_vanished(&mut self, set: &SequenceSet, n: u64, out: &mut Output) -> Result<(), Fail> {
        let sel = self.selected()?;
        let mb = sel.mailbox.clone();
        let history = blocking(move || mb.vanished_since(n)).await?;
        let max = sel.view.uid_next.saturating_sub(1).max(1);
        let text = super::mailbox::vanished_text(&sel.view, history, |u| {
            super::super::search::set_contains(set, u, max)
        });
        if !text.is_empty() {
            out.reply(format!("* VANISHED (EARLIER) {text}"));
        }
        Ok(())
    }

    /// Answers the next batch of the running FETCH; the last batch completes the command.
    pub(crate) async fn fetch_more(&mut self, out: &mut Output) -> Step {
        let Some(mut job) = self.fetch_job.take() else {
            return Step::ReadLine;
        };
        let mut batch = Vec::new();
        let mut octets = 0u64;
        while let Some(t) = job.targets.front() {
            if !batch.is_empty() && (batch.len() >= BATCH_MESSAGES || octets >= BATCH_OCTETS) {
                break;
            }
            if job.needs_body {
                octets += t.1.size;
            }
            batch.extend(job.targets.pop_front());
        }
        let (mailbox, names, seen_now, uid) = (
            job.mailbox.clone(),
            job.names.clone(),
            job.seen_now.clone(),
            job.uid,
        );
        let utf8 = self.enabled.utf8;
        let r = blocking(move || {
            let mut local = Output::default();
            let mut missing = false;
            let mut failed = None;
            let mut learned = Vec::new();
            let mut result = Ok(());
            for (seq, meta) in &batch {
                let show_flags = seen_now.binary_search(&meta.uid).is_ok();
                match fetch_one(
                    &*mailbox,
                    *seq,
                    meta,
                    &names,
                    uid,
                    show_flags,
                    utf8,
                    &mut local,
                    &mut learned,
                ) {
                    Ok(Written::Done) => {}
                    Ok(Written::Missing) => missing = true,
                    Ok(Written::Failed(text)) => {
                        // As Dovecot: the FETCH ends at the first message that fails.
                        failed = Some(text);
                        break;
                    }
                    Err(e) => {
                        result = Err(e);
                        break;
                    }
                }
            }
            if !learned.is_empty() {
                mailbox.set_derived(learned);
            }
            result.map(|()| (local, missing, failed))
        })
        .await;
        let tag = job.tag.clone();
        match r {
            Ok((local, missing, failed)) => {
                for p in local.pieces {
                    match p {
                        Piece::Line(kind, l) => out.line(kind, l),
                        Piece::Content(c) => out.content(c),
                        Piece::ContentRange(c, r) => out.content_range(c, r),
                        Piece::Info(t) => out.info(t),
                    }
                }
                job.missing |= missing;
                if failed.is_some() {
                    job.failed = failed;
                    job.targets.clear();
                }
            }
            Err(f) => return self.complete(&tag, Err(f), fetch_sync(uid), out).await,
        }
        if !job.targets.is_empty() {
            self.fetch_job = Some(job);
            return Step::Continue;
        }
        let res = if let Some(text) = job.failed {
            Err(Fail::No(text.into()))
        } else if job.missing {
            // Dovecot's answer: the data that still exists, NIL for the rest, and OK.
            Ok("[EXPUNGEISSUED] Some messages were already expunged.".into())
        } else {
            Ok("Fetch completed.".into())
        };
        self.complete(&tag, res, fetch_sync(uid), out).await
    }
}

/// FETCH announces no expunge before its completion; UID FETCH may (RFC 3501 §7.4.1).
fn fetch_sync(uid: bool) -> SyncMode {
    if uid {
        SyncMode::Full
    } else {
        SyncMode::NoExpunge
    }
}

/// Whether an item needs the message bytes.
fn needs_body(n: &MessageDataItemName<'_>) -> bool {
    use MessageDataItemName as N;
    matches!(
        n,
        N::Body
            | N::BodyExt { .. }
            | N::BodyStructure
            | N::Envelope
            | N::Rfc822
            | N::Rfc822Header
            | N::Rfc822Text
            | N::Binary { .. }
            | N::BinarySize { .. }
    )
}

/// The item names whose values the store caches ([`Derived`]).
fn derived_of(n: &MessageDataItemName<'_>) -> Option<Derived> {
    match n {
        MessageDataItemName::Envelope => Some(Derived::Envelope),
        MessageDataItemName::BodyStructure => Some(Derived::BodyStructure),
        MessageDataItemName::Body => Some(Derived::Body),
        _ => None,
    }
}

/// Whether an item needs the message bytes whatever the cache holds.
fn needs_bytes(n: &MessageDataItemName<'_>) -> bool {
    use MessageDataItemName as N;
    matches!(
        n,
        N::BodyExt { .. }
            | N::Rfc822
            | N::Rfc822Header
            | N::Rfc822Text
            | N::Binary { .. }
            | N::BinarySize { .. }
    )
}

/// The FETCH response for a message another session expunged (its file is gone, the
/// session has not been told yet), as Dovecot 2.3 writes it: what the view knows (UID,
/// FLAGS, INTERNALDATE, RFC822.SIZE) and what the cache holds, `NIL` for everything that
/// needs the message (an ENVELOPE of NILs).
fn fetch_expunged(
    seq: u32,
    meta: &MessageMeta,
    names: &[MessageDataItemName<'_>],
    uid_cmd: bool,
    show_flags: bool,
    derived: &[Option<Arc<[u8]>>; 4],
    out: &mut Output,
) {
    use MessageDataItemName as N;
    let none: Arc<[u8]> = Arc::from(&[][..]);
    let mut w = FetchWriter::new(out, &none, seq);
    let flags = || flags_list(meta.flags, &meta.keywords, meta.recent);
    let uid_first = uid_cmd || matches!(names.first(), Some(N::Uid));
    if uid_first {
        w.item("UID", meta.uid.to_string().as_bytes());
    }
    if show_flags && !names.iter().any(|n| matches!(n, N::Flags)) {
        w.item("FLAGS", flags().as_bytes());
    }
    for n in names {
        match n {
            N::Uid if !uid_first => w.item("UID", meta.uid.to_string().as_bytes()),
            N::Flags => w.item("FLAGS", flags().as_bytes()),
            N::InternalDate => w.item("INTERNALDATE", internal_date(meta.internal_date).as_bytes()),
            N::Rfc822Size => w.item("RFC822.SIZE", meta.size.to_string().as_bytes()),
            N::ModSeq => w.item("MODSEQ", format!("({})", meta.modseq).as_bytes()),
            N::Envelope | N::BodyStructure | N::Body => {
                let Some(d) = derived_of(n) else { continue };
                let (name, nil): (&str, &[u8]) = match d {
                    Derived::Envelope => ("ENVELOPE", b"(NIL NIL NIL NIL NIL NIL NIL NIL NIL NIL)"),
                    Derived::BodyStructure => ("BODYSTRUCTURE", b"NIL"),
                    Derived::Body | Derived::SortKeys => ("BODY", b"NIL"),
                };
                match &derived[d as usize] {
                    Some(v) => w.item(name, v),
                    None => w.item(name, nil),
                }
            }
            N::BodyExt {
                section, partial, ..
            } => {
                let sec = Section::from_imap(section.as_ref());
                w.nil_named(&sec.item_name(partial.map(|(o, _)| o)));
            }
            N::Rfc822 => w.nil_named(b"RFC822"),
            N::Rfc822Header => w.nil_named(b"RFC822.HEADER"),
            N::Rfc822Text => w.nil_named(b"RFC822.TEXT"),
            _ => {}
        }
    }
    w.finish();
}

/// What [`fetch_one`] wrote.
enum Written {
    /// The message's response.
    Done,
    /// The message no longer exists: [`fetch_expunged`] wrote what is still known.
    Missing,
    /// `* n FETCH (UID u)` only: an item could not be given (BINARY of an unknown or broken
    /// transfer encoding); the FETCH ends with `NO` and this text, as Dovecot's does.
    Failed(&'static str),
}

/// The part path of a BINARY item.
fn binary_path(section: &[std::num::NonZeroU32]) -> Vec<u32> {
    section.iter().map(|n| n.get()).collect()
}

/// Writes one `* seq FETCH (...)` (see [`Written`]). ENVELOPE,
/// BODYSTRUCTURE and BODY come from the store's cache when it has them (the file is then
/// not read at all); values computed here are added to `learned` for the cache.
#[allow(clippy::too_many_arguments)]
fn fetch_one(
    mailbox: &dyn Mailbox,
    seq: u32,
    meta: &MessageMeta,
    names: &[MessageDataItemName<'_>],
    uid_cmd: bool,
    show_flags: bool,
    utf8: bool,
    out: &mut Output,
    learned: &mut Vec<(u32, Derived, Arc<[u8]>)>,
) -> crate::store::Result<Written> {
    use MessageDataItemName as N;
    // Cached derived values, by `Derived as usize`.
    let mut derived: [Option<Arc<[u8]>>; 4] = [None, None, None, None];
    let mut missing_derived = false;
    for d in names.iter().filter_map(derived_of) {
        if derived[d as usize].is_none() {
            derived[d as usize] = mailbox.derived(meta.uid, d);
            missing_derived |= derived[d as usize].is_none();
        }
    }
    let raw: Arc<[u8]> = if missing_derived || names.iter().any(needs_bytes) {
        match mailbox.read(meta.uid) {
            Ok(r) => r,
            Err(e) if e.kind == ErrorKind::NotFound => {
                fetch_expunged(seq, meta, names, uid_cmd, show_flags, &derived, out);
                return Ok(Written::Missing);
            }
            Err(e) => return Err(e),
        }
    } else {
        Arc::from(&[][..])
    };
    // The MIME tree is parsed only when an item needs it.
    let parsed: OnceCell<mime::Message<'_>> = OnceCell::new();
    let msg = || parsed.get_or_init(|| mime::parse(&raw));
    let whole = mime::unparsed(&raw);
    // BINARY content first: an encoding that cannot be undone fails the FETCH before any
    // of this message's items are written.
    let mut binaries = Vec::new();
    for n in names {
        if let N::Binary { section, .. } | N::BinarySize { section } = n {
            match binary_data(msg(), &binary_path(section)) {
                Ok(b) => binaries.push(b),
                Err(e) => {
                    out.reply(format!("* {seq} FETCH (UID {})", meta.uid));
                    return Ok(Written::Failed(e.reply_text()));
                }
            }
        }
    }
    let mut binaries = binaries.into_iter();
    let mut w = FetchWriter::new(out, &raw, seq);
    let flags = || flags_list(meta.flags, &meta.keywords, meta.recent);
    // UID first for UID FETCH (§6.4.8) or when asked first; then the FLAGS a body fetch
    // changed (Dovecot's order); then the items as requested.
    let uid_first = uid_cmd || matches!(names.first(), Some(N::Uid));
    if uid_first {
        w.item("UID", meta.uid.to_string().as_bytes());
    }
    if show_flags && !names.iter().any(|n| matches!(n, N::Flags)) {
        w.item("FLAGS", flags().as_bytes());
    }
    for n in names {
        match n {
            N::Uid if !uid_first => w.item("UID", meta.uid.to_string().as_bytes()),
            N::Flags => w.item("FLAGS", flags().as_bytes()),
            N::InternalDate => w.item("INTERNALDATE", internal_date(meta.internal_date).as_bytes()),
            N::Rfc822Size => w.item("RFC822.SIZE", meta.size.to_string().as_bytes()),
            N::ModSeq => w.item("MODSEQ", format!("({})", meta.modseq).as_bytes()),
            N::Envelope | N::BodyStructure | N::Body => {
                let Some(d) = derived_of(n) else { continue };
                let value = derived[d as usize]
                    .get_or_insert_with(|| {
                        let mut v = Vec::new();
                        match d {
                            Derived::Envelope => write_envelope(msg(), &mut v),
                            Derived::BodyStructure => write_structure(msg(), &mut v, true),
                            Derived::Body | Derived::SortKeys => write_structure(msg(), &mut v, false),
                        }
                        let v: Arc<[u8]> = v.into();
                        learned.push((meta.uid, d, v.clone()));
                        v
                    })
                    .clone();
                let name = match d {
                    Derived::Envelope => "ENVELOPE",
                    Derived::BodyStructure => "BODYSTRUCTURE",
                    Derived::Body | Derived::SortKeys => "BODY",
                };
                if utf8 {
                    // RFC 6855 §3: raw UTF-8 header values as quoted strings.
                    w.item(name, &requote_utf8(&value));
                } else {
                    w.item(name, &value);
                }
            }
            N::BodyExt {
                section, partial, ..
            } => {
                let sec = Section::from_imap(section.as_ref());
                let m = if sec == Section::full() {
                    &whole
                } else {
                    msg()
                };
                w.section(m, &sec, partial.map(|(o, c)| (o, c.get())));
            }
            N::Rfc822 => w.section_named(b"RFC822", &whole, &Section::full(), None),
            N::Rfc822Header => w.section_named(
                b"RFC822.HEADER",
                msg(),
                &Section {
                    path: Vec::new(),
                    spec: SectionSpec::Header,
                },
                None,
            ),
            N::Rfc822Text => w.section_named(
                b"RFC822.TEXT",
                msg(),
                &Section {
                    path: Vec::new(),
                    spec: SectionSpec::Text,
                },
                None,
            ),
            N::Binary {
                section, partial, ..
            } => {
                if let Some(b) = binaries.next() {
                    w.binary(&binary_path(section), &b, partial.map(|(o, c)| (o, c.get())));
                }
            }
            N::BinarySize { section } => {
                if let Some(b) = binaries.next() {
                    w.binary_size(&binary_path(section), &b);
                }
            }
            _ => {}
        }
    }
    w.finish();
    Ok(Written::Done)
}
