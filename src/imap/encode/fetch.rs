//! The FETCH response writer (RFC 3501 §7.4.2): `* n FETCH (...)` with its items in order,
//! written straight into the driver's [`Output`] as typed pieces.
//!
//! A literal goes out as a reply line up to and including its `{n}` and then its data as
//! content (Dovecot's imap-fetch likewise writes the literal prefix and then streams the
//! body): a `BODY[]` is the store's buffer itself, a part or partial range of it is
//! referenced ([`Output::content_range`]), never copied; the driver writes large content from
//! its own buffer and the protocol log summarises it at level 4 (ARCHITECTURE.md,
//! "Protocol log").

use std::sync::Arc;

use super::super::binary::Binary;
use super::super::section::{section_data, Section, SectionData};
use crate::mime::Message;
use crate::session::Output;

/// Writes one `* n FETCH (...)` response into an [`Output`].
#[derive(Debug)]
pub struct FetchWriter<'a> {
    out: &'a mut Output,
    /// The message bytes the `Message`s given to [`FetchWriter::section`] were parsed from.
    raw: &'a Arc<[u8]>,
    /// The reply line being built (CRLF not included).
    line: Vec<u8>,
    first: bool,
}

impl<'a> FetchWriter<'a> {
    /// Starts `* <seq> FETCH (`; section data will be taken from `raw`.
    pub fn new(out: &'a mut Output, raw: &'a Arc<[u8]>, seq: u32) -> FetchWriter<'a> {
        FetchWriter {
            out,
            raw,
            line: format!("* {seq} FETCH (").into_bytes(),
            first: true,
        }
    }

    fn sep(&mut self) {
        if !self.first {
            self.line.push(b' ');
        }
        self.first = false;
    }

    /// Appends encoded IMAP text (a value as [`super::quote`] writes it). A literal in it
    /// (`{n}` CRLF data) ends the line there and its data goes out as content, so every
    /// literal of the response is a content piece whichever item it is in.
    fn encoded(&mut self, mut v: &[u8]) {
        while let Some(k) = memchr::memmem::find(v, b"\r\n") {
            self.line.extend_from_slice(&v[..k]);
            v = &v[k + 2..];
            let literal = literal_len(&self.line);
            self.out.reply(std::mem::take(&mut self.line));
            if let Some(n) = literal.filter(|&n| n <= v.len()) {
                self.out.content(Arc::from(&v[..n]));
                v = &v[n..];
            }
        }
        self.line.extend_from_slice(v);
    }

    /// Appends `NAME value` where `value` is already encoded (e.g. `FLAGS (\Seen)`, `UID 4`,
    /// a cached ENVELOPE).
    pub fn item(&mut self, name: &str, encoded_value: &[u8]) {
        self.sep();
        self.line.extend_from_slice(name.as_bytes());
        self.line.push(b' ');
        self.encoded(encoded_value);
    }

    /// Appends `ENVELOPE (...)` (tests; the FETCH handler writes cached values with `item`).
    #[cfg(any(test, feature = "test-support"))]
    pub fn envelope(&mut self, msg: &Message<'_>) {
        let mut v = Vec::new();
        super::envelope::write_envelope(msg, &mut v);
        self.item("ENVELOPE", &v);
    }

    /// Appends `BODYSTRUCTURE (...)` (extensible) or `BODY (...)` (tests, as `envelope`).
    #[cfg(any(test, feature = "test-support"))]
    pub fn structure(&mut self, msg: &Message<'_>, extensible: bool) {
        let mut v = Vec::new();
        super::bodystructure::write_structure(msg, &mut v, extensible);
        self.item(if extensible { "BODYSTRUCTURE" } else { "BODY" }, &v);
    }

    /// Appends `BODY[<section>]<origin> {n}` + data, for `BODY[...]`/`BODY.PEEK[...]` with
    /// optional `<origin.count>`. Contiguous sections are referenced, not copied.
    pub fn section(&mut self, msg: &Message<'_>, section: &Section, partial: Option<(u32, u32)>) {
        let name = section.item_name(partial.map(|p| p.0));
        self.section_named(&name, msg, section, partial);
    }

    /// Appends `<name> NIL`: a section of a message that no longer exists (the name
    /// written as [`FetchWriter::section_named`] writes it).
    pub fn nil_named(&mut self, name: &[u8]) {
        self.sep();
        self.encoded(name);
        self.line.extend_from_slice(b" NIL");
    }

    /// Like [`FetchWriter::section`] with an explicit item name (`RFC822`, `RFC822.HEADER`,
    /// `RFC822.TEXT`), which must already include any `<origin>`.
    pub fn section_named(
        &mut self,
        name: &[u8],
        msg: &Message<'_>,
        section: &Section,
        partial: Option<(u32, u32)>,
    ) {
        debug_assert!(std::ptr::eq(msg.raw, &self.raw[..]));
        self.literal(name, section_data(msg, section), partial, false);
    }

    /// Appends `BINARY[<part>]<origin> {n}` (or `~{n}`, RFC 3516 literal8) + data: the
    /// [`super::super::binary`] content of a part, `<origin.count>` applied to it.
    pub fn binary(&mut self, path: &[u32], data: &Binary, partial: Option<(u32, u32)>) {
        let parts: Vec<String> = path.iter().map(u32::to_string).collect();
        let mut name = format!("BINARY[{}]", parts.join("."));
        if let Some((origin, _)) = partial {
            name.push_str(&format!("<{origin}>"));
        }
        self.literal(name.as_bytes(), data.data.clone(), partial, data.literal8);
    }

    /// Appends `BINARY.SIZE[<part>] n` (RFC 3516 §4.2).
    pub fn binary_size(&mut self, path: &[u32], data: &Binary) {
        let parts: Vec<String> = path.iter().map(u32::to_string).collect();
        let name = format!("BINARY.SIZE[{}]", parts.join("."));
        self.item(&name, data.size().to_string().as_bytes());
    }

    /// `name {n}` (`~{n}` for literal8) and the data, `partial` applied.
    fn literal(
        &mut self,
        name: &[u8],
        data: SectionData,
        partial: Option<(u32, u32)>,
        literal8: bool,
    ) {
        self.sep();
        // Through `encoded` like any text: a header field name holding CRLF is written as a
        // literal, whose data goes out as content.
        self.encoded(name);
        let (range_start, range_end, owned) = match data {
            SectionData::Range(r) => (r.start, r.end, None),
            SectionData::Owned(v) => (0, v.len(), Some(v)),
        };
        let (start, end) = match partial {
            Some((origin, count)) => {
                let len = range_end - range_start;
                let s = (origin as usize).min(len);
                let e = s.saturating_add(count as usize).min(len);
                (range_start + s, range_start + e)
            }
            None => (range_start, range_end),
        };
        let tilde = if literal8 { "~" } else { "" };
        self.line
            .extend_from_slice(format!(" {tilde}{{{}}}", end - start).as_bytes());
        self.out.reply(std::mem::take(&mut self.line));
        match owned {
            Some(v) => self.out.content(Arc::from(&v[start..end])),
            None => {
                if start == end {
                    // An empty range of the message has always been sent as two empty
                    // content pieces (level 4 logs `<literal 0 octets>` twice); kept so
                    // the protocol log stays as it was.
                    self.out.content(Arc::from(&[][..]));
                }
                if start == 0 && end == self.raw.len() {
                    self.out.content(self.raw.clone());
                } else {
                    self.out.content_range(self.raw.clone(), start..end);
                }
            }
        }
    }

    /// Ends the response with `)`.
    pub fn finish(mut self) {
        self.line.push(b')');
        self.out.reply(self.line);
    }
}

