//! The `[ParametersSystem]` registry schema (ARCHITECTURE.md, "Configuration and reload"; KB Q182504).
//!
//! Owns the table of known values (name, `REG_` type, range, default) as data — adding a value
//! is one line in [`KNOWN`] — and the rules that turn the TOML table into [`Values`]:
//!
//! * names match case-insensitively, as in the Windows registry; two names equal but for case
//!   are an error;
//! * a TOML integer is a `REG_DWORD` (0 through 4294967295), a TOML string a `REG_SZ`, a
//!   TOML array of strings a `REG_MULTI_SZ` (no string empty or holding a NUL: in the
//!   registry an empty string ends the list);
//! * a known value with the wrong type or out of range is an error naming the value, the type
//!   and the range;
//! * an unknown name is kept (the registry keeps what it does not understand) and reported as
//!   a warning with a "did you mean" suggestion;
//! * a path value that is a Windows path (`c:\exchsrvr\mdbdata`, `\\server\share`) is an error.
//!
//! The table is read with `toml_edit` so that every value keeps its span (for
//! `FILE:LINE:COL` messages) and the file order (for `reg query`).

use std::fmt;
use std::path::{Path, PathBuf};

use super::paths::normalize;

/// The registry key the table stands for.
pub const KEY_PATH: &str =
    "HKEY_LOCAL_MACHINE\\SYSTEM\\CurrentControlSet\\Services\\MSExchangeIS\\ParametersSystem";

/// The name of the TOML table holding the values.
pub const TABLE: &str = "ParametersSystem";

/// Registry value types we support (the KB uses the first two; `REG_MULTI_SZ` holds the
/// per-user logging lists).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RegType {
    Dword,
    Sz,
    MultiSz,
}

impl RegType {
    pub fn as_str(self) -> &'static str {
        match self {
            RegType::Dword => "REG_DWORD",
            RegType::Sz => "REG_SZ",
            RegType::MultiSz => "REG_MULTI_SZ",
        }
    }

    /// Parses `REG_DWORD`/`REG_SZ`/`REG_MULTI_SZ` (case-insensitive, as reg.exe does).
    pub fn parse(s: &str) -> Option<RegType> {
        if s.eq_ignore_ascii_case("REG_DWORD") {
            Some(RegType::Dword)
        } else if s.eq_ignore_ascii_case("REG_SZ") {
            Some(RegType::Sz)
        } else if s.eq_ignore_ascii_case("REG_MULTI_SZ") {
            Some(RegType::MultiSz)
        } else {
            None
        }
    }
}

impl fmt::Display for RegType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The data of one value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RegData {
    Dword(u32),
    Sz(String),
    MultiSz(Vec<String>),
}

impl RegData {
    pub fn reg_type(&self) -> RegType {
        match self {
            RegData::Dword(_) => RegType::Dword,
            RegData::Sz(_) => RegType::Sz,
            RegData::MultiSz(_) => RegType::MultiSz,
        }
    }

    /// The data as `reg query` prints it: DWORD as lowercase `0x` hex, strings as they are,
    /// a multi-string's strings joined by the two characters `\0` (as reg.exe prints them).
    pub fn reg_display(&self) -> String {
        match self {
            RegData::Dword(n) => format!("{n:#x}"),
            RegData::Sz(s) => s.clone(),
            RegData::MultiSz(v) => v.join("\\0"),
        }
    }
}

/// What a known value means when it is absent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DefaultValue {
    Dword(u32),
    /// `server.data_dir`.
    DataDir,
    /// An empty `REG_MULTI_SZ`.
    EmptyList,
}

/// How a known value is checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// `REG_DWORD` in `min..=max`.
    Dword { min: u32, max: u32 },
    /// `REG_SZ` holding an absolute or config-relative POSIX path.
    Path,
    /// `REG_MULTI_SZ` of user names as the users file spells them (matched without regard
    /// to case).
    Users,
}

/// One row of the schema.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ValueDef {
    /// Canonical spelling (as KB Q182504 writes it).
    pub name: &'static str,
    pub kind: Kind,
    pub default: DefaultValue,
}

