//! What SORT (RFC 5256 §3, RFC 5957 DISPLAYFROM/DISPLAYTO) and THREAD (RFC 5256 §3) compare,
//! derived from a message's header once and cached by the store beside ENVELOPE
//! ([`crate::store::Derived::SortKeys`]), so a sort of a folder whose cache is warm opens no
//! message file. Pure: bytes in, [`SortKeys`] out, and its compact encoding for the cache.
//!
//! Strings are kept as compared: `i;unicode-casemap` (RFC 5051) as Dovecot applies it
//! (`uni_utf8_to_decomposed_titlecase`, then a byte comparison). We title-case each character
//! (upper case for all but a few digraphs) and decompose the Latin-1 and Latin Extended-A
//! letters with one diacritic (what real subjects and names hold); other characters are kept
//! as they are — an approximation documented here rather than a Unicode table in the binary.
//!
//! The base subject is RFC 5256 §2.1, step by step as Dovecot's `imap-base-subject.c` does it
//! (the order and the exact blob/leader rules matter for equal answers).

use crate::imap::search::decode_header;
use crate::mime;

/// What one message contributes to SORT and THREAD (see the module docs).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SortKeys {
    /// The `Date:` header as seconds since the epoch (UTC); `None` when missing or
    /// unparsable (RFC 5256: the INTERNALDATE is used then).
    pub date: Option<i64>,
    /// The base subject (§2.1), case-mapped.
    pub subject: String,
    /// §2.1 "is a reply or forward" (a leader, trailer or `[fwd: ]` was removed).
    pub reply: bool,
    /// addr-mailbox of the first From, To and Cc address, case-mapped (§3 FROM, TO, CC).
    pub from: String,
    pub to: String,
    pub cc: String,
    /// RFC 5957 display names (decoded), or `mailbox@host` when there is none, case-mapped.
    pub display_from: String,
    pub display_to: String,
    /// The first valid msg-id of `Message-ID:` (without `<>`).
    pub message_id: Option<String>,
    /// `References:` msg-ids in order; without References, the first of `In-Reply-To:`.
    pub references: Vec<String>,
}

/// Format version of [`SortKeys::encode`]: a value of another version is re-derived.
const VERSION: u8 = 1;

impl SortKeys {
    /// Derives the keys from a whole message (only its header is read).
    pub fn from_message(raw: &[u8]) -> SortKeys {
        let end = header_end(raw);
        let fields = mime::fields(raw, 0..end);
        let first = |name: &str| {
            fields
                .iter()
                .find(|f| f.name.eq_ignore_ascii_case(name.as_bytes()))
                .map(|f| f.value)
        };
        let (subject, reply) = base_subject(&first("Subject").map(decode_header).unwrap_or_default());
        let mut refs: Vec<String> = first("References").map(msg_ids).unwrap_or_default();
        if refs.is_empty() {
            refs.extend(first("In-Reply-To").and_then(|v| msg_ids(v).into_iter().next()));
        }
        SortKeys {
            date: first("Date").and_then(parse_date),
            subject,
            reply,
            from: first("From").map(first_mailbox).unwrap_or_default(),
            to: first("To").map(first_mailbox).unwrap_or_default(),
            cc: first("Cc").map(first_mailbox).unwrap_or_default(),
            display_from: first("From").map(display_name).unwrap_or_default(),
            display_to: first("To").map(display_name).unwrap_or_default(),
            message_id: first("Message-ID").and_then(|v| msg_ids(v).into_iter().next()),
            references: refs,
        }
    }

