//! IMAP sections (RFC 3501 §6.4.5): what `BODY[1.2.HEADER.FIELDS (...)]` names in a parsed
//! message, the bytes it stands for, and the item name the FETCH response gives it.
//!
//! Owns: the section spec (from imap-codec's decoded command), the part numbering (Dovecot's
//! `imap-msgpart.c`: a non-multipart part answers to number 1, a message/rfc822 part's numbers
//! refer to its encapsulated message), and HEADER.FIELDS filtering. The part tree and its byte
//! ranges come from [`crate::mime`].

use std::ops::Range;

use super::encode::quote::push_astring;
use crate::mime::{fields, Kind, Message, Part};

/// What a BODY[...] section names within a part.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SectionSpec {
    /// No text after the part number: the part's body (or the whole message at the top).
    Full,
    Header,
    Text,
    Mime,
    HeaderFields(Vec<Vec<u8>>),
    HeaderFieldsNot(Vec<Vec<u8>>),
}

/// A BODY[...] section: part path (empty = the message) and what of it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Section {
    pub path: Vec<u32>,
    pub spec: SectionSpec,
}

impl Section {
    /// The whole message (`BODY[]`).
    pub fn full() -> Section {
        Section {
            path: Vec::new(),
            spec: SectionSpec::Full,
        }
    }

    /// From the decoded `BODY[<section>]` of a FETCH command (imap-codec types).
    pub fn from_imap(section: Option<&imap_codec::imap_types::fetch::Section<'_>>) -> Section {
        use imap_codec::imap_types::fetch::Section as S;
        let path = |p: Option<&imap_codec::imap_types::fetch::Part>| -> Vec<u32> {
            p.map(|p| p.0.as_ref().iter().map(|n| n.get()).collect())
                .unwrap_or_default()
        };
        let names = |l: &[imap_codec::imap_types::core::AString<'_>]| -> Vec<Vec<u8>> {
            l.iter().map(|a| a.as_ref().to_vec()).collect()
        };
        match section {
            None => Section::full(),
            Some(S::Part(p)) => Section {
                path: path(Some(p)),
                spec: SectionSpec::Full,
            },
            Some(S::Header(p)) => Section {
                path: path(p.as_ref()),
                spec: SectionSpec::Header,
            },
            Some(S::Text(p)) => Section {
                path: path(p.as_ref()),
                spec: SectionSpec::Text,
            },
            Some(S::Mime(p)) => Section {
                path: path(Some(p)),
                spec: SectionSpec::Mime,
            },
            Some(S::HeaderFields(p, l)) => Section {
                path: path(p.as_ref()),
                spec: SectionSpec::HeaderFields(names(l.as_ref())),
            },
            Some(S::HeaderFieldsNot(p, l)) => Section {
                path: path(p.as_ref()),
                spec: SectionSpec::HeaderFieldsNot(names(l.as_ref())),
            },
        }
    }

    /// The FETCH response item name, as Dovecot writes it: `BODY[1.2.MIME]`,
    /// `BODY[HEADER.FIELDS (FROM SUBJECT)]` (field names uppercased, each an IMAP astring:
    /// a name the client sent quoted or as a literal goes back quoted or as a literal, so
    /// CRLF in it cannot end the response line), `BODY[]<5>` for a partial fetch starting
    /// at octet 5 (RFC 3501 §7.4.2).
    pub fn item_name(&self, partial_origin: Option<u32>) -> Vec<u8> {
        let mut s = b"BODY[".to_vec();
        let path: Vec<String> = self.path.iter().map(|n| n.to_string()).collect();
        s.extend_from_slice(path.join(".").as_bytes());
        let (spec, names): (&str, &[Vec<u8>]) = match &self.spec {
            SectionSpec::Full => ("", &[]),
            SectionSpec::Header => ("HEADER", &[]),
            SectionSpec::Text => ("TEXT", &[]),
            SectionSpec::Mime => ("MIME", &[]),
            SectionSpec::HeaderFields(l) => ("HEADER.FIELDS", l),
            SectionSpec::HeaderFieldsNot(l) => ("HEADER.FIELDS.NOT", l),
        };
        if !path.is_empty() && !spec.is_empty() {
            s.push(b'.');
        }
        s.extend_from_slice(spec.as_bytes());
        if matches!(
            self.spec,
            SectionSpec::HeaderFields(_) | SectionSpec::HeaderFieldsNot(_)
        ) {
            s.extend_from_slice(b" (");
            for (i, n) in names.iter().enumerate() {
                if i > 0 {
                    s.push(b' ');
                }
                push_astring(&mut s, &n.to_ascii_uppercase());
            }
            s.push(b')');
        }
        s.push(b']');
        if let Some(o) = partial_origin {
            s.extend_from_slice(format!("<{o}>").as_bytes());
        }
        s
    }
}