impl ValueDef {
    pub fn reg_type(&self) -> RegType {
        match self.kind {
            Kind::Dword { .. } => RegType::Dword,
            Kind::Path => RegType::Sz,
            Kind::Users => RegType::MultiSz,
        }
    }

    /// "REG_DWORD 0 through 5" / "REG_SZ (an absolute or config-relative path)".
    pub fn requirement(&self) -> String {
        match self.kind {
            Kind::Dword { min, max } => format!("REG_DWORD {min} through {max}"),
            Kind::Path => "REG_SZ (an absolute or config-relative path)".to_string(),
            Kind::Users => "REG_MULTI_SZ (an array of user names)".to_string(),
        }
    }
}

pub const POP3_LEVEL: &str = "POP3 Protocol Logging Level";
pub const POP3_PATH: &str = "POP3 Protocol Log Path";
pub const POP3_SIZE_LIMIT: &str = "POP3 Protocol Log File Size Limit";
pub const IMAP_LEVEL: &str = "IMAP Protocol Logging Level";
pub const IMAP_PATH: &str = "IMAP Protocol Log Path";
pub const IMAP_SIZE_LIMIT: &str = "IMAP Protocol Log File Size Limit";
/// LMTP: our extension of the KB's scheme, named as the POP3 and IMAP values are.
pub const LMTP_LEVEL: &str = "LMTP Protocol Logging Level";
pub const LMTP_PATH: &str = "LMTP Protocol Log Path";
pub const LMTP_SIZE_LIMIT: &str = "LMTP Protocol Log File Size Limit";
/// Per-user logging (issue #18): sessions of these users log at level 5 whatever the level.
pub const POP3_USERS: &str = "POP3 Protocol Log Users";
pub const IMAP_USERS: &str = "IMAP Protocol Log Users";

const LEVEL: Kind = Kind::Dword { min: 0, max: 5 };
/// KiB; 4194303 KiB is 4 GiB less 1 KiB. 0 = no limit.
const SIZE_LIMIT: Kind = Kind::Dword {
    min: 0,
    max: 4_194_303,
};

/// The schema: every value this server understands. Adding a value is one line.
#[rustfmt::skip]
pub const KNOWN: &[ValueDef] = &[
    ValueDef { name: POP3_LEVEL, kind: LEVEL, default: DefaultValue::Dword(0) },
    ValueDef { name: POP3_PATH, kind: Kind::Path, default: DefaultValue::DataDir },
    ValueDef { name: IMAP_LEVEL, kind: LEVEL, default: DefaultValue::Dword(0) },
    ValueDef { name: IMAP_PATH, kind: Kind::Path, default: DefaultValue::DataDir },
    ValueDef { name: POP3_SIZE_LIMIT, kind: SIZE_LIMIT, default: DefaultValue::Dword(0) },
    ValueDef { name: IMAP_SIZE_LIMIT, kind: SIZE_LIMIT, default: DefaultValue::Dword(0) },
    ValueDef { name: LMTP_LEVEL, kind: LEVEL, default: DefaultValue::Dword(0) },
    ValueDef { name: LMTP_PATH, kind: Kind::Path, default: DefaultValue::DataDir },
    ValueDef { name: LMTP_SIZE_LIMIT, kind: SIZE_LIMIT, default: DefaultValue::Dword(0) },
    ValueDef { name: POP3_USERS, kind: Kind::Users, default: DefaultValue::EmptyList },
    ValueDef { name: IMAP_USERS, kind: Kind::Users, default: DefaultValue::EmptyList },
];

/// The known value called `name` (case-insensitive).
pub fn lookup(name: &str) -> Option<&'static ValueDef> {
    KNOWN.iter().find(|d| d.name.eq_ignore_ascii_case(name))
}

/// The known name closest to `name`, when it is close enough to be a likely typo.
pub fn suggest(name: &str) -> Option<&'static str> {
    let lower = name.to_ascii_lowercase();
    KNOWN
        .iter()
        .map(|d| (levenshtein(&lower, &d.name.to_ascii_lowercase()), d.name))
        .filter(|(dist, _)| *dist <= (name.chars().count() / 3).max(2))
        .min_by_key(|(dist, _)| *dist)
        .map(|(_, n)| n)
}