    /// The cache encoding: a version byte, the date, then length-prefixed strings.
    pub fn encode(&self) -> Vec<u8> {
        let mut v = Vec::with_capacity(64 + self.subject.len());
        v.push(VERSION);
        match self.date {
            Some(d) => {
                v.push(1);
                v.extend_from_slice(&d.to_le_bytes());
            }
            None => v.push(0),
        }
        v.push(self.reply as u8);
        for s in [
            &self.subject,
            &self.from,
            &self.to,
            &self.cc,
            &self.display_from,
            &self.display_to,
        ] {
            put_str(&mut v, s);
        }
        match &self.message_id {
            Some(m) => {
                v.push(1);
                put_str(&mut v, m);
            }
            None => v.push(0),
        }
        v.extend_from_slice(&(self.references.len() as u32).to_le_bytes());
        for r in &self.references {
            put_str(&mut v, r);
        }
        v
    }

    /// The inverse of [`SortKeys::encode`]; `None` for anything else (another version, a
    /// damaged value): the caller derives the keys again.
    #[cfg(test)]
    pub fn decode(b: &[u8]) -> Option<SortKeys> {
        SortKeys::decode_only(b, Wanted::ALL)
    }

    /// [`SortKeys::decode`] filling only the `wanted` strings (the others stay empty, not
    /// allocated): a SORT by DATE of a big folder needs none of them.
    pub fn decode_only(mut b: &[u8], wanted: Wanted) -> Option<SortKeys> {
        let b = &mut b;
        if take(b, 1)?[0] != VERSION {
            return None;
        }
        let date = match take(b, 1)?[0] {
            0 => None,
            1 => Some(i64::from_le_bytes(take(b, 8)?.try_into().ok()?)),
            _ => return None,
        };
        let reply = take(b, 1)?[0] != 0;
        let w = wanted;
        let mut k = SortKeys {
            date,
            reply,
            subject: get_str_if(b, w.subject)?,
            from: get_str_if(b, w.from)?,
            to: get_str_if(b, w.to)?,
            cc: get_str_if(b, w.cc)?,
            display_from: get_str_if(b, w.display_from)?,
            display_to: get_str_if(b, w.display_to)?,
            ..SortKeys::default()
        };
        k.message_id = match take(b, 1)?[0] {
            0 => None,
            1 => Some(get_str_if(b, w.ids)?),
            _ => return None,
        };
        let n = u32::from_le_bytes(take(b, 4)?.try_into().ok()?) as usize;
        if n > b.len() / 4 {
            return None;
        }
        for _ in 0..n {
            let r = get_str_if(b, w.ids)?;
            if w.ids {
                k.references.push(r);
            }
        }
        b.is_empty().then_some(k)
    }
}

/// Which strings [`SortKeys::decode_only`] fills.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Wanted {
    pub subject: bool,
    pub from: bool,
    pub to: bool,
    pub cc: bool,
    pub display_from: bool,
    pub display_to: bool,
    /// Message-ID and References (THREAD).
    pub ids: bool,
}

#[cfg(any(test, feature = "test-support"))]
impl Wanted {
    /// Every key (unit tests and the `sort_thread` fuzz target).
    pub const ALL: Wanted = Wanted {
        subject: true,
        from: true,
        to: true,
        cc: true,
        display_from: true,
        display_to: true,
        ids: true,
    };
}

/// A string of the encoding, allocated only when `keep` (else skipped; the cache's checksum
/// already vouched for the bytes, and a kept string is still checked as UTF-8).
fn get_str_if(b: &mut &[u8], keep: bool) -> Option<String> {
    if keep {
        return get_str(b);
    }
    let n = u32::from_le_bytes(take(b, 4)?.try_into().ok()?) as usize;
    take(b, n)?;
    Some(String::new())
}

fn put_str(v: &mut Vec<u8>, s: &str) {
    v.extend_from_slice(&(s.len() as u32).to_le_bytes());
    v.extend_from_slice(s.as_bytes());
}

fn take<'a>(b: &mut &'a [u8], n: usize) -> Option<&'a [u8]> {
    if b.len() < n {
        return None;
    }
    let (x, rest) = b.split_at(n);
    *b = rest;
    Some(x)
}

fn get_str(b: &mut &[u8]) -> Option<String> {
    let n = u32::from_le_bytes(take(b, 4)?.try_into().ok()?) as usize;
    String::from_utf8(take(b, n)?.to_vec()).ok()
}

