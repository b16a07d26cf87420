//! The reading side of the protocol logs (README.md, "mailserver protolog"): `ls`, `show`,
//! `stats` over the `L???????.log` files SPEC §5 describes.
//!
//! Owns: finding the files, reading them while they are written (a line without its `\n`
//! yet is held back, never an error), the byte-level record parser (`record.rs`), the k-way
//! merge of the per-file streams in time order, the filters, the output formats
//! (`show.rs`) and the statistics. Does not own the format itself (`crate::protolog`
//! writes it; nothing here is used by the daemon).
//!
//! Memory: one line buffer per open file and one record per file in the merge heap; never a
//! whole file. `--user` takes a first pass over the files that keeps only the ids of the
//! matching sessions; `--transcript` holds each session's lines until it ends, in pieces of
//! at most [`show::SESSION_BUFFER`] bytes; `--follow` holds an undecided session's records
//! (bounded) until its authentication record says whose it is.
//!
//! Locks: `ls` tells whether the daemon holds a file open by reading `/proc/locks`, so no
//! lock is ever taken here (a probe lock, even a shared one released at once, could make the
//! daemon's `try_lock` of a new file fail in that instant).

pub mod record;
pub mod show;

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::fs::File;
use std::io::{self, BufRead, BufReader, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use record::{Fields, Line};

/// A line longer than this without a `\n` is not a record (the writer's longest is about
/// 4 × 64 KiB): it is skipped up to its end.
const MAX_LINE: usize = 4 << 20;

/// The number of an `L???????.log` name (`L` then digits, `.log`).
pub fn log_number(name: &str) -> Option<u64> {
    let digits = name.strip_prefix('L')?.strip_suffix(".log")?;
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

/// The log files of `dir`, in number order.
pub fn log_files(dir: &Path) -> io::Result<Vec<(u64, PathBuf)>> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir)? {
        let e = e?;
        if let Some(n) = e.file_name().to_str().and_then(log_number) {
            if e.file_type().map(|t| t.is_file()).unwrap_or(false) {
                out.push((n, e.path()));
            }
        }
    }
    out.sort();
    Ok(out)
}

/// FILES or DIRs as given: a directory stands for its log files.
pub fn expand(paths: &[PathBuf]) -> io::Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    for p in paths {
        if p.is_dir() {
            out.extend(log_files(p)?.into_iter().map(|(_, p)| p));
        } else {
            out.push(p.clone());
        }
    }
    out.dedup();
    Ok(out)
}

/// One record and the line it was read from.
#[derive(Debug, Clone, Default)]
pub struct Rec {
    pub line: Vec<u8>,
    pub f: Fields,
}

impl Rec {
    pub fn field(&self, i: usize) -> &[u8] {
        &self.line[self.f.ranges[i].clone()]
    }
    /// `date-time` (24 bytes, byte order is time order).
    pub fn time(&self) -> &[u8] {
        self.field(record::DATE_TIME)
    }
    pub fn session(&self) -> &[u8] {
        self.field(record::SESSION_ID)
    }
    pub fn event(&self) -> u8 {
        self.field(record::EVENT)[0]
    }
    /// The data bytes (unquoted, `\xNN` decoded).
    pub fn data(&self) -> Vec<u8> {
        let q = self.f.quoted & (1 << record::DATA) != 0;
        record::unescape(&record::unquote(self.field(record::DATA), q)).into_owned()
    }
    /// A field other than data, unquoted, as text.
    pub fn text(&self, i: usize) -> String {
        let q = self.f.quoted & (1 << i) != 0;
        String::from_utf8_lossy(&record::unquote(self.field(i), q)).into_owned()
    }
}

/// The records of one file, read as it is (or is still being) written.
pub struct FileStream {
    pub path: PathBuf,
    /// From `#Service:` (empty until the header has been read).
    pub service: String,
    reader: BufReader<File>,
    /// The line being read; holds an unfinished last line between calls.
    buf: Vec<u8>,
    /// Skipping the rest of an overlong line.
    skipping: bool,
    /// Lines that were neither header nor record.
    pub bad: u64,
}

