//! BINARY content (RFC 3516): what `FETCH BINARY[section]` and `BINARY.SIZE[section]`
//! return — a part's body with its Content-Transfer-Encoding undone.
//!
//! As Dovecot 2.3 answers (checked against it, `tests/imap_extensions.rs`):
//! * a leaf part encoded `base64` or `quoted-printable` is decoded; `7bit`, `8bit`,
//!   `binary` (or none) are returned as they are; any other encoding is
//!   `NO [UNKNOWN-CTE]` (§4.3), and data that does not decode is `NO [PARSE]`;
//! * a message/rfc822 or multipart part, and `BINARY[]` (the whole message), are rebuilt
//!   with every leaf below them decoded and its `Content-Transfer-Encoding` field rewritten
//!   to `binary` — untouched (a range of the message, not a copy) when nothing needed
//!   decoding;
//! * a part that does not exist is empty;
//! * the literal is `~{n}` (literal8) when anything was decoded or the data holds a NUL,
//!   else `{n}` (Dovecot marks all decoded content as possibly binary).
//!
//! Parts are numbered as in BODY[] ([`super::section::part`]). The decoders are
//! mail-parser's, already used for SEARCH.

use crate::mime::{fields, header_value, Kind, Message, Part};

use super::section::{part, SectionData};

/// Why BINARY content cannot be given.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BinaryError {
    /// A transfer encoding RFC 2045 does not define (RFC 3516 §4.3 `UNKNOWN-CTE`).
    UnknownCte,
    /// base64 or quoted-printable data that does not decode.
    Invalid,
}

impl BinaryError {
    /// The tagged `NO` text, in Dovecot's words.
    pub fn reply_text(self) -> &'static str {
        match self {
            BinaryError::UnknownCte => "[UNKNOWN-CTE] Unknown Content-Transfer-Encoding",
            BinaryError::Invalid => "[PARSE] Invalid data in MIME part",
        }
    }
}

/// BINARY content of a section.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Binary {
    pub data: SectionData,
    /// Sent as literal8 (`~{n}`).
    pub literal8: bool,
}

impl Binary {
    /// The content's length (`BINARY.SIZE`).
    pub fn size(&self) -> usize {
        match &self.data {
            SectionData::Range(r) => r.len(),
            SectionData::Owned(v) => v.len(),
        }
    }
}

/// The BINARY content of `path` (empty: the whole message) in `msg`.
pub fn binary_data(msg: &Message<'_>, path: &[u32]) -> Result<Binary, BinaryError> {
    let raw = msg.raw;
    let (data, decoded) = if path.is_empty() {
        let mut out = Vec::new();
        if rebuild(raw, &msg.root, &mut out)? {
            copy(raw, msg.root.body.end, raw.len(), &mut out);
            (SectionData::Owned(out), true)
        } else {
            (SectionData::Range(0..raw.len()), false)
        }
    } else {
        match part(msg, path) {
            None => (SectionData::Owned(Vec::new()), false),
            Some(p) => match &p.kind {
                Kind::Leaf => match leaf(raw, p)? {
                    Some(v) => (SectionData::Owned(v), true),
                    None => (SectionData::Range(p.body.clone()), false),
                },
                Kind::Message(inner) => {
                    let mut out = Vec::new();
                    if rebuild(raw, inner, &mut out)? {
                        (SectionData::Owned(out), true)
                    } else {
                        (SectionData::Range(p.body.clone()), false)
                    }
                }
                Kind::Multipart(children) => {
                    let mut out = Vec::new();
                    if rebuild_children(raw, p, children, &mut out)? {
                        (SectionData::Owned(out), true)
                    } else {
                        (SectionData::Range(p.body.clone()), false)
                    }
                }
            },
        }
    };
    let has_nul = match &data {
        SectionData::Range(r) => memchr::memchr(0, &raw[r.clone()]).is_some(),
        SectionData::Owned(v) => memchr::memchr(0, v).is_some(),
    };
    Ok(Binary {
        data,
        literal8: decoded || has_nul,
    })
}

fn copy(raw: &[u8], from: usize, to: usize, out: &mut Vec<u8>) {
    if from < to && to <= raw.len() {
        out.extend_from_slice(&raw[from..to]);
    }
}