/// Where the header ends (past its blank line), or the message's end.
fn header_end(raw: &[u8]) -> usize {
    let mut pos = 0;
    while pos < raw.len() {
        let le = raw[pos..]
            .iter()
            .position(|&b| b == b'\n')
            .map_or(raw.len(), |i| pos + i + 1);
        let line = &raw[pos..le];
        if line == b"\n" || line == b"\r\n" {
            return le;
        }
        pos = le;
    }
    raw.len()
}

/// `i;unicode-casemap` (RFC 5051) as Dovecot applies it (see the module docs).
pub fn casemap(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        for u in c.to_uppercase() {
            match decompose(u) {
                Some((base, mark)) => {
                    out.push(base);
                    out.push(mark);
                }
                None => out.push(u),
            }
        }
    }
    out
}

/// The canonical decomposition of an upper-case Latin letter with one diacritic.
fn decompose(c: char) -> Option<(char, char)> {
    const GRAVE: char = '\u{300}';
    const ACUTE: char = '\u{301}';
    const CIRC: char = '\u{302}';
    const TILDE: char = '\u{303}';
    const DIAER: char = '\u{308}';
    const RING: char = '\u{30A}';
    const CEDIL: char = '\u{327}';
    const CARON: char = '\u{30C}';
    Some(match c {
        'À' => ('A', GRAVE),
        'Á' => ('A', ACUTE),
        'Â' => ('A', CIRC),
        'Ã' => ('A', TILDE),
        'Ä' => ('A', DIAER),
        'Å' => ('A', RING),
        'Ç' => ('C', CEDIL),
        'È' => ('E', GRAVE),
        'É' => ('E', ACUTE),
        'Ê' => ('E', CIRC),
        'Ë' => ('E', DIAER),
        'Ì' => ('I', GRAVE),
        'Í' => ('I', ACUTE),
        'Î' => ('I', CIRC),
        'Ï' => ('I', DIAER),
        'Ñ' => ('N', TILDE),
        'Ò' => ('O', GRAVE),
        'Ó' => ('O', ACUTE),
        'Ô' => ('O', CIRC),
        'Õ' => ('O', TILDE),
        'Ö' => ('O', DIAER),
        'Ù' => ('U', GRAVE),
        'Ú' => ('U', ACUTE),
        'Û' => ('U', CIRC),
        'Ü' => ('U', DIAER),
        'Ý' => ('Y', ACUTE),
        'Č' => ('C', CARON),
        'Š' => ('S', CARON),
        'Ž' => ('Z', CARON),
        'Ř' => ('R', CARON),
        'Ě' => ('E', CARON),
        _ => return None,
    })
}

/// RFC 5256 §2.1 base subject of a decoded subject, case-mapped, and whether it was a reply
/// or forward. Follows Dovecot's `imap_get_base_subject_cased`.
pub fn base_subject(decoded: &str) -> (String, bool) {
    // (1) Case-mapped (so "re"/"fwd" are matched as "RE"/"FWD"), whitespace packed.
    let mut s = String::with_capacity(decoded.len());
    let mut last_ws = false;
    for c in casemap(decoded).chars() {
        if matches!(c, ' ' | '\t' | '\r' | '\n') {
            if !last_ws {
                s.push(' ');
            }
            last_ws = true;
        } else {
            s.push(c);
            last_ws = false;
        }
    }
    let mut reply = false;
    let mut start = 0usize;
    let mut end = s.len();
    loop {
        // (2) Trailers: "(fwd)" and spaces.
        while end > start {
            if s[..end].ends_with(' ') {
                end -= 1;
            } else if end >= start + 5 && s[..end].ends_with("(FWD)") {
                reply = true;
                end -= 5;
            } else {
                break;
            }
        }
        // (3), (4), (5) Leaders and blobs.
        while let Some(next) = remove_leader(&s[..end], start, &mut reply) {
            start = next;
        }
        // (6) "[fwd:" subject "]".
        if s[start..end].starts_with("[FWD:") && end > start + 5 && s[..end].ends_with(']') {
            reply = true;
            start += 5;
            end -= 1;
            continue;
        }
        break;
    }
    (s[start..end].to_string(), reply)
}

