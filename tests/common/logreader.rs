//! The one reader of KB Q182504 protocol-log files in the tests, and the checks made on log
//! files from outside (which files exist, who holds their `flock`, who has them open).
//!
//! The reader is written independently of the crate's own record code (`protolog::record`):
//! RFC 4180 §2 fields and `\xNN` escapes are decoded here, so a formatting bug in the crate
//! cannot hide behind its own decoder. It is strict: every line printable ASCII and ending in
//! `\n`, the four header lines exactly as the crate promises them (ARCHITECTURE.md,
//! "Protocol log"), then records of seven fields each (time, 16-hex-digit session id,
//! sequence number, two `ip:port` endpoints, one event character, data); only the writer's
//! notice of dropped records has no endpoints.
//!
//! `#[path]`-included by every test crate that reads protocol logs (the daemon tests, the
//! in-process `ProtoLog` tests, the POP3 and IMAP harnesses). Each uses a different subset,
//! so `dead_code` is allowed for the whole file rather than item by item.
#![allow(dead_code)]

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::path::Path;

// ---------------------------------------------------------------------------------------
// A strict, independent reader of the log files
// ---------------------------------------------------------------------------------------

/// The `#Fields:` header line, spelled out here rather than taken from the crate.
pub const FIELDS_LINE: &str =
    "#Fields: date-time,session-id,sequence-number,local-endpoint,remote-endpoint,event,data";

/// One record: the seven `#Fields` of KB Q182504.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rec {
    /// `YYYY-MM-DDTHH:MM:SS.fffZ`.
    pub time: String,
    pub id: String,
    pub seq: u64,
    pub local: String,
    pub remote: String,
    pub event: char,
    /// The data field after RFC 4180 unquoting and `\xNN` decoding: the logged bytes.
    pub data: Vec<u8>,
}

impl Rec {
    /// [`Rec::data`] as text (invalid UTF-8 replaced), for comparing with strings.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.data).into_owned()
    }
}

/// A whole log file: its header and its records.
pub struct LogFile {
    /// The service the first header line declares (`#Service: POP3` gives `POP3`).
    pub service: String,
    /// The four header lines.
    pub header: Vec<String>,
    pub records: Vec<Rec>,
}

/// RFC 4180 §2 fields of one line (no line breaks inside: the data field escapes them).
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
pub fn unescape(s: &str) -> Result<Vec<u8>, String> {
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
    Ok(out)
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

/// Printable ASCII only: no control bytes (CR, tab, ...), nothing above 0x7E.
fn printable(line: &str) -> bool {
    line.bytes().all(|b| (0x20..=0x7E).contains(&b))
}

/// Parses one record line (without its `\n`) strictly; `Err` says what is wrong.
pub fn parse_record(line: &str) -> Result<Rec, String> {
    if !printable(line) {
        return Err(format!("non-printable byte in {line:?}"));
    }
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
    // The one record without endpoints: the writer's own `*` notice of records it dropped
    // (`N records dropped (queue full)`), session id 0 and sequence 0, which belongs to no
    // connection (`src/protolog/mod.rs`). Every session's record has both.
    let writer_notice = f[1] == "0000000000000000"
        && f[2] == "0"
        && f[3].is_empty()
        && f[4].is_empty()
        && f[5] == "*";
    if !writer_notice && (!is_endpoint(&f[3]) || !is_endpoint(&f[4])) {
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
        time: f[0].clone(),
        id: f[1].clone(),
        seq,
        local: f[3].clone(),
        remote: f[4].clone(),
        event,
        data: unescape(&f[6])?,
    })
}

/// Parses the bytes of a whole log file; `name` is for messages. Panics on anything that is
/// not a whole, well-formed file: it must end in `\n`, every line is printable ASCII, the
/// header is `#Service: NAME`, `#Software: mailserver VERSION`, `#Date: TIME`, the
/// [`FIELDS_LINE`], and every later line is a record.
pub fn parse_bytes(name: &str, bytes: &[u8]) -> LogFile {
    let text = std::str::from_utf8(bytes)
        .unwrap_or_else(|e| panic!("{name}: not ASCII: {e}\n{}", String::from_utf8_lossy(bytes)));
    let Some(body) = text.strip_suffix('\n') else {
        panic!("{name} ends mid-line:\n{text}");
    };
    // Split at `\n` only (not `lines()`): a CR before the LF is a byte the file must not have.
    let lines: Vec<&str> = body.split('\n').collect();
    assert!(lines.len() >= 4, "{name}: no header:\n{text}");
    for l in &lines[..4] {
        assert!(printable(l), "{name}: non-printable byte in {l:?}");
    }
    let header: Vec<String> = lines[..4].iter().map(|s| s.to_string()).collect();
    let service = header[0]
        .strip_prefix("#Service: ")
        .unwrap_or_else(|| panic!("{name}: first line {:?} declares no service", header[0]))
        .to_string();
    assert_eq!(
        header[1],
        format!("#Software: mailserver {}", env!("CARGO_PKG_VERSION")),
        "{name}"
    );
    let date = header[2]
        .strip_prefix("#Date: ")
        .unwrap_or_else(|| panic!("{name}: third line {:?} is not #Date", header[2]));
    assert!(valid_time(date), "{name}: {}", header[2]);
    assert_eq!(header[3], FIELDS_LINE, "{name}");
    let records = lines[4..]
        .iter()
        .map(|l| parse_record(l).unwrap_or_else(|e| panic!("{name}: {e}")))
        .collect();
    LogFile {
        service,
        header,
        records,
    }
}