/// A leaf's body decoded, or `None` when its encoding is an identity (7bit, 8bit, binary).
fn leaf(raw: &[u8], p: &Part) -> Result<Option<Vec<u8>>, BinaryError> {
    let Some(cte) = header_value(raw, p.header.clone(), "Content-Transfer-Encoding") else {
        return Ok(None);
    };
    let cte = cte.trim_ascii();
    let body = &raw[p.body.clone()];
    if cte.is_empty()
        || cte.eq_ignore_ascii_case(b"7bit")
        || cte.eq_ignore_ascii_case(b"8bit")
        || cte.eq_ignore_ascii_case(b"binary")
    {
        Ok(None)
    } else if cte.eq_ignore_ascii_case(b"base64") {
        decode_base64(body).map(Some)
    } else if cte.eq_ignore_ascii_case(b"quoted-printable") {
        mail_parser::decoders::quoted_printable::quoted_printable_decode(body)
            .map(Some)
            .ok_or(BinaryError::Invalid)
    } else {
        Err(BinaryError::UnknownCte)
    }
}

/// base64 with line breaks and other whitespace ignored; anything else outside the
/// alphabet is invalid.
fn decode_base64(body: &[u8]) -> Result<Vec<u8>, BinaryError> {
    let clean: Vec<u8> = body
        .iter()
        .copied()
        .filter(|b| !b.is_ascii_whitespace())
        .collect();
    if clean.is_empty() {
        return Ok(Vec::new());
    }
    use base64::Engine;
    let engine = base64::engine::GeneralPurpose::new(
        &base64::alphabet::STANDARD,
        base64::engine::GeneralPurposeConfig::new()
            .with_decode_padding_mode(base64::engine::DecodePaddingMode::Indifferent)
            .with_decode_allow_trailing_bits(true),
    );
    engine.decode(&clean).map_err(|_| BinaryError::Invalid)
}

/// Writes part `p` (header and body) with its leaves decoded; whether anything was.
fn rebuild(raw: &[u8], p: &Part, out: &mut Vec<u8>) -> Result<bool, BinaryError> {
    match &p.kind {
        Kind::Leaf => match leaf(raw, p)? {
            None => {
                copy(raw, p.header.start, p.body.end, out);
                Ok(false)
            }
            Some(decoded) => {
                binary_header(raw, p, out);
                copy(raw, p.header.end, p.body.start, out);
                out.extend_from_slice(&decoded);
                Ok(true)
            }
        },
        Kind::Message(inner) => {
            copy(raw, p.header.start, p.body.start, out);
            copy(raw, p.body.start, inner.header.start, out);
            let any = rebuild(raw, inner, out)?;
            copy(raw, inner.body.end, p.body.end, out);
            Ok(any)
        }
        Kind::Multipart(children) => {
            copy(raw, p.header.start, p.body.start, out);
            rebuild_children(raw, p, children, out)
        }
    }
}

/// A multipart's body: the delimiters and preamble as they are, each child rebuilt.
fn rebuild_children(
    raw: &[u8],
    p: &Part,
    children: &[Part],
    out: &mut Vec<u8>,
) -> Result<bool, BinaryError> {
    let mut pos = p.body.start;
    let mut any = false;
    for c in children {
        copy(raw, pos, c.header.start, out);
        any |= rebuild(raw, c, out)?;
        pos = pos.max(c.body.end);
    }
    copy(raw, pos, p.body.end, out);
    Ok(any)
}