/// One step of Dovecot's `remove_subj_leader`: the new start, or `None` when nothing goes.
fn remove_leader(s: &str, start: usize, reply: &mut bool) -> Option<usize> {
    let b = s.as_bytes();
    let mut at = start;
    let mut removed = None;
    if b.get(at) == Some(&b' ') {
        at += 1;
        removed = Some(at);
    }
    let orig = at;
    let mut d = at;
    while b.get(d) == Some(&b'[') {
        match remove_blob(b, d) {
            Some(n) => d = n,
            None => return removed,
        }
    }
    match remove_refwd(b, d) {
        Some(n) => {
            *reply = true;
            Some(n)
        }
        // (4) A blob goes only when something is left after it.
        None if d == orig || d >= b.len() => removed,
        None => Some(d),
    }
}

/// `subj-blob = "[" *BLOBCHAR "]" *WSP` at `i`: the index after it.
fn remove_blob(b: &[u8], i: usize) -> Option<usize> {
    if b.get(i) != Some(&b'[') {
        return None;
    }
    let mut j = i + 1;
    while j < b.len() && b[j] != b'[' && b[j] != b']' {
        j += 1;
    }
    if b.get(j) != Some(&b']') {
        return None;
    }
    j += 1;
    if b.get(j) == Some(&b' ') {
        j += 1;
    }
    Some(j)
}

/// `subj-refwd = ("re" / ("fw" ["d"])) *WSP [subj-blob] ":"` at `i`.
fn remove_refwd(b: &[u8], i: usize) -> Option<usize> {
    let r = &b[i..];
    let mut j = i + if r.starts_with(b"RE") {
        2
    } else if r.starts_with(b"FWD") {
        3
    } else if r.starts_with(b"FW") {
        2
    } else {
        return None;
    };
    if b.get(j) == Some(&b' ') {
        j += 1;
    }
    if let Some(n) = remove_blob(b, j) {
        j = n;
    }
    (b.get(j) == Some(&b':')).then_some(j + 1)
}

/// addr-mailbox of the first address of an address field, case-mapped ("" when none).
fn first_mailbox(value: &[u8]) -> String {
    mime::parse_addresses(value)
        .into_iter()
        .next()
        .and_then(|a| a.mailbox)
        .map(|m| casemap(&String::from_utf8_lossy(&m)))
        .unwrap_or_default()
}

/// RFC 5957 §3: the first address's display name (RFC 2047 decoded), else its
/// `mailbox@host` (a group's name for a group), case-mapped (Dovecot's `get_display_name`).
fn display_name(value: &[u8]) -> String {
    let Some(a) = mime::parse_addresses(value).into_iter().next() else {
        return String::new();
    };
    if let Some(n) = &a.name {
        let d = decode_header(n);
        if !d.is_empty() {
            return casemap(&d);
        }
    }
    match (&a.mailbox, &a.host) {
        (Some(m), Some(h)) => casemap(&format!(
            "{}@{}",
            String::from_utf8_lossy(m),
            String::from_utf8_lossy(h)
        )),
        // A group's name (`undisclosed-recipients:;`), as Dovecot sorts it.
        (Some(m), None) => casemap(&String::from_utf8_lossy(m)),
        _ => String::new(),
    }
}