/// Reads and parses a whole log file of any service (see [`parse_bytes`]).
pub fn parse_log(path: &Path) -> LogFile {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    parse_bytes(&path.display().to_string(), &bytes)
}

/// Reads a whole log file that must declare `service` (`#Service: {service}`).
pub fn read_log_of(path: &Path, service: &str) -> LogFile {
    let f = parse_log(path);
    assert_eq!(
        f.header[0],
        format!("#Service: {service}"),
        "{}",
        path.display()
    );
    f
}

/// Every record of every log file in `dir` ([`log_files`] order, then line order); each
/// file must declare `service`.
pub fn all_records_of(dir: &Path, service: &str) -> Vec<Rec> {
    log_files(dir)
        .iter()
        .flat_map(|n| read_log_of(&dir.join(n), service).records)
        .collect()
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

/// The data of the records of `event`, as text.
pub fn datas(recs: &[Rec], event: char) -> Vec<String> {
    recs.iter()
        .filter(|r| r.event == event)
        .map(Rec::text)
        .collect()
}

// ---------------------------------------------------------------------------------------
// Log files seen from outside: names, raw text, locks, open descriptors
// ---------------------------------------------------------------------------------------

/// `L???????.log` names in `dir`, sorted (empty if `dir` does not exist).
pub fn log_files(dir: &Path) -> Vec<String> {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut v: Vec<String> = rd
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with('L') && n.ends_with(".log"))
        .collect();
    v.sort();
    v
}

/// The raw text of every log file in `dir` ([`log_files`] order), for checks on the bytes as
/// written rather than on parsed records.
pub fn log_text(dir: &Path) -> String {
    log_files(dir)
        .iter()
        .map(|n| std::fs::read_to_string(dir.join(n)).unwrap())
        .collect()
}

/// Whether a `flock` is held on `path` (the KB's "continuously locked open") by an open file
/// description other than a fresh one: the daemon's, or an in-process `ProtoLog`'s. Asked
/// with `flock -n FILE true` from a child process, or, without util-linux, with a `flock`
/// through a fresh open file description of our own (a different one from the holder's, so
/// it conflicts the same way, even within this process). `path` must exist (`flock(1)`
/// would create it).
pub fn flock_held(path: &Path) -> bool {
    assert!(path.exists(), "{} must exist", path.display());
    match std::process::Command::new("flock")
        .arg("-n")
        .arg(path)
        .arg("true")
        .status()
    {
        Ok(st) => !st.success(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let f = std::fs::File::open(path).unwrap();
            match f.try_lock() {
                Ok(()) => {
                    f.unlock().unwrap();
                    false
                }
                Err(std::fs::TryLockError::WouldBlock) => true,
                Err(std::fs::TryLockError::Error(e)) => panic!("flock: {e}"),
            }
        }
        Err(e) => panic!("flock(1): {e}"),
    }
}

/// Whether process `pid` has a file descriptor open on `path`: `read_link` of every entry of
/// `/proc/<pid>/fd` (a file removed while open shows as `PATH (deleted)` and counts).
/// `std::process::id()` asks about this process.
pub fn fd_open(pid: u32, path: &Path) -> bool {
    let canonical = path.canonicalize().unwrap_or_else(|_| path.to_path_buf());
    let wanted: Vec<String> = [canonical.as_path(), path]
        .iter()
        .map(|p| p.to_string_lossy().into_owned())
        .flat_map(|p| [format!("{p} (deleted)"), p])
        .collect();
    let fds = std::fs::read_dir(format!("/proc/{pid}/fd")).unwrap();
    fds.filter_map(|e| std::fs::read_link(e.ok()?.path()).ok())
        .map(|t| t.to_string_lossy().into_owned())
        .any(|t| wanted.contains(&t))
}