impl FileStream {
    pub fn open(path: &Path) -> io::Result<FileStream> {
        Ok(FileStream {
            path: path.to_path_buf(),
            service: String::new(),
            reader: BufReader::with_capacity(256 * 1024, File::open(path)?),
            buf: Vec::with_capacity(512),
            skipping: false,
            bad: 0,
        })
    }

    /// The file name, for output.
    pub fn name(&self) -> String {
        self.path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default()
    }

    /// Reads the next record into `rec`; `false` at the end of what is written so far (an
    /// unfinished last line stays buffered and is completed by a later call).
    pub fn next_into(&mut self, rec: &mut Rec) -> io::Result<bool> {
        loop {
            let room = (MAX_LINE + 1).saturating_sub(self.buf.len()) as u64;
            (&mut self.reader)
                .take(room)
                .read_until(b'\n', &mut self.buf)?;
            if self.buf.last() != Some(&b'\n') {
                if self.buf.len() > MAX_LINE {
                    self.bad += u64::from(!self.skipping);
                    self.skipping = true;
                    self.buf.clear();
                    continue;
                }
                // Short of the limit without a `\n`: the end of what is written so far.
                return Ok(false);
            }
            self.buf.pop();
            if self.skipping {
                self.skipping = false;
                self.buf.clear();
                continue;
            }
            match record::classify(&self.buf) {
                Line::Record(f) => {
                    rec.f = f;
                    std::mem::swap(&mut rec.line, &mut self.buf);
                    self.buf.clear();
                    return Ok(true);
                }
                Line::Header(name, value) => {
                    if name.eq_ignore_ascii_case(b"Service") {
                        self.service = String::from_utf8_lossy(value).trim().to_string();
                    }
                }
                Line::Empty => {}
                Line::Bad(_) => self.bad += 1,
            }
            self.buf.clear();
        }
    }

    /// Reads the header (the lines before the first record) without consuming a record:
    /// the service name, if the file has one yet.
    pub fn read_service(path: &Path) -> io::Result<String> {
        let mut r = BufReader::new(File::open(path)?);
        let mut line = Vec::new();
        for _ in 0..16 {
            line.clear();
            if r.read_until(b'\n', &mut line)? == 0 || line.last() != Some(&b'\n') {
                break;
            }
            line.pop();
            match record::classify(&line) {
                Line::Header(n, v) if n.eq_ignore_ascii_case(b"Service") => {
                    return Ok(String::from_utf8_lossy(v).trim().to_string())
                }
                Line::Header(..) | Line::Empty => {}
                _ => break,
            }
        }
        Ok(String::new())
    }
}

/// The records of several files merged in time order: a heap holding the next record of
/// each file (each file is in time order; records of one time keep file order).
pub struct Merge {
    pub streams: Vec<FileStream>,
    heads: Vec<Rec>,
    heap: BinaryHeap<Reverse<([u8; 24], usize)>>,
    /// The stream whose head was handed out last, to be refilled at the next call.
    last: Option<usize>,
}

impl Merge {
    pub fn open(files: &[PathBuf]) -> io::Result<Merge> {
        let mut m = Merge {
            streams: Vec::new(),
            heads: Vec::new(),
            heap: BinaryHeap::new(),
            last: None,
        };
        for p in files {
            let s = FileStream::open(p).map_err(|e| {
                io::Error::new(e.kind(), format!("{}: {e}", p.display()))
            })?;
            m.streams.push(s);
            m.heads.push(Rec::default());
        }
        for i in 0..m.streams.len() {
            m.fill(i)?;
        }
        Ok(m)
    }

