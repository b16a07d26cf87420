//! IMAP strings (RFC 3501 §4.3): quoted or literal, `NIL` for an absent nstring, written as
//! Dovecot writes them byte for byte where clients could notice: a string is sent quoted
//! unless it holds CR, LF, NUL, 8-bit bytes or more than four `"`/`\` to escape, then as a
//! literal (Dovecot `imap_append_nstring`, `imap-quote.c`).
//!
//! The leaf of the IMAP writers: imports nothing from the crate.

/// Appends `s` as an IMAP string (quoted when possible, else a literal).
pub fn push_string(out: &mut Vec<u8>, s: &[u8]) {
    let mut escapes = 0;
    let mut literal = false;
    for &b in s {
        match b {
            b'"' | b'\\' => {
                escapes += 1;
                if escapes > 4 {
                    literal = true;
                    break;
                }
            }
            0 | b'\r' | b'\n' => {
                literal = true;
                break;
            }
            b if b >= 0x80 => {
                literal = true;
                break;
            }
            _ => {}
        }
    }
    if literal {
        out.extend_from_slice(format!("{{{}}}\r\n", s.len()).as_bytes());
        out.extend_from_slice(s);
    } else {
        out.push(b'"');
        for &b in s {
            if b == b'"' || b == b'\\' {
                out.push(b'\\');
            }
            out.push(b);
        }
        out.push(b'"');
    }
}

