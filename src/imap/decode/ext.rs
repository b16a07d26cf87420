//! The command grammar imap-codec 2.0 (alpha) does not decode, parsed here in front of it
//! (RFC 4731 `SEARCH RETURN (..)`, RFC 5182 `$`, RFC 5258 extended LIST, RFC 5819 `RETURN
//! (STATUS (..))`). Each form is recognised on the command's tokens, the extension parts are
//! taken out into [`Extensions`], and what remains — a plain RFC 3501 command — is decoded by
//! imap-codec as before, so every argument keeps imap-codec's types and checks.
//!
//! Why not patch imap-codec: its extended LIST exists only as response types ("Unfinished"),
//! and `RETURN`/`$` would touch the SEARCH and sequence-set grammar shared by every command;
//! a patch we carry would have to follow each alpha release. These few forms are small,
//! self-contained and pinned by the tests below (and by the side-by-side tests against
//! Dovecot, `tests/imap_esearch.rs`).
//!
//! `$` (RFC 5182 §3: a `sequence-set` on its own) is replaced by a number that appears
//! nowhere else in the command ([`Extensions::saved_marker`]); the session swaps the set
//! for the saved result before the handler runs.

use imap_codec::imap_types::mailbox::ListMailbox;
use imap_codec::imap_types::status::StatusDataItemName;

/// RFC 4731 §3.1 search return options (`RETURN ()` is `RETURN (ALL)`); RFC 5182 §2 `SAVE`.
/// A MODSEQ return (RFC 7162 §3.1.5) needs no option: it is part of the result when the
/// search has a MODSEQ key.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SearchReturn {
    pub min: bool,
    pub max: bool,
    pub all: bool,
    pub count: bool,
    pub save: bool,
}

/// RFC 5258 §3.1 selection options (and RFC 6154 §5.1's `SPECIAL-USE`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ListSelect {
    pub subscribed: bool,
    pub remote: bool,
    pub recursive_match: bool,
    pub special_use: bool,
}

/// RFC 5258 §3.2 return options, RFC 5819 `STATUS`, RFC 6154 §5.2 `SPECIAL-USE`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ListReturn {
    pub subscribed: bool,
    pub children: bool,
    pub special_use: bool,
    /// RFC 5819: the STATUS items for each listed mailbox (decoded by imap-codec).
    pub status: Option<Vec<StatusDataItemName>>,
}

/// An extended LIST (RFC 5258): any of selection options, several patterns, return options.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ListExtended {
    pub select: ListSelect,
    pub ret: ListReturn,
    /// The patterns after the first (the first is the decoded command's).
    pub more_patterns: Vec<ListMailbox<'static>>,
}

/// What [`super::rewrite_extensions`] changed in a command before imap-codec decodes it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Rewrite {
    /// `STATUS` asked for RFC 7889 `APPENDLIMIT` (removed from the item list).
    pub status_appendlimit: bool,
    /// ... and nothing else (a `MESSAGES` put in its place is not to be answered).
    pub status_appendlimit_only: bool,
}

/// What a command said that imap-codec's [`Command`](imap_codec::imap_types::command::Command)
/// cannot hold.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Extensions {
    /// `SEARCH RETURN (..)`: answer with ESEARCH (RFC 4731) and/or save (RFC 5182).
    pub search_return: Option<SearchReturn>,
    /// The number standing for `$` in the decoded command's sequence sets (RFC 5182 §3).
    pub saved_marker: Option<u32>,
    /// An extended LIST (RFC 5258, RFC 5819).
    pub list: Option<ListExtended>,
    /// What was rewritten before any of this (`XLIST`, STATUS `APPENDLIMIT`).
    pub rewrite: Rewrite,
}

/// A command form this module understood but refuses: the tagged `BAD` text.
pub type Refusal = &'static str;

/// One token of a command: its kind and where it is in the frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Tok {
    kind: Kind,
    start: usize,
    end: usize,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Atom,
    Quoted,
    Literal,
    Open,
    Close,
}

