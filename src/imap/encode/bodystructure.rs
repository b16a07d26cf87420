//! BODY and BODYSTRUCTURE (RFC 3501 §7.4.2) of a parsed message, written as Dovecot 2.3
//! writes them (`imap-bodystructure.c`): raw header values, the RFC 2045 §5.2 default charset
//! added to text parts without one, an empty text/plain for a multipart without parts.

use super::envelope::write_part_envelope;
use super::quote::{push_nstring_nolf, push_string};
use crate::mime::{
    header_value, parse_content_type, unfold, Kind, Lexer, Message, Part, Tok, TSPECIALS,
};

/// Writes BODYSTRUCTURE (`extensible`) or BODY.
pub fn write_structure(msg: &Message<'_>, out: &mut Vec<u8>, extensible: bool) {
    write_part(msg.raw, &msg.root, out, extensible);
}

fn write_params(out: &mut Vec<u8>, params: &[(Vec<u8>, Vec<u8>)]) {
    if params.is_empty() {
        out.extend_from_slice(b"NIL");
        return;
    }
    out.push(b'(');
    for (k, (n, v)) in params.iter().enumerate() {
        if k > 0 {
            out.push(b' ');
        }
        push_string(out, n);
        out.push(b' ');
        push_string(out, v);
    }
    out.push(b')');
}

fn write_part(raw: &[u8], p: &Part, out: &mut Vec<u8>, ext: bool) {
    let hv = |name: &str| header_value(raw, p.header.clone(), name).map(unfold);
    let raw_hv = |name: &str| header_value(raw, p.header.clone(), name);
    out.push(b'(');
    match &p.kind {
        Kind::Multipart(children) => {
            if children.is_empty() {
                // A multipart must have a part: an empty text/plain, as Dovecot writes it.
                out.extend_from_slice(
                    b"(\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" 0 0",
                );
                if ext {
                    out.extend_from_slice(b" NIL NIL NIL NIL");
                }
                out.push(b')');
            }
            for c in children {
                write_part(raw, c, out, ext);
            }
            out.push(b' ');
            push_string(out, &p.ctype.subtype);
            if ext {
                out.push(b' ');
                write_params(out, &p.ctype.params);
                write_ext_tail(raw, p, out);
            }
        }
        _ => {
            push_string(out, &p.ctype.mtype);
            out.push(b' ');
            push_string(out, &p.ctype.subtype);
            out.push(b' ');
            if p.ctype.is("text", "") && p.ctype.param("charset").is_none() {
                // Dovecot adds the RFC 2045 §5.2 default charset to any text part without one.
                let mut params = p.ctype.params.clone();
                params.push((b"charset".to_vec(), b"us-ascii".to_vec()));
                write_params(out, &params);
            } else {
                write_params(out, &p.ctype.params);
            }
            out.push(b' ');
            push_nstring_nolf(out, raw_hv("Content-ID"));
            out.push(b' ');
            push_nstring_nolf(out, raw_hv("Content-Description"));
            out.push(b' ');
            let enc = hv("Content-Transfer-Encoding")
                .map(|v| {
                    let mut lx = Lexer::new(&v);
                    match lx.next(TSPECIALS) {
                        Some(Tok::Atom(a)) => a,
                        _ => b"7bit".to_vec(),
                    }
                })
                .unwrap_or_else(|| b"7bit".to_vec());
            push_string(out, &enc);
            out.extend_from_slice(format!(" {}", p.body.len()).as_bytes());
            match &p.kind {
                Kind::Message(inner) => {
                    out.push(b' ');
                    write_part_envelope(raw, inner, out);
                    out.push(b' ');
                    write_part(raw, inner, out, ext);
                    out.extend_from_slice(format!(" {}", p.body_lines(raw)).as_bytes());
                }
                _ if p.ctype.is("text", "") => {
                    out.extend_from_slice(format!(" {}", p.body_lines(raw)).as_bytes());
                }
                _ => {}
            }
            if ext {
                out.push(b' ');
                push_nstring_nolf(out, raw_hv("Content-MD5"));
                write_ext_tail(raw, p, out);
            }
        }
    }
    out.push(b')');
}

/// Disposition, language, location (RFC 3501 §7.4.2 body extension data).
fn write_ext_tail(raw: &[u8], p: &Part, out: &mut Vec<u8>) {
    let hv = |name: &str| header_value(raw, p.header.clone(), name);
    out.push(b' ');
    match hv("Content-Disposition").map(parse_content_type) {
        Some(d) if !d.mtype.is_empty() => {
            out.push(b'(');
            push_string(out, &d.mtype);
            out.push(b' ');
            write_params(out, &d.params);
            out.push(b')');
        }
        _ => out.extend_from_slice(b"NIL"),
    }
    out.push(b' ');
    let langs: Vec<Vec<u8>> = hv("Content-Language")
        .map(|v| {
            let mut lx = Lexer::new(v);
            let mut l = Vec::new();
            while let Some(t) = lx.next(b",") {
                if let Tok::Atom(a) = t {
                    l.push(a);
                }
            }
            l
        })
        .unwrap_or_default();
    // Dovecot writes the languages as a list even when there is one.
    match langs.len() {
        0 => out.extend_from_slice(b"NIL"),
        _ => {
            out.push(b'(');
            for (k, l) in langs.iter().enumerate() {
                if k > 0 {
                    out.push(b' ');
                }
                push_string(out, l);
            }
            out.push(b')');
        }
    }
    out.push(b' ');
    push_nstring_nolf(out, hv("Content-Location"));
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mime::parse;
    use crate::mime::samples::{MULTI, PLAIN};

    fn bs(raw: &[u8]) -> String {
        let m = parse(raw);
        let mut out = Vec::new();
        write_structure(&m, &mut out, true);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn plain_structure() {
        assert_eq!(
            bs(PLAIN),
            r#"("text" "plain" ("charset" "us-ascii") NIL NIL "7bit" 14 2 NIL NIL NIL NIL)"#
        );
    }

    #[test]
    fn malformed_never_fails() {
        // Boundary never seen: one empty text/plain.
        let m = b"Content-Type: multipart/mixed; boundary=b\r\n\r\nabc\r\n";
        assert!(bs(m).starts_with(
            r#"(("text" "plain" ("charset" "us-ascii") NIL NIL "7bit" 0 0 NIL NIL NIL NIL) "mixed""#
        ));
        // Garbage Content-Type.
        let m = b"Content-Type: ;;;\r\n\r\nx";
        assert!(bs(m).starts_with(r#"("text" "plain""#));
        // Empty input.
        assert!(bs(b"").starts_with(r#"("text" "plain""#));
    }

    #[test]
    fn multipart_structure() {
        let s = bs(MULTI);
        assert!(s.starts_with(r#"(("text" "plain" ("charset" "utf-8") NIL NIL "7bit" 3 0 NIL NIL NIL NIL)(("text" "plain" ("charset" "us-ascii") NIL NIL "7bit" 7 0"#), "{s}");
        assert!(
            s.contains(r#""alternative" ("boundary" "YY") NIL NIL NIL)"#),
            "{s}"
        );
        assert!(
            s.contains(
                r#"("message" "rfc822" NIL NIL NIL "7bit" 41 (NIL "nested" ((NIL NIL "n" "m"))"#
            ),
            "{s}"
        );
        assert!(
            s.ends_with(r#" "mixed" ("boundary" "XX") NIL NIL NIL)"#),
            "{s}"
        );
    }
}
