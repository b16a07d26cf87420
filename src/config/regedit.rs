//! The `reg` CLI as a library (README.md, "Command line"): `query`, `add`, `delete`, `import`, `export` on the
//! `[ParametersSystem]` table of a config file, shaped like Windows `reg.exe`.
//!
//! Owns: the edit of the TOML document (with `toml_edit`, so comments and layout survive,
//! including the trailing comment of a replaced value), the validation of the edited
//! document (exactly [`crate::config::parse`], so `reg` refuses what loading would refuse,
//! with the same message), the atomic rewrite (temp file in the target's directory, fsync,
//! rename, fsync of the directory; a symlinked config has its target rewritten), and the
//! `.reg` file format of `regedit.exe` (`Windows Registry Editor Version 5.00` / `REGEDIT4`,
//! UTF-16LE with BOM or UTF-8): `dword:`, quoted strings, and `hex(7):` (REG_MULTI_SZ) and
//! `hex(1):` (REG_SZ as bytes: how a string holding a line break is exported, since a
//! quoted string cannot carry one) as UTF-16LE with `\` continuation lines.
//!
//! `reg.exe` prompts before overwriting or deleting a value unless `/f` is given; we have no
//! prompt, so without `/f` such a request is refused (exit 1) with a message saying so.

use std::fs;
use std::io::Write;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use toml_edit::{DocumentMut, Item, TableLike};

use super::registry::{self, RegData, RegType, Values, KEY_PATH, TABLE};

/// reg.exe's message for a missing value.
pub const NOT_FOUND: &str =
    "ERROR: The system was unable to find the specified registry key or value.";
/// reg.exe's message for success.
pub const SUCCESS: &str = "The operation completed successfully.";

/// Why a `reg` request failed.
#[derive(Debug, thiserror::Error)]
pub enum RegError {
    /// Invalid request or configuration (exit 1); nothing was changed.
    #[error("{0}")]
    Invalid(String),
    /// Malformed command line (exit 2).
    #[error("{0}")]
    Usage(String),
}

impl RegError {
    pub fn exit_code(&self) -> u8 {
        match self {
            RegError::Invalid(_) => 1,
            RegError::Usage(_) => 2,
        }
    }
}

fn invalid(msg: impl Into<String>) -> RegError {
    RegError::Invalid(msg.into())
}

/// A successful edit: reg.exe's message, and the warnings of the resulting config (unknown
/// value names, skipped `.reg` lines), each already naming file and line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Edited {
    pub message: String,
    pub warnings: Vec<String>,
}

/// One change to the table, from `reg add`/`reg delete` or a `.reg` line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RegOp {
    Set(String, RegData),
    Delete(String),
}

/// `reg add` data: DWORD accepts decimal or `0x` hex, like reg.exe; REG_MULTI_SZ strings
/// are separated by the two characters `\0` (reg.exe's default separator; one trailing
/// `\0` is allowed, empty data is an empty list).
pub fn parse_data(ty: RegType, data: &str) -> Result<RegData, RegError> {
    match ty {
        RegType::Sz => Ok(RegData::Sz(data.to_string())),
        RegType::MultiSz => {
            if data.is_empty() {
                return Ok(RegData::MultiSz(Vec::new()));
            }
            let body = data.strip_suffix("\\0").unwrap_or(data);
            let list: Vec<String> = body.split("\\0").map(str::to_string).collect();
            registry::check_multi_sz(&list).map_err(|why| {
                invalid(format!(
                    "ERROR: Invalid REG_MULTI_SZ data {data:?}: it holds {why}; separate the \
                     strings with \\0"
                ))
            })?;
            Ok(RegData::MultiSz(list))
        }
        RegType::Dword => {
            let t = data.trim();
            let n = match t.strip_prefix("0x").or_else(|| t.strip_prefix("0X")) {
                Some(hex) => u32::from_str_radix(hex, 16),
                None => t.parse::<u32>(),
            };
            n.map(RegData::Dword).map_err(|_| {
                invalid(format!(
                    "ERROR: Invalid REG_DWORD data {data:?}: give a number from 0 to 4294967295, \
                     decimal or 0x hex"
                ))
            })
        }
    }
}

fn load_values(config: &Path) -> Result<Values, RegError> {
    super::load(config)
        .map(|c| c.registry)
        .map_err(|e| invalid(e.0))
}

/// `reg query [VALUE]`: the values present in the file, in reg.exe's shape.
pub fn query(config: &Path, value: Option<&str>) -> Result<String, RegError> {
    let values = load_values(config)?;
    let entries: Vec<&registry::Entry> = match value {
        Some(name) => vec![values.get(name).ok_or_else(|| invalid(NOT_FOUND))?],
        None => values.present.iter().collect(),
    };
    let mut out = format!("\n{KEY_PATH}\n");
    for e in entries {
        out.push_str(&format!(
            "    {}    {}    {}\n",
            e.name,
            e.data.reg_type(),
            e.data.reg_display()
        ));
    }
    out.push('\n');
    Ok(out)
}