/// Splits a command into tokens: atoms (anything up to SP, CR, LF, parentheses or `"`;
/// brackets keep what is inside them, as in `BODY[HEADER.FIELDS (A)]`), quoted strings,
/// literals (`{n}`, `{n+}`, `~{n}` with their CRLF and data) and parentheses. Stops at
/// the first thing it cannot take (the command is then left to imap-codec as it is). As
/// Dovecot's parser, it takes `{5}\r\nDraft*` as two arguments, `Draft` and `*`.
fn lex(frame: &[u8]) -> Vec<Tok> {
    let mut toks = Vec::new();
    let mut i = 0;
    while i < frame.len() {
        let b = frame[i];
        let start = i;
        let kind = match b {
            b' ' | b'\r' | b'\n' => {
                i += 1;
                continue;
            }
            b'(' => {
                i += 1;
                Kind::Open
            }
            b')' => {
                i += 1;
                Kind::Close
            }
            b'"' => {
                i += 1;
                loop {
                    match frame.get(i) {
                        Some(b'\\') => i += 2,
                        Some(b'"') => break,
                        Some(b'\r' | b'\n') | None => return toks,
                        Some(_) => i += 1,
                    }
                }
                i += 1;
                Kind::Quoted
            }
            b'{' | b'~' if literal_len(&frame[i..]).is_some() => {
                let (head, len) = literal_len(&frame[i..]).unwrap_or((0, 0));
                i += head;
                if frame.len() - i < len {
                    return toks;
                }
                i += len;
                Kind::Literal
            }
            _ => {
                let mut depth = 0usize;
                while i < frame.len() {
                    match frame[i] {
                        b'[' => depth += 1,
                        b']' => depth = depth.saturating_sub(1),
                        b' ' | b'(' | b')' if depth > 0 => {}
                        b' ' | b'\r' | b'\n' | b'(' | b')' | b'"' => break,
                        _ => {}
                    }
                    i += 1;
                }
                Kind::Atom
            }
        };
        toks.push(Tok {
            kind,
            start,
            end: i,
        });
    }
    toks
}

/// At a literal announcement (`{n}\r\n`, `{n+}\r\n`, `~{n}\r\n`): its length in octets
/// (announcement and CRLF) and the data length.
fn literal_len(s: &[u8]) -> Option<(usize, usize)> {
    let s0 = s.strip_prefix(b"~").unwrap_or(s);
    let tilde = s.len() - s0.len();
    let rest = s0.strip_prefix(b"{")?;
    let close = rest.iter().position(|&b| b == b'}')?;
    let digits = rest[..close].strip_suffix(b"+").unwrap_or(&rest[..close]);
    if digits.is_empty() || digits.len() > 9 || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    if rest.get(close + 1..close + 3)? != b"\r\n" {
        return None;
    }
    let len = std::str::from_utf8(digits).ok()?.parse().ok()?;
    Some((tilde + 1 + close + 3, len))
}

/// One replacement of a frame's bytes.
struct Edit {
    start: usize,
    end: usize,
    with: Vec<u8>,
}

/// What [`preparse`] made of a command: the frame for imap-codec and what it took out.
#[derive(Debug, Default)]
pub struct Preparsed {
    /// The frame to decode (the original when nothing was taken out).
    pub frame: Option<Vec<u8>>,
    pub ext: Extensions,
    /// Further LIST patterns, raw, each decoded afterwards as `LIST "" <pattern>`.
    pub raw_patterns: Vec<Vec<u8>>,
}

