//! `dovecot-uidlist`, Dovecot's UID map for a Maildir (`maildir-uidlist.c`), version 3:
//!
//! ```text
//! 3 V<uidvalidity> N<nextuid> G<mailbox guid hex> [other header fields]
//! <uid> [<key><value> ...] :<file name base>
//! ```
//!
//! Version 1 (`1 <uidvalidity> <nextuid>` / `<uid> <filename>`) is read too. Records are in UID
//! order; Dovecot may append records without rewriting the header, so the effective next UID
//! is `max(N, last uid + 1)`. Record extension fields (`W<vsize>`, `S<size>`, ...) are kept
//! verbatim. Writers hold the dot-lock and replace the file (temp, fsync, rename).

use crate::store::{Error, ErrorKind, Result};
use std::fmt::Write as _;

/// One line: a UID and the file name base it belongs to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UidRec {
    pub uid: u32,
    /// Extension fields, space separated, as read (`W1234 S1200`); written back unchanged.
    pub ext: String,
    /// The file name without the `:2,` info.
    pub base: String,
}

impl UidRec {
    /// Value of extension field `key` (e.g. `'W'`).
    pub fn ext(&self, key: char) -> Option<&str> {
        self.ext
            .split(' ')
            .find(|f| f.starts_with(key))
            .map(|f| &f[key.len_utf8()..])
    }
}

/// The whole file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Uidlist {
    pub uid_validity: u32,
    /// The next UID to assign; never decreases.
    pub next_uid: u32,
    /// The mailbox GUID (32 hex digits); generated when missing.
    pub guid: String,
    /// Header fields we do not interpret, kept on rewrite.
    pub hdr_ext: String,
    /// Sorted by UID, no duplicate UIDs.
    pub records: Vec<UidRec>,
}