/// `reg add VALUE /t TYPE /d DATA [/f]`.
pub fn add(config: &Path, name: &str, data: RegData, force: bool) -> Result<Edited, RegError> {
    let _lock = lock_edits(config)?;
    if name.is_empty() {
        return Err(invalid("ERROR: A value name is required."));
    }
    let (text, mut doc) = read_doc(config)?;
    if !force && find_key(&doc, name).is_some() {
        return Err(invalid(format!(
            "ERROR: Value \"{name}\" exists; reg.exe would ask \"Overwrite (Yes/No)?\". \
             There is no prompt here: add /f to overwrite."
        )));
    }
    apply(&mut doc, &RegOp::Set(name.to_string(), data));
    let warnings = commit(config, &text, &doc)?;
    Ok(Edited {
        message: SUCCESS.to_string(),
        warnings,
    })
}

/// `reg delete VALUE [/f]`.
pub fn delete(config: &Path, name: &str, force: bool) -> Result<Edited, RegError> {
    let _lock = lock_edits(config)?;
    let (text, mut doc) = read_doc(config)?;
    if find_key(&doc, name).is_none() {
        return Err(invalid(NOT_FOUND));
    }
    if !force {
        return Err(invalid(format!(
            "ERROR: reg.exe would ask \"Delete the registry value {name} (Yes/No)?\". \
             There is no prompt here: add /f to delete."
        )));
    }
    apply(&mut doc, &RegOp::Delete(name.to_string()));
    let warnings = commit(config, &text, &doc)?;
    Ok(Edited {
        message: SUCCESS.to_string(),
        warnings,
    })
}

/// `reg import FILE.reg`: all or nothing. Returns the warnings (skipped keys and types).
pub fn import(config: &Path, reg_file: &Path) -> Result<Edited, RegError> {
    let bytes = fs::read(reg_file)
        .map_err(|e| invalid(format!("ERROR: cannot read {}: {e}", reg_file.display())))?;
    let parsed =
        parse_reg(&bytes).map_err(|e| invalid(format!("ERROR: {}: {e}", reg_file.display())))?;
    let _lock = lock_edits(config)?;
    let (text, mut doc) = read_doc(config)?;
    for op in &parsed.ops {
        apply(&mut doc, op);
    }
    let config_warnings = commit(config, &text, &doc)?;
    let mut warnings: Vec<String> = parsed
        .warnings
        .into_iter()
        .map(|w| format!("{}: {w}", reg_file.display()))
        .collect();
    warnings.extend(config_warnings);
    Ok(Edited {
        message: SUCCESS.to_string(),
        warnings,
    })
}

/// `reg export FILE.reg`: the values present in the file, as regedit writes them.
pub fn export(config: &Path, reg_file: &Path) -> Result<String, RegError> {
    let values = load_values(config)?;
    write_atomic(reg_file, &render_reg(&values), false)
        .map_err(|e| invalid(format!("ERROR: cannot write {}: {e}", reg_file.display())))?;
    Ok(SUCCESS.to_string())
}

/// Serialises `reg` edits of one config (each is read, change, write): an exclusive `flock`
/// on the directory the file really lives in (a symlink's target's), held until the edit
/// is written. Locking the directory leaves no lock file behind; the file itself cannot be
/// locked, since every edit replaces it by a rename.
fn lock_edits(config: &Path) -> Result<fs::File, RegError> {
    let target = fs::canonicalize(config).unwrap_or_else(|_| config.to_path_buf());
    let dir = match target.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let cannot =
        |e: std::io::Error| invalid(format!("{}: cannot lock for editing: {e}", dir.display()));
    let f = fs::File::open(&dir).map_err(cannot)?;
    f.lock().map_err(cannot)?;
    Ok(f)
}

fn read_doc(config: &Path) -> Result<(String, DocumentMut), RegError> {
    let bytes = super::read_file(config)
        .map_err(|e| invalid(format!("{}: cannot read: {e}", config.display())))?;
    let text = String::from_utf8(bytes)
        .map_err(|_| invalid(format!("{}: the file is not valid UTF-8", config.display())))?;
    // Errors are reported by `super::parse` with positions; a document that does not even
    // parse goes through it for the message.
    match text.parse::<DocumentMut>() {
        Ok(doc) => Ok((text, doc)),
        Err(_) => Err(invalid(
            super::parse(config, text.as_bytes())
                .err()
                .map_or_else(|| "invalid TOML".to_string(), |e| e.0),
        )),
    }
}

/// The existing key of the table equal to `name` but for case.
fn find_key(doc: &DocumentMut, name: &str) -> Option<String> {
    let t = doc.get(TABLE)?.as_table_like()?;
    t.iter()
        .map(|(k, _)| k)
        .find(|k| k.eq_ignore_ascii_case(name))
        .map(str::to_string)
}

fn table_mut(doc: &mut DocumentMut, create: bool) -> Option<&mut dyn TableLike> {
    if doc.get(TABLE).is_none() {
        if !create {
            return None;
        }
        let mut t = toml_edit::Table::new();
        t.decor_mut().set_prefix(format!(
            "\n# {}\n",
            KEY_PATH.replace("HKEY_LOCAL_MACHINE", "HKLM")
        ));
        doc.insert(TABLE, Item::Table(t));
    }
    doc.get_mut(TABLE)?.as_table_like_mut()
}