/// Recognises the extension forms in `frame` (a complete command). `Err` is a `BAD` text
/// for a form recognised but invalid (unknown return option, ...).
pub fn preparse(frame: &[u8]) -> Result<Preparsed, Refusal> {
    let toks = lex(frame);
    let word = |i: usize| -> Option<&[u8]> {
        let t = toks.get(i)?;
        (t.kind == Kind::Atom).then(|| &frame[t.start..t.end])
    };
    let is = |i: usize, w: &str| word(i).is_some_and(|x| x.eq_ignore_ascii_case(w.as_bytes()));
    let mut out = Preparsed::default();
    let mut edits: Vec<Edit> = Vec::new();
    let mut i = 1;
    let uid = is(i, "UID");
    if uid {
        i += 1;
    }
    let Some(name) = word(i).map(|w| w.to_ascii_uppercase()) else {
        return Ok(out);
    };
    let mut dollars: Vec<usize> = Vec::new();
    match name.as_slice() {
        b"SEARCH" | b"SORT" | b"THREAD" => {
            let sort = name.as_slice() == b"SORT";
            let mut j = i + 1;
            // RFC 5267 §3: SORT takes SEARCH's return options (ESORT); THREAD takes none.
            if name.as_slice() != b"THREAD"
                && is(j, "RETURN")
                && toks.get(j + 1).map(|t| t.kind) == Some(Kind::Open)
            {
                let mut r = SearchReturn::default();
                let mut k = j + 2;
                loop {
                    match toks.get(k).map(|t| t.kind) {
                        Some(Kind::Close) => break,
                        Some(Kind::Atom) => {}
                        _ => return Err(bad_return(sort, false)),
                    }
                    let opt = word(k).unwrap_or_default().to_ascii_uppercase();
                    match opt.as_slice() {
                        b"MIN" => r.min = true,
                        b"MAX" => r.max = true,
                        b"ALL" => r.all = true,
                        b"COUNT" => r.count = true,
                        b"SAVE" => r.save = true,
                        _ => return Err(bad_return(sort, true)),
                    }
                    k += 1;
                }
                if !(r.min || r.max || r.all || r.count || r.save) {
                    r.all = true;
                }
                // ` RETURN (..)` goes, the space before the criteria stays.
                edits.push(Edit {
                    start: toks[j].start - 1,
                    end: toks[k].end,
                    with: Vec::new(),
                });
                out.ext.search_return = Some(r);
                j = k + 1;
            }
            match name.as_slice() {
                b"SEARCH" => {}
                // `(sort-criteria) charset`, then the search keys.
                b"SORT" => {
                    if toks.get(j).map(|t| t.kind) == Some(Kind::Open) {
                        while toks.get(j).is_some_and(|t| t.kind != Kind::Close) {
                            j += 1;
                        }
                    }
                    j += 2;
                }
                // `algorithm charset`, then the search keys.
                _ => j += 2,
            }
            search_dollars(&toks, frame, j, &mut dollars);
        }
        // RFC 5182 §3: `$` as the whole sequence set.
        b"FETCH" | b"STORE" | b"COPY" | b"MOVE" if is(i + 1, "$") => dollars.push(i + 1),
        b"EXPUNGE" if uid && is(i + 1, "$") => dollars.push(i + 1),
        b"LIST" if !uid => return list(frame, &toks, i),
        b"APPEND" if !uid => {
            if let Some(e) = append_utf8_edits(frame, &toks, i) {
                edits.extend(e);
            }
        }
        _ => {}
    }
    if !dollars.is_empty() {
        let marker = marker_for(frame);
        for d in dollars {
            edits.push(Edit {
                start: toks[d].start,
                end: toks[d].end,
                with: marker.to_string().into_bytes(),
            });
        }
        out.ext.saved_marker = Some(marker);
    }
    if !edits.is_empty() {
        out.frame = Some(apply(frame, edits));
    }
    Ok(out)
}

/// RFC 6855 §4 `append-data =/ "UTF8" SP "(" literal8 ")"`: the edits that leave the plain
/// `literal8` (`~{n}`) imap-codec decodes, if the APPEND (command word at token `i`) has
/// that form after its mailbox: the atom `UTF8`, `(`, a `~{n}` literal, `)`, last.
fn append_utf8_edits(frame: &[u8], toks: &[Tok], i: usize) -> Option<Vec<Edit>> {
    let n = toks.len();
    if n < i + 6 {
        return None;
    }
    let [utf8, open, lit, close] = [&toks[n - 4], &toks[n - 3], &toks[n - 2], &toks[n - 1]];
    let ok = utf8.kind == Kind::Atom
        && frame[utf8.start..utf8.end].eq_ignore_ascii_case(b"UTF8")
        && open.kind == Kind::Open
        && open.start == utf8.end + 1
        && lit.kind == Kind::Literal
        && lit.start == open.end
        && frame[lit.start] == b'~'
        && close.kind == Kind::Close
        && close.start == lit.end
        && n - 4 > i + 1;
    ok.then(|| {
        vec![
            Edit {
                start: utf8.start,
                end: open.end,
                with: Vec::new(),
            },
            Edit {
                start: close.start,
                end: close.end,
                with: Vec::new(),
            },
        ]
    })
}

