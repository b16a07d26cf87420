//! SEARCH evaluation (RFC 3501 §6.4.4) over a session's view: every search key of IMAP4rev1,
//! evaluated against one message's metadata, its sequence number and — only when a key needs
//! them — its bytes, loaded lazily at most once per message.
//!
//! Owns: the semantics of each key. String keys match case-insensitively as substrings of
//! decoded text: header values with RFC 2047 encoded words decoded (any charset mail-parser
//! knows), bodies with their Content-Transfer-Encoding (RFC 2045 §6) and charset decoded, text
//! parts only (as Dovecot without full-text search does). The search strings themselves may be
//! in `UTF-8` or `US-ASCII` (§6.4.4 `CHARSET`); anything else is refused with
//! `NO [BADCHARSET (UTF-8 US-ASCII)]` by [`check_charset`].
//!
//! Dates (§6.4.4): BEFORE/ON/SINCE compare the INTERNALDATE's calendar day in the server's
//! local time zone; SENTBEFORE/SENTON/SENTSINCE the `Date:` header's day as written (its own
//! zone). Time of day and zone are otherwise ignored. A message without a parsable `Date:`
//! counts as sent on 1970-01-01, as in Dovecot.

use std::cell::OnceCell;
use std::sync::Arc;

use chrono::{DateTime, Local, NaiveDate};
use imap_codec::imap_types::core::Charset;
use imap_codec::imap_types::search::SearchKey;
use imap_codec::imap_types::sequence::{SeqOrUid, Sequence, SequenceSet};

use crate::mime::{self, Kind, Part};
use crate::store::{Flags, MessageMeta};

/// The tagged `NO` text for an unsupported CHARSET (RFC 3501 §7.1 BADCHARSET).
pub const BADCHARSET_TEXT: &str = "[BADCHARSET (UTF-8 US-ASCII)] Unsupported charset";