/// A section's content: a contiguous range of the message, or bytes built for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SectionData {
    Range(Range<usize>),
    Owned(Vec<u8>),
}

#[cfg(test)]
impl SectionData {
    fn bytes<'a>(&'a self, raw: &'a [u8]) -> &'a [u8] {
        match self {
            SectionData::Range(r) => &raw[r.clone()],
            SectionData::Owned(v) => v,
        }
    }
}

/// The part a non-empty path names. As in Dovecot, a non-multipart part answers to
/// number 1 once (`BODY[1]` of a single-part message, `BODY[2.1]` of a leaf part 2), and
/// a message/rfc822 part's numbers refer to its encapsulated message (RFC 3501 §6.4.5).
pub fn part<'m>(msg: &'m Message<'_>, path: &[u32]) -> Option<&'m Part> {
    let mut node = &msg.root;
    let mut one_used = false;
    for (idx, &n) in path.iter().enumerate() {
        let index = (n as usize).checked_sub(1)?;
        node = match &node.kind {
            Kind::Multipart(children) => {
                one_used = false;
                children.get(index)?
            }
            Kind::Message(inner) if idx > 0 => match &inner.kind {
                Kind::Multipart(children) => {
                    one_used = false;
                    children.get(index)?
                }
                _ if n == 1 => {
                    one_used = true;
                    inner
                }
                _ => return None,
            },
            _ if n == 1 && !one_used => {
                one_used = true;
                node
            }
            _ => return None,
        };
    }
    (!path.is_empty()).then_some(node)
}

/// The bytes of a section; a part that does not exist gives empty data (as Dovecot does).
pub fn section_data(msg: &Message<'_>, s: &Section) -> SectionData {
    let empty = SectionData::Owned(Vec::new());
    // HEADER/TEXT refer to a message: the top, or the message/rfc822 at the path.
    fn msg_part(p: &Part) -> Option<&Part> {
        match &p.kind {
            Kind::Message(inner) => Some(inner),
            _ => None,
        }
    }
    let target: Option<&Part> = if s.path.is_empty() {
        Some(&msg.root)
    } else {
        match &s.spec {
            SectionSpec::Full | SectionSpec::Mime => part(msg, &s.path),
            _ => part(msg, &s.path).and_then(msg_part),
        }
    };
    let Some(p) = target else { return empty };
    match &s.spec {
        SectionSpec::Full if s.path.is_empty() => SectionData::Range(0..msg.raw.len()),
        SectionSpec::Full | SectionSpec::Text => SectionData::Range(p.body.clone()),
        SectionSpec::Header | SectionSpec::Mime => SectionData::Range(p.header.clone()),
        SectionSpec::HeaderFields(names) => filter_fields(msg, p, names, true),
        SectionSpec::HeaderFieldsNot(names) => filter_fields(msg, p, names, false),
    }
}