/// A complete APPEND with RFC 6855 §4's `UTF8 (~{n}...)` as the plain `~{n}...` form, or
/// `None` when it has not that form. Used for APPENDs whose message was streamed.
pub fn append_utf8(frame: &[u8]) -> Option<Vec<u8>> {
    let toks = lex(frame);
    let word = |i: usize| toks.get(i).map(|t| &frame[t.start..t.end]);
    if !word(1)?.eq_ignore_ascii_case(b"APPEND") {
        return None;
    }
    append_utf8_edits(frame, &toks, 1).map(|e| apply(frame, e))
}

/// The `BAD` text for a bad `RETURN (..)` of SEARCH or SORT (Dovecot's wording): an
/// option list that is not one, or an option it does not know.
fn bad_return(sort: bool, unknown: bool) -> Refusal {
    match (sort, unknown) {
        (false, false) => "Error in IMAP command SEARCH: Invalid RETURN options",
        (false, true) => "Error in IMAP command SEARCH: Unknown SEARCH return option",
        (true, false) => "Error in IMAP command SORT: Invalid RETURN options",
        (true, true) => "Error in IMAP command SORT: Unknown SEARCH return option",
    }
}

/// The tokens that are `$` in search-key position (RFC 5182 §3 `search-key =/
/// seq-last-command`, also after `UID`), from token `from` on: arguments of keys that take
/// strings, dates or numbers are skipped (`SUBJECT $` searches for a dollar sign).
fn search_dollars(toks: &[Tok], frame: &[u8], from: usize, out: &mut Vec<usize>) {
    let mut skip = 0usize;
    let mut k = from;
    let text = |t: &Tok| &frame[t.start..t.end];
    if toks
        .get(k)
        .is_some_and(|t| t.kind == Kind::Atom && text(t).eq_ignore_ascii_case(b"CHARSET"))
    {
        k += 2;
    }
    while let Some(t) = toks.get(k) {
        k += 1;
        if skip > 0 {
            skip -= 1;
            continue;
        }
        if t.kind != Kind::Atom {
            continue;
        }
        let w = text(t).to_ascii_uppercase();
        skip = match w.as_slice() {
            b"$" => {
                out.push(k - 1);
                0
            }
            b"BCC" | b"BEFORE" | b"BODY" | b"CC" | b"FROM" | b"KEYWORD" | b"LARGER" | b"ON"
            | b"SENTBEFORE" | b"SENTON" | b"SENTSINCE" | b"SINCE" | b"SMALLER" | b"SUBJECT"
            | b"TEXT" | b"TO" | b"UNKEYWORD" | b"OLDER" | b"YOUNGER" => 1,
            b"HEADER" => 2,
            // RFC 7162 `MODSEQ [entry-name entry-type] mod-sequence-valzer`.
            b"MODSEQ" => match toks.get(k).map(|t| t.kind) {
                Some(Kind::Quoted | Kind::Literal) => 3,
                _ => 1,
            },
            _ => 0,
        };
    }
}

/// A number to stand for `$`: the largest not written anywhere in `frame`, so no set the
/// client wrote can be taken for it.
fn marker_for(frame: &[u8]) -> u32 {
    (0..64u32)
        .map(|d| u32::MAX - d)
        .find(|n| {
            let s = n.to_string();
            !frame.windows(s.len()).any(|w| w == s.as_bytes())
        })
        // 64 ten-digit numbers in one command line and none left: any will do, the
        // command is absurd (and 2^32-64 is no UID or message number anyone has).
        .unwrap_or(u32::MAX - 64)
}

fn apply(frame: &[u8], mut edits: Vec<Edit>) -> Vec<u8> {
    edits.sort_by_key(|e| e.start);
    let mut v = Vec::with_capacity(frame.len() + 16);
    let mut at = 0;
    for e in edits {
        v.extend_from_slice(&frame[at..e.start]);
        v.extend_from_slice(&e.with);
        at = e.end;
    }
    v.extend_from_slice(&frame[at..]);
    v
}