/// The msg-ids (`<...>`, without the brackets) of a header value, in order; comments
/// and anything not a bracketed id with `@` in it are skipped.
pub fn msg_ids(value: &[u8]) -> Vec<String> {
    let v = mime::unfold(value);
    let mut out = Vec::new();
    let mut i = 0;
    let mut depth = 0usize;
    while i < v.len() {
        match v[i] {
            b'(' => depth += 1,
            b')' => depth = depth.saturating_sub(1),
            b'<' if depth == 0 => {
                if let Some(close) = v[i + 1..].iter().position(|&b| b == b'>') {
                    let id: Vec<u8> = v[i + 1..i + 1 + close]
                        .iter()
                        .copied()
                        .filter(|b| !b.is_ascii_whitespace())
                        .collect();
                    if id.contains(&b'@') && !id.contains(&b'<') {
                        out.push(String::from_utf8_lossy(&id).into_owned());
                    }
                    i += close + 2;
                    continue;
                }
            }
            _ => {}
        }
        i += 1;
    }
    out
}

/// An RFC 5322 date-time (leniently: weekday optional, seconds optional, two-digit years,
/// obsolete zone names) as seconds since the epoch; `None` when it is not one.
pub fn parse_date(v: &[u8]) -> Option<i64> {
    let s = String::from_utf8_lossy(&mime::unfold(v)).into_owned();
    // Comments go (they may hold the zone's name).
    let mut clean = String::with_capacity(s.len());
    let mut depth = 0usize;
    for c in s.chars() {
        match c {
            '(' => depth += 1,
            ')' => depth = depth.saturating_sub(1),
            _ if depth == 0 => clean.push(c),
            _ => {}
        }
    }
    let rest = match clean.split_once(',') {
        Some((_, r)) => r,
        None => &clean,
    };
    let mut it = rest.split_whitespace();
    let day: u32 = it.next()?.parse().ok()?;
    let mon = it.next()?.to_ascii_lowercase();
    let month = [
        "jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec",
    ]
    .iter()
    .position(|m| mon == *m)? as u32
        + 1;
    let ystr = it.next()?;
    let mut year: i32 = ystr.parse().ok()?;
    if ystr.len() <= 2 {
        year += if year < 70 { 2000 } else { 1900 };
    } else if ystr.len() == 3 {
        year += 1900;
    }
    let time = it.next()?;
    let mut hms = time.split(':');
    let h: u32 = hms.next()?.parse().ok()?;
    let m: u32 = hms.next()?.parse().ok()?;
    let sec: u32 = match hms.next() {
        Some(x) => x.parse().ok()?,
        None => 0,
    };
    let zone = match it.next() {
        None => 0,
        Some(z) => zone_offset(z)?,
    };
    let date = chrono::NaiveDate::from_ymd_opt(year, month, day)?;
    let t = date.and_hms_opt(h, m, sec.min(59))?;
    Some(t.and_utc().timestamp() - zone)
}