/// Applies one change; names match case-insensitively and an existing name keeps its
/// spelling and its decor (comments before and after).
pub fn apply(doc: &mut DocumentMut, op: &RegOp) {
    let existing = find_key(
        doc,
        match op {
            RegOp::Set(n, _) | RegOp::Delete(n) => n,
        },
    );
    match op {
        RegOp::Set(name, data) => {
            let mut v = match data {
                RegData::Dword(n) => toml_edit::Value::from(i64::from(*n)),
                RegData::Sz(s) => toml_edit::Value::from(s.as_str()),
                RegData::MultiSz(v) => {
                    toml_edit::Value::Array(v.iter().map(String::as_str).collect())
                }
            };
            if let Some(k) = existing {
                if let Some(item) = table_mut(doc, false).and_then(|t| t.get_mut(&k)) {
                    if let Some(old) = item.as_value() {
                        *v.decor_mut() = old.decor().clone();
                    }
                    *item = Item::Value(v);
                }
                return;
            }
            // Quote new names like the others (`"POP3 Protocol Logging Level"`).
            let quoted = toml_edit::Value::from(name.as_str()).to_string();
            let key = toml_edit::Key::parse(quoted.trim())
                .ok()
                .and_then(|mut k| k.pop())
                .unwrap_or_else(|| toml_edit::Key::new(name.as_str()));
            table_mut(doc, true);
            match doc.get_mut(TABLE) {
                Some(Item::Table(t)) => {
                    t.insert_formatted(&key, Item::Value(v));
                }
                Some(Item::Value(toml_edit::Value::InlineTable(t))) => {
                    t.insert_formatted(&key, v);
                }
                _ => {}
            }
        }
        RegOp::Delete(_) => {
            if let (Some(k), Some(t)) = (existing, table_mut(doc, false)) {
                t.remove(&k);
            }
        }
    }
}

/// Validates the edited document exactly as loading would, then writes it atomically.
/// Returns the warnings of the new config.
fn commit(config: &Path, old_text: &str, doc: &DocumentMut) -> Result<Vec<String>, RegError> {
    let new_text = doc.to_string();
    let parsed = super::parse(config, new_text.as_bytes()).map_err(|e| invalid(e.0))?;
    if new_text != old_text {
        write_atomic(config, new_text.as_bytes(), true)
            .map_err(|e| invalid(format!("{}: cannot write: {e}", config.display())))?;
    }
    Ok(parsed.warnings)
}