/// RFC 5258 §6 `list = "LIST" [SP list-select-opts] SP mailbox SP mbox-or-pat [SP
/// list-return-opts]`; a plain RFC 3501 LIST is left as it is.
fn list(frame: &[u8], toks: &[Tok], name: usize) -> Result<Preparsed, Refusal> {
    const BAD: Refusal = "Error in IMAP command LIST: Invalid arguments";
    let kind = |i: usize| toks.get(i).map(|t| t.kind);
    let word = |i: usize| -> Vec<u8> {
        toks.get(i)
            .filter(|t| t.kind == Kind::Atom)
            .map(|t| frame[t.start..t.end].to_ascii_uppercase())
            .unwrap_or_default()
    };
    let raw = |i: usize| &frame[toks[i].start..toks[i].end];
    let mut ext = ListExtended::default();
    let mut extended = false;
    let mut j = name + 1;
    if kind(j) == Some(Kind::Open) {
        extended = true;
        j += 1;
        while kind(j) != Some(Kind::Close) {
            match word(j).as_slice() {
                b"SUBSCRIBED" => ext.select.subscribed = true,
                b"REMOTE" => ext.select.remote = true,
                b"RECURSIVEMATCH" => ext.select.recursive_match = true,
                b"SPECIAL-USE" => ext.select.special_use = true,
                b"" => return Err(BAD),
                _ => return Err("Error in IMAP command LIST: Unknown select option"),
            }
            j += 1;
        }
        j += 1;
        let s = ext.select;
        if s.recursive_match && !(s.subscribed || s.special_use) {
            return Err("Error in IMAP command LIST: RECURSIVEMATCH must not be the only selection");
        }
    }
    let reference = j;
    if !matches!(kind(j), Some(Kind::Atom | Kind::Quoted | Kind::Literal)) {
        return Ok(Preparsed::default());
    }
    j += 1;
    let mut patterns: Vec<usize> = Vec::new();
    if kind(j) == Some(Kind::Open) {
        extended = true;
        j += 1;
        while kind(j) != Some(Kind::Close) {
            if !matches!(kind(j), Some(Kind::Atom | Kind::Quoted | Kind::Literal)) {
                return Err(BAD);
            }
            patterns.push(j);
            j += 1;
        }
        j += 1;
    } else if matches!(kind(j), Some(Kind::Atom | Kind::Quoted | Kind::Literal)) {
        patterns.push(j);
        j += 1;
    } else {
        return Ok(Preparsed::default());
    }
    if word(j) == b"RETURN" && kind(j + 1) == Some(Kind::Open) {
        extended = true;
        j += 2;
        while kind(j) != Some(Kind::Close) {
            match word(j).as_slice() {
                b"SUBSCRIBED" => ext.ret.subscribed = true,
                b"CHILDREN" => ext.ret.children = true,
                b"SPECIAL-USE" => ext.ret.special_use = true,
                b"STATUS" if kind(j + 1) == Some(Kind::Open) => {
                    let open = j + 1;
                    let mut close = open + 1;
                    while kind(close) == Some(Kind::Atom) {
                        close += 1;
                    }
                    if kind(close) != Some(Kind::Close) || close == open + 1 {
                        return Err(BAD);
                    }
                    ext.ret.status = Some(status_items(&frame[toks[open].start..toks[close].end])?);
                    j = close;
                }
                b"" => return Err(BAD),
                _ => return Err("Error in IMAP command LIST: Unknown return option"),
            }
            j += 1;
        }
        j += 1;
    }
    if !extended || j < toks.len() {
        // A plain LIST, or something after the arguments: imap-codec says what it is.
        return Ok(Preparsed::default());
    }
    let mut f = frame[..toks[name].end].to_vec();
    f.push(b' ');
    f.extend_from_slice(raw(reference));
    f.push(b' ');
    // `LIST "" ()` (no pattern) lists nothing, as the empty pattern.
    f.extend_from_slice(patterns.first().map_or(&b"\"\""[..], |&p| raw(p)));
    f.extend_from_slice(b"\r\n");
    Ok(Preparsed {
        frame: Some(f),
        ext: Extensions {
            list: Some(ext),
            ..Extensions::default()
        },
        raw_patterns: patterns.iter().skip(1).map(|&p| raw(p).to_vec()).collect(),
    })
}

/// A `(status-att ..)` list, decoded by imap-codec as a STATUS command's would be.
fn status_items(list: &[u8]) -> Result<Vec<StatusDataItemName>, Refusal> {
    use imap_codec::decode::Decoder;
    use imap_codec::imap_types::command::CommandBody;
    let mut cmd = b"x STATUS INBOX ".to_vec();
    cmd.extend_from_slice(list);
    cmd.extend_from_slice(b"\r\n");
    match imap_codec::CommandCodec::default().decode(&cmd) {
        Ok((_, c)) => match c.body {
            CommandBody::Status { item_names, .. } => Ok(item_names.into_owned()),
            _ => Err("Error in IMAP command LIST: Invalid STATUS items"),
        },
        Err(_) => Err("Error in IMAP command LIST: Invalid STATUS items"),
    }
}

