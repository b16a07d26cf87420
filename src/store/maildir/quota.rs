//! Maildir++ quota usage: the `maildirsize` file at the user's root, as Dovecot's `maildir`
//! quota backend (`quota-maildir.c`) and the Maildir++ spec (Courier's
//! `README.maildirquota`) keep it, so Dovecot and we agree on one tree.
//!
//! The first line holds the limits (`<bytes>S,<count>C`; `0S` when there are none), every
//! further line a `<bytes> <count>` delta (the recalculated totals first); usage is the sum
//! of the delta lines. A change appends one line with `O_APPEND` (one `write`, so writers do
//! not interleave). The file is recalculated — every message of every folder summed from
//! the `S=` in its name (a `stat` without one), written to a temp file and renamed over —
//! when it is missing or unparsable, its limits line differs from the user's limits, it has
//! grown to 5120 bytes, a total is negative, or it says the user is over quota and is older
//! than 15 minutes (the spec's and Dovecot's rules).
//!
//! A message that would take the user over a limit is refused ([`check`]), except that a
//! delivery (LMTP, `deliver`) may take a user under the storage limit past it by the
//! user's `quota_grace` ([`check_delivery`]), as Dovecot's LDA/LMTP.

use super::filename;
use super::fsutil::{io_err, write_atomic};
use crate::store::quota::{Limits, Usage};
use crate::store::{Error, ErrorKind, Result};
use std::fs::{self, OpenOptions};
use std::io::{self, Write};
use std::path::Path;
use std::time::{Duration, SystemTime};

pub const FILE: &str = "maildirsize";
/// At this size the file is recalculated (Maildir++: "5120 bytes").
const RECALC_SIZE: u64 = 5120;
/// Over quota by a file older than this: recalculate (Dovecot `MAILDIRSIZE_STALE_SECS`).
const STALE: Duration = Duration::from_secs(15 * 60);

/// The first line for `limits`, as Dovecot writes it.
pub fn limits_line(limits: Limits) -> String {
    let mut s = String::new();
    if limits.bytes != 0 || limits.messages == 0 {
        s.push_str(&format!("{}S", limits.bytes));
    }
    if limits.messages != 0 {
        if !s.is_empty() {
            s.push(',');
        }
        s.push_str(&format!("{}C", limits.messages));
    }
    s
}

/// Parses the first line: (bytes, count) limits; `None` when malformed.
fn parse_limits(line: &str) -> Option<Limits> {
    let mut l = Limits::default();
    for part in line.trim().split(',').filter(|p| !p.is_empty()) {
        if let Some(n) = part.strip_suffix('S') {
            l.bytes = n.trim().parse().ok()?;
        } else if let Some(n) = part.strip_suffix('C') {
            l.messages = n.trim().parse().ok()?;
        } else {
            return None;
        }
    }
    Some(l)
}

/// The file's limits and summed usage; `None` when it must be recalculated as malformed (a
/// bad line, a missing final newline, a negative total).
pub fn parse(text: &str) -> Option<(Limits, Usage)> {
    let body = text.strip_suffix('\n')?;
    let mut lines = body.split('\n');
    let limits = parse_limits(lines.next()?)?;
    let (mut bytes, mut count) = (0i64, 0i64);
    for line in lines {
        let mut f = line.split_ascii_whitespace();
        let b: i64 = f.next()?.parse().ok()?;
        let c: i64 = f.next()?.parse().ok()?;
        bytes = bytes.checked_add(b)?;
        count = count.checked_add(c)?;
    }
    if bytes < 0 || count < 0 {
        return None;
    }
    Some((
        limits,
        Usage {
            bytes: bytes as u64,
            messages: count as u64,
        },
    ))
}