/// Plain Levenshtein distance over chars (names are short; O(n·m) is fine).
fn levenshtein(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    let mut cur = vec![0; b.len() + 1];
    for (i, ca) in a.chars().enumerate() {
        cur[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let sub = prev[j] + usize::from(ca != *cb);
            cur[j + 1] = sub.min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        std::mem::swap(&mut prev, &mut cur);
    }
    prev[b.len()]
}

/// Whether `s` is written as a Windows path: a drive letter (`c:\`, `C:/`, `C:`), a UNC or
/// rooted path (`\\server\share`, `\logs`), or any backslash separator.
pub fn is_windows_path(s: &str) -> bool {
    let b = s.as_bytes();
    let drive = b.len() >= 2 && b[0].is_ascii_alphabetic() && b[1] == b':';
    drive || s.contains('\\')
}

/// One value present in the file.
#[derive(Debug, Clone, PartialEq)]
pub struct Entry {
    /// The name as written in the file (reg query prints it so).
    pub name: String,
    pub data: RegData,
    /// The schema row, or `None` for an unknown value (kept, unused).
    pub known: Option<&'static ValueDef>,
    /// `FILE:LINE:COL` of the value, for messages.
    pub location: String,
}

/// Every value of the `[ParametersSystem]` table, in file order.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Values {
    /// Values present in the file (known and unknown), in file order.
    pub present: Vec<Entry>,
}

/// Where an effective value comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    File,
    Default,
    /// Present in the file but not known to this server (kept, not used).
    Unknown,
}

impl Values {
    /// The value called `name` (case-insensitive), if present in the file.
    pub fn get(&self, name: &str) -> Option<&Entry> {
        self.present
            .iter()
            .find(|e| e.name.eq_ignore_ascii_case(name))
    }

    /// The DWORD value of known `name`: from the file or its default.
    pub fn dword(&self, name: &str) -> u32 {
        match self.get(name).map(|e| &e.data) {
            Some(RegData::Dword(n)) => *n,
            _ => match lookup(name).map(|d| d.default) {
                Some(DefaultValue::Dword(n)) => n,
                _ => 0,
            },
        }
    }

    /// The strings of known `REG_MULTI_SZ` value `name` (empty when absent).
    pub fn multi_sz(&self, name: &str) -> &[String] {
        match self.get(name).map(|e| &e.data) {
            Some(RegData::MultiSz(v)) => v,
            _ => &[],
        }
    }

    /// Every known value (from the file or defaulted) followed by the unknown ones, for
    /// `check-config`. `data_dir` is the default of path values.
    pub fn effective(&self, data_dir: &Path) -> Vec<(String, RegData, Source)> {
        let mut out = Vec::new();
        for def in KNOWN {
            match self.get(def.name) {
                Some(e) => out.push((def.name.to_string(), e.data.clone(), Source::File)),
                None => {
                    let data = match def.default {
                        DefaultValue::Dword(n) => RegData::Dword(n),
                        DefaultValue::DataDir => RegData::Sz(data_dir.display().to_string()),
                        DefaultValue::EmptyList => RegData::MultiSz(Vec::new()),
                    };
                    out.push((def.name.to_string(), data, Source::Default));
                }
            }
        }
        for e in self.present.iter().filter(|e| e.known.is_none()) {
            out.push((e.name.clone(), e.data.clone(), Source::Unknown));
        }
        out
    }
}

/// Maps byte offsets of one source text to `FILE:LINE:COL` (1-based, columns in chars).
/// The line starts are indexed once, so locating every value of a large table stays
/// linear in the file's size (not a scan from the start per value).
pub struct Locator<'a> {
    pub file: &'a Path,
    pub text: &'a str,
    /// Byte offset of the start of every line (the first is 0).
    line_starts: Vec<usize>,
}