/// A zone as seconds east of UTC.
fn zone_offset(z: &str) -> Option<i64> {
    let b = z.as_bytes();
    if (b.first() == Some(&b'+') || b.first() == Some(&b'-'))
        && b.len() == 5
        && b[1..].iter().all(u8::is_ascii_digit)
    {
        let n: i64 = z[1..].parse().ok()?;
        let secs = (n / 100) * 3600 + (n % 100) * 60;
        return Some(if b[0] == b'-' { -secs } else { secs });
    }
    let h = match z.to_ascii_uppercase().as_str() {
        "UT" | "GMT" | "Z" => 0,
        "EST" => -5,
        "EDT" => -4,
        "CST" => -6,
        "CDT" => -5,
        "MST" => -7,
        "MDT" => -6,
        "PST" => -8,
        "PDT" => -7,
        _ if z.len() == 1 && z.as_bytes()[0].is_ascii_alphabetic() => 0,
        _ => return None,
    };
    Some(h * 3600)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn base(s: &str) -> String {
        base_subject(&decode_header(s.as_bytes())).0
    }

    #[test]
    fn base_subject_rules() {
        assert_eq!(base("Re: Fwd: [list] (fwd)"), "[LIST]");
        assert_eq!(base("Re: Fwd: [list] hello (fwd)"), "HELLO");
        assert_eq!(base("[PATCH] foo"), "FOO");
        assert_eq!(base("[PATCH 1/2] [v2] foo"), "FOO");
        assert_eq!(base("[PATCH]"), "[PATCH]");
        assert_eq!(base("Re: [PATCH]"), "[PATCH]");
        assert_eq!(base("RE[2]: hello"), "HELLO");
        assert_eq!(base("Fw : hello"), "HELLO");
        assert_eq!(base("re:re: Re:  hello   world  "), "HELLO WORLD");
        assert_eq!(base("[fwd: hello]"), "HELLO");
        assert_eq!(base("[Fwd: Re: hello (fwd)]"), "HELLO");
        assert_eq!(base("hello (fwd) (FWD)"), "HELLO");
        assert_eq!(base("Reply to this"), "REPLY TO THIS");
        assert_eq!(base(""), "");
        assert_eq!(base("   "), "");
        assert_eq!(base("=?UTF-8?Q?R=C3=A9sum=C3=A9?= ok"), "RE\u{301}SUME\u{301} OK");
        assert_eq!(base("Re: =?ISO-8859-1?Q?caf=E9?="), "CAFE\u{301}");
        assert_eq!(base("Re:\thello\r\n\tthere"), "HELLO THERE");
        let (_, reply) = base_subject("Re: x");
        assert!(reply);
        let (_, reply) = base_subject("x");
        assert!(!reply);
    }

    #[test]
    fn dates() {
        assert_eq!(parse_date(b"Thu, 01 Jan 1970 00:00:00 +0000"), Some(0));
        assert_eq!(parse_date(b"1 Jan 1970 01:00 +0100"), Some(0));
        assert_eq!(parse_date(b"Thu, 1 Jan 70 00:00:10 GMT (UTC)"), Some(10));
        assert_eq!(parse_date(b"Thu, 1 Jan 1970 00:00:00 EST"), Some(5 * 3600));
        assert_eq!(parse_date(b"not a date"), None);
        assert_eq!(parse_date(b"Thu, 32 Jan 1970 00:00:00 +0000"), None);
    }

    #[test]
    fn ids_and_addresses() {
        assert_eq!(msg_ids(b"<a@b> (c <x@y>) <c@d>"), ["a@b", "c@d"]);
        assert_eq!(msg_ids(b"garbage <nope>"), Vec::<String>::new());
        let k = SortKeys::from_message(
            b"From: \"Zed\" <amy@x.org>\r\nTo: =?utf-8?q?=C3=A9lan?= <bo@y>, c@z\r\nCc: undisclosed:;\r\nMessage-ID: <1@x>\r\nIn-Reply-To: <0@x> <9@x>\r\nSubject: Re: hi\r\n\r\nbody\r\nReferences: <no@x>\r\n",
        );
        assert_eq!(k.from, "AMY");
        assert_eq!(k.display_from, "ZED");
        assert_eq!(k.to, "BO");
        assert_eq!(k.display_to, "E\u{301}LAN");
        assert_eq!(k.cc, "UNDISCLOSED");
        assert_eq!(k.message_id.as_deref(), Some("1@x"));
        assert_eq!(k.references, ["0@x"]);
        assert_eq!(k.subject, "HI");
        assert!(k.reply);
        assert_eq!(k.date, None);
        assert_eq!(SortKeys::decode(&k.encode()), Some(k.clone()));
        let e = k.encode();
        for n in 0..e.len() {
            assert_eq!(SortKeys::decode(&e[..n]), None, "prefix {n}");
        }
        assert_eq!(SortKeys::decode(&[2]), None);
        let only = SortKeys::decode_only(&e, Wanted { to: true, ..Wanted::default() }).unwrap();
        assert_eq!((only.to.as_str(), only.from.as_str(), only.date), ("BO", "", None));
        assert!(only.references.is_empty() && only.message_id.as_deref() == Some(""));
    }
}