/// Every message of the user: `S=` sizes (or the file's size) and the count, over INBOX and
/// every `.Folder` (`new/` and `cur/`; dot files skipped, as Dovecot).
pub fn calculate(root: &Path) -> Result<Usage> {
    let mut usage = Usage::default();
    let mut dirs = vec![root.to_path_buf()];
    match fs::read_dir(root) {
        Ok(entries) => {
            for e in entries.flatten() {
                let name = e.file_name();
                let name = name.to_string_lossy();
                // `..deleted.*`: a folder being deleted (`MaildirUser::delete`).
                if name.starts_with('.') && !name.starts_with("..") {
                    dirs.push(e.path());
                }
            }
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(usage),
        Err(e) => return Err(io_err(e, "read directory", root)),
    }
    for dir in dirs {
        for sub in ["new", "cur"] {
            let d = dir.join(sub);
            let entries = match fs::read_dir(&d) {
                Ok(e) => e,
                Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                Err(e) => return Err(io_err(e, "read directory", &d)),
            };
            for e in entries.flatten() {
                let name = e.file_name();
                let name = name.to_string_lossy();
                if name.starts_with('.') {
                    continue;
                }
                let size = match filename::parse(&name).and_then(|p| p.size) {
                    Some(s) => s,
                    None => match e.metadata() {
                        Ok(m) => m.len(),
                        // Expunged or renamed while we looked.
                        Err(_) => continue,
                    },
                };
                usage.bytes += size;
                usage.messages += 1;
            }
        }
    }
    Ok(usage)
}

/// Recalculates and rewrites `maildirsize` for `limits`.
pub fn recalculate(root: &Path, limits: Limits) -> Result<Usage> {
    let usage = calculate(root)?;
    let text = format!(
        "{}\n{} {}\n",
        limits_line(limits),
        usage.bytes,
        usage.messages
    );
    write_atomic(&root.join(FILE), text.as_bytes())?;
    Ok(usage)
}

/// The user's usage, from `maildirsize` when it can be trusted, else recalculated.
pub fn usage(root: &Path, limits: Limits) -> Result<Usage> {
    let path = root.join(FILE);
    let (text, meta) = match super::fsutil::read_file(&path) {
        Ok(bytes) => {
            let meta = fs::metadata(&path).ok();
            (String::from_utf8(bytes).ok(), meta)
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => (None, None),
        Err(e) => return Err(io_err(e, "read", &path)),
    };
    let Some(text) = text else {
        return recalculate(root, limits);
    };
    if text.len() as u64 >= RECALC_SIZE {
        return recalculate(root, limits);
    }
    match parse(&text) {
        Some((l, u)) if l == limits => {
            let over = over(limits, u, 0, 0);
            let old = meta
                .and_then(|m| m.modified().ok())
                .and_then(|t| SystemTime::now().duration_since(t).ok())
                .is_some_and(|age| age > STALE);
            if over && old {
                recalculate(root, limits)
            } else {
                Ok(u)
            }
        }
        _ => recalculate(root, limits),
    }
}

fn over(limits: Limits, u: Usage, bytes: u64, count: u64) -> bool {
    (limits.bytes != 0 && u.bytes.saturating_add(bytes) > limits.bytes)
        || (limits.messages != 0 && u.messages.saturating_add(count) > limits.messages)
}

/// Refuses (`OverQuota`) adding `count` messages of `bytes` octets when that would take the
/// user past a limit.
/// `user` are the user's limits (what `maildirsize` records), `limits` those of the mailbox
/// saved into (the user's, changed by its rules).
pub fn check(root: &Path, user: Limits, limits: Limits, bytes: u64, count: u64) -> Result<()> {
    check_with(root, user, limits, bytes, count, None)
}

/// [`check`] for one delivered message of `bytes` octets, which may overshoot the storage
/// limit by `grace` octets from under it ([`crate::store::quota::delivery_fits`]).
pub fn check_delivery(
    root: &Path,
    user: Limits,
    limits: Limits,
    grace: u64,
    bytes: u64,
) -> Result<()> {
    check_with(root, user, limits, bytes, 1, Some(grace))
}

fn check_with(
    root: &Path,
    user: Limits,
    limits: Limits,
    bytes: u64,
    count: u64,
    grace: Option<u64>,
) -> Result<()> {
    if limits.is_unlimited() {
        return Ok(());
    }
    let u = usage(root, user)?;
    let refused = match grace {
        None => over(limits, u, bytes, count),
        Some(g) => !crate::store::quota::delivery_fits(limits, u, g, bytes),
    };
    if refused {
        let grace = grace.map_or(String::new(), |g| format!(" (grace {g})"));
        return Err(Error::new(
            ErrorKind::OverQuota,
            format!(
                "{}: quota exceeded: {} of {} bytes{grace}, {} of {} messages in use, {bytes} bytes in {count} messages more",
                root.display(),
                u.bytes,
                limits.bytes,
                u.messages,
                limits.messages
            ),
        ));
    }
    Ok(())
}

/// Records a change of `bytes` octets in `count` messages (negative for removals): one
/// appended line. A missing file is left missing (the next read recalculates) unless the
/// user has limits, in which case it is created by recalculation (which already sees the
/// change).
pub fn changed(root: &Path, limits: Limits, bytes: i64, count: i64) -> Result<()> {
    if bytes == 0 && count == 0 {
        return Ok(());
    }
    let path = root.join(FILE);
    match OpenOptions::new().append(true).open(&path) {
        Ok(mut f) => {
            let line = format!("{bytes} {count}\n");
            f.write_all(line.as_bytes())
                .map_err(|e| io_err(e, "append to", &path))
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            if limits.is_unlimited() {
                Ok(())
            } else {
                recalculate(root, limits).map(|_| ())
            }
        }
        Err(e) => Err(io_err(e, "open", &path)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_lines_as_dovecot() {
        let l = |bytes, messages| Limits { bytes, messages };
        assert_eq!(limits_line(l(1 << 30, 0)), "1073741824S");
        assert_eq!(limits_line(l(1000, 10)), "1000S,10C");
        assert_eq!(limits_line(l(0, 10)), "10C");
        assert_eq!(limits_line(l(0, 0)), "0S");
        for x in [l(1 << 30, 0), l(1000, 10), l(0, 10), l(0, 0)] {
            assert_eq!(parse_limits(&limits_line(x)), Some(x));
        }
    }

    #[test]
    fn parse_sums_deltas() {
        let (l, u) = parse("1000S,10C\n300 2\n100 1\n-50 -1\n").unwrap();
        assert_eq!((l.bytes, l.messages), (1000, 10));
        assert_eq!((u.bytes, u.messages), (350, 2));
        assert!(parse("1000S\n300 2").is_none(), "no final newline");
        assert!(parse("1000S\n300\n").is_none());
        assert!(parse("1000X\n300 2\n").is_none());
        assert!(parse("1000S\n300 2\n-400 -1\n").is_none(), "negative");
    }

    #[test]
    fn recalculated_when_stale_or_limits_change() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        for d in ["cur", "new", "tmp", ".Sent/cur", ".Sent/new"] {
            fs::create_dir_all(root.join(d)).unwrap();
        }
        fs::write(root.join("cur/1.M1P1.h,S=100,W=104:2,S"), "x").unwrap();
        fs::write(root.join("new/2.M1P1.h"), "12345").unwrap();
        fs::write(root.join(".Sent/cur/3.M1P1.h,S=50:2,"), "y").unwrap();
        fs::write(root.join("tmp/4.M1P1.h,S=999"), "z").unwrap();
        let limits = Limits {
            bytes: 1000,
            messages: 0,
        };
        let u = usage(root, limits).unwrap();
        assert_eq!((u.bytes, u.messages), (155, 3));
        assert_eq!(
            fs::read_to_string(root.join(FILE)).unwrap(),
            "1000S\n155 3\n"
        );
        changed(root, limits, 20, 1).unwrap();
        assert_eq!(usage(root, limits).unwrap().bytes, 175);
        assert!(check(root, limits, limits, 825, 1).is_ok());
        let e = check(root, limits, limits, 826, 1).unwrap_err();
        assert_eq!(e.kind, ErrorKind::OverQuota);
        // Another limit: recalculated from the tree (the appended 20 were not real).
        let other = Limits {
            bytes: 2000,
            messages: 5,
        };
        assert_eq!(usage(root, other).unwrap().bytes, 155);
        assert!(fs::read_to_string(root.join(FILE))
            .unwrap()
            .starts_with("2000S,5C\n"));
        // Too big: recalculated.
        for _ in 0..1300 {
            changed(root, other, 1, 0).unwrap();
        }
        assert_eq!(usage(root, other).unwrap().bytes, 155);
    }
}