/// Appends `s` as an IMAP string for a session that enabled UTF8=ACCEPT (RFC 6855 §3):
/// valid UTF-8 may stand in a quoted string; anything [`push_string`] would send as a
/// literal for another reason (CR, LF, NUL, many escapes, invalid UTF-8) still is.
pub fn push_string_utf8(out: &mut Vec<u8>, s: &[u8]) {
    let quotable = std::str::from_utf8(s).is_ok()
        && !s.iter().any(|b| matches!(b, 0 | b'\r' | b'\n'))
        && s.iter().filter(|b| matches!(b, b'"' | b'\\')).count() <= 4;
    if !quotable {
        return push_string(out, s);
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

/// Appends `s` as an IMAP astring (RFC 3501 §9) as Dovecot's `imap_append_astring` does:
/// bare when it is a non-empty atom other than `NIL` (`]` is quoted too, as Dovecot does:
/// these names stand inside `BODY[...]`), else as [`push_string`] writes it.
pub fn push_astring(out: &mut Vec<u8>, s: &[u8]) {
    let atom = !s.is_empty()
        && !s.eq_ignore_ascii_case(b"NIL")
        && s.iter()
            .all(|&b| b.is_ascii_graphic() && !b"(){%*\"\\]".contains(&b));
    if atom {
        out.extend_from_slice(s);
    } else {
        push_string(out, s);
    }
}

/// Appends `NIL` or the string.
pub fn push_nstring(out: &mut Vec<u8>, s: Option<&[u8]>) {
    match s {
        Some(s) => push_string(out, s),
        None => out.extend_from_slice(b"NIL"),
    }
}

/// Dovecot's `imap_append_nstring_nolf` for raw header values: leading whitespace dropped,
/// CR and LF removed (the folding whitespace stays), then an ordinary string.
pub fn push_nstring_nolf(out: &mut Vec<u8>, value: Option<&[u8]>) {
    match value {
        None => out.extend_from_slice(b"NIL"),
        Some(v) => {
            let v: Vec<u8> = trim_leading_sp(v)
                .iter()
                .copied()
                .filter(|&b| b != b'\r' && b != b'\n')
                .collect();
            push_string(out, &v);
        }
    }
}

/// Dovecot's `imap_append_string_for_humans` (Subject, address display names): whitespace
/// runs (SP, TAB, CR, LF) become one space, leading and trailing ones go, NUL becomes 0x80;
/// unchanged plain text is quoted, anything changed or holding `"`, `\` or 8-bit bytes is
/// sent as a literal.
pub fn push_string_for_humans(out: &mut Vec<u8>, s: &[u8]) {
    let mut text = Vec::with_capacity(s.len());
    let mut pending_space = false;
    for &b in s {
        match b {
            b' ' | b'\t' | b'\r' | b'\n' => pending_space = !text.is_empty(),
            _ => {
                if pending_space {
                    text.push(b' ');
                    pending_space = false;
                }
                text.push(if b == 0 { 0x80 } else { b });
            }
        }
    }
    let special = text.iter().any(|&b| b == b'"' || b == b'\\' || b >= 0x80);
    if text.is_empty() {
        out.extend_from_slice(b"\"\"");
    } else if text.as_slice() == s && !special {
        out.push(b'"');
        out.extend_from_slice(&text);
        out.push(b'"');
    } else {
        out.extend_from_slice(format!("{{{}}}\r\n", text.len()).as_bytes());
        out.extend_from_slice(&text);
    }
}

fn trim_leading_sp(mut s: &[u8]) -> &[u8] {
    while let [b' ' | b'\t', rest @ ..] = s {
        s = rest;
    }
    s
}

/// An encoded ENVELOPE, BODYSTRUCTURE or BODY (strings, `NIL`, numbers, parentheses) with
/// every literal that [`push_string_utf8`] would quote turned into that quoted string: what a
/// session that enabled UTF8=ACCEPT gets for raw UTF-8 header values (RFC 6855 §3). The
/// cached encodings stay those of everyone else.
pub fn requote_utf8(encoded: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(encoded.len());
    let mut i = 0;
    while i < encoded.len() {
        match encoded[i] {
            b'"' => {
                // A quoted string as it is, escapes included.
                let start = i;
                i += 1;
                while i < encoded.len() && encoded[i] != b'"' {
                    i += if encoded[i] == b'\\' { 2 } else { 1 };
                }
                i = (i + 1).min(encoded.len());
                out.extend_from_slice(&encoded[start..i]);
            }
            b'{' => {
                let digits = encoded[i + 1..].iter().take_while(|b| b.is_ascii_digit()).count();
                let head_end = i + 1 + digits;
                let n: Option<usize> = std::str::from_utf8(&encoded[i + 1..head_end])
                    .ok()
                    .and_then(|d| d.parse().ok());
                match (n, encoded.get(head_end..head_end + 3)) {
                    (Some(n), Some(b"}\r\n")) if head_end + 3 + n <= encoded.len() => {
                        let data = &encoded[head_end + 3..head_end + 3 + n];
                        push_string_utf8(&mut out, data);
                        i = head_end + 3 + n;
                    }
                    _ => {
                        out.push(b'{');
                        i += 1;
                    }
                }
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn utf8_literals_are_requoted() {
        let mut env = b"(NIL ".to_vec();
        super::push_string_for_humans(&mut env, "Grüße aus Köln".as_bytes());
        env.extend_from_slice(b" ");
        super::push_string(&mut env, b"a\r\nb");
        env.extend_from_slice(b" ");
        super::push_string(&mut env, b"\xff\xfe");
        env.extend_from_slice(b" \"x{1}\" 12)");
        assert!(env.starts_with(b"(NIL {"));
        let got = super::requote_utf8(&env);
        assert_eq!(
            String::from_utf8_lossy(&got),
            String::from_utf8_lossy(
                "(NIL \"Grüße aus Köln\" {4}\r\na\r\nb {2}\r\n\u{fffd}\u{fffd} \"x{1}\" 12)".as_bytes()
            )
        );
        // ASCII-only encodings are unchanged.
        let plain = b"(\"a\" NIL ((\"B\" NIL \"b\" \"c\")))";
        assert_eq!(super::requote_utf8(plain), plain);
    }

    use super::*;

    fn s(x: &[u8]) -> Vec<u8> {
        let mut v = Vec::new();
        push_string(&mut v, x);
        v
    }

    #[test]
    fn quoting_follows_dovecot() {
        assert_eq!(s(b"abc"), b"\"abc\"");
        assert_eq!(s(b""), b"\"\"");
        assert_eq!(s(b"a\"b\\c"), b"\"a\\\"b\\\\c\"");
        assert_eq!(s(b"\"\"\"\"\""), b"{5}\r\n\"\"\"\"\"");
        assert_eq!(s("é".as_bytes()), b"{2}\r\n\xc3\xa9");
        assert_eq!(s(b"a\r\nb"), b"{4}\r\na\r\nb");
        let mut v = Vec::new();
        push_nstring(&mut v, None);
        assert_eq!(v, b"NIL");
    }

    #[test]
    fn astrings_as_dovecot() {
        let a = |x: &[u8]| {
            let mut v = Vec::new();
            push_astring(&mut v, x);
            v
        };
        assert_eq!(a(b"SUBJECT"), b"SUBJECT");
        assert_eq!(a(b"A.B-C_D$E"), b"A.B-C_D$E");
        assert_eq!(a(b"A B"), b"\"A B\"");
        assert_eq!(a(b"A]B"), b"\"A]B\"");
        assert_eq!(a(b"NIL"), b"\"NIL\"");
        assert_eq!(a(b""), b"\"\"");
        assert_eq!(a(b"A\x01B"), b"\"A\x01B\"");
        assert_eq!(a(b"X\r\n* 1 EXPUNGE\r\n"), b"{16}\r\nX\r\n* 1 EXPUNGE\r\n");
    }
}