fn filter_fields(msg: &Message<'_>, p: &Part, names: &[Vec<u8>], keep: bool) -> SectionData {
    let mut out = Vec::new();
    for f in fields(msg.raw, p.header.clone()) {
        let listed = names.iter().any(|n| n.eq_ignore_ascii_case(f.name));
        if listed == keep {
            out.extend_from_slice(&msg.raw[f.range.0..f.range.1]);
            if !out.ends_with(b"\n") {
                out.extend_from_slice(b"\r\n");
            }
        }
    }
    // The blank line ends the result when the header had one, or when fields were copied.
    let had_blank =
        msg.raw[p.header.clone()].ends_with(b"\n\r\n") || msg.raw[p.header.clone()] == *b"\r\n";
    if had_blank || !out.is_empty() {
        out.extend_from_slice(b"\r\n");
    }
    SectionData::Owned(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::imap::encode::bodystructure::write_structure;
    use crate::imap::encode::envelope::write_envelope;
    use crate::mime::parse;
    use crate::mime::samples::{self, MULTI, PLAIN};

    fn sec(raw: &[u8], path: &[u32], spec: SectionSpec) -> String {
        let m = parse(raw);
        let d = section_data(
            &m,
            &Section {
                path: path.to_vec(),
                spec,
            },
        );
        String::from_utf8(d.bytes(raw).to_vec()).unwrap()
    }

    #[test]
    fn multipart_ranges_and_sections() {
        assert_eq!(sec(MULTI, &[1], SectionSpec::Full), "one");
        assert_eq!(
            sec(MULTI, &[1], SectionSpec::Mime),
            "Content-Type: text/plain; charset=utf-8\r\n\r\n"
        );
        assert_eq!(sec(MULTI, &[2, 1], SectionSpec::Full), "inner a");
        assert_eq!(sec(MULTI, &[2, 2], SectionSpec::Full), "<b>b</b>");
        assert_eq!(
            sec(MULTI, &[2], SectionSpec::Full),
            "--YY\r\n\r\ninner a\r\n--YY\r\nContent-Type: text/html\r\n\r\n<b>b</b>\r\n--YY--\r\n"
        );
        assert_eq!(
            sec(MULTI, &[3], SectionSpec::Header),
            "Subject: nested\r\nFrom: n@m\r\n\r\n"
        );
        assert_eq!(sec(MULTI, &[3], SectionSpec::Text), "nested body");
        assert_eq!(sec(MULTI, &[3, 1], SectionSpec::Full), "nested body");
        assert_eq!(sec(MULTI, &[9], SectionSpec::Full), "");
        assert_eq!(
            sec(
                MULTI,
                &[],
                SectionSpec::HeaderFields(vec![b"content-type".to_vec()])
            ),
            "Content-Type: multipart/mixed; boundary=\"XX\"\r\n\r\n"
        );
        assert_eq!(
            sec(
                MULTI,
                &[],
                SectionSpec::HeaderFieldsNot(vec![b"content-type".to_vec()])
            ),
            "From: a@b\r\n\r\n"
        );
        assert_eq!(sec(MULTI, &[], SectionSpec::Full).len(), MULTI.len());
    }

    #[test]
    fn malformed_never_fails() {
        // Missing end boundary: the last part runs to the end.
        let m = b"Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\n\r\nabc\r\n";
        assert_eq!(sec(m, &[1], SectionSpec::Full), "abc\r\n");
        // No blank line: all header.
        let m = b"Subject: x\r\nFrom: y";
        assert_eq!(sec(m, &[], SectionSpec::Text), "");
    }

    /// Every prefix of every sample (truncated mail, half boundaries, half headers): every
    /// section and structure can be written without panicking.
    #[test]
    fn truncations_never_panic() {
        let deep = samples::deep();
        for sample in [PLAIN, MULTI, deep.as_slice()] {
            for n in 0..=sample.len() {
                let raw = &sample[..n];
                let m = parse(raw);
                let mut out = Vec::new();
                write_structure(&m, &mut out, true);
                write_envelope(&m, &mut out);
                for path in [&[][..], &[1], &[2], &[2, 1], &[3, 1], &[1, 1, 1]] {
                    for spec in [SectionSpec::Full, SectionSpec::Header, SectionSpec::Text] {
                        let d = section_data(
                            &m,
                            &Section {
                                path: path.to_vec(),
                                spec,
                            },
                        );
                        assert!(d.bytes(raw).len() <= raw.len() + 2);
                    }
                }
            }
        }
    }
}
