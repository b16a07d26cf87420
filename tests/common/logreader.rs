//! A strict reader of KB Q182504 protocol-log files, written independently of the crate's
//! own record code so a formatting bug cannot hide behind it. Shared by the protocol-log
//! integration tests (`#[path]`-included).
#![allow(dead_code)]

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::path::Path;

// ---------------------------------------------------------------------------------------
// A strict, independent reader of the log files
// ---------------------------------------------------------------------------------------

/// One record: the seven `#Fields` of SPEC §5.
#[derive(Debug, Clone)]
pub struct Rec {
    pub id: String,
    pub seq: u64,
    pub local: String,
    pub remote: String,
    pub event: char,
    /// The data field after RFC 4180 unquoting and `\xNN` decoding.
    pub data: String,
}

pub struct LogFile {
    pub header: Vec<String>,
    pub records: Vec<Rec>,
}

/// RFC 4180 §2 fields of one line (no line breaks inside, SPEC §5 escapes them).
pub fn csv_fields(line: &str) -> Result<Vec<String>, String> {
    let mut fields = Vec::new();
    let b = line.as_bytes();
    let mut i = 0;
    loop {
        let mut f = Vec::new();
        if b.get(i) == Some(&b'"') {
            i += 1;
            loop {
                match b.get(i) {
                    None => return Err(format!("unterminated quote: {line:?}")),
                    Some(b'"') if b.get(i + 1) == Some(&b'"') => {
                        f.push(b'"');
                        i += 2;
                    }
                    Some(b'"') => {
                        i += 1;
                        break;
                    }
                    Some(&c) => {
                        f.push(c);
                        i += 1;
                    }
                }
            }
            if !matches!(b.get(i), None | Some(b',')) {
                return Err(format!("text after a closing quote: {line:?}"));
            }
        } else {
            while let Some(&c) = b.get(i) {
                if c == b',' {
                    break;
                }
                if c == b'"' {
                    return Err(format!("quote inside an unquoted field: {line:?}"));
                }
                f.push(c);
                i += 1;
            }
        }
        fields.push(String::from_utf8(f).map_err(|e| e.to_string())?);
        match b.get(i) {
            None => return Ok(fields),
            Some(b',') => i += 1,
            Some(_) => unreachable!(),
        }
    }
}

/// Decodes `\xNN`; every other byte must be printable ASCII other than `\`.
pub fn unescape(s: &str) -> Result<String, String> {
    let b = s.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'\\' => {
                let hex = s
                    .get(i + 1..i + 4)
                    .filter(|h| h.starts_with('x'))
                    .ok_or(format!("bad escape in {s:?}"))?;
                out.push(u8::from_str_radix(&hex[1..], 16).map_err(|e| e.to_string())?);
                i += 4;
            }
            c if (0x20..=0x7E).contains(&c) => {
                out.push(c);
                i += 1;
            }
            c => return Err(format!("raw byte {c:#x} in {s:?}")),
        }
    }
    Ok(String::from_utf8_lossy(&out).into_owned())
}

/// `YYYY-MM-DDTHH:MM:SS.fffZ`.
pub fn valid_time(t: &str) -> bool {
    let b = t.as_bytes();
    b.len() == 24
        && b.iter().enumerate().all(|(i, &c)| match i {
            4 | 7 => c == b'-',
            10 => c == b'T',
            13 | 16 => c == b':',
            19 => c == b'.',
            23 => c == b'Z',
            _ => c.is_ascii_digit(),
        })
}

pub fn is_endpoint(s: &str) -> bool {
    s.parse::<SocketAddr>().is_ok()
}

/// Parses one record line strictly; `Err` says what is wrong.
pub fn parse_record(line: &str) -> Result<Rec, String> {
    let f = csv_fields(line)?;
    if f.len() != 7 {
        return Err(format!("{} fields: {line:?}", f.len()));
    }
    if !valid_time(&f[0]) {
        return Err(format!("bad date-time: {line:?}"));
    }
    if f[1].len() != 16 || !f[1].bytes().all(|c| c.is_ascii_hexdigit()) {
        return Err(format!("bad session-id: {line:?}"));
    }
    let seq: u64 = f[2]
        .parse()
        .map_err(|_| format!("bad sequence: {line:?}"))?;
    if !is_endpoint(&f[3]) || !is_endpoint(&f[4]) {
        return Err(format!("bad endpoint: {line:?}"));
    }
    let event = match f[5].as_str() {
        "+" => '+',
        "-" => '-',
        "<" => '<',
        ">" => '>',
        "*" => '*',
        _ => return Err(format!("bad event: {line:?}")),
    };
    Ok(Rec {
        id: f[1].clone(),
        seq,
        local: f[3].clone(),
        remote: f[4].clone(),
        event,
        data: unescape(&f[6])?,
    })
}

/// Reads a whole log file of `service`: the four header lines exactly as SPEC §5, then
/// records only, each line ending in `\n` (`#Service: {service}`).
pub fn read_log_of(path: &Path, service: &str) -> LogFile {
    let text = std::fs::read_to_string(path).unwrap();
    assert!(text.ends_with('\n'), "{} ends mid-line", path.display());
    let lines: Vec<&str> = text.lines().collect();
    assert!(lines.len() >= 4, "{}: no header:\n{text}", path.display());
    let header: Vec<String> = lines[..4].iter().map(|s| s.to_string()).collect();
    assert_eq!(header[0], format!("#Service: {service}"));
    assert_eq!(
        header[1],
        format!("#Software: mailserver {}", env!("CARGO_PKG_VERSION"))
    );
    let date = header[2].strip_prefix("#Date: ").expect("#Date line");
    assert!(valid_time(date), "{}", header[2]);
    assert_eq!(
        header[3],
        "#Fields: date-time,session-id,sequence-number,local-endpoint,remote-endpoint,event,data"
    );
    let records = lines[4..]
        .iter()
        .map(|l| parse_record(l).unwrap_or_else(|e| panic!("{}: {e}", path.display())))
        .collect();
    LogFile { header, records }
}

/// Records grouped by session id, in file order.
pub fn by_session(recs: &[Rec]) -> BTreeMap<String, Vec<Rec>> {
    let mut m: BTreeMap<String, Vec<Rec>> = BTreeMap::new();
    for r in recs {
        m.entry(r.id.clone()).or_default().push(r.clone());
    }
    m
}

/// One session's records are numbered 0, 1, 2, … without a gap, `+` first and `-` last.
pub fn assert_whole_session(recs: &[Rec]) {
    for (i, r) in recs.iter().enumerate() {
        assert_eq!(r.seq, i as u64, "sequence gap in {recs:#?}");
    }
    assert_eq!(recs.first().map(|r| r.event), Some('+'), "{recs:#?}");
    assert_eq!(recs.last().map(|r| r.event), Some('-'), "{recs:#?}");
}

pub fn kinds(recs: &[Rec]) -> BTreeSet<char> {
    recs.iter().map(|r| r.event).collect()
}

pub fn datas(recs: &[Rec], event: char) -> Vec<String> {
    recs.iter()
        .filter(|r| r.event == event)
        .map(|r| r.data.clone())
        .collect()
}
