//! Sample messages for the unit tests of the parser and of the IMAP writers on top of it.

pub(crate) const PLAIN: &[u8] = b"From: Alice <alice@example.org>\r\nTo: bob@example.net\r\nSubject: hi\r\nDate: Fri, 27 Nov 2026 10:00:00 +0000\r\nMessage-ID: <1@x>\r\n\r\nhello\r\nworld\r\n";

pub(crate) const MULTI: &[u8] = b"From: a@b\r\nContent-Type: multipart/mixed; boundary=\"XX\"\r\n\r\npreamble\r\n--XX\r\nContent-Type: text/plain; charset=utf-8\r\n\r\none\r\n--XX\r\nContent-Type: multipart/alternative; boundary=YY\r\n\r\n--YY\r\n\r\ninner a\r\n--YY\r\nContent-Type: text/html\r\n\r\n<b>b</b>\r\n--YY--\r\n\r\n--XX\r\nContent-Type: message/rfc822\r\n\r\nSubject: nested\r\nFrom: n@m\r\n\r\nnested body\r\n--XX--\r\nepilogue\r\n";

/// Multiparts nested deeper than [`MAX_DEPTH`](super::parser::MAX_DEPTH).
pub(crate) fn deep() -> Vec<u8> {
    let mut m = Vec::new();
    for i in 0..(super::parser::MAX_DEPTH + 10) {
        m.extend_from_slice(
            format!("Content-Type: multipart/mixed; boundary=b{i}\r\n\r\n--b{i}\r\n").as_bytes(),
        );
    }
    m.extend_from_slice(b"\r\nleaf\r\n");
    m
}