    fn fill(&mut self, i: usize) -> io::Result<()> {
        if self.streams[i].next_into(&mut self.heads[i])? {
            let mut key = [0u8; 24];
            key.copy_from_slice(self.heads[i].time());
            self.heap.push(Reverse((key, i)));
        }
        Ok(())
    }

    /// The index of the stream holding the next record in time order ([`Merge::get`]).
    pub fn next_index(&mut self) -> io::Result<Option<usize>> {
        if let Some(i) = self.last.take() {
            self.fill(i)?;
        }
        let Some(Reverse((_, i))) = self.heap.pop() else {
            return Ok(None);
        };
        self.last = Some(i);
        Ok(Some(i))
    }

    /// Stream `i` and its current record.
    pub fn get(&self, i: usize) -> (&FileStream, &Rec) {
        (&self.streams[i], &self.heads[i])
    }

    /// Lines that were neither header nor record, over all files.
    pub fn bad_lines(&self) -> u64 {
        self.streams.iter().map(|s| s.bad).sum()
    }
}

/// What `ls` says about one file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileInfo {
    pub path: PathBuf,
    pub service: String,
    pub first: Option<String>,
    pub last: Option<String>,
    pub size: u64,
    /// The pid holding the file's `flock` (the daemon writing it), from `/proc/locks`.
    pub locked_by: Option<u32>,
}

/// `ls` of one directory.
pub fn list(dir: &Path) -> io::Result<Vec<FileInfo>> {
    let locks = proc_locks();
    let mut out = Vec::new();
    for (_, path) in log_files(dir)? {
        let meta = std::fs::metadata(&path)?;
        let mut s = FileStream::open(&path)?;
        let mut rec = Rec::default();
        let first = s
            .next_into(&mut rec)?
            .then(|| String::from_utf8_lossy(rec.time()).into_owned());
        let service = if s.service.is_empty() {
            FileStream::read_service(&path)?
        } else {
            s.service.clone()
        };
        out.push(FileInfo {
            last: last_time(&path, meta.len())?,
            service,
            first,
            size: meta.len(),
            locked_by: locked_by(&locks, &meta),
            path,
        });
    }
    Ok(out)
}

/// The time of the last complete record, read from the end of the file in growing windows.
fn last_time(path: &Path, len: u64) -> io::Result<Option<String>> {
    let mut f = File::open(path)?;
    let mut window = 64 * 1024u64;
    loop {
        let start = len.saturating_sub(window);
        f.seek(SeekFrom::Start(start))?;
        let mut buf = Vec::with_capacity((len - start) as usize);
        (&mut f).take(len - start).read_to_end(&mut buf)?;
        // The last line may be unfinished: only lines ending in `\n` count.
        let end = memchr::memrchr(b'\n', &buf).map_or(0, |p| p + 1);
        let mut lines: Vec<&[u8]> = buf[..end].split(|&b| b == b'\n').collect();
        if start > 0 && !lines.is_empty() {
            lines.remove(0); // may start mid-line
        }
        for l in lines.iter().rev() {
            if let Line::Record(f) = record::classify(l) {
                return Ok(Some(
                    String::from_utf8_lossy(&l[f.ranges[record::DATE_TIME].clone()]).into_owned(),
                ));
            }
        }
        if start == 0 || window >= 64 << 20 {
            return Ok(None);
        }
        window *= 4;
    }
}

/// One `FLOCK` line of `/proc/locks`: (device major, minor, inode, pid).
type LockEntry = (u64, u64, u64, u32);

/// The `FLOCK` locks of the system, from `/proc/locks` (empty if it cannot be read).
pub fn proc_locks() -> Vec<LockEntry> {
    std::fs::read_to_string("/proc/locks")
        .map(|t| parse_proc_locks(&t))
        .unwrap_or_default()
}