/// A fresh random mailbox GUID in Dovecot's hex form.
pub fn new_guid() -> String {
    let bytes: [u8; 16] = rand::random();
    bytes.iter().fold(String::with_capacity(32), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

impl Uidlist {
    pub fn new(uid_validity: u32) -> Uidlist {
        Uidlist {
            uid_validity,
            next_uid: 1,
            guid: new_guid(),
            hdr_ext: String::new(),
            records: Vec::new(),
        }
    }

    /// Parses the file content. Broken record lines are skipped (their files get new UIDs,
    /// as after Dovecot drops a broken uidlist); a broken header is an error.
    pub fn parse(text: &str) -> Result<Uidlist> {
        let corrupt =
            |msg: String| Error::new(ErrorKind::Internal, format!("dovecot-uidlist: {msg}"));
        let mut lines = text.split('\n');
        let header = lines.next().unwrap_or("");
        let (version, rest) = header
            .split_once(' ')
            .ok_or_else(|| corrupt(format!("bad header {header:?}")))?;
        let mut list = Uidlist::new(0);
        list.guid.clear();
        match version {
            "1" => {
                let mut it = rest.split_whitespace();
                list.uid_validity = it.next().and_then(|v| v.parse().ok()).unwrap_or(0);
                list.next_uid = it.next().and_then(|v| v.parse().ok()).unwrap_or(0);
            }
            "3" => {
                let mut other = Vec::new();
                for field in rest.split(' ').filter(|f| !f.is_empty()) {
                    let (key, value) = field.split_at(1);
                    match key {
                        "V" => list.uid_validity = value.parse().unwrap_or(0),
                        "N" => list.next_uid = value.parse().unwrap_or(0),
                        "G" => list.guid = value.to_string(),
                        _ => other.push(field),
                    }
                }
                list.hdr_ext = other.join(" ");
            }
            v => return Err(corrupt(format!("unsupported version {v}"))),
        }
        if list.uid_validity == 0 || list.next_uid == 0 {
            return Err(corrupt(format!("broken header {header:?}")));
        }
        if list.guid.is_empty() {
            list.guid = new_guid();
        }
        let v3 = version == "3";
        for (n, line) in lines.enumerate() {
            if line.is_empty() {
                continue;
            }
            match parse_record(line, v3) {
                Some(rec) => list.records.push(rec),
                None => tracing::warn!("dovecot-uidlist line {}: broken record {line:?}", n + 2),
            }
        }
        list.records.sort_by_key(|r| r.uid);
        list.records.dedup_by_key(|r| r.uid);
        if let Some(last) = list.records.last() {
            list.next_uid = list.next_uid.max(last.uid.saturating_add(1));
        }
        Ok(list)
    }

    /// The version 3 text.
    pub fn render(&self) -> String {
        let mut out = String::with_capacity(64 + self.records.len() * 64);
        let _ = write!(
            out,
            "3 V{} N{} G{}",
            self.uid_validity, self.next_uid, self.guid
        );
        if !self.hdr_ext.is_empty() {
            out.push(' ');
            out.push_str(&self.hdr_ext);
        }
        out.push('\n');
        for r in &self.records {
            let _ = write!(out, "{}", r.uid);
            if !r.ext.is_empty() {
                out.push(' ');
                out.push_str(&r.ext);
            }
            out.push_str(" :");
            out.push_str(&r.base);
            out.push('\n');
        }
        out
    }

    /// Assigns the next UID to `base`; returns it.
    pub fn push(&mut self, base: String, ext: String) -> u32 {
        let uid = self.next_uid;
        self.next_uid += 1;
        self.records.push(UidRec { uid, ext, base });
        uid
    }
}

fn parse_record(line: &str, v3: bool) -> Option<UidRec> {
    let (uid, rest) = line.split_once(' ')?;
    let uid: u32 = uid.parse().ok().filter(|&u| u != 0 && u != u32::MAX)?;
    let (ext, name) = if v3 {
        // `<key><value> ... :<name>`: the name starts at the first field that starts with
        // ':' (values, e.g. a POP3 UIDL in `P`, may contain ':' themselves).
        let mut rest = rest.trim_start_matches(' ');
        let mut fields = Vec::new();
        let name = loop {
            if let Some(name) = rest.strip_prefix(':') {
                break name;
            }
            if rest.is_empty() {
                return None;
            }
            let (field, tail) = rest.split_once(' ').unwrap_or((rest, ""));
            fields.push(field);
            rest = tail.trim_start_matches(' ');
        };
        (fields.join(" "), name)
    } else {
        (String::new(), rest)
    };
    let base = name.split(':').next().unwrap_or("");
    if base.is_empty() || base.contains('/') {
        return None;
    }
    Some(UidRec {
        uid,
        ext,
        base: base.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What Dovecot 2.3.19 wrote in the side-by-side probe (three APPENDs).
    const DOVECOT: &str = "3 V1795804668 N3 Gc1ba4c10facd096bd528000083ecc375\n\
        1 :1795804666.M284864P10453.vm,S=28,W=32\n\
        2 :1795804666.M286570P10453.vm,S=28,W=32\n\
        3 :1795804666.M288659P10453.vm,S=28,W=32\n";

    #[test]
    fn parses_dovecot_output() {
        let l = Uidlist::parse(DOVECOT).unwrap();
        assert_eq!(l.uid_validity, 1795804668);
        // The header says N3 but UID 3 exists: next is 4.
        assert_eq!(l.next_uid, 4);
        assert_eq!(l.guid, "c1ba4c10facd096bd528000083ecc375");
        assert_eq!(l.records.len(), 3);
        assert_eq!(l.records[2].base, "1795804666.M288659P10453.vm,S=28,W=32");
    }

    #[test]
    fn round_trips_with_extensions() {
        let text = "3 V7 N20 G00112233445566778899aabbccddeeff X1\n\
            3 W120 S100 :a.b.c\n\
            9 :d:2,S\n\
            12 Pab:cd W5 :e\n";
        let l = Uidlist::parse(text).unwrap();
        assert_eq!(l.records[0].ext('W'), Some("120"));
        assert_eq!(l.records[0].ext('S'), Some("100"));
        assert_eq!(l.records[1].base, "d");
        assert_eq!(l.hdr_ext, "X1");
        let out = l.render();
        assert_eq!(l.records[2].ext('P'), Some("ab:cd"));
        assert_eq!(l.records[2].base, "e");
        assert_eq!(
            out,
            "3 V7 N20 G00112233445566778899aabbccddeeff X1\n3 W120 S100 :a.b.c\n9 :d\n\
             12 Pab:cd W5 :e\n"
        );
        assert_eq!(Uidlist::parse(&out).unwrap(), l);
    }

    #[test]
    fn reads_version_1_and_skips_broken_lines() {
        let l = Uidlist::parse("1 55 10\n4 x.y:2,S\nbogus\n0 :z\n2 a\n").unwrap();
        assert_eq!((l.uid_validity, l.next_uid), (55, 10));
        let uids: Vec<_> = l.records.iter().map(|r| (r.uid, r.base.as_str())).collect();
        assert_eq!(uids, vec![(2, "a"), (4, "x.y")]);
        assert!(Uidlist::parse("").is_err());
        assert!(Uidlist::parse("3 N5\n").is_err());
        assert!(Uidlist::parse("9 V1 N1\n").is_err());
    }

    #[test]
    fn push_never_reuses() {
        let mut l = Uidlist::new(1);
        assert_eq!(l.push("a".into(), String::new()), 1);
        assert_eq!(l.push("b".into(), String::new()), 2);
        l.records.clear();
        assert_eq!(l.push("c".into(), String::new()), 3);
        assert_eq!(Uidlist::parse(&l.render()).unwrap().next_uid, 4);
    }
}