impl<'a> Locator<'a> {
    pub fn new(file: &'a Path, text: &'a str) -> Locator<'a> {
        let line_starts = std::iter::once(0)
            .chain(memchr::memchr_iter(b'\n', text.as_bytes()).map(|i| i + 1))
            .collect();
        Locator {
            file,
            text,
            line_starts,
        }
    }

    pub fn at(&self, offset: usize) -> String {
        let offset = floor_char_boundary(self.text, offset.min(self.text.len()));
        // The last line start at or before `offset` (there is always the one at 0).
        let line = self.line_starts.partition_point(|&s| s <= offset);
        let line_start = self.line_starts[line - 1];
        let col = self.text[line_start..offset].chars().count() + 1;
        format!("{}:{line}:{col}", self.file.display())
    }

    pub fn span(&self, span: Option<std::ops::Range<usize>>) -> String {
        match span {
            Some(r) => self.at(r.start),
            None => self.file.display().to_string(),
        }
    }
}

fn floor_char_boundary(s: &str, mut i: usize) -> usize {
    while i > 0 && !s.is_char_boundary(i) {
        i -= 1;
    }
    i
}

/// Checks the `[ParametersSystem]` table of a parsed document. Returns the values, the
/// warnings and the errors (all already formatted with `FILE:LINE:COL`).
pub fn check_table(
    table: &dyn toml_edit::TableLike,
    loc: &Locator<'_>,
) -> (Values, Vec<String>, Vec<String>) {
    let mut values = Values::default();
    let mut warnings = Vec::new();
    let mut errors = Vec::new();
    // Lowercased name → index in `values.present`: the duplicate check is one lookup.
    let mut seen: std::collections::HashMap<String, usize> = std::collections::HashMap::new();
    for (name, item) in table.iter() {
        let key_loc = loc.span(table.key(name).and_then(|k| k.span()));
        let val_loc = loc.span(
            item.span()
                .or_else(|| table.key(name).and_then(|k| k.span())),
        );
        if let Some(prev) = seen
            .get(&name.to_ascii_lowercase())
            .map(|&i| &values.present[i])
        {
            errors.push(format!(
                "{key_loc}: \"{name}\" and \"{}\" (at {}) are the same registry value: \
                 value names are case-insensitive",
                prev.name, prev.location
            ));
            continue;
        }
        let known = lookup(name);
        let data = match item.as_value() {
            Some(toml_edit::Value::Integer(i)) => {
                let n = *i.value();
                match u32::try_from(n) {
                    Ok(n) => Ok(RegData::Dword(n)),
                    Err(_) => Err(format!("{n}")),
                }
            }
            Some(toml_edit::Value::String(s)) => Ok(RegData::Sz(s.value().clone())),
            Some(toml_edit::Value::Array(a)) => a
                .iter()
                .map(|v| v.as_str().map(str::to_string))
                .collect::<Option<Vec<String>>>()
                .map(RegData::MultiSz)
                .ok_or_else(|| a.to_string().trim().to_string()),
            Some(other) => Err(other.to_string().trim().to_string()),
            None => Err("a table".to_string()),
        };
        let data = match (known, data) {
            (Some(def), Ok(data)) => match check_known(def, &data) {
                Ok(()) => {
                    warnings.extend(
                        repeated_strings(&data)
                            .map(|s| format!("{val_loc}: \"{name}\" lists {s:?} more than once")),
                    );
                    data
                }
                Err(msg) => {
                    errors.push(format!("{val_loc}: {msg}"));
                    continue;
                }
            },
            (Some(def), Err(got)) => {
                errors.push(format!(
                    "{val_loc}: \"{}\" must be {}, got {got}",
                    def.name,
                    def.requirement()
                ));
                continue;
            }
            (None, Ok(RegData::Sz(sz))) if check_sz(&sz).is_err() => {
                let why = check_sz(&sz).err().unwrap_or_default();
                errors.push(format!("{val_loc}: \"{name}\" must not hold {why}"));
                continue;
            }
            (None, Ok(RegData::MultiSz(list))) if check_multi_sz(&list).is_err() => {
                let why = check_multi_sz(&list).err().unwrap_or_default();
                errors.push(format!("{val_loc}: \"{name}\" must not hold {why}"));
                continue;
            }
            (None, Ok(data)) => {
                let hint = match suggest(name) {
                    Some(s) => format!(" (did you mean \"{s}\"?)"),
                    None => String::new(),
                };
                warnings.push(format!(
                    "{key_loc}: unknown registry value \"{name}\" is kept but not used{hint}"
                ));
                data
            }
            (None, Err(got)) => {
                errors.push(format!(
                    "{val_loc}: \"{name}\" must be REG_DWORD (an integer 0 through 4294967295), \
                     REG_SZ (a string) or REG_MULTI_SZ (an array of strings), got {got}"
                ));
                continue;
            }
        };
        seen.insert(name.to_ascii_lowercase(), values.present.len());
        values.present.push(Entry {
            name: name.to_string(),
            data,
            known,
            location: val_loc,
        });
    }
    (values, warnings, errors)
}

