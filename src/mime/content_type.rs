//! `Content-Type`-like header values (RFC 2045 §5.1: `type/subtype; name=value; ...`), with
//! RFC 2231 §3 parameter continuations joined as Dovecot joins them.

use std::collections::HashMap;

use crate::mime::lexer::{Lexer, Tok, TSPECIALS};

/// A parsed `Content-Type`-like header: `value; name=value; ...`.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ContentType {
    pub mtype: Vec<u8>,
    pub subtype: Vec<u8>,
    pub params: Vec<(Vec<u8>, Vec<u8>)>,
}

impl ContentType {
    pub(crate) fn is(&self, t: &str, s: &str) -> bool {
        self.mtype.eq_ignore_ascii_case(t.as_bytes())
            && (s.is_empty() || self.subtype.eq_ignore_ascii_case(s.as_bytes()))
    }
    pub fn param(&self, name: &str) -> Option<&[u8]> {
        self.params
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name.as_bytes()))
            .map(|(_, v)| v.as_slice())
    }
}

/// Parses `type/subtype; a=b; c="d"` (comments ignored). Missing pieces are empty.
///
/// Also reads `value; params` headers (Content-Disposition, RFC 2183): the value is `mtype`;
/// parameters start at the first `;` whether or not a `/subtype` was read, so they come out
/// the same as if only the value token had been read.
pub fn parse_content_type(value: &[u8]) -> ContentType {
    let mut lx = Lexer::new(value);
    let mut toks = Vec::new();
    while let Some(t) = lx.next(TSPECIALS) {
        if !matches!(t, Tok::Comment(_)) {
            toks.push(t);
        }
    }
    let mut ct = ContentType::default();
    let mut it = toks.into_iter().peekable();
    if let Some(Tok::Atom(a)) = it.peek().cloned() {
        ct.mtype = a;
        it.next();
        if it.peek() == Some(&Tok::Special(b'/')) {
            it.next();
            if let Some(Tok::Atom(s)) = it.peek().cloned() {
                ct.subtype = s;
                it.next();
            }
        }
    }
    ct.params = parse_params(it);
    ct
}

/// At most this many parameters are read from one header (the rest are ignored), so a
/// hostile header's cost and its BODYSTRUCTURE stay bounded; real mail has a handful.
pub(crate) const MAX_PARAMS: usize = 256;

/// `; name=value` pairs, with RFC 2231 §3 continuations (`name*0`, `name*1`, ...) joined
/// into `name` as Dovecot does; extended (`name*`, `name*0*`) values stay as written.
/// Linear in the number of parameters: segments are grouped by lower-case name in a map.
fn parse_params(it: impl Iterator<Item = Tok>) -> Vec<(Vec<u8>, Vec<u8>)> {
    let raw = parse_params_raw(it);
    let mut out: Vec<(Vec<u8>, Vec<u8>)> = Vec::new();
    // Lower-case base name → its segments (index, value) in the order read.
    let mut segments: HashMap<Vec<u8>, Vec<(u32, Vec<u8>)>> = HashMap::new();
    for (name, value) in raw {
        let split = name
            .iter()
            .rposition(|&b| b == b'*')
            .filter(|&star| star > 0 && star + 1 < name.len())
            .and_then(|star| {
                let digits = &name[star + 1..];
                digits
                    .iter()
                    .all(u8::is_ascii_digit)
                    .then(|| std::str::from_utf8(digits).ok()?.parse::<u32>().ok())
                    .flatten()
                    .map(|n| (name[..star].to_vec(), n))
            });
        match split {
            Some((base, n)) => {
                let lower = base.to_ascii_lowercase();
                segments
                    .entry(lower)
                    .or_insert_with(|| {
                        out.push((base, Vec::new()));
                        Vec::new()
                    })
                    .push((n, value));
            }
            None => out.push((name, value)),
        }
    }
    for segs in segments.values_mut() {
        // Stable: equal indexes keep the order they were read in.
        segs.sort_by_key(|s| s.0);
    }
    for (name, value) in out.iter_mut() {
        if !value.is_empty() {
            continue;
        }
        if let Some(segs) = segments.get(&name.to_ascii_lowercase()) {
            for (_, v) in segs {
                value.extend_from_slice(v);
            }
        }
    }
    out
}

