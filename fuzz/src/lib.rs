//! Helpers the fuzz targets share: chunkings derived from the input, an IMAP syntax check of
//! server output (quoting, literals, parentheses) and decoding it as a client would.

use imap_codec::decode::Decoder;
use imap_codec::ResponseCodec;

/// FNV-1a of the input: the seed for the choices a target makes from its input (chunk
/// sizes, limits) without taking bytes away from the seed corpus' real sessions.
pub fn fnv(data: &[u8]) -> u64 {
    data.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// `data` cut into pieces of 1 to `max` octets, the sizes drawn from `seed` (xorshift).
pub fn chunks(data: &[u8], seed: u64, max: usize) -> Vec<&[u8]> {
    let mut s = seed | 1;
    let mut out = Vec::new();
    let mut rest = data;
    while !rest.is_empty() {
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        let n = (s as usize % max.max(1)) + 1;
        let (a, b) = rest.split_at(n.min(rest.len()));
        out.push(a);
        rest = b;
    }
    out
}

/// Checks server output (whole lines with CRLF, literals included) for what any IMAP client
/// parser relies on: quoted strings closed, holding CHARs but CR and LF (RFC 3501 §9
/// `QUOTED-CHAR`) with only `\"` and `\\` escapes; a literal `{n}` followed by CRLF and n
/// octets; atoms of printable ASCII; parentheses balanced within each response; CRLF only
/// at the end of a response or after a literal announcement.
pub fn check_imap_syntax(out: &[u8]) -> Result<(), String> {
    let mut i = 0;
    let mut depth = 0usize;
    let err = |i: usize, what: &str| -> Result<(), String> {
        Err(format!(
            "{what} at {i} in {:?}",
            String::from_utf8_lossy(&out[i.saturating_sub(40)..(i + 40).min(out.len())])
        ))
    };
    while i < out.len() {
        match out[i] {
            b'"' => {
                let mut j = i + 1;
                loop {
                    match out.get(j) {
                        None => return err(i, "unterminated quoted string"),
                        Some(b'"') => break,
                        Some(b'\\') => match out.get(j + 1) {
                            Some(b'"' | b'\\') => j += 2,
                            _ => return err(j, "bad escape in quoted string"),
                        },
                        Some(0 | b'\r' | b'\n') => return err(j, "NUL/CR/LF in quoted string"),
                        Some(&c) if c >= 0x80 => return err(j, "8-bit octet in quoted string"),
                        Some(_) => j += 1,
                    }
                }
                i = j + 1;
            }
            b'{' => {
                let close = match out[i..].iter().position(|&b| b == b'}') {
                    Some(c) => i + c,
                    None => return err(i, "unterminated literal announcement"),
                };
                let digits = &out[i + 1..close];
                if digits.is_empty() || digits.len() > 10 || !digits.iter().all(u8::is_ascii_digit)
                {
                    return err(i, "bad literal length");
                }
                let n: usize = std::str::from_utf8(digits).unwrap().parse().unwrap();
                if out.get(close + 1..close + 3) != Some(b"\r\n") {
                    return err(close, "literal announcement without CRLF");
                }
                if close + 3 + n > out.len() {
                    return err(close, "literal shorter than announced");
                }
                i = close + 3 + n;
            }
            b'(' => {
                depth += 1;
                i += 1;
            }
            b')' => {
                if depth == 0 {
                    return err(i, "unbalanced ')'");
                }
                depth -= 1;
                i += 1;
            }
            b'\r' => {
                if out.get(i + 1) != Some(&b'\n') {
                    return err(i, "bare CR");
                }
                if depth != 0 {
                    return err(i, "line ends inside parentheses");
                }
                i += 2;
            }
            c if c == b' ' || c.is_ascii_graphic() => i += 1,
            _ => return err(i, "control or 8-bit octet outside a string"),
        }
    }
    if depth != 0 {
        return err(out.len(), "unclosed '('");
    }
    if !out.is_empty() && !out.ends_with(b"\r\n") {
        return err(out.len(), "output does not end with CRLF");
    }
    Ok(())
}

/// Decodes `out` as a sequence of whole responses with imap-codec (what a client library
/// does with it); the error names the first response that does not decode.
pub fn decode_responses(out: &[u8]) -> Result<usize, String> {
    let mut rest = out;
    let mut n = 0;
    while !rest.is_empty() {
        match ResponseCodec::default().decode(rest) {
            Ok((r, _)) => {
                rest = r;
                n += 1;
            }
            Err(e) => {
                return Err(format!(
                    "response {n} does not decode ({e:?}): {:?}",
                    String::from_utf8_lossy(&rest[..rest.len().min(400)])
                ))
            }
        }
    }
    Ok(n)
}

/// Sample messages for the targets that need one (the same as `src/mime/samples.rs`).
pub const PLAIN: &[u8] = b"From: Alice <alice@example.org>\r\nTo: bob@example.net\r\nSubject: hi\r\nDate: Fri, 27 Nov 2026 10:00:00 +0000\r\nMessage-ID: <1@x>\r\n\r\nhello\r\nworld\r\n";
pub const MULTI: &[u8] = b"From: a@b\r\nContent-Type: multipart/mixed; boundary=\"XX\"\r\n\r\npreamble\r\n--XX\r\nContent-Type: text/plain; charset=utf-8\r\n\r\none\r\n--XX\r\nContent-Type: multipart/alternative; boundary=YY\r\n\r\n--YY\r\n\r\ninner a\r\n--YY\r\nContent-Type: text/html\r\n\r\n<b>b</b>\r\n--YY--\r\n\r\n--XX\r\nContent-Type: message/rfc822\r\n\r\nSubject: nested\r\nFrom: n@m\r\n\r\nnested body\r\n--XX--\r\nepilogue\r\n";
pub const ENCODED: &[u8] = b"From: =?UTF-8?B?SsO8cmdlbg==?= <j@example.org>\r\nSubject: =?ISO-8859-1?Q?caf=E9?= au lait\r\nDate: 1 Jan 2020 00:00:00 -0500\r\nContent-Type: text/plain; charset=iso-8859-1\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\nd=E9j=E0 vu\r\n";