/// `1: FLOCK  ADVISORY  WRITE 1234 08:01:5678 0 EOF` → (8, 1, 5678, 1234); waiter lines
/// (`1: -> FLOCK ...`) are not holders and are left out.
pub fn parse_proc_locks(text: &str) -> Vec<LockEntry> {
    let mut out = Vec::new();
    for line in text.lines() {
        let w: Vec<&str> = line.split_whitespace().collect();
        if w.len() < 6 || w[1] != "FLOCK" {
            continue;
        }
        let Ok(pid) = w[4].parse::<u32>() else {
            continue;
        };
        let mut id = w[5].split(':');
        let (Some(maj), Some(min), Some(ino)) = (id.next(), id.next(), id.next()) else {
            continue;
        };
        if let (Ok(maj), Ok(min), Ok(ino)) = (
            u64::from_str_radix(maj, 16),
            u64::from_str_radix(min, 16),
            ino.parse::<u64>(),
        ) {
            out.push((maj, min, ino, pid));
        }
    }
    out
}

/// The pid whose `flock` is on the file of `meta`.
fn locked_by(locks: &[LockEntry], meta: &std::fs::Metadata) -> Option<u32> {
    use std::os::unix::fs::MetadataExt;
    let dev = meta.dev();
    // glibc's gnu_dev_major/gnu_dev_minor.
    let major = ((dev >> 8) & 0xfff) | ((dev >> 32) & !0xfff);
    let minor = (dev & 0xff) | ((dev >> 12) & !0xff);
    locks
        .iter()
        .find(|&&(ma, mi, ino, _)| ma == major && mi == minor && ino == meta.ino())
        .map(|l| l.3)
}

/// The protocol-log directories of a config (POP3, IMAP4, LMTP; each once).
pub fn config_dirs(config: &crate::config::Config) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = Vec::new();
    for s in crate::service::Service::ALL {
        let p = config.protocol_log(s).path.clone();
        if !out.contains(&p) {
            out.push(p);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_proc_locks() {
        assert_eq!(log_number("L0000012.log"), Some(12));
        assert_eq!(log_number("L.log"), None);
        assert_eq!(log_number("L00a.log"), None);
        assert_eq!(log_number("X0000001.log"), None);
        let t = "1: FLOCK  ADVISORY  WRITE 1234 08:01:5678 0 EOF\n\
                 1: -> FLOCK  ADVISORY  WRITE 99 08:01:5678 0 EOF\n\
                 2: POSIX  ADVISORY  WRITE 77 00:2a:11 0 EOF\n\
                 3: FLOCK  ADVISORY  READ 55 fd:1b:42 0 EOF\n";
        assert_eq!(
            parse_proc_locks(t),
            vec![(8, 1, 5678, 1234), (0xfd, 0x1b, 42, 55)]
        );
    }

    /// A file being appended to: records come as their lines complete, an unfinished line
    /// waits, and a line cut at every byte gives the same records.
    #[test]
    fn stream_reads_a_growing_file() {
        use std::io::Write;
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("L0000001.log");
        let text = "#Service: POP3\n#Fields: x\n\
            2026-11-27T16:50:09.123Z,00000000000000aa,0,l,r,+,\n\
            2026-11-27T16:50:09.124Z,00000000000000aa,1,l,r,<,\"a,b\"\n\
            bad line\n\
            2026-11-27T16:50:09.125Z,00000000000000aa,2,l,r,-,done\n";
        for cut in 0..=text.len() {
            let mut f = File::create(&p).unwrap();
            f.write_all(&text.as_bytes()[..cut]).unwrap();
            let mut s = FileStream::open(&p).unwrap();
            let mut rec = Rec::default();
            let mut got = Vec::new();
            while s.next_into(&mut rec).unwrap() {
                got.push(rec.f.seq);
            }
            f.write_all(&text.as_bytes()[cut..]).unwrap();
            while s.next_into(&mut rec).unwrap() {
                got.push(rec.f.seq);
            }
            assert_eq!(got, vec![0, 1, 2], "cut at {cut}");
            assert_eq!(s.service, "POP3");
            assert_eq!(s.bad, 1);
        }
    }
}
