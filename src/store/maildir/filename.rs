//! Maildir file names (<https://cr.yp.to/proto/maildir.html>, Dovecot's Maildir++ conventions):
//! `<base>[:2,<info>]`, where the base may carry `,S=<size>` (bytes on disk) and `,W=<vsize>`
//! (size with CRLF line endings) and the info holds the flags: the system flags `D F P R S T`
//! and Dovecot's keyword letters `a`..`z` (indexes into `dovecot-keywords`), kept in ASCII
//! order as Dovecot writes them. Unknown info letters are kept as they are.

use crate::store::Flags;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

/// The parts of a file name this store uses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParsedName<'a> {
    /// Everything before `:2,` (the uidlist key).
    pub base: &'a str,
    /// System flags found in the info.
    pub flags: Flags,
    /// Keyword bits: bit n = letter `a`+n = line n of `dovecot-keywords`.
    pub keywords: u32,
    /// Info letters this store does not interpret (`P`, upper-case extensions), kept on rename.
    pub other: String,
    /// `,S=` from the base: the file's size in bytes.
    pub size: Option<u64>,
    /// `,W=` from the base: the size with CRLF line endings.
    pub vsize: Option<u64>,
}

/// Splits a directory entry name; `None` for names that are not messages (dot files).
pub fn parse(name: &str) -> Option<ParsedName<'_>> {
    if name.is_empty() || name.starts_with('.') || name.contains(['\r', '\n']) {
        return None;
    }
    let (base, info) = match name.find(':') {
        Some(i) => (&name[..i], Some(&name[i + 1..])),
        None => (name, None),
    };
    let mut flags = Flags::NONE;
    let mut keywords = 0u32;
    let mut other = String::new();
    if let Some(info) = info.and_then(|i| i.strip_prefix("2,")) {
        for c in info.chars() {
            match c {
                'D' => flags = flags.union(Flags::DRAFT),
                'F' => flags = flags.union(Flags::FLAGGED),
                'R' => flags = flags.union(Flags::ANSWERED),
                'S' => flags = flags.union(Flags::SEEN),
                'T' => flags = flags.union(Flags::DELETED),
                'a'..='z' => keywords |= 1 << (c as u32 - 'a' as u32),
                _ => other.push(c),
            }
        }
    }
    let mut size = None;
    let mut vsize = None;
    for field in base.split(',').skip(1) {
        if let Some(v) = field.strip_prefix("S=") {
            size = v.parse().ok();
        } else if let Some(v) = field.strip_prefix("W=") {
            vsize = v.parse().ok();
        }
    }
    Some(ParsedName {
        base,
        flags,
        keywords,
        other,
        size,
        vsize,
    })
}

/// The info part (after `:2,`) for these flags, letters in ASCII order.
pub fn info(flags: Flags, keywords: u32, other: &str) -> String {
    let mut letters: Vec<char> = other.chars().collect();
    for (flag, c) in [
        (Flags::DRAFT, 'D'),
        (Flags::FLAGGED, 'F'),
        (Flags::ANSWERED, 'R'),
        (Flags::SEEN, 'S'),
        (Flags::DELETED, 'T'),
    ] {
        if flags.contains(flag) {
            letters.push(c);
        }
    }
    for n in 0..26 {
        if keywords & (1 << n) != 0 {
            letters.push((b'a' + n as u8) as char);
        }
    }
    letters.sort_unstable();
    letters.dedup();
    letters.into_iter().collect()
}

/// The full name in `cur/` for a base and its flags.
pub fn cur_name(base: &str, info: &str) -> String {
    format!("{base}:2,{info}")
}

static COUNTER: AtomicU64 = AtomicU64::new(0);

/// This host's name as Dovecot puts it in file names (`/` and `:` escaped as octal).
pub fn hostname() -> &'static str {
    static HOST: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    HOST.get_or_init(|| {
        let raw = std::fs::read_to_string("/proc/sys/kernel/hostname")
            .map(|s| s.trim().to_string())
            .unwrap_or_default();
        let raw = if raw.is_empty() {
            "localhost".to_string()
        } else {
            raw
        };
        raw.replace('/', "\\057").replace(':', "\\072")
    })
}