/// The strings of a `REG_MULTI_SZ` listed more than once (without regard to case): a
/// warning, not an error (the list still means what it says).
fn repeated_strings(data: &RegData) -> impl Iterator<Item = String> + '_ {
    let list: &[String] = match data {
        RegData::MultiSz(v) => v,
        _ => &[],
    };
    list.iter().enumerate().filter_map(move |(i, s)| {
        let first = list.iter().position(|t| t.eq_ignore_ascii_case(s)) == Some(i);
        let again = list[i + 1..].iter().any(|t| t.eq_ignore_ascii_case(s));
        (first && again).then(|| s.clone())
    })
}

/// Whether the strings of a multi-string could be stored in the registry: none empty (an
/// empty string ends a `REG_MULTI_SZ`) and none holding a NUL.
pub fn check_multi_sz(list: &[String]) -> Result<(), String> {
    if list.iter().any(String::is_empty) {
        return Err("an empty string (in the registry it would end the list)".into());
    }
    if list.iter().any(|s| s.contains('\0')) {
        return Err("a string holding a NUL character".into());
    }
    Ok(())
}

/// Whether a string could be stored as a `REG_SZ`: the registry reads one up to its first
/// NUL, so a NUL inside would be lost on the way out (`reg export`) and back.
pub fn check_sz(s: &str) -> Result<(), String> {
    if s.contains('\0') {
        return Err("a NUL character (a REG_SZ ends at its first NUL)".into());
    }
    Ok(())
}

/// Checks `data` against the schema row `def`; the error names value, type and range.
pub fn check_known(def: &ValueDef, data: &RegData) -> Result<(), String> {
    let bad = |got: String| format!("\"{}\" must be {}, got {got}", def.name, def.requirement());
    if let RegData::MultiSz(list) = data {
        check_multi_sz(list).map_err(|why| format!("\"{}\" must not hold {why}", def.name))?;
    }
    if let RegData::Sz(s) = data {
        check_sz(s).map_err(|why| format!("\"{}\" must not hold {why}", def.name))?;
    }
    match (def.kind, data) {
        (Kind::Users, RegData::MultiSz(list)) => match list.iter().find(|u| u.contains(':')) {
            Some(u) => Err(format!(
                "\"{}\" lists {u:?}: a user name of the users file cannot hold ':'",
                def.name
            )),
            None => Ok(()),
        },
        (Kind::Users, RegData::Dword(n)) => Err(bad(format!("REG_DWORD {n}"))),
        (Kind::Users, RegData::Sz(s)) => Err(bad(format!(
            "REG_SZ {s:?} (write a list: [{}])",
            toml_edit::Value::from(s.as_str())
        ))),
        (Kind::Dword { .. } | Kind::Path, RegData::MultiSz(v)) => {
            Err(bad(format!("REG_MULTI_SZ {v:?}")))
        }
        (Kind::Dword { min, max }, RegData::Dword(n)) => {
            if (min..=max).contains(n) {
                Ok(())
            } else {
                Err(bad(n.to_string()))
            }
        }
        (Kind::Dword { .. }, RegData::Sz(s)) => Err(bad(format!("REG_SZ {s:?}"))),
        (Kind::Path, RegData::Dword(n)) => Err(bad(format!("REG_DWORD {n}"))),
        (Kind::Path, RegData::Sz(s)) => {
            if s.is_empty() {
                Err(format!("\"{}\" must not be empty", def.name))
            } else if is_windows_path(s) {
                Err(format!(
                    "\"{}\" is a Windows path ({s:?}); use a POSIX path such as \
                     \"/var/log/mailserver\" (relative paths resolve against the config \
                     file's directory)",
                    def.name
                ))
            } else {
                Ok(())
            }
        }
    }
}