/// Accepts no charset, `UTF-8` and `US-ASCII` (case-insensitive).
pub fn check_charset(charset: Option<&Charset<'_>>) -> Result<(), &'static str> {
    let Some(c) = charset else { return Ok(()) };
    let name: &str = match c {
        Charset::Atom(a) => a.as_ref(),
        Charset::Quoted(q) => q.as_ref(),
    };
    if name.eq_ignore_ascii_case("UTF-8") || name.eq_ignore_ascii_case("US-ASCII") {
        Ok(())
    } else {
        Err(BADCHARSET_TEXT)
    }
}

/// The most nodes one SEARCH's key tree may have: every key counts, `(..)`, `OR` and `NOT`
/// included. Real clients send a handful (Thunderbird's quick filter, a few dozen); a
/// thousand leaves room for machine-made searches while bounding the work per message.
pub const MAX_KEYS: usize = 1000;

/// The deepest nesting of `(..)`, `OR` and `NOT` one SEARCH may have (the top-level list is
/// depth 1). imap-codec's parser already refuses more than 8 levels with `BAD`; this bound
/// holds whatever the parser accepts.
pub const MAX_DEPTH: usize = 32;

/// The tagged `NO` text for a SEARCH over [`MAX_KEYS`] or [`MAX_DEPTH`] (RFC 5530 `LIMIT`:
/// the command is valid, it runs up against an implementation limit).
pub const LIMIT_TEXT: &str = "[LIMIT] Too many search keys.";

/// Whether `keys` stay within [`MAX_KEYS`] and [`MAX_DEPTH`]; counted without recursion and
/// without evaluating anything, stopping at the first bound passed.
pub fn check_limits(keys: &[SearchKey<'_>]) -> Result<(), &'static str> {
    let mut stack: Vec<(&SearchKey<'_>, usize)> = keys.iter().map(|k| (k, 1)).collect();
    let mut count = 0usize;
    while let Some((key, depth)) = stack.pop() {
        count += 1;
        if count > MAX_KEYS || depth > MAX_DEPTH {
            return Err(LIMIT_TEXT);
        }
        match key {
            SearchKey::And(ks) => stack.extend(ks.as_ref().iter().map(|k| (k, depth + 1))),
            SearchKey::Or(x, y) => {
                stack.push((x, depth + 1));
                stack.push((y, depth + 1));
            }
            SearchKey::Not(k) => stack.push((k, depth + 1)),
            _ => {}
        }
    }
    Ok(())
}

/// Whether a MODSEQ key appears anywhere in `keys` (RFC 7162 §3.1.5: the SEARCH response
/// then ends with the highest mod-sequence of the messages found).
pub fn uses_modseq(keys: &[SearchKey<'_>]) -> bool {
    let mut stack: Vec<&SearchKey<'_>> = keys.iter().collect();
    while let Some(key) = stack.pop() {
        match key {
            SearchKey::ModSequence { .. } => return true,
            SearchKey::And(ks) => stack.extend(ks.as_ref().iter()),
            SearchKey::Or(x, y) => {
                stack.push(x);
                stack.push(y);
            }
            SearchKey::Not(k) => stack.push(k),
            _ => {}
        }
    }
    false
}

/// What `*` stands for in this mailbox (RFC 3501 §6.4.4 / §9 `seq-number`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Bounds {
    /// Number of messages in the view (`*` in a sequence set).
    pub messages: u32,
    /// Largest UID in the view (`*` in `UID` sets).
    pub max_uid: u32,
}

/// Whether `n` is in `set`, with `*` = `largest` (ranges in either order, §9 `seq-range`).
pub fn set_contains(set: &SequenceSet, n: u32, largest: u32) -> bool {
    let v = |x: &SeqOrUid| match x {
        SeqOrUid::Value(v) => v.get(),
        SeqOrUid::Asterisk => largest,
    };
    set.0.as_ref().iter().any(|s| match s {
        Sequence::Single(x) => v(x) == n,
        Sequence::Range(a, b) => {
            let (lo, hi) = (v(a).min(v(b)), v(a).max(v(b)));
            (lo..=hi).contains(&n)
        }
    })
}

/// The message bytes and MIME structure, loaded and parsed on first use (once per message,
/// whatever the number of content keys); `None` when it cannot be read (e.g. expunged by
/// another session meanwhile), which makes content keys not match. What the keys compare
/// against — decoded header fields, decoded text bodies, the sent date — is also computed
/// on first use and kept for the rest of the message's evaluation, so N keys over one
/// message cost one pass over its header (and body) plus N substring tests.
pub struct LazyMessage<'f> {
    load: Box<dyn FnMut() -> Option<Arc<[u8]>> + 'f>,
    loaded: Option<Option<Loaded>>,
}

/// A loaded message and what its evaluation has needed so far.
struct Loaded {
    raw: Arc<[u8]>,
    root: Part,
    fields: OnceCell<Vec<Field>>,
    bodies: OnceCell<Vec<String>>,
    sent: OnceCell<Option<NaiveDate>>,
    /// The address fields as the address keys see them ([`address_text`]), by lower-case name.
    addresses: OnceCell<Vec<(String, String)>>,
}

/// One header field as the string keys see it.
struct Field {
    /// The name as written.
    name: String,
    /// `name: value`, the value unfolded and RFC 2047-decoded, all [`fold`]ed.
    text: String,
    /// Where the value starts in `text`.
    value_at: usize,
}

impl Field {
    fn value(&self) -> &str {
        &self.text[self.value_at..]
    }
}

impl<'f> LazyMessage<'f> {
    pub fn new(load: impl FnMut() -> Option<Arc<[u8]>> + 'f) -> LazyMessage<'f> {
        LazyMessage {
            load: Box::new(load),
            loaded: None,
        }
    }

    fn get(&mut self) -> Option<&Loaded> {
        if self.loaded.is_none() {
            let parsed = (self.load)().map(|raw| Loaded {
                root: mime::parse(&raw).root,
                raw,
                fields: OnceCell::new(),
                bodies: OnceCell::new(),
                sent: OnceCell::new(),
                addresses: OnceCell::new(),
            });
            self.loaded = Some(parsed);
        }
        self.loaded.as_ref().and_then(Option::as_ref)
    }

    /// Whether the loader has run (tests check laziness with it).
    #[cfg(test)]
    pub fn was_loaded(&self) -> bool {
        self.loaded.is_some()
    }
}

impl Loaded {
    /// The top-level header's fields, decoded once.
    fn fields(&self) -> &[Field] {
        self.fields
            .get_or_init(|| decode_fields(&self.raw, &self.root))
    }

    /// Whether an address field `name` (From, To, Cc, Bcc) contains `needle` (folded) in
    /// its normalised text.
    fn address_contains(&self, name: &str, needle: &str) -> bool {
        let fields = self.addresses.get_or_init(|| {
            mime::fields(&self.raw, self.root.header.clone())
                .iter()
                .filter(|f| ADDRESS_FIELDS.iter().any(|n| f.name.eq_ignore_ascii_case(n)))
                .map(|f| {
                    let name = String::from_utf8_lossy(f.name).to_ascii_lowercase();
                    (name, address_text(&mime::unfold(f.value)).to_lowercase())
                })
                .collect()
        });
        fields
            .iter()
            .any(|(n, text)| n.eq_ignore_ascii_case(name) && text.contains(needle))
    }

    /// The searchable text under the top-level header (BODY), decoded once: every text
    /// leaf's body and every attached message's header fields.
    fn bodies(&self) -> &[String] {
        self.bodies.get_or_init(|| {
            let mut out = Vec::new();
            body_texts(&self.raw, &self.root, &mut out);
            out
        })
    }

    fn sent_day(&self) -> Option<NaiveDate> {
        *self.sent.get_or_init(|| {
            let day = mime::header_value(&self.raw, self.root.header.clone(), "Date")
                .and_then(|v| parse_date_day(&mime::unfold(v)));
            // Dovecot: no (parsable) Date: is the epoch, so such mail is "sent before" any
            // date.
            Some(day.unwrap_or(NaiveDate::from_ymd_opt(1970, 1, 1)?))
        })
    }

    fn body_contains(&self, needle: &str) -> bool {
        self.bodies().iter().any(|t| t.contains(needle))
    }

    /// Whether any field (named `name`, or any at all, name included) contains `needle`
    /// (already folded). With a name and an empty needle, the field's presence is enough.
    fn header_contains(&self, name: Option<&str>, needle: &str) -> bool {
        self.fields().iter().any(|f| match name {
            Some(n) => f.name.eq_ignore_ascii_case(n) && f.value().contains(needle),
            None => f.text.contains(needle),
        })
    }
}

/// One message as SEARCH sees it.
pub struct Candidate<'a, 'f> {
    pub seq: u32,
    pub meta: &'a MessageMeta,
    pub message: LazyMessage<'f>,
    /// Asked before each key: once true, every key is false and nothing more is loaded
    /// or decoded (the search is being abandoned, its result is thrown away).
    pub cancelled: &'a dyn Fn() -> bool,
}

/// Whether all `keys` match (the top-level list is an implicit AND).
pub fn matches_all(keys: &[SearchKey<'_>], c: &mut Candidate<'_, '_>, b: Bounds) -> bool {
    keys.iter().all(|k| matches(k, c, b))
}

/// Whether the INTERNALDATE is more than `secs` seconds before now (RFC 5032 §2).
fn older_than(meta: &MessageMeta, secs: u32) -> bool {
    let limit = std::time::SystemTime::now()
        .checked_sub(std::time::Duration::from_secs(u64::from(secs)));
    limit.is_some_and(|l| meta.internal_date < l)
}

/// Evaluates one key.
pub fn matches(key: &SearchKey<'_>, c: &mut Candidate<'_, '_>, b: Bounds) -> bool {
    use SearchKey as K;
    if (c.cancelled)() {
        return false;
    }
    let flags = c.meta.flags;
    let has = |f: Flags| flags.contains(f);
    match key {
        K::And(keys) => keys.as_ref().iter().all(|k| matches(k, c, b)),
        K::Or(x, y) => matches(x, c, b) || matches(y, c, b),
        K::Not(k) => !matches(k, c, b),
        K::SequenceSet(set) => set_contains(set, c.seq, b.messages),
        K::Uid(set) => set_contains(set, c.meta.uid, b.max_uid),
        K::All => true,
        K::Answered => has(Flags::ANSWERED),
        K::Unanswered => !has(Flags::ANSWERED),
        K::Deleted => has(Flags::DELETED),
        K::Undeleted => !has(Flags::DELETED),
        K::Draft => has(Flags::DRAFT),
        K::Undraft => !has(Flags::DRAFT),
        K::Flagged => has(Flags::FLAGGED),
        K::Unflagged => !has(Flags::FLAGGED),
        K::Seen => has(Flags::SEEN),
        K::Unseen => !has(Flags::SEEN),
        K::Recent => c.meta.recent,
        K::Old => !c.meta.recent,
        // NEW = RECENT UNSEEN (§6.4.4).
        K::New => c.meta.recent && !has(Flags::SEEN),
        K::Keyword(k) => has_keyword(c.meta, k.as_ref()),
        K::Unkeyword(k) => !has_keyword(c.meta, k.as_ref()),
        K::Larger(n) => c.meta.size > u64::from(*n),
        K::Smaller(n) => c.meta.size < u64::from(*n),
        // RFC 5032 WITHIN, as Dovecot: older than `now - n`, or at most `n` seconds old.
        K::Older(n) => older_than(c.meta, n.get()),
        K::Younger(n) => !older_than(c.meta, n.get()),
        K::Before(d) => internal_day(c.meta) < *d.as_ref(),
        K::On(d) => internal_day(c.meta) == *d.as_ref(),
        K::Since(d) => internal_day(c.meta) >= *d.as_ref(),
        K::SentBefore(d) => sent_day(c).is_some_and(|s| s < *d.as_ref()),
        K::SentOn(d) => sent_day(c).is_some_and(|s| s == *d.as_ref()),
        K::SentSince(d) => sent_day(c).is_some_and(|s| s >= *d.as_ref()),
        K::Bcc(s) => address_contains(c, "Bcc", s.as_ref()),
        K::Cc(s) => address_contains(c, "Cc", s.as_ref()),
        K::From(s) => address_contains(c, "From", s.as_ref()),
        K::To(s) => address_contains(c, "To", s.as_ref()),
        K::Subject(s) => header_contains(c, Some("Subject"), s.as_ref()),
        K::Header(name, s) => {
            let name = String::from_utf8_lossy(name.as_ref());
            header_contains(c, Some(&name), s.as_ref())
        }
        K::Body(s) => {
            let needle = fold(s.as_ref());
            c.message.get().is_some_and(|m| m.body_contains(&needle))
        }
        K::Text(s) => {
            let needle = fold(s.as_ref());
            c.message
                .get()
                .is_some_and(|m| m.header_contains(None, &needle) || m.body_contains(&needle))
        }
        // RFC 7162 §3.1.5: one mod-sequence per message, whatever the entry names.
        K::ModSequence { modseq, .. } => c.meta.modseq >= *modseq,
        // Extensions not advertised (WITHIN) are not parsed with our features;
        // should one appear, it matches nothing.
        #[allow(unreachable_patterns)]
        _ => false,
    }
}

fn has_keyword(meta: &MessageMeta, k: &str) -> bool {
    meta.keywords.iter().any(|x| x.eq_ignore_ascii_case(k))
}

fn internal_day(meta: &MessageMeta) -> NaiveDate {
    DateTime::<Local>::from(meta.internal_date).date_naive()
}

fn sent_day(c: &mut Candidate<'_, '_>) -> Option<NaiveDate> {
    c.message.get()?.sent_day()
}

/// The calendar day of an RFC 5322 date as written (comments and the weekday ignored).
pub fn parse_date_day(v: &[u8]) -> Option<NaiveDate> {
    let s = String::from_utf8_lossy(v);
    let s = s.split('(').next().unwrap_or("");
    let s = match s.split_once(',') {
        Some((_, rest)) => rest,
        None => s,
    };
    let mut it = s.split_whitespace();
    let day: u32 = it.next()?.parse().ok()?;
    let mon = it.next()?.to_ascii_lowercase();
    let month = [
        "jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec",
    ]
    .iter()
    .position(|m| mon.starts_with(m))? as u32
        + 1;
    let mut year: i32 = it.next()?.parse().ok()?;
    // RFC 5322 §4.3 obsolete two- and three-digit years.
    if year < 50 {
        year += 2000;
    } else if year < 1000 {
        year += 1900;
    }
    NaiveDate::from_ymd_opt(year, month, day)
}

/// Unicode lower case, for case-insensitive matching (close to Dovecot's i;unicode-casemap).
fn fold(s: &[u8]) -> String {
    String::from_utf8_lossy(s).to_lowercase()
}

fn header_contains(c: &mut Candidate<'_, '_>, name: Option<&str>, needle: &[u8]) -> bool {
    let needle = fold(needle);
    c.message
        .get()
        .is_some_and(|m| m.header_contains(name, &needle))
}

/// The header fields the address keys (FROM, TO, CC, BCC) search.
const ADDRESS_FIELDS: [&[u8]; 4] = [b"From", b"To", b"Cc", b"Bcc"];

fn address_contains(c: &mut Candidate<'_, '_>, name: &str, needle: &[u8]) -> bool {
    let needle = fold(needle);
    c.message
        .get()
        .is_some_and(|m| m.address_contains(name, &needle))
}

/// An address field's value as Dovecot's address keys match it (`index-search.c`: the
/// list parsed, written back by `message_address_write`, then RFC 2047-decoded): each
/// address as `local@domain` or `Name <local@domain>`, a display name quoted unless it is
/// all atext or holds an encoded word, groups as `name:...;`, addresses joined by `, `. So
/// `FROM user-from@domain.org` finds `"Real Name" <user-from@domain.org>`, a group member
/// or an encoded-word name, and `FROM "\"Real Name\" <"` finds `Real Name <...>`
/// however the header wrote it (comments and folding do not matter).
pub fn address_text(value: &[u8]) -> String {
    let mut out: Vec<u8> = Vec::with_capacity(value.len() + 8);
    let mut first = true;
    let mut in_group = false;
    for a in mime::parse_addresses(value) {
        if !first {
            out.extend_from_slice(b", ");
        }
        first = false;
        match (&a.mailbox, &a.host) {
            (_, None) if !in_group => {
                // Group start: (NIL NIL name NIL).
                match a.mailbox.as_deref().filter(|m| !m.is_empty()) {
                    Some(m) => push_phrase(&mut out, m, true),
                    None => out.extend_from_slice(b"undisclosed-recipients"),
                }
                out.push(b':');
                first = true;
                in_group = true;
            }
            (_, None) => {
                // Group end: drop the ", " just written.
                if out.ends_with(b", ") {
                    out.truncate(out.len() - 2);
                }
                out.push(b';');
                in_group = false;
            }
            (mailbox, Some(host)) => {
                let mailbox = mailbox.as_deref().unwrap_or_default();
                let name = a.name.as_deref().filter(|n| !n.is_empty());
                if let Some(n) = name {
                    push_phrase(&mut out, n, true);
                    out.extend_from_slice(b" <");
                }
                if let Some(adl) = a.adl.as_deref().filter(|r| !r.is_empty()) {
                    out.extend_from_slice(adl);
                    out.push(b':');
                }
                push_phrase(&mut out, mailbox, false);
                out.push(b'@');
                out.extend_from_slice(host);
                if name.is_some() {
                    out.push(b'>');
                }
            }
        }
    }
    decode_header(&out)
}

/// Dovecot's `str_append_maybe_escape`: as is if every octet is RFC 5322 atext (a dot too
/// unless `quote_dot`), else quoted with `\` before `"` and `\`; a phrase holding an
/// encoded word is written as is (it may not be quoted, RFC 2047 §5).
fn push_phrase(out: &mut Vec<u8>, s: &[u8], quote_dot: bool) {
    let atext = |b: u8| b.is_ascii_alphanumeric() || b"!#$%&'*+-/=?^_`{|}~".contains(&b);
    let plain = s.iter().all(|&b| atext(b) || (!quote_dot && b == b'.'));
    if plain || (quote_dot && s.windows(2).any(|w| w == b"=?")) {
        out.extend_from_slice(s);
        return;
    }
    out.push(b'"');
    for &b in s {
        if b == b'"' || b == b'\\' {
            out.push(b'\\');
        }
        out.push(b);
    }
    out.push(b'"');
}

/// The fields of `part`'s header, each decoded and folded once.
fn decode_fields(raw: &[u8], part: &Part) -> Vec<Field> {
    mime::fields(raw, part.header.clone())
        .iter()
        .map(|f| {
            let name = String::from_utf8_lossy(f.name).into_owned();
            let mut text = name.to_lowercase();
            text.push_str(": ");
            let value_at = text.len();
            text.push_str(&decode_header(f.value).to_lowercase());
            Field {
                name,
                text,
                value_at,
            }
        })
        .collect()
}

/// Appends the searchable texts under `part`'s header: text bodies decoded, and the header
/// fields of attached messages (`name: value`), all folded.
fn body_texts(raw: &[u8], part: &Part, out: &mut Vec<String>) {
    match &part.kind {
        Kind::Multipart(children) => children.iter().for_each(|p| body_texts(raw, p, out)),
        Kind::Message(inner) => {
            out.extend(decode_fields(raw, inner).into_iter().map(|f| f.text));
            body_texts(raw, inner, out);
        }
        Kind::Leaf => {
            let text_like = part.ctype.mtype.eq_ignore_ascii_case(b"text")
                || part.ctype.mtype.eq_ignore_ascii_case(b"message");
            if text_like {
                out.push(decode_body(raw, part).to_lowercase());
            }
        }
    }
}

/// A leaf body decoded: transfer encoding (base64, quoted-printable), then charset.
pub fn decode_body(raw: &[u8], part: &Part) -> String {
    let body = &raw[part.body.clone()];
    let cte = mime::header_value(raw, part.header.clone(), "Content-Transfer-Encoding")
        .map(|v| mime::unfold(v).to_ascii_lowercase())
        .unwrap_or_default();
    let decoded: Vec<u8> = match cte.as_slice() {
        b"base64" => {
            mail_parser::decoders::base64::base64_decode(body).unwrap_or_else(|| body.to_vec())
        }
        b"quoted-printable" => {
            mail_parser::decoders::quoted_printable::quoted_printable_decode(body)
                .unwrap_or_else(|| body.to_vec())
        }
        _ => body.to_vec(),
    };
    to_text(part.ctype.param("charset"), &decoded)
}

fn to_text(charset: Option<&[u8]>, bytes: &[u8]) -> String {
    match charset {
        Some(cs) if !cs.eq_ignore_ascii_case(b"utf-8") && !cs.eq_ignore_ascii_case(b"us-ascii") => {
            match mail_parser::decoders::charsets::map::charset_decoder(cs) {
                Some(dec) => dec(bytes),
                None => String::from_utf8_lossy(bytes).into_owned(),
            }
        }
        _ => String::from_utf8_lossy(bytes).into_owned(),
    }
}

/// A header value unfolded with RFC 2047 encoded words decoded; whitespace between two
/// adjacent encoded words is dropped (RFC 2047 §6.2). Malformed words stay as written.
pub fn decode_header(value: &[u8]) -> String {
    let v = mime::unfold(value);
    let mut out = String::new();
    let mut i = 0;
    let mut pending_ws = String::new();
    let mut last_was_word = false;
    let mut ends = WordEnds::default();
    while i < v.len() {
        if v[i..].starts_with(b"=?") {
            if let Some((text, used)) = decode_word(&v, i, &mut ends) {
                if !last_was_word {
                    out.push_str(&pending_ws);
                }
                pending_ws.clear();
                out.push_str(&text);
                i += used;
                last_was_word = true;
                continue;
            }
        }
        if v[i] == b' ' || v[i] == b'\t' {
            pending_ws.push(v[i] as char);
            i += 1;
            continue;
        }
        out.push_str(&pending_ws);
        pending_ws.clear();
        // Copy a run of ordinary bytes (up to whitespace or an encoded-word start).
        let start = i;
        while i < v.len() && v[i] != b' ' && v[i] != b'\t' && !v[i..].starts_with(b"=?") {
            i += 1;
        }
        if i == start {
            i += 1;
        }
        out.push_str(&String::from_utf8_lossy(&v[start..i]));
        last_was_word = false;
    }
    out.push_str(&pending_ws);
    out
}

/// Where the text of an encoded word starting at some position ends: the `?=` closing it,
/// or `None` when a space or the end of the value comes first (no word). The last scan is
/// remembered: a run without `?=` or space is scanned once, not again from every `=?` in
/// it, which kept `=?utf-8?q?a` floods quadratic (the "hostile input" issue).
#[derive(Default)]
struct WordEnds {
    /// The last scan started at `from` and stopped at `stop` (the `?=`, space or end);
    /// `0..0` at first, which no query hits (a word's text starts at 5 or later).
    from: usize,
    stop: usize,
    closed: bool,
}

impl WordEnds {
    fn find(&mut self, v: &[u8], from: usize) -> Option<usize> {
        if !(self.from <= from && from <= self.stop) {
            let mut k = from;
            while k < v.len() && v[k] != b' ' && !v[k..].starts_with(b"?=") {
                k += 1;
            }
            self.from = from;
            self.stop = k;
            self.closed = v[k..].starts_with(b"?=");
        }
        self.closed.then_some(self.stop)
    }
}

/// Decodes one `=?charset?B|Q?text?=` at `v[at..]`: (text, bytes used). A text holding a
/// space is no word (RFC 2047 §5).
fn decode_word(v: &[u8], at: usize, ends: &mut WordEnds) -> Option<(String, usize)> {
    let body = v.get(at + 2..)?;
    let q1 = body.iter().position(|&b| b == b'?')?;
    let charset = &body[..q1];
    let enc = *body.get(q1 + 1)?;
    if body.get(q1 + 2) != Some(&b'?') {
        return None;
    }
    let text_start = q1 + 3;
    let rel_end = ends.find(v, at + 2 + text_start)? - (at + 2 + text_start);
    let text = &body[text_start..text_start + rel_end];
    // RFC 2231 §5 language suffix: charset*lang.
    let charset = charset.split(|&b| b == b'*').next().unwrap_or(charset);
    let bytes = match enc.to_ascii_lowercase() {
        b'b' => mail_parser::decoders::base64::base64_decode(text)?,
        b'q' => {
            let mut out = Vec::with_capacity(text.len());
            let mut k = 0;
            while k < text.len() {
                match text[k] {
                    b'_' => out.push(b' '),
                    b'=' => {
                        let h = text.get(k + 1..k + 3)?;
                        let hex = std::str::from_utf8(h).ok()?;
                        out.push(u8::from_str_radix(hex, 16).ok()?);
                        k += 2;
                    }
                    b => out.push(b),
                }
                k += 1;
            }
            out
        }
        _ => return None,
    };
    Some((to_text(Some(charset), &bytes), 2 + text_start + rel_end + 2))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::imap::decode::parse_command;
    use imap_codec::imap_types::command::CommandBody;
    use std::time::{Duration, Instant, SystemTime};

    const MSG: &str = "From: =?UTF-8?Q?J=C3=B6rg?= <joerg@example.de>\r\nTo: Bob <bob@example.net>\r\nCc: carol@example.com\r\nSubject: =?ISO-8859-1?Q?Gr=FC=DFe?= =?UTF-8?B?IGF1cw==?= Berlin\r\nDate: Tue, 3 Nov 2026 23:30:00 -0800\r\nX-Spam: yes\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\nK=C3=A4sekuchen recipe\r\n--b\r\nContent-Type: application/octet-stream\r\nContent-Transfer-Encoding: base64\r\n\r\nc2VjcmV0IGJpbmFyeQ==\r\n--b--\r\n";

    fn meta(uid: u32, flags: Flags, recent: bool) -> MessageMeta {
        MessageMeta {
            uid,
            flags,
            keywords: vec!["$Forwarded".into()],
            size: MSG.len() as u64,
            // 2026-11-01 12:00 UTC; noon keeps the local day the same in any zone within ±11h.
            internal_date: SystemTime::UNIX_EPOCH + Duration::from_secs(1_793_534_400),
            recent,
            modseq: 0,
        }
    }

    /// Parses `SEARCH <criteria>` with the real decoder and evaluates it on MSG.
    fn search(criteria: &str, m: &MessageMeta, seq: u32) -> (bool, bool) {
        let line = format!("t SEARCH {criteria}\r\n");
        let cmd = parse_command(line.as_bytes()).expect("parses");
        let CommandBody::Search { criteria, .. } = cmd.body else {
            panic!()
        };
        let keys: Vec<_> = criteria.as_ref().to_vec();
        let mut c = Candidate {
            seq,
            meta: m,
            message: LazyMessage::new(|| Some(Arc::from(MSG.as_bytes()))),
            cancelled: &|| false,
        };
        let r = matches_all(
            &keys,
            &mut c,
            Bounds {
                messages: 10,
                max_uid: 40,
            },
        );
        (r, c.message.was_loaded())
    }

    fn yes(criteria: &str) {
        let m = meta(7, Flags::SEEN.union(Flags::FLAGGED), false);
        assert!(search(criteria, &m, 3).0, "should match: {criteria}");
    }
    fn no(criteria: &str) {
        let m = meta(7, Flags::SEEN.union(Flags::FLAGGED), false);
        assert!(!search(criteria, &m, 3).0, "should not match: {criteria}");
    }

    #[test]
    fn flags_and_sets_without_loading() {
        let m = meta(7, Flags::SEEN.union(Flags::FLAGGED), false);
        for k in [
            "ALL",
            "SEEN",
            "FLAGGED",
            "UNANSWERED",
            "UNDELETED",
            "UNDRAFT",
            "OLD",
            "3",
            "1:5",
            "5:1",
            "3:*",
            "*:3",
            "UID 7",
            "UID 1:7",
            "UID 7:*",
            "KEYWORD $forwarded",
            "UNKEYWORD Junk",
            "LARGER 10",
            "SMALLER 100000",
            "NOT RECENT",
            "OR DELETED SEEN",
            "(SEEN FLAGGED)",
            "1,3,5",
        ] {
            let (r, loaded) = search(k, &m, 3);
            assert!(r, "{k}");
            assert!(!loaded, "{k} loaded the message");
        }
        for k in [
            "UNSEEN",
            "ANSWERED",
            "DELETED",
            "DRAFT",
            "RECENT",
            "NEW",
            "4:*",
            "UID 8:9",
            "KEYWORD Junk",
            "LARGER 100000",
            "SMALLER 10",
            "NOT ALL",
            "OR DELETED DRAFT",
            "UNFLAGGED",
        ] {
            assert!(!search(k, &m, 3).0, "{k}");
        }
        let recent = meta(7, Flags::NONE, true);
        assert!(search("NEW", &recent, 1).0);
        assert!(search("RECENT UNSEEN", &recent, 1).0);
        // '*' in UID sets is the largest UID: `50:*` is 40:50 here (RFC 3501 §9 seq-range).
        assert!(!search("UID 50:*", &m, 3).0);
        assert!(search("UID 50:*", &meta(40, Flags::NONE, false), 10).0);
    }

    #[test]
    fn address_keys_see_the_list_as_dovecot_writes_it() {
        let t = |v: &str| address_text(v.as_bytes());
        assert_eq!(
            t("\"Real Name\" <user-from@domain.org>"),
            "\"Real Name\" <user-from@domain.org>"
        );
        assert_eq!(
            t("Real\r\n Name <user-from@domain.org>"),
            "\"Real Name\" <user-from@domain.org>"
        );
        assert_eq!(
            t("user-from@domain.org (Real Name)"),
            "\"Real Name\" <user-from@domain.org>"
        );
        assert_eq!(
            t("=?utf-8?q?R=C3=A9al_Name?= <user-from@domain.org>"),
            "Réal Name <user-from@domain.org>"
        );
        assert_eq!(
            t("group: a@b.c, \"X Y\" <d@e.f>;, g@h.i"),
            "group:a@b.c, \"X Y\" <d@e.f>;, g@h.i"
        );
        assert_eq!(t("a.b@c.d"), "a.b@c.d");
        assert_eq!(t("\"a\\\"b\" <x@y>"), "\"a\\\"b\" <x@y>");
    }

    #[test]
    fn header_keys_decode_encoded_words() {
        yes("FROM {5+}\r\njörg");
        yes("FROM {5+}\r\nJÖRG");
        yes("FROM joerg@example");
        yes("TO bob");
        yes("CC CAROL");
        no("BCC carol");
        yes("SUBJECT {18+}\r\ngrüße aus berlin");
        yes("HEADER X-Spam yes");
        yes("HEADER X-Spam \"\"");
        no("HEADER X-Other \"\"");
        yes("HEADER subject berlin");
    }

    #[test]
    fn body_and_text() {
        yes("BODY {11+}\r\nkäsekuchen");
        no("BODY secret"); // base64 attachment is not text
        no("BODY Subject");
        yes("TEXT {11+}\r\nKÄSEKUCHEN");
        yes("TEXT berlin");
        yes("TEXT \"x-spam: yes\"");
        no("TEXT nothing-like-this");
    }

    #[test]
    fn dates() {
        // Sent 3 Nov 2026 (as written, -0800), although that is 4 Nov in UTC.
        yes("SENTON 3-Nov-2026");
        no("SENTON 4-Nov-2026");
        yes("SENTSINCE 3-Nov-2026");
        yes("SENTBEFORE 4-Nov-2026");
        no("SENTBEFORE 3-Nov-2026");
        yes("ON 1-Nov-2026");
        yes("SINCE 1-Nov-2026");
        no("SINCE 2-Nov-2026");
        yes("BEFORE 2-Nov-2026");
        no("BEFORE 1-Nov-2026");
    }

    #[test]
    fn charsets() {
        let cmd = parse_command(b"t SEARCH CHARSET ISO-8859-1 TEXT x\r\n").unwrap();
        let CommandBody::Search { charset, .. } = cmd.body else {
            panic!()
        };
        assert_eq!(check_charset(charset.as_ref()), Err(BADCHARSET_TEXT));
        let cmd = parse_command(b"t SEARCH CHARSET utf-8 TEXT x\r\n").unwrap();
        let CommandBody::Search { charset, .. } = cmd.body else {
            panic!()
        };
        assert_eq!(check_charset(charset.as_ref()), Ok(()));
    }

    #[test]
    fn encoded_word_decoding() {
        assert_eq!(decode_header(b"=?utf-8?q?a?= =?utf-8?q?b?= c"), "ab c");
        assert_eq!(decode_header(b"x =?utf-8?b?w6k=?="), "x é");
        assert_eq!(decode_header(b"=?bogus"), "=?bogus");
        assert_eq!(decode_header(b"=?utf-8?q?=4?="), "=?utf-8?q?=4?=");
        // The end scan is remembered, never reused for a text before it.
        assert_eq!(decode_header(b"=?x?q?a =?utf-8?q?b?="), "=?x?q?a b");
        assert_eq!(decode_header(b"=?x?q?a=?utf-8?q?b?= c"), "=?x?q?ab c");
        assert_eq!(
            parse_date_day(b"3 Nov 26 10:00 GMT"),
            NaiveDate::from_ymd_opt(2026, 11, 3)
        );
        assert_eq!(parse_date_day(b"garbage"), None);
    }

    /// Encoded-word floods (hundreds of KB in one Subject, the "hostile input" issue)
    /// decode in linear time: closed words are joined, unclosed ones stay as written.
    #[test]
    fn encoded_word_floods_are_linear() {
        let t = Instant::now();
        assert_eq!(
            decode_header("=?utf-8?q?a?= ".repeat(30_000).as_bytes()),
            "a".repeat(30_000)
        );
        for unclosed in ["=?utf-8?q?a ", "=?utf-8?q?a", "=?utf-8?b?YQ"] {
            let v = unclosed.repeat(30_000);
            assert_eq!(decode_header(v.as_bytes()), v.trim_end());
        }
        // One close at the very end: only the last word is one.
        let v = format!("{}?=", "=?utf-8?q?a".repeat(30_000));
        let want = format!("{}a", "=?utf-8?q?a".repeat(29_999));
        assert_eq!(decode_header(v.as_bytes()), want);
        assert!(t.elapsed() < Duration::from_secs(5), "took {:?}", t.elapsed());
    }

    #[test]
    fn key_count_and_depth_are_bounded() {
        let keys = |n: usize| vec![SearchKey::All; n];
        assert_eq!(check_limits(&keys(MAX_KEYS)), Ok(()));
        assert_eq!(check_limits(&keys(MAX_KEYS + 1)), Err(LIMIT_TEXT));
        // OR a b is three nodes.
        let or = SearchKey::Or(Box::new(SearchKey::All), Box::new(SearchKey::Seen));
        assert_eq!(check_limits(&vec![or.clone(); MAX_KEYS / 3]), Ok(()));
        assert_eq!(check_limits(&vec![or; MAX_KEYS / 3 + 1]), Err(LIMIT_TEXT));
        let nested = |d: usize| {
            let mut k = SearchKey::All;
            for _ in 1..d {
                k = SearchKey::Not(Box::new(k));
            }
            vec![k]
        };
        assert_eq!(check_limits(&nested(MAX_DEPTH)), Ok(()));
        assert_eq!(check_limits(&nested(MAX_DEPTH + 1)), Err(LIMIT_TEXT));
    }

    #[test]
    fn unreadable_message_matches_no_content_key() {
        let m = meta(1, Flags::NONE, false);
        let mut c = Candidate {
            seq: 1,
            meta: &m,
            message: LazyMessage::new(|| None),
            cancelled: &|| false,
        };
        let b = Bounds {
            messages: 1,
            max_uid: 1,
        };
        let cmd = parse_command(b"t SEARCH NOT BODY x\r\n").unwrap();
        let CommandBody::Search { criteria, .. } = cmd.body else {
            panic!()
        };
        assert!(matches_all(criteria.as_ref(), &mut c, b));
    }
}