/// A new unique base: `<secs>.M<usecs>P<pid>Q<n>.<host>,S=<size>,W=<vsize>` (Dovecot's
/// form; `Q<n>` is a per-process counter so names never repeat within a microsecond).
pub fn new_base(size: u64, vsize: u64) -> String {
    with_sizes(&new_unsized_base(), size, vsize)
}

/// A new unique base without the sizes, `<secs>.M<usecs>P<pid>Q<n>.<host>`: the name of a
/// message in `tmp/` while its size is not known yet (a streamed APPEND), as Dovecot names
/// its `tmp/` files; [`with_sizes`] gives the base it is renamed to in `cur/`.
pub fn new_unsized_base() -> String {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    format!(
        "{}.M{}P{}Q{}.{}",
        now.as_secs(),
        now.subsec_micros(),
        std::process::id(),
        n,
        hostname(),
    )
}

/// `base` with `,S=<size>,W=<vsize>` appended (Dovecot's `maildir_filename_append_sizes`).
pub fn with_sizes(base: &str, size: u64, vsize: u64) -> String {
    format!("{base},S={size},W={vsize}")
}

/// Sort key for assigning UIDs to new files in delivery order, as Dovecot does: the
/// `<secs>.M<usecs>` time at the start of the name, then the name.
pub fn time_key(base: &str) -> (u64, u64, &str) {
    let digits = |s: &str| -> (u64, usize) {
        let n = s.bytes().take_while(u8::is_ascii_digit).count();
        (s[..n].parse().unwrap_or(u64::MAX), n)
    };
    let (secs, n) = digits(base);
    let usecs = base[n..]
        .strip_prefix(".M")
        .map(|rest| digits(rest).0)
        .unwrap_or(0);
    (secs, usecs, base)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_dovecot_names() {
        let p = parse("1795804666.M286570P10453.vm,S=28,W=32:2,DFRTc").unwrap();
        assert_eq!(p.base, "1795804666.M286570P10453.vm,S=28,W=32");
        assert_eq!(
            p.flags,
            Flags::DRAFT
                .union(Flags::FLAGGED)
                .union(Flags::ANSWERED)
                .union(Flags::DELETED)
        );
        assert_eq!(p.keywords, 1 << 2);
        assert_eq!((p.size, p.vsize), (Some(28), Some(32)));
        assert_eq!(info(p.flags, p.keywords, &p.other), "DFRTc");

        let p = parse("1234.abc.host").unwrap();
        assert_eq!(
            (p.base, p.flags, p.keywords),
            ("1234.abc.host", Flags::NONE, 0)
        );
        assert_eq!((p.size, p.vsize), (None, None));
        let p = parse("x:2,PSab").unwrap();
        assert_eq!(p.other, "P");
        assert_eq!(info(p.flags, p.keywords, &p.other), "PSab");
        assert!(parse(".hidden").is_none());
        assert!(parse("a\nb").is_none());
    }

    #[test]
    fn every_flag_combination_round_trips() {
        for bits in 0..32u8 {
            for kw in [0u32, 1, 0b101, 1 << 25] {
                let i = info(Flags(bits), kw, "");
                let name = cur_name("b,S=1", &i);
                let p = parse(&name).unwrap();
                assert_eq!((p.flags, p.keywords), (Flags(bits), kw), "{name}");
                let mut sorted: Vec<char> = i.chars().collect();
                sorted.sort();
                assert_eq!(i, sorted.into_iter().collect::<String>());
            }
        }
    }

    #[test]
    fn new_bases_are_unique_and_carry_sizes() {
        let a = new_base(10, 12);
        let b = new_base(10, 12);
        assert_ne!(a, b);
        let p = parse(&a).unwrap();
        assert_eq!((p.size, p.vsize), (Some(10), Some(12)));
        assert!(!a.contains(':') && !a.contains('/'));
        assert!(time_key(&a) < time_key(&b) || time_key(&a).0 <= time_key(&b).0);
        assert_eq!(time_key("12.M34P5.h"), (12, 34, "12.M34P5.h"));
    }
}