/// `p`'s header with `Content-Transfer-Encoding: binary` in place of the encoding it had.
fn binary_header(raw: &[u8], p: &Part, out: &mut Vec<u8>) {
    let mut end = p.header.start;
    for f in fields(raw, p.header.clone()) {
        if f.name.eq_ignore_ascii_case(b"Content-Transfer-Encoding") {
            out.extend_from_slice(b"Content-Transfer-Encoding: binary\r\n");
        } else {
            out.extend_from_slice(&raw[f.range.0..f.range.1]);
        }
        end = f.range.1;
    }
    // The blank line (or whatever ends the header) as it was.
    copy(raw, end, p.header.end, out);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mime::parse;

    fn bin(raw: &[u8], path: &[u32]) -> Result<(Vec<u8>, bool), BinaryError> {
        let m = parse(raw);
        let b = binary_data(&m, path)?;
        let bytes = match &b.data {
            SectionData::Range(r) => raw[r.clone()].to_vec(),
            SectionData::Owned(v) => v.clone(),
        };
        assert_eq!(bytes.len(), b.size());
        Ok((bytes, b.literal8))
    }

    const B64: &[u8] = b"Subject: one\r\nContent-Type: application/octet-stream\r\nContent-Transfer-Encoding: base64\r\n\r\nYmluAGFyeQH/IGRhdGE=\r\n";

    #[test]
    fn leaves_are_decoded_as_dovecot_does() {
        assert_eq!(bin(B64, &[1]).unwrap(), (b"bin\0ary\x01\xff data".to_vec(), true));
        assert_eq!(
            bin(B64, &[]).unwrap(),
            (
                b"Subject: one\r\nContent-Type: application/octet-stream\r\nContent-Transfer-Encoding: binary\r\n\r\nbin\0ary\x01\xff data".to_vec(),
                true
            )
        );
        let qp = b"Subject: four\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\nabc=3D=\r\ndef\r\n";
        assert_eq!(bin(qp, &[1]).unwrap(), (b"abc=def\r\n".to_vec(), true));
        let plain = b"Subject: p\r\n\r\nplain\r\n";
        assert_eq!(bin(plain, &[1]).unwrap(), (b"plain\r\n".to_vec(), false));
        assert_eq!(bin(plain, &[]).unwrap(), (plain.to_vec(), false));
        let nul = b"Subject: e\r\nContent-Transfer-Encoding: 8bit\r\n\r\nnul\0here\r\n";
        assert_eq!(bin(nul, &[1]).unwrap(), (b"nul\0here\r\n".to_vec(), true));
        assert_eq!(bin(plain, &[2]).unwrap(), (Vec::new(), false));
    }

    #[test]
    fn containers_are_rebuilt_with_their_leaves_decoded() {
        let m = b"Subject: m\r\nContent-Type: message/rfc822\r\n\r\nSubject: in\r\nContent-Transfer-Encoding: base64\r\n\r\naGk=\r\n";
        assert_eq!(
            bin(m, &[1]).unwrap().0,
            b"Subject: in\r\nContent-Transfer-Encoding: binary\r\n\r\nhi"
        );
        assert_eq!(bin(m, &[1, 1]).unwrap(), (b"hi".to_vec(), true));
        let multi = b"Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\nContent-Transfer-Encoding: base64\r\n\r\naGk=\r\n--b\r\n\r\nplain\r\n--b--\r\n";
        assert_eq!(
            bin(multi, &[]).unwrap().0,
            b"Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\nContent-Transfer-Encoding: binary\r\n\r\nhi\r\n--b\r\n\r\nplain\r\n--b--\r\n"
        );
        assert_eq!(bin(multi, &[2]).unwrap(), (b"plain".to_vec(), false));
    }

    #[test]
    fn unknown_and_invalid_encodings_are_errors() {
        let uu = b"Subject: u\r\nContent-Transfer-Encoding: x-uuencode\r\n\r\nbegin\r\n";
        assert_eq!(bin(uu, &[1]), Err(BinaryError::UnknownCte));
        assert_eq!(bin(uu, &[]), Err(BinaryError::UnknownCte));
        let bad = b"Subject: bad\r\nContent-Transfer-Encoding: base64\r\n\r\n@@@@ not b64!\r\n";
        assert_eq!(bin(bad, &[1]), Err(BinaryError::Invalid));
    }

    /// Every prefix of the samples: BINARY never panics and never claims more than it has.
    #[test]
    fn truncations_never_panic() {
        for sample in [B64, crate::mime::samples::MULTI, crate::mime::samples::PLAIN] {
            for n in 0..=sample.len() {
                let m = parse(&sample[..n]);
                for path in [&[][..], &[1], &[2], &[2, 1], &[3, 1]] {
                    let _ = binary_data(&m, path);
                }
            }
        }
    }
}