/// A further LIST pattern (raw token) as imap-codec decodes a LIST's.
pub fn decode_pattern(raw: &[u8]) -> Option<ListMailbox<'static>> {
    use bounded_static::IntoBoundedStatic;
    use imap_codec::decode::Decoder;
    use imap_codec::imap_types::command::CommandBody;
    let mut cmd = b"x LIST \"\" ".to_vec();
    cmd.extend_from_slice(raw);
    cmd.extend_from_slice(b"\r\n");
    match imap_codec::CommandCodec::default().decode(&cmd) {
        Ok((&[], c)) => match c.body {
            CommandBody::List {
                mailbox_wildcard, ..
            } => Some(mailbox_wildcard.into_static()),
            _ => None,
        },
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pre(s: &str) -> Result<(String, Extensions, Vec<String>), Refusal> {
        let p = preparse(s.as_bytes())?;
        let f = p.frame.map_or(s.to_string(), |f| String::from_utf8(f).unwrap());
        let raws = p
            .raw_patterns
            .iter()
            .map(|r| String::from_utf8(r.clone()).unwrap())
            .collect();
        Ok((f, p.ext, raws))
    }

    #[test]
    fn sort_return_options_and_dollars() {
        let (f, e, _) = pre("a UID SORT RETURN (MIN COUNT) (REVERSE DATE) UTF-8 $ SUBJECT $\r\n").unwrap();
        let m = e.saved_marker.unwrap();
        assert_eq!(f, format!("a UID SORT (REVERSE DATE) UTF-8 {m} SUBJECT $\r\n"));
        let r = e.search_return.unwrap();
        assert!(r.min && r.count && !r.max && !r.all);
        let (f, e, _) = pre("a THREAD REFERENCES US-ASCII UID $\r\n").unwrap();
        let m = e.saved_marker.unwrap();
        assert_eq!(f, format!("a THREAD REFERENCES US-ASCII UID {m}\r\n"));
        assert_eq!(e.search_return, None);
        assert_eq!(
            pre("a SORT RETURN (FOO) (DATE) UTF-8 ALL\r\n").unwrap_err(),
            "Error in IMAP command SORT: Unknown SEARCH return option"
        );
        // Every chunking of the frame the session may hold is a whole command here; what
        // a prefix yields must not panic.
        let s = "a SORT RETURN (ALL) (DATE) UTF-8 $\r\n";
        for n in 0..s.len() {
            let _ = preparse(&s.as_bytes()[..n]);
        }
    }

    #[test]
    fn search_return_options_are_taken_out() {
        let (f, e, _) = pre("a SEARCH RETURN (MIN MAX) SEEN\r\n").unwrap();
        assert_eq!(f, "a SEARCH SEEN\r\n");
        let r = e.search_return.unwrap();
        assert!(r.min && r.max && !r.all && !r.count && !r.save);
        let (f, e, _) = pre("a uid search return () charset utf-8 text x\r\n").unwrap();
        assert_eq!(f, "a uid search charset utf-8 text x\r\n");
        assert!(e.search_return.unwrap().all);
        let (f, e, _) = pre("a SEARCH SEEN\r\n").unwrap();
        assert_eq!((f.as_str(), e), ("a SEARCH SEEN\r\n", Extensions::default()));
        assert!(pre("a SEARCH RETURN (FOO) ALL\r\n").is_err());
        // `RETURN` as a search string is not an option list.
        let (f, e, _) = pre("a SEARCH SUBJECT RETURN\r\n").unwrap();
        assert_eq!((f.as_str(), e.search_return), ("a SEARCH SUBJECT RETURN\r\n", None));
    }

    #[test]
    fn dollar_is_replaced_where_a_sequence_set_goes() {
        let m = u32::MAX.to_string();
        for (cmd, want) in [
            ("a FETCH $ FLAGS\r\n", format!("a FETCH {m} FLAGS\r\n")),
            ("a UID STORE $ +FLAGS ($)\r\n", format!("a UID STORE {m} +FLAGS ($)\r\n")),
            ("a COPY $ $\r\n", format!("a COPY {m} $\r\n")),
            ("a UID EXPUNGE $\r\n", format!("a UID EXPUNGE {m}\r\n")),
            ("a EXPUNGE $\r\n", "a EXPUNGE $\r\n".into()),
            (
                "a SEARCH RETURN (SAVE) OR $ UID $ SUBJECT $ HEADER $ $ $\r\n",
                format!("a SEARCH OR {m} UID {m} SUBJECT $ HEADER $ $ {m}\r\n"),
            ),
            ("a SEARCH SUBJECT \"$\" $\r\n", format!("a SEARCH SUBJECT \"$\" {m}\r\n")),
            ("a SEARCH SUBJECT {1}\r\n$ $\r\n", format!("a SEARCH SUBJECT {{1}}\r\n$ {m}\r\n")),
            ("a SEARCH KEYWORD $\r\n", "a SEARCH KEYWORD $\r\n".into()),
        ] {
            let (f, e, _) = pre(cmd).unwrap();
            assert_eq!(f, want, "{cmd:?}");
            assert_eq!(e.saved_marker.is_some(), f != cmd, "{cmd:?}");
        }
        // A number the client wrote is never the marker.
        let (f, e, _) = pre(&format!("a UID FETCH $ (UID) {m}\r\n")).unwrap();
        let n = e.saved_marker.unwrap();
        assert_eq!(n, u32::MAX - 1);
        assert_eq!(f, format!("a UID FETCH {n} (UID) {m}\r\n"));
    }

    #[test]
    fn extended_lists() {
        let (f, e, more) =
            pre("a LIST (SUBSCRIBED RECURSIVEMATCH) \"\" (INBOX {3}\r\nS%t) RETURN (CHILDREN STATUS (MESSAGES SIZE))\r\n")
                .unwrap();
        assert_eq!(f, "a LIST \"\" INBOX\r\n");
        assert_eq!(more, ["{3}\r\nS%t"]);
        let l = e.list.unwrap();
        assert!(l.select.subscribed && l.select.recursive_match && !l.select.remote);
        assert!(l.ret.children && !l.ret.subscribed);
        assert_eq!(
            l.ret.status,
            Some(vec![StatusDataItemName::Messages, StatusDataItemName::Size])
        );
        assert!(decode_pattern(more[0].as_bytes()).is_some());
        // Plain LISTs are imap-codec's.
        let (f, e, _) = pre("a LIST \"\" *\r\n").unwrap();
        assert_eq!((f.as_str(), e.list), ("a LIST \"\" *\r\n", None));
        let (_, e, _) = pre("a LIST () \"\" %\r\n").unwrap();
        assert_eq!(e.list.unwrap().select, ListSelect::default());
        assert!(pre("a LIST (RECURSIVEMATCH) \"\" %\r\n").is_err());
        assert!(pre("a LIST (FOO) \"\" %\r\n").is_err());
        let (f, _, more) = pre("a LIST \"\" () RETURN ()\r\n").unwrap();
        assert_eq!((f.as_str(), more.len()), ("a LIST \"\" \"\"\r\n", 0));
        assert!(pre("a LIST \"\" % RETURN (STATUS ())\r\n").is_err());
        // As in Dovecot, a literal's end ends the argument.
        let (_, _, more) = pre("a LIST \"\" (INBOX {5}\r\nDraft*)\r\n").unwrap();
        assert_eq!(more, ["{5}\r\nDraft", "*"]);
        assert!(pre("a LIST \"\" % RETURN (STATUS (FOO))\r\n").is_err());
    }

    #[test]
    fn every_chunk_of_a_command_is_taken_whole_or_left_alone() {
        // A prefix of a command (as the session never passes, but a fuzzer might) never
        // panics and never loses bytes outside the parts taken out.
        let cmd = "a UID SEARCH RETURN (MIN SAVE) CHARSET UTF-8 OR $ SUBJECT {2}\r\n$$ UID $\r\n";
        for n in 0..=cmd.len() {
            let _ = preparse(&cmd.as_bytes()[..n]);
        }
        let l = "a LIST (SUBSCRIBED) \"\" (\"a\" {1}\r\nb) RETURN (STATUS (MESSAGES))\r\n";
        for n in 0..=l.len() {
            let _ = preparse(&l.as_bytes()[..n]);
        }
    }
}
