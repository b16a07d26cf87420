//! The FETCH response writer (RFC 3501 §7.4.2): `* n FETCH (...)` with its items in order.
//!
//! Large `BODY[]` items: [`FetchWriter`] writes the item prefix (`BODY[] {n}\r\n`) separately
//! from the data so the driver can send the message bytes straight from the store's buffer
//! without building a second full copy.

use super::super::section::{section_data, Section, SectionData};
use super::bodystructure::write_structure;
use super::envelope::write_envelope;
use crate::mime::Message;

/// One piece of a FETCH response, in order: owned bytes, or a borrowed range of the message
/// (sent from the store's buffer as is).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Chunk {
    Bytes(Vec<u8>),
    /// `message[start..end]`, already announced by a preceding literal prefix.
    Message {
        start: usize,
        end: usize,
    },
}

/// Builds one `* n FETCH (...)` response as a list of chunks.
#[derive(Debug, Default)]
pub struct FetchWriter {
    chunks: Vec<Chunk>,
    cur: Vec<u8>,
    first: bool,
}

impl FetchWriter {
    /// Starts `* <seq> FETCH (`.
    pub fn new(seq: u32) -> FetchWriter {
        FetchWriter {
            chunks: Vec::new(),
            cur: format!("* {seq} FETCH (").into_bytes(),
            first: true,
        }
    }

    fn sep(&mut self) {
        if !self.first {
            self.cur.push(b' ');
        }
        self.first = false;
    }

    /// Appends `NAME value` where `value` is already encoded (e.g. `FLAGS (\Seen)`, `UID 4`).
    pub fn item(&mut self, name: &str, encoded_value: &[u8]) {
        self.sep();
        self.cur.extend_from_slice(name.as_bytes());
        self.cur.push(b' ');
        self.cur.extend_from_slice(encoded_value);
    }

    /// Appends `ENVELOPE (...)`.
    pub fn envelope(&mut self, msg: &Message<'_>) {
        self.sep();
        self.cur.extend_from_slice(b"ENVELOPE ");
        write_envelope(msg, &mut self.cur);
    }

    /// Appends `BODYSTRUCTURE (...)` (extensible) or `BODY (...)`.
    pub fn structure(&mut self, msg: &Message<'_>, extensible: bool) {
        self.sep();
        self.cur.extend_from_slice(if extensible {
            b"BODYSTRUCTURE "
        } else {
            b"BODY "
        });
        write_structure(msg, &mut self.cur, extensible);
    }

    /// Appends `BODY[<section>]<origin> {n}\r\n` + data, for `BODY[...]`/`BODY.PEEK[...]`
    /// with optional `<origin.count>`. Contiguous sections are referenced, not copied.
    pub fn section(&mut self, msg: &Message<'_>, section: &Section, partial: Option<(u32, u32)>) {
        let name = section.item_name(partial.map(|p| p.0));
        self.section_named(&name, msg, section, partial);
    }

    /// Like [`FetchWriter::section`] with an explicit item name (`RFC822`, `RFC822.HEADER`,
    /// `RFC822.TEXT`), which must already include any `<origin>`.
    pub fn section_named(
        &mut self,
        name: &str,
        msg: &Message<'_>,
        section: &Section,
        partial: Option<(u32, u32)>,
    ) {
        self.sep();
        self.cur.extend_from_slice(name.as_bytes());
        let data = section_data(msg, section);
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
        self.cur
            .extend_from_slice(format!(" {{{}}}\r\n", end - start).as_bytes());
        match owned {
            Some(v) => self.cur.extend_from_slice(&v[start..end]),
            None => {
                self.chunks
                    .push(Chunk::Bytes(std::mem::take(&mut self.cur)));
                self.chunks.push(Chunk::Message { start, end });
            }
        }
    }

    /// Ends the response with `)\r\n` and returns its chunks.
    pub fn finish(mut self) -> Vec<Chunk> {
        self.cur.extend_from_slice(b")\r\n");
        self.chunks.push(Chunk::Bytes(self.cur));
        self.chunks
            .retain(|c| !matches!(c, Chunk::Bytes(b) if b.is_empty()));
        self.chunks
    }
}

/// Joins chunks into one buffer (tests, small responses).
pub fn flatten(chunks: &[Chunk], message: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    for c in chunks {
        match c {
            Chunk::Bytes(b) => out.extend_from_slice(b),
            Chunk::Message { start, end } => out.extend_from_slice(&message[*start..*end]),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunks_reference_the_message_instead_of_copying() {
        let raw = b"Subject: x\r\n\r\nbody\r\n";
        let msg = crate::mime::parse(raw);
        let mut w = FetchWriter::new(3);
        w.item("UID", b"9");
        w.section(&msg, &Section::full(), None);
        w.section(&msg, &Section::full(), Some((10, 4)));
        let chunks = w.finish();
        assert!(chunks.contains(&Chunk::Message {
            start: 0,
            end: raw.len()
        }));
        assert_eq!(
            flatten(&chunks, raw),
            b"* 3 FETCH (UID 9 BODY[] {20}\r\nSubject: x\r\n\r\nbody\r\n BODY[]<10> {4}\r\n\r\n\r\n)\r\n"
        );
    }
}