/// The path of known path value `name`: from the file (resolved against `base`) or
/// `data_dir`.
pub fn resolved_path(values: &Values, name: &str, base: &Path, data_dir: &Path) -> PathBuf {
    match values.get(name).map(|e| &e.data) {
        Some(RegData::Sz(s)) => normalize(&base.join(s)),
        _ => data_dir.to_path_buf(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(src: &str) -> (Values, Vec<String>, Vec<String>) {
        let doc = toml_edit::Document::parse(src.to_string()).unwrap();
        let table = doc[TABLE].as_table_like().unwrap();
        let loc = Locator::new(Path::new("etc/mailserver.toml"), src);
        check_table(table, &loc)
    }

    #[test]
    fn known_values_parse_with_types() {
        let (v, w, e) = check(
            "[ParametersSystem]\n\"POP3 Protocol Logging Level\" = 5\n\"imap protocol log path\" = \"logs\"\n",
        );
        assert!(e.is_empty() && w.is_empty(), "{e:?} {w:?}");
        assert_eq!(v.dword(POP3_LEVEL), 5);
        assert_eq!(v.dword(IMAP_LEVEL), 0);
        let p = v.get(IMAP_PATH).unwrap();
        assert_eq!(p.name, "imap protocol log path");
        assert_eq!(p.data, RegData::Sz("logs".into()));
    }

    #[test]
    fn out_of_range_names_value_type_range_and_position() {
        let (_, _, e) = check("[ParametersSystem]\n\"POP3 Protocol Logging Level\" = 7\n");
        assert_eq!(
            e,
            vec![
                "etc/mailserver.toml:2:33: \"POP3 Protocol Logging Level\" must be REG_DWORD 0 through 5, got 7"
            ]
        );
    }

    #[test]
    fn type_mismatch_both_ways() {
        let (_, _, e) = check(
            "[ParametersSystem]\n\"POP3 Protocol Logging Level\" = \"5\"\n\"POP3 Protocol Log Path\" = 3\n\"IMAP Protocol Logging Level\" = -1\n\"IMAP Protocol Log Path\" = true\n",
        );
        assert_eq!(e.len(), 4, "{e:?}");
        assert!(e[0].contains("must be REG_DWORD 0 through 5, got REG_SZ \"5\""));
        assert!(e[1].contains("\"POP3 Protocol Log Path\" must be REG_SZ"));
        assert!(e[2].contains("got -1"));
        assert!(e[3].contains("got true"));
    }

    #[test]
    fn size_limit_range() {
        let (v, _, e) = check("[ParametersSystem]\n\"POP3 Protocol Log File Size Limit\" = 4194303\n\"IMAP Protocol Log File Size Limit\" = 4194304\n");
        assert_eq!(v.dword(POP3_SIZE_LIMIT), 4_194_303);
        assert_eq!(e.len(), 1);
        assert!(
            e[0].contains("REG_DWORD 0 through 4194303, got 4194304"),
            "{e:?}"
        );
    }

    #[test]
    fn names_equal_but_for_case_are_an_error() {
        let (_, _, e) = check(
            "[ParametersSystem]\n\"POP3 Protocol Logging Level\" = 1\n\"pop3 protocol logging level\" = 2\n",
        );
        assert_eq!(e.len(), 1);
        assert!(e[0].starts_with("etc/mailserver.toml:3:1: "), "{e:?}");
        assert!(e[0].contains("case-insensitive"));
    }

    #[test]
    fn unknown_kept_with_suggestion() {
        let (v, w, e) = check(
            "[ParametersSystem]\n\"POP3 Protocol Loging Level\" = 1\n\"Something Else\" = \"x\"\n",
        );
        assert!(e.is_empty());
        assert_eq!(v.present.len(), 2);
        assert!(v.present.iter().all(|e| e.known.is_none()));
        assert!(
            w[0].contains("did you mean \"POP3 Protocol Logging Level\"?"),
            "{w:?}"
        );
        assert!(!w[1].contains("did you mean"), "{w:?}");
        assert_eq!(v.dword(POP3_LEVEL), 0);
    }

    #[test]
    fn windows_paths_are_rejected() {
        for p in [
            "c:\\exchsrvr\\mdbdata",
            "C:/logs",
            "D:",
            "\\\\server\\share",
            "\\logs",
            "logs\\pop3",
        ] {
            let src = format!(
                "[ParametersSystem]\n\"POP3 Protocol Log Path\" = {}\n",
                toml_edit::Value::from(p)
            );
            let (_, _, e) = check(&src);
            assert_eq!(e.len(), 1, "{p}");
            assert!(e[0].contains("is a Windows path"), "{e:?}");
        }
        assert!(!is_windows_path("/var/log/mailserver"));
        assert!(!is_windows_path("logs/pop3"));
    }

    #[test]
    fn users_lists_are_reg_multi_sz() {
        let (v, w, e) = check(
            "[ParametersSystem]\n\"imap protocol log users\" = [\"alice\", \"Bob\", \"ALICE\"]\n\"POP3 Protocol Log Users\" = []\n",
        );
        assert!(e.is_empty(), "{e:?}");
        assert_eq!(v.multi_sz(IMAP_USERS), ["alice", "Bob", "ALICE"]);
        assert!(v.multi_sz(POP3_USERS).is_empty());
        assert_eq!(w.len(), 1, "{w:?}");
        assert!(w[0].contains("lists \"alice\" more than once"), "{w:?}");
        let (_, _, e) = check(
            "[ParametersSystem]\n\"IMAP Protocol Log Users\" = \"alice\"\n\"POP3 Protocol Log Users\" = [\"a\", \"\"]\n\"POP3 Protocol Logging Level\" = [\"5\"]\n\"Other\" = [1]\n\"IMAP Protocol Log Path\" = [\"x\"]\n",
        );
        assert_eq!(e.len(), 5, "{e:?}");
        assert!(e[0].contains("must be REG_MULTI_SZ (an array of user names), got REG_SZ \"alice\" (write a list: [\"alice\"])"), "{e:?}");
        assert!(e[1].contains("must not hold an empty string"), "{e:?}");
        assert!(e[2].contains("must be REG_DWORD 0 through 5, got REG_MULTI_SZ"), "{e:?}");
        assert!(e[3].contains("or REG_MULTI_SZ (an array of strings), got [1]"), "{e:?}");
        assert!(e[4].contains("\"IMAP Protocol Log Path\" must be REG_SZ"), "{e:?}");
        let (_, _, e) = check("[ParametersSystem]\n\"IMAP Protocol Log Users\" = [\"a:b\"]\n");
        assert!(e[0].contains("cannot hold ':'"), "{e:?}");
        // Unknown names may be arrays of strings too (kept, warned about).
        let (v, w, e) = check("[ParametersSystem]\n\"IMAP Protocol Log User\" = [\"a\"]\n");
        assert!(e.is_empty());
        assert!(w[0].contains("did you mean \"IMAP Protocol Log Users\"?"), "{w:?}");
        assert_eq!(v.present[0].data, RegData::MultiSz(vec!["a".into()]));
    }

    #[test]
    fn locator_counts_chars() {
        let loc = Locator::new(Path::new("f"), "a\néé = 1\n");
        assert_eq!(loc.at(0), "f:1:1");
        assert_eq!(loc.at(2), "f:2:1");
        assert_eq!(loc.at(7), "f:2:4");
    }

    #[test]
    fn levenshtein_basics() {
        assert_eq!(levenshtein("kitten", "sitting"), 3);
        assert_eq!(levenshtein("", "abc"), 3);
        assert_eq!(suggest("imap protocol log pth"), Some(IMAP_PATH));
        assert_eq!(suggest("Totally Different"), None);
    }

    #[test]
    fn reg_display_is_lowercase_hex() {
        assert_eq!(RegData::Dword(0x5).reg_display(), "0x5");
        assert_eq!(RegData::Dword(255).reg_display(), "0xff");
    }
}