/// `; name=value` pairs from a token stream (anything unexpected is skipped up to `;`).
fn parse_params_raw(mut it: impl Iterator<Item = Tok>) -> Vec<(Vec<u8>, Vec<u8>)> {
    let mut params: Vec<(Vec<u8>, Vec<u8>)> = Vec::new();
    // Skip to the first ';'.
    loop {
        match it.next() {
            None => return params,
            Some(Tok::Special(b';')) => break,
            _ => {}
        }
    }
    while params.len() < MAX_PARAMS {
        let name = match it.next() {
            None => break,
            Some(Tok::Atom(a)) => a,
            Some(_) => continue,
        };
        match it.next() {
            Some(Tok::Special(b'=')) => {}
            Some(Tok::Special(b';')) => continue,
            None => break,
            Some(_) => {
                // Skip this broken parameter.
                for t in it.by_ref() {
                    if t == Tok::Special(b';') {
                        break;
                    }
                }
                continue;
            }
        }
        let mut value = Vec::new();
        let mut end = false;
        loop {
            match it.next() {
                None => {
                    end = true;
                    break;
                }
                Some(Tok::Special(b';')) => break,
                Some(Tok::Atom(a)) | Some(Tok::Quoted(a)) => value.extend_from_slice(&a),
                Some(Tok::Special(c)) => value.push(c),
                Some(Tok::Literal(l)) => value.extend_from_slice(&l),
                Some(Tok::Comment(_)) => {}
            }
        }
        params.push((name, value));
        if end {
            break;
        }
    }
    params
}

#[cfg(test)]
mod tests {
    use crate::mime::content_type::*;

    fn p(v: &str) -> (String, String, Vec<(String, String)>) {
        let ct = parse_content_type(v.as_bytes());
        let s = |b: &[u8]| String::from_utf8(b.to_vec()).unwrap();
        (s(&ct.mtype), s(&ct.subtype), p_of(&ct))
    }

    #[test]
    fn content_type_and_disposition_values() {
        let pair = |n: &str, v: &str| (n.to_string(), v.to_string());
        assert_eq!(
            p("Text/Plain; charset=\"utf-8\" (comment); format=flowed"),
            (
                "Text".into(),
                "Plain".into(),
                vec![pair("charset", "utf-8"), pair("format", "flowed")]
            )
        );
        // Content-Disposition: a single value token, then parameters (RFC 2231 joined).
        assert_eq!(
            p("attachment; filename*0=\"a b\"; filename*1=\".txt\""),
            (
                "attachment".into(),
                String::new(),
                vec![pair("filename", "a b.txt")]
            )
        );
        // Whatever follows the value before the first `;` is never a parameter.
        assert_eq!(p("inline/x junk; a=b").2, vec![pair("a", "b")]);
        assert_eq!(p("inline junk; a=b").2, vec![pair("a", "b")]);
        assert_eq!(p(";;;"), (String::new(), String::new(), vec![]));
    }

    /// A header of tens of thousands of RFC 2231 parameters (hundreds of KB, the "hostile
    /// input" issue) parses in linear time and yields the first `MAX_PARAMS` of them.
    #[test]
    fn parameter_flood_is_capped_and_linear() {
        let mut v = String::from("text/plain");
        for i in 0..40_000 {
            v.push_str(&format!("; p{i}*0=x"));
        }
        let t = std::time::Instant::now();
        let ct = parse_content_type(v.as_bytes());
        assert!(t.elapsed().as_secs() < 5, "took {:?}", t.elapsed());
        assert_eq!(ct.params.len(), MAX_PARAMS);
        for (i, (n, v)) in ct.params.iter().enumerate() {
            assert_eq!((n.as_slice(), v.as_slice()), (format!("p{i}").as_bytes(), &b"x"[..]));
        }

        // One name's segments, written last to first, are joined in index order.
        let mut v = String::from("attachment");
        for i in (0..40_000).rev() {
            v.push_str(&format!("; Name*{i}={}", i % 10));
        }
        let ct = parse_content_type(v.as_bytes());
        let first = 40_000 - MAX_PARAMS;
        let want: String = (first..40_000).map(|i| char::from(b'0' + (i % 10) as u8)).collect();
        assert_eq!(p_of(&ct), vec![("Name".to_string(), want)]);
    }

    fn p_of(ct: &ContentType) -> Vec<(String, String)> {
        let s = |b: &[u8]| String::from_utf8(b.to_vec()).unwrap();
        ct.params.iter().map(|(n, v)| (s(n), s(v))).collect()
    }
}