/// Writes `bytes` to `path` atomically: a temp file in the same directory (of the symlink's
/// target when `path` is a symlink), fsync, rename over, fsync the directory. Mode and owner
/// of an existing file are kept.
pub fn write_atomic(path: &Path, bytes: &[u8], follow: bool) -> std::io::Result<()> {
    let target: PathBuf = if follow {
        fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf())
    } else {
        path.to_path_buf()
    };
    let dir = match target.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let file_name = target
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "config".into());
    let old = fs::metadata(&target).ok();
    let mode = old
        .as_ref()
        .map_or(0o644, |m| m.permissions().mode() & 0o7777);
    let mut attempt = 0u32;
    let (tmp, mut f) = loop {
        let tmp = dir.join(format!(".{file_name}.tmp.{}.{attempt}", std::process::id()));
        match fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(mode)
            .open(&tmp)
        {
            Ok(f) => break (tmp, f),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists && attempt < 100 => {
                attempt += 1;
            }
            Err(e) => return Err(e),
        }
    };
    let result = (|| {
        f.write_all(bytes)?;
        f.set_permissions(fs::Permissions::from_mode(mode))?;
        if let Some(m) = &old {
            // Keep the owner when we can (root editing a file owned by the service user);
            // failing that is not worth refusing the edit.
            let _ = std::os::unix::fs::fchown(&f, Some(m.uid()), Some(m.gid()));
        }
        f.sync_all()?;
        fs::rename(&tmp, &target)?;
        fs::File::open(&dir)?.sync_all()
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

// ---- .reg files ----

const HEADER5: &str = "Windows Registry Editor Version 5.00";
const HEADER4: &str = "REGEDIT4";

/// A parsed `.reg` file: the changes to our key, and what was skipped.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RegFile {
    pub ops: Vec<RegOp>,
    /// "line N: ..." for every skipped key, value type or default value.
    pub warnings: Vec<String>,
}

/// Decodes UTF-16LE with BOM, or UTF-8 with or without BOM.
fn decode(bytes: &[u8]) -> Result<String, String> {
    if let Some(rest) = bytes.strip_prefix(&[0xFF, 0xFE]) {
        if rest.len() % 2 != 0 {
            return Err("truncated UTF-16LE text (odd number of bytes)".into());
        }
        let units: Vec<u16> = rest
            .chunks_exact(2)
            .map(|c| u16::from_le_bytes([c[0], c[1]]))
            .collect();
        String::from_utf16(&units).map_err(|_| "invalid UTF-16LE text".to_string())
    } else {
        let rest = bytes.strip_prefix(&[0xEF, 0xBB, 0xBF]).unwrap_or(bytes);
        match String::from_utf8(rest.to_vec()) {
            Ok(s) => Ok(s),
            // REGEDIT4 files are in the ANSI code page; read them as Latin-1 (Windows-1252
            // differs only in 0x80..=0x9F, which paths and names rarely use).
            Err(_) if rest.starts_with(HEADER4.as_bytes()) => {
                Ok(rest.iter().map(|&b| char::from(b)).collect())
            }
            Err(_) => Err("not UTF-16LE with BOM nor UTF-8 text".to_string()),
        }
    }
}

/// Parses a `"..."` string with `\\` and `\"` escapes at the start of `s`; returns the
/// string and the rest after the closing quote.
fn quoted(s: &str) -> Option<(String, &str)> {
    let mut chars = s.strip_prefix('"')?.char_indices();
    let mut out = String::new();
    while let Some((i, c)) = chars.next() {
        match c {
            '"' => return Some((out, &s[i + 2..])),
            '\\' => match chars.next() {
                Some((_, e @ ('\\' | '"'))) => out.push(e),
                Some((_, 'n')) => out.push('\n'),
                Some((_, 'r')) => out.push('\r'),
                Some((_, 't')) => out.push('\t'),
                Some((_, '0')) => out.push('\0'),
                // regedit keeps an unknown escape's backslash
                Some((_, e)) => {
                    out.push('\\');
                    out.push(e);
                }
                None => return None,
            },
            c => out.push(c),
        }
    }
    None
}

/// Parses a `.reg` file (README.md, "Command line"). Only values of the `ParametersSystem` key are returned;
/// other keys, `@` default values and types other than `dword:`/strings are skipped with a
/// warning. A malformed line is an error ("line N: ...").
pub fn parse_reg(bytes: &[u8]) -> Result<RegFile, String> {
    let text = decode(bytes)?;
    let mut out = RegFile::default();
    let mut lines = text.split('\n').map(|l| l.strip_suffix('\r').unwrap_or(l));
    let mut lineno = 0usize;
    // header
    loop {
        let Some(l) = lines.next() else {
            return Err("empty file: no \"Windows Registry Editor Version 5.00\" header".into());
        };
        lineno += 1;
        let t = l.trim();
        if t.is_empty() {
            continue;
        }
        if t != HEADER5 && t != HEADER4 {
            return Err(format!(
                "line {lineno}: expected \"{HEADER5}\" or \"{HEADER4}\", got {t:?}"
            ));
        }
        break;
    }
    // None = before any key; Some(true) = our key; Some(false) = another key
    let mut in_key: Option<bool> = None;
    while let Some(first) = lines.next() {
        lineno += 1;
        let start = lineno;
        let mut line = first.trim().to_string();
        // `\` at the end continues a line (hex data); join the continuation lines.
        while line.ends_with('\\') {
            line.pop();
            match lines.next() {
                Some(next) => {
                    lineno += 1;
                    line.push_str(next.trim());
                }
                None => break,
            }
        }
        if line.is_empty() || line.starts_with(';') {
            continue;
        }
        if let Some(inner) = line.strip_prefix('[') {
            let Some(key) = inner.strip_suffix(']') else {
                return Err(format!("line {start}: unterminated key {line:?}"));
            };
            if let Some(deleted) = key.strip_prefix('-') {
                out.warnings.push(format!(
                    "line {start}: deleting key [{deleted}] is not supported; skipped"
                ));
                in_key = Some(false);
            } else if key.trim().eq_ignore_ascii_case(KEY_PATH) {
                in_key = Some(true);
            } else {
                out.warnings.push(format!(
                    "line {start}: key [{key}] is not {KEY_PATH}; its values are skipped"
                ));
                in_key = Some(false);
            }
            continue;
        }
        let (name, rest) = if let Some(rest) = line.strip_prefix('@') {
            (None, rest)
        } else {
            match quoted(&line) {
                Some((n, rest)) => (Some(n), rest),
                None => return Err(format!("line {start}: malformed value line {line:?}")),
            }
        };
        let Some(data) = rest.trim_start().strip_prefix('=') else {
            return Err(format!("line {start}: expected '=' in {line:?}"));
        };
        let data = data.trim();
        match in_key {
            None => {
                return Err(format!("line {start}: value before any [key]"));
            }
            Some(false) => continue,
            Some(true) => {}
        }
        let Some(name) = name else {
            out.warnings.push(format!(
                "line {start}: the default value (@) is not used; skipped"
            ));
            continue;
        };
        if data == "-" {
            out.ops.push(RegOp::Delete(name));
        } else if data.starts_with('"') {
            match quoted(data) {
                Some((s, tail)) if tail.trim().is_empty() => {
                    out.ops.push(RegOp::Set(name, RegData::Sz(s)))
                }
                _ => return Err(format!("line {start}: malformed string data {data:?}")),
            }
        } else if let Some(hex) = data
            .get(..6)
            .filter(|p| p.eq_ignore_ascii_case("dword:"))
            .map(|_| &data[6..])
        {
            let ok =
                !hex.is_empty() && hex.len() <= 8 && hex.chars().all(|c| c.is_ascii_hexdigit());
            match u32::from_str_radix(hex, 16) {
                Ok(n) if ok => out.ops.push(RegOp::Set(name, RegData::Dword(n))),
                _ => return Err(format!("line {start}: malformed dword data {data:?}")),
            }
        } else if let Some((ty, hex)) = data.split_once(':').filter(|(ty, _)| {
            ty.eq_ignore_ascii_case("hex(1)") || ty.eq_ignore_ascii_case("hex(7)")
        }) {
            let bytes = parse_hex(hex)
                .ok_or_else(|| format!("line {start}: malformed {ty} data {data:?}"))?;
            let strings = utf16_strings(&bytes)
                .ok_or_else(|| format!("line {start}: {ty} data is not UTF-16LE text"))?;
            if ty.eq_ignore_ascii_case("hex(1)") {
                // REG_SZ: one string; the data ends with its NUL (none, or more, are read
                // as regedit reads them: up to the first NUL).
                let s = strings.into_iter().next().unwrap_or_default();
                out.ops.push(RegOp::Set(name, RegData::Sz(s)));
            } else {
                // REG_MULTI_SZ: each string NUL-terminated, then an empty string.
                out.ops.push(RegOp::Set(name, RegData::MultiSz(strings)));
            }
        } else {
            let ty = data.split(':').next().unwrap_or(data);
            out.warnings.push(format!(
                "line {start}: \"{name}\" has type {ty}: only dword, string, hex(1) and \
                 hex(7) values are supported; skipped"
            ));
        }
    }
    Ok(out)
}

/// `61,00,62,00` (continuation lines already joined) → bytes; empty data is no bytes.
fn parse_hex(hex: &str) -> Option<Vec<u8>> {
    let hex = hex.trim();
    if hex.is_empty() {
        return Some(Vec::new());
    }
    hex.split(',')
        .map(|b| {
            let b = b.trim();
            (b.len() <= 2 && !b.is_empty())
                .then(|| u8::from_str_radix(b, 16).ok())
                .flatten()
        })
        .collect()
}

/// UTF-16LE data → its NUL-terminated strings, stopping at the first empty one (the end of
/// a REG_MULTI_SZ); a last string without its NUL is kept.
fn utf16_strings(bytes: &[u8]) -> Option<Vec<String>> {
    if !bytes.len().is_multiple_of(2) {
        return None;
    }
    let units: Vec<u16> = bytes
        .chunks_exact(2)
        .map(|c| u16::from_le_bytes([c[0], c[1]]))
        .collect();
    let mut out = Vec::new();
    for s in units.split(|&u| u == 0) {
        if s.is_empty() {
            break;
        }
        out.push(String::from_utf16(s).ok()?);
    }
    Some(out)
}

/// Longest line regedit writes hex data on before a `\` continuation (Wine's
/// `programs/regedit/export.c` has the same rule: wrap once the line reaches 77 columns,
/// continue with two spaces).
const HEX_LINE: usize = 77;

/// `hex(N):xx,xx,...` as regedit writes it after `prefix` (`"Name"=`): lines wrapped with
/// `\` + CRLF + two spaces once they reach [`HEX_LINE`] columns.
fn hex_data(prefix_len: usize, ty: &str, bytes: &[u8]) -> String {
    let mut out = format!("{ty}:");
    let mut col = prefix_len + out.len();
    for (i, b) in bytes.iter().enumerate() {
        out.push_str(&format!("{b:02x}"));
        if i + 1 == bytes.len() {
            break;
        }
        out.push(',');
        col += 3;
        if col >= HEX_LINE {
            out.push_str("\\\r\n  ");
            col = 2;
        }
    }
    out
}

/// The strings as UTF-16LE, each NUL-terminated, then (`multi`) the final NUL.
fn utf16_data(strings: &[String], multi: bool) -> Vec<u8> {
    let mut out = Vec::new();
    for s in strings {
        for u in s.encode_utf16().chain([0]) {
            out.extend_from_slice(&u.to_le_bytes());
        }
    }
    if multi {
        out.extend_from_slice(&[0, 0]);
    }
    out
}

/// Escapes a string for `.reg` data or names: `\\` and `\"`, and CR and LF as `\r` and `\n`
/// (which [`parse_reg`] reads back), so a value holding a line break stays on its line
/// (found by the `reg_import` fuzz target: such an export did not import).
fn escape(s: &str) -> String {
    s.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\r', "\\r")
        .replace('\n', "\\n")
}

/// Renders the values as regedit exports them: UTF-16LE with BOM, CRLF, version 5.00 header.
pub fn render_reg(values: &Values) -> Vec<u8> {
    let mut text = format!("{HEADER5}\r\n\r\n[{KEY_PATH}]\r\n");
    for e in &values.present {
        let prefix = format!("\"{}\"=", escape(&e.name));
        let data = match &e.data {
            RegData::Dword(n) => format!("dword:{n:08x}"),
            // A line break cannot be written inside a quoted string (regedit does not read
            // escapes there): such a value is written as its bytes (README.md, "reg").
            RegData::Sz(s) if s.contains(['\r', '\n']) => hex_data(
                prefix.chars().count(),
                "hex(1)",
                &utf16_data(std::slice::from_ref(s), false),
            ),
            RegData::Sz(s) => format!("\"{}\"", escape(s)),
            RegData::MultiSz(v) => hex_data(prefix.chars().count(), "hex(7)", &utf16_data(v, true)),
        };
        text.push_str(&format!("{prefix}{data}\r\n"));
    }
    text.push_str("\r\n");
    let mut out = vec![0xFF, 0xFE];
    for u in text.encode_utf16() {
        out.extend_from_slice(&u.to_le_bytes());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &str = "Windows Registry Editor Version 5.00\r\n\r\n\
; a comment\r\n\
[HKEY_LOCAL_MACHINE\\SOFTWARE\\Other]\r\n\
\"Ignored\"=dword:00000001\r\n\
\r\n\
[hkey_local_machine\\system\\currentcontrolset\\services\\msexchangeis\\parameterssystem]\r\n\
\"POP3 Protocol Logging Level\"=dword:0000000a\r\n\
\"POP3 Protocol Log Path\"=\"/var/log/with \\\\ backslash \\\"q\\\"\"\r\n\
\"Binary\"=hex:01,02,03,\\\r\n  04,05\r\n\
@=\"default\"\r\n\
\"Gone\"=-\r\n\
\"Multi\"=hex(7):41,00,00,00\r\n\
\"Expand\"=hex(2):41,00,00,00\r\n";

    fn expected() -> Vec<RegOp> {
        vec![
            RegOp::Set("POP3 Protocol Logging Level".into(), RegData::Dword(10)),
            RegOp::Set(
                "POP3 Protocol Log Path".into(),
                RegData::Sz("/var/log/with \\ backslash \"q\"".into()),
            ),
            RegOp::Delete("Gone".into()),
            RegOp::Set("Multi".into(), RegData::MultiSz(vec!["A".into()])),
        ]
    }

    fn utf16(s: &str) -> Vec<u8> {
        let mut v = vec![0xFF, 0xFE];
        for u in s.encode_utf16() {
            v.extend_from_slice(&u.to_le_bytes());
        }
        v
    }

    #[test]
    fn parses_every_encoding_and_line_ending() {
        let lf = SAMPLE.replace("\r\n", "\n");
        let regedit4 = SAMPLE.replace(HEADER5, HEADER4);
        let mut bom8 = vec![0xEF, 0xBB, 0xBF];
        bom8.extend_from_slice(SAMPLE.as_bytes());
        let variants: Vec<(&str, Vec<u8>)> = vec![
            ("utf8 crlf", SAMPLE.as_bytes().to_vec()),
            ("utf8 lf", lf.as_bytes().to_vec()),
            ("utf8 bom", bom8),
            ("utf16le bom crlf", utf16(SAMPLE)),
            ("utf16le bom lf", utf16(&lf)),
            ("regedit4", regedit4.as_bytes().to_vec()),
        ];
        for (what, bytes) in variants {
            let r = parse_reg(&bytes).unwrap_or_else(|e| panic!("{what}: {e}"));
            assert_eq!(r.ops, expected(), "{what}");
            // other key, hex continued over two lines, @, hex(2)
            assert_eq!(r.warnings.len(), 4, "{what}: {:?}", r.warnings);
            assert!(r.warnings[0].contains("SOFTWARE\\Other"), "{what}");
            assert!(r.warnings[1].contains("\"Binary\" has type hex"), "{what}");
            assert!(r.warnings[3].contains("hex(2)"), "{what}");
        }
    }

    #[test]
    fn every_prefix_parses_or_errors_without_panic() {
        for bytes in [SAMPLE.as_bytes().to_vec(), utf16(SAMPLE)] {
            for n in 0..=bytes.len() {
                let r = parse_reg(&bytes[..n]);
                if n == bytes.len() {
                    assert_eq!(r.unwrap().ops, expected());
                } else if let Ok(f) = r {
                    // a prefix never yields an op the whole file does not have
                    for op in &f.ops {
                        let full = expected();
                        let same_name = full.iter().any(|o| match (o, op) {
                            (RegOp::Set(a, _), RegOp::Set(b, _)) => b.len() <= a.len(),
                            (RegOp::Delete(a), RegOp::Delete(b)) => a == b,
                            _ => false,
                        });
                        assert!(same_name, "prefix {n}: {op:?}");
                    }
                }
            }
        }
    }

    #[test]
    fn rejects_bad_header_and_malformed_data() {
        assert!(parse_reg(b"REGEDIT5\r\n").unwrap_err().contains("line 1"));
        assert!(parse_reg(b"").is_err());
        let bad = |body: &str| {
            let s = format!("{HEADER5}\r\n\r\n[{KEY_PATH}]\r\n{body}\r\n");
            parse_reg(s.as_bytes()).unwrap_err()
        };
        assert!(bad("\"A\"=dword:123456789").contains("line 4"));
        assert!(bad("\"A\"=dword:").contains("dword"));
        assert!(bad("\"A\"=dword:xyz").contains("dword"));
        assert!(bad("\"A\"=\"unterminated").contains("string"));
        assert!(bad("\"A\"").contains("'='"));
        assert!(bad("A=1").contains("malformed"));
        assert!(parse_reg(b"REGEDIT4\n\"A\"=dword:1\n")
            .unwrap_err()
            .contains("before any"));
        assert!(parse_reg(&[0xFF, 0xFE, 0x41])
            .unwrap_err()
            .contains("UTF-16"));
        assert!(parse_reg(&[0x52, 0xFF]).is_err());
        // REGEDIT4 in the ANSI code page
        let mut ansi =
            format!("{HEADER4}\r\n[{KEY_PATH}]\r\n\"POP3 Protocol Log Path\"=\"/var/log/caf")
                .into_bytes();
        ansi.extend_from_slice(b"\xe9\"\r\n");
        assert_eq!(
            parse_reg(&ansi).unwrap().ops,
            vec![RegOp::Set(
                "POP3 Protocol Log Path".into(),
                RegData::Sz("/var/log/café".into())
            )]
        );
    }

    #[test]
    fn export_renders_utf16_crlf_and_round_trips() {
        let values = Values {
            present: vec![
                registry::Entry {
                    name: "POP3 Protocol Logging Level".into(),
                    data: RegData::Dword(5),
                    known: registry::lookup("POP3 Protocol Logging Level"),
                    location: String::new(),
                },
                registry::Entry {
                    name: "Odd \"name\"".into(),
                    data: RegData::Sz("a\\b \"c\"".into()),
                    known: None,
                    location: String::new(),
                },
            ],
        };
        let bytes = render_reg(&values);
        assert_eq!(&bytes[..2], &[0xFF, 0xFE]);
        let text = decode(&bytes).unwrap();
        assert_eq!(
            text,
            format!(
                "{HEADER5}\r\n\r\n[{KEY_PATH}]\r\n\"POP3 Protocol Logging Level\"=dword:00000005\r\n\"Odd \\\"name\\\"\"=\"a\\\\b \\\"c\\\"\"\r\n\r\n"
            )
        );
        let back = parse_reg(&bytes).unwrap();
        assert!(back.warnings.is_empty());
        assert_eq!(
            back.ops,
            vec![
                RegOp::Set("POP3 Protocol Logging Level".into(), RegData::Dword(5)),
                RegOp::Set("Odd \"name\"".into(), RegData::Sz("a\\b \"c\"".into())),
            ]
        );
    }

    /// A value holding CR or LF used to be exported with the raw line break, and the export
    /// did not import (found by the `reg_import` fuzz target).
    #[test]
    fn export_of_line_breaks_round_trips() {
        let values = Values {
            present: vec![registry::Entry {
                name: "Two\nlines".into(),
                data: RegData::Sz("a\r\nb\nc\\n".into()),
                known: None,
                location: String::new(),
            }],
        };
        let bytes = render_reg(&values);
        let text = decode(&bytes).unwrap();
        assert_eq!(text.lines().count(), 5, "{text:?}");
        assert!(text.contains("\"Two\\nlines\"=hex(1):61,00,0d,00,0a,00,"), "{text:?}");
        let back = parse_reg(&bytes).unwrap();
        assert_eq!(
            back.ops,
            vec![RegOp::Set(
                "Two\nlines".into(),
                RegData::Sz("a\r\nb\nc\\n".into())
            )]
        );
    }

    /// A REG_SZ holding a line break is written as `hex(1):` (UTF-16LE with its NUL), never
    /// as a quoted string with the break in it; a REG_MULTI_SZ as `hex(7):`, wrapped as
    /// regedit wraps hex data; both import back to what was exported.
    #[test]
    fn export_of_hex1_and_hex7_round_trips() {
        let entry = |name: &str, data: RegData| registry::Entry {
            name: name.into(),
            data,
            known: registry::lookup(name),
            location: String::new(),
        };
        let users: Vec<String> = (0..12).map(|i| format!("user{i}@example.org")).collect();
        let values = Values {
            present: vec![
                entry("Note", RegData::Sz("a\r\nb".into())),
                entry("IMAP Protocol Log Users", RegData::MultiSz(vec!["a".into(), "b".into()])),
                entry("POP3 Protocol Log Users", RegData::MultiSz(users.clone())),
                entry("Empty", RegData::MultiSz(Vec::new())),
            ],
        };
        let bytes = render_reg(&values);
        let text = decode(&bytes).unwrap();
        let lines: Vec<&str> = text.split("\r\n").collect();
        assert_eq!(
            lines[3],
            "\"Note\"=hex(1):61,00,0d,00,0a,00,62,00,00,00",
            "{text}"
        );
        assert_eq!(
            lines[4],
            "\"IMAP Protocol Log Users\"=hex(7):61,00,00,00,62,00,00,00,00,00"
        );
        // Wrapped: every line but the last ends in `,\`, continuations start with two
        // spaces, none is longer than regedit's 80 columns.
        let multi: Vec<&str> = lines[5..]
            .iter()
            .take_while(|l| !l.starts_with("\"Empty\""))
            .copied()
            .collect();
        assert!(multi.len() > 3, "{text}");
        assert!(multi[0].starts_with("\"POP3 Protocol Log Users\"=hex(7):75,00,"));
        for (i, l) in multi.iter().enumerate() {
            assert!(l.len() <= 80, "{l:?}");
            if i + 1 < multi.len() {
                assert!(l.ends_with(",\\"), "{l:?}");
            }
            if i > 0 {
                assert!(l.starts_with("  ") && !l.starts_with("   "), "{l:?}");
            }
        }
        assert!(multi.last().unwrap().ends_with(",00,00,00,00"));
        assert!(text.contains("\"Empty\"=hex(7):00,00\r\n"), "{text}");
        let back = parse_reg(&bytes).unwrap();
        assert!(back.warnings.is_empty(), "{:?}", back.warnings);
        assert_eq!(
            back.ops,
            vec![
                RegOp::Set("Note".into(), RegData::Sz("a\r\nb".into())),
                RegOp::Set(
                    "IMAP Protocol Log Users".into(),
                    RegData::MultiSz(vec!["a".into(), "b".into()])
                ),
                RegOp::Set("POP3 Protocol Log Users".into(), RegData::MultiSz(users)),
                RegOp::Set("Empty".into(), RegData::MultiSz(Vec::new())),
            ]
        );
        // Malformed hex and odd lengths are errors naming the line.
        for bad in ["hex(7):6", "hex(7):61,00,0", "hex(7):61,,00", "hex(1):zz,00", "hex(7):610,00"] {
            let src = format!("{HEADER5}\r\n[{KEY_PATH}]\r\n\"V\"={bad}\r\n");
            let e = parse_reg(src.as_bytes()).unwrap_err();
            assert!(e.starts_with("line 3: "), "{bad}: {e}");
        }
    }

    #[test]
    fn multi_sz_data_splits_at_backslash_zero() {
        assert_eq!(
            parse_data(RegType::MultiSz, "a\\0b").unwrap(),
            RegData::MultiSz(vec!["a".into(), "b".into()])
        );
        assert_eq!(
            parse_data(RegType::MultiSz, "alice\\0").unwrap(),
            RegData::MultiSz(vec!["alice".into()])
        );
        assert_eq!(
            parse_data(RegType::MultiSz, "").unwrap(),
            RegData::MultiSz(Vec::new())
        );
        assert!(parse_data(RegType::MultiSz, "a\\0\\0b").is_err());
        assert_eq!(RegData::MultiSz(vec!["a".into(), "b".into()]).reg_display(), "a\\0b");
    }

    #[test]
    fn dword_data_decimal_and_hex() {
        assert_eq!(
            parse_data(RegType::Dword, "10").unwrap(),
            RegData::Dword(10)
        );
        assert_eq!(
            parse_data(RegType::Dword, "0x1F").unwrap(),
            RegData::Dword(31)
        );
        assert_eq!(
            parse_data(RegType::Dword, "4294967295").unwrap(),
            RegData::Dword(u32::MAX)
        );
        assert!(parse_data(RegType::Dword, "4294967296").is_err());
        assert!(parse_data(RegType::Dword, "-1").is_err());
        assert!(parse_data(RegType::Dword, "").is_err());
    }

    #[test]
    fn apply_keeps_decor_and_spelling() {
        let mut doc: DocumentMut = "# top\n[ParametersSystem]\n# about level\n\"pop3 protocol logging level\" = 1   # keep me\n"
            .parse()
            .unwrap();
        apply(
            &mut doc,
            &RegOp::Set("POP3 Protocol Logging Level".into(), RegData::Dword(4)),
        );
        assert_eq!(
            doc.to_string(),
            "# top\n[ParametersSystem]\n# about level\n\"pop3 protocol logging level\" = 4   # keep me\n"
        );
        apply(&mut doc, &RegOp::Set("New".into(), RegData::Sz("x".into())));
        assert!(doc.to_string().ends_with("\"New\" = \"x\"\n"), "{doc}");
        apply(&mut doc, &RegOp::Delete("NEW".into()));
        assert!(!doc.to_string().contains("New"));
    }

    #[test]
    fn apply_creates_the_table() {
        let mut doc: DocumentMut = "[server]\nhostname = \"h\"\n".parse().unwrap();
        apply(
            &mut doc,
            &RegOp::Set("IMAP Protocol Logging Level".into(), RegData::Dword(2)),
        );
        let s = doc.to_string();
        assert!(s.starts_with("[server]\nhostname = \"h\"\n"), "{s}");
        assert!(
            s.contains("[ParametersSystem]\n\"IMAP Protocol Logging Level\" = 2\n"),
            "{s}"
        );
        assert!(crate::config::parse(Path::new("x.toml"), s.as_bytes()).is_ok());
    }
}