/// The `n` of a literal prefix `{n}` ending `line`, as [`super::quote`] writes them.
fn literal_len(line: &[u8]) -> Option<usize> {
    let digits = &line[line.iter().rposition(|&b| b == b'{')? + 1..];
    let digits = digits.strip_suffix(b"}")?;
    if digits.is_empty() || digits.len() > 20 || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    Some(digits.iter().fold(0usize, |acc, &d| {
        acc.saturating_mul(10).saturating_add(usize::from(d - b'0'))
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::session::Piece;
    use crate::imap::section::SectionSpec;
    use crate::mime::samples::{MULTI, PLAIN};
    use crate::mime::{parse, unparsed};
    use crate::protolog::LineKind;

    /// One FETCH item, as `cmd/fetch.rs` writes them.
    #[derive(Debug, Clone)]
    enum Item {
        Uid,
        /// An encoded value (a cached ENVELOPE/BODYSTRUCTURE, FLAGS).
        Value(&'static str, Vec<u8>),
        Envelope,
        Structure(bool),
        Body(Section, Option<(u32, u32)>),
        Named(&'static str, Section),
    }

    fn sec(path: &[u32], spec: SectionSpec) -> Section {
        Section {
            path: path.to_vec(),
            spec,
        }
    }

    /// `cmd/fetch.rs` parses the MIME tree only when an item needs it.
    fn whole_only(items: &[Item]) -> bool {
        items.iter().all(|i| match i {
            Item::Body(s, _) | Item::Named(_, s) => *s == Section::full(),
            Item::Uid | Item::Value(..) => true,
            _ => false,
        })
    }

    fn typed(raw: &Arc<[u8]>, items: &[Item]) -> Output {
        let msg = if whole_only(items) {
            unparsed(raw)
        } else {
            parse(raw)
        };
        let mut out = Output::default();
        let mut w = FetchWriter::new(&mut out, raw, 7);
        for i in items {
            match i {
                Item::Uid => w.item("UID", b"42"),
                Item::Value(n, v) => w.item(n, v),
                Item::Envelope => w.envelope(&msg),
                Item::Structure(ext) => w.structure(&msg, *ext),
                Item::Body(s, p) => w.section(&msg, s, *p),
                Item::Named(n, s) => w.section_named(n.as_bytes(), &msg, s, None),
            }
        }
        w.finish();
        out
    }

    /// What the driver writes and logs for each piece: lines with their kind, content as
    /// its bytes (a range of a buffer is content of those bytes).
    fn logged(out: &Output) -> Vec<(Option<LineKind>, Vec<u8>)> {
        out.pieces
            .iter()
            .map(|p| match p {
                Piece::Line(k, l) => (Some(*k), l.clone()),
                Piece::Content(c) => (None, c.to_vec()),
                Piece::ContentRange(c, r) => (None, c[r.clone()].to_vec()),
                Piece::Info(t) => panic!("info {t}"),
            })
            .collect()
    }

    /// Messages whose ENVELOPE and BODYSTRUCTURE hold literals (8-bit and CRLF-folded
    /// subjects, a description with many quotes), plus the empty message.
    fn messages() -> Vec<Arc<[u8]>> {
        let literal_env: &[u8] = b"From: \"J\xc3\xb6rg\" <j@x>\r\nSubject: caf\xc3\xa9\r\n \tnext\r\nTo: \"a\\\\\\\\b\" <b@y>\r\nContent-Type: multipart/mixed; boundary=q\r\n\r\n--q\r\nContent-Description: \"\"\"\"\"\"\r\nContent-Type: text/plain; name=\"\xc3\xa9.txt\"\r\n\r\nx\r\n--q\r\nContent-Type: message/rfc822\r\n\r\nSubject: \xff\r\n\r\ninner\r\n--q--\r\n";
        vec![
            Arc::from(PLAIN),
            Arc::from(MULTI),
            Arc::from(literal_env),
            Arc::from(&b""[..]),
            Arc::from(&b"no header end"[..]),
        ]
    }

    fn shapes() -> Vec<Vec<Item>> {
        use Item::*;
        use SectionSpec as S;
        let fields = |l: &[&str]| l.iter().map(|n| n.as_bytes().to_vec()).collect::<Vec<_>>();
        let flags = Value("FLAGS", b"(\\Seen $Forwarded)".to_vec());
        let cached_env = Value(
            "ENVELOPE",
            b"(NIL {5}\r\na\r\nbc NIL NIL NIL NIL NIL NIL NIL NIL)".to_vec(),
        );
        vec![
            // Whole message, alone and among other items.
            vec![Body(Section::full(), None)],
            vec![Uid, flags.clone(), Body(Section::full(), None)],
            vec![Uid, Named("RFC822", Section::full()), flags.clone()],
            // Several literals in one response.
            vec![
                Uid,
                Body(Section::full(), None),
                Body(sec(&[], S::Header), None),
                Body(sec(&[], S::Text), None),
                Body(sec(&[1], S::Full), None),
                Body(sec(&[1], S::Mime), None),
                Body(sec(&[2, 1], S::Full), None),
                Body(sec(&[3], S::Header), None),
                flags.clone(),
            ],
            // Partial <o.c>: inside, at the end, past the end (an empty literal), whole.
            vec![
                Body(Section::full(), Some((0, 10))),
                Body(Section::full(), Some((10, 4))),
                Body(Section::full(), Some((100_000, 5))),
                Body(Section::full(), Some((0, u32::MAX))),
            ],
            vec![
                Body(sec(&[1], S::Full), Some((1, 2))),
                Body(sec(&[], S::Text), Some((3, 1_000))),
                Body(sec(&[], S::HeaderFields(fields(&["from"]))), Some((2, 5))),
            ],
            // Empty literals: a missing part (owned), an empty range.
            vec![
                Body(sec(&[9], S::Full), None),
                Body(sec(&[9, 9], S::Text), None),
                Body(sec(&[], S::HeaderFields(fields(&["x-absent"]))), None),
            ],
            // HEADER.FIELDS (owned data), HEADER.FIELDS.NOT, RFC822.HEADER / TEXT.
            vec![
                Uid,
                Body(
                    sec(&[], S::HeaderFields(fields(&["from", "subject", "to"]))),
                    None,
                ),
                Body(sec(&[], S::HeaderFieldsNot(fields(&["subject"]))), None),
                Body(sec(&[3], S::HeaderFields(fields(&["subject"]))), None),
                Named("RFC822.HEADER", sec(&[], S::Header)),
                Named("RFC822.TEXT", sec(&[], S::Text)),
            ],
            // ENVELOPE / BODYSTRUCTURE / BODY (with their literals), cached values.
            vec![
                Uid,
                flags.clone(),
                Envelope,
                Structure(true),
                Structure(false),
            ],
            vec![cached_env.clone(), Body(Section::full(), None), cached_env],
            // A header field name given as a literal holding CRLF.
            vec![Body(
                sec(&[], S::HeaderFields(vec![b"a\r\nb".to_vec()])),
                None,
            )],
        ]
    }

    /// Every literal's `{n}` ends a reply line and is followed by its n octets as one
    /// content piece (an empty range of the message: two empty pieces, see `recorded_pieces`);
    /// no other content, and the wire bytes are the lines with CRLF and the content.
    #[test]
    fn every_literal_is_announced() {
        for raw in messages() {
            for items in shapes() {
                let out = typed(&raw, &items);
                let pieces = logged(&out);
                let mut i = 0;
                let mut wire = Vec::new();
                while i < pieces.len() {
                    let (kind, line) = &pieces[i];
                    assert_eq!(*kind, Some(LineKind::Reply), "{items:?}: {pieces:?}");
                    wire.extend_from_slice(line);
                    wire.extend_from_slice(b"\r\n");
                    i += 1;
                    if let Some(n) = literal_len(line) {
                        let (kind, data) = &pieces[i];
                        assert!(kind.is_none() && data.len() == n, "{items:?}: {pieces:?}");
                        wire.extend_from_slice(data);
                        i += 1;
                        if n == 0 && matches!(pieces.get(i), Some((None, d)) if d.is_empty()) {
                            i += 1;
                        }
                    }
                }
                assert!(pieces.last().unwrap().1.ends_with(b")"));
                assert_eq!(out.encode(), wire);
            }
        }
    }

    /// The pieces as the protocol log sees them: `L` reply lines, `C` content.
    fn render(out: &Output) -> String {
        logged(out)
            .iter()
            .map(|(kind, b)| {
                let k = match kind {
                    Some(LineKind::Reply) => "L",
                    None => "C",
                    Some(k) => panic!("{k:?}"),
                };
                format!("{k} {}\n", b.escape_ascii())
            })
            .collect()
    }

    /// Pieces recorded from the writer before typed output (`Chunk`s re-scanned by
    /// `emit_chunks`): whole message, several literals in one response, partial `<o.c>` in
    /// and past the end (`{0}` of a range: two empty content pieces, as always), owned
    /// HEADER.FIELDS data and an owned empty literal, ENVELOPE literals.
    #[test]
    fn recorded_pieces() {
        use Item::*;
        use SectionSpec as S;
        let raw: Arc<[u8]> = Arc::from(
            &b"From: \"J\xc3\xb6rg\" <j@x>\r\nSubject: hi\r\nContent-Type: multipart/mixed; boundary=q\r\n\r\n--q\r\n\r\none\r\n--q\r\nContent-Type: text/plain\r\n\r\ntwo\r\n--q--\r\n"[..],
        );
        let subject = vec![b"subject".to_vec()];
        let cases: Vec<(Vec<Item>, &str)> = vec![
            (
                vec![
                    Uid,
                    Value("FLAGS", b"(\\Seen)".to_vec()),
                    Body(Section::full(), None),
                ],
                r#"L * 7 FETCH (UID 42 FLAGS (\\Seen) BODY[] {136}
C From: \"J\xc3\xb6rg\" <j@x>\r\nSubject: hi\r\nContent-Type: multipart/mixed; boundary=q\r\n\r\n--q\r\n\r\none\r\n--q\r\nContent-Type: text/plain\r\n\r\ntwo\r\n--q--\r\n
L )
"#,
            ),
            (
                vec![
                    Body(sec(&[], S::Header), None),
                    Body(sec(&[1], S::Full), None),
                    Body(sec(&[2], S::Mime), None),
                ],
                r#"L * 7 FETCH (BODY[HEADER] {79}
C From: \"J\xc3\xb6rg\" <j@x>\r\nSubject: hi\r\nContent-Type: multipart/mixed; boundary=q\r\n\r\n
L  BODY[1] {3}
C one
L  BODY[2.MIME] {28}
C Content-Type: text/plain\r\n\r\n
L )
"#,
            ),
            (
                vec![
                    Body(Section::full(), Some((2, 5))),
                    Body(Section::full(), Some((1000, 5))),
                ],
                r#"L * 7 FETCH (BODY[]<2> {5}
C om: \"
L  BODY[]<1000> {0}
C 
C 
L )
"#,
            ),
            (
                vec![
                    Body(sec(&[], S::HeaderFields(subject)), None),
                    Body(sec(&[9], S::Full), None),
                ],
                r#"L * 7 FETCH (BODY[HEADER.FIELDS (SUBJECT)] {15}
C Subject: hi\r\n\r\n
L  BODY[9] {0}
C 
L )
"#,
            ),
            (
                vec![Envelope, Structure(true)],
                r#"L * 7 FETCH (ENVELOPE (NIL \"hi\" (({5}
C J\xc3\xb6rg
L  NIL \"j\" \"x\")) (({5}
C J\xc3\xb6rg
L  NIL \"j\" \"x\")) (({5}
C J\xc3\xb6rg
L  NIL \"j\" \"x\")) NIL NIL NIL NIL NIL) BODYSTRUCTURE ((\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" 3 0 NIL NIL NIL NIL)(\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" 3 0 NIL NIL NIL NIL) \"mixed\" (\"boundary\" \"q\") NIL NIL NIL))
"#,
            ),
        ];
        for (items, expected) in cases {
            assert_eq!(render(&typed(&raw, &items)), expected, "{items:?}");
        }
    }

    #[test]
    fn sections_reference_the_message_instead_of_copying() {
        let raw: Arc<[u8]> = Arc::from(&b"Subject: x\r\n\r\nbody\r\n"[..]);
        let msg = unparsed(&raw);
        let mut out = Output::default();
        let mut w = FetchWriter::new(&mut out, &raw, 3);
        w.item("UID", b"9");
        w.section(&msg, &Section::full(), None);
        w.section(&msg, &Section::full(), Some((10, 4)));
        w.finish();
        assert!(matches!(&out.pieces[1], Piece::Content(c) if Arc::ptr_eq(c, &raw)));
        assert!(
            matches!(&out.pieces[3], Piece::ContentRange(c, r) if Arc::ptr_eq(c, &raw) && *r == (10..14))
        );
        assert_eq!(
            out.encode(),
            b"* 3 FETCH (UID 9 BODY[] {20}\r\nSubject: x\r\n\r\nbody\r\n BODY[]<10> {4}\r\n\r\n\r\n)\r\n"
        );
    }
}
