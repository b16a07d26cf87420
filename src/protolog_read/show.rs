//! `protolog show` and `protolog stats`: filters over the merged records, the output formats
//! (CSV lines as written, `--json`, `--transcript`), `--follow`, and the statistics.

use std::collections::{BTreeMap, HashMap};
use std::io::{self, Write};
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use super::{expand, log_files, FileStream, Merge, Rec};

/// A session's transcript lines are printed when it ends, or in pieces of this size.
pub const SESSION_BUFFER: usize = 1 << 20;

/// `--follow`: records of a session not yet known to be the user's, held until its
/// authentication record (then shown) or its end (then dropped); past this many the oldest
/// are dropped (README.md says so; nothing in the output marks the gap).
const FOLLOW_HELD_RECORDS: usize = 4096;

/// How `show` prints records.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Format {
    /// The CSV lines as written.
    #[default]
    Csv,
    Json,
    Transcript,
}

/// The filters of `show` and `stats`.
#[derive(Debug, Clone, Default)]
pub struct Filter {
    /// `#Service:` names (compared ignoring case; `IMAP` is `IMAP4`).
    pub services: Vec<String>,
    pub sessions: Vec<String>,
    pub user: Option<String>,
    pub ip: Option<IpAddr>,
    /// Canonical 24-byte times: `since <= date-time < until`.
    pub since: Option<String>,
    pub until: Option<String>,
    /// Event codes (`+-<>*`).
    pub events: Option<Vec<u8>>,
}

/// A `--service` value as the `#Service:` header writes it.
pub fn service_name(s: &str) -> String {
    let u = s.to_ascii_uppercase();
    if u == "IMAP" {
        "IMAP4".into()
    } else {
        u
    }
}

/// `--event` value: codes (`<>`) or names (`connect,disconnect,client,server,info`).
pub fn parse_events(s: &str) -> Result<Vec<u8>, String> {
    let mut out = Vec::new();
    for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        match part.to_ascii_lowercase().as_str() {
            "connect" => out.push(b'+'),
            "disconnect" => out.push(b'-'),
            "client" | "in" => out.push(b'<'),
            "server" | "out" => out.push(b'>'),
            "info" => out.push(b'*'),
            codes if codes.bytes().all(|b| b"+-<>*".contains(&b)) => out.extend(codes.bytes()),
            other => return Err(format!("unknown event {other:?} (use + - < > * or names)")),
        }
    }
    if out.is_empty() {
        return Err("empty --event".into());
    }
    Ok(out)
}

/// `--since`/`--until`: RFC 3339 with an offset, or a prefix of the file's own form
/// `YYYY-MM-DD[THH[:MM[:SS[.fff]]]][Z]` taken as UTC; the canonical 24-byte form.
pub fn parse_time(s: &str) -> Result<String, String> {
    let s = s.trim();
    if let Ok(t) = chrono::DateTime::parse_from_rfc3339(s) {
        let t: chrono::DateTime<chrono::Utc> = t.into();
        return Ok(t.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string());
    }
    let body = s.strip_suffix('Z').unwrap_or(s).replace(' ', "T");
    const ZERO: &str = "0000-01-01T00:00:00.000Z";
    if [10usize, 13, 16, 19, 21, 22, 23].contains(&body.len()) {
        let t = format!("{body}{}", &ZERO[body.len()..]);
        if super::record::is_timestamp(t.as_bytes()) {
            return Ok(t);
        }
    }
    Err(format!(
        "bad time {s:?}: use RFC 3339 (2026-11-27T16:50:09+01:00) or a UTC prefix \
         (2026-11-27, 2026-11-27T16:50)"
    ))
}

/// The IP address of an endpoint field (`ip:port`, `[v6]:port`).
fn endpoint_ip(ep: &[u8]) -> Option<IpAddr> {
    let s = std::str::from_utf8(ep).ok()?;
    if let Ok(sa) = s.parse::<std::net::SocketAddr>() {
        return Some(sa.ip().to_canonical());
    }
    s.parse::<IpAddr>().ok().map(|ip| ip.to_canonical())
}

/// An authentication record's `(user, outcome)`: `Some(true)` succeeded, `Some(false)`
/// failed, `None` failed temporarily. The texts are those the sessions write
/// (`authentication succeeded: user=U mechanism=M`, `authentication failed: ...`,
/// `authentication failed (temporary): ...`).
pub fn auth_record(data: &[u8]) -> Option<(String, Option<bool>)> {
    let s = std::str::from_utf8(data).ok()?;
    let (outcome, rest) = if let Some(r) = s.strip_prefix("authentication succeeded: ") {
        (Some(true), r)
    } else if let Some(r) = s.strip_prefix("authentication failed: ") {
        (Some(false), r)
    } else if let Some(r) = s.strip_prefix("authentication failed (temporary): ") {
        (None, r)
    } else {
        return None;
    };
    let rest = rest.strip_prefix("user=")?;
    let user = match rest.rfind(" mechanism=") {
        Some(m) => &rest[..m],
        None => rest,
    };
    Some((user.to_string(), outcome))
}

impl Filter {
    fn service_ok(&self, service: &str) -> bool {
        self.services.is_empty() || self.services.iter().any(|s| s.eq_ignore_ascii_case(service))
    }

    /// Everything but `--user` (decided per session elsewhere).
    fn record_ok(&self, service: &str, r: &Rec) -> bool {
        if !self.service_ok(service) {
            return false;
        }
        let t = r.time();
        if self.since.as_deref().is_some_and(|s| t < s.as_bytes())
            || self.until.as_deref().is_some_and(|u| t >= u.as_bytes())
        {
            return false;
        }
        if let Some(ev) = &self.events {
            if !ev.contains(&r.event()) {
                return false;
            }
        }
        if !self.sessions.is_empty()
            && !self.sessions.iter().any(|s| s.as_bytes().eq_ignore_ascii_case(r.session()))
        {
            return false;
        }
        if let Some(ip) = self.ip {
            if endpoint_ip(r.field(super::record::REMOTE)) != Some(ip) {
                return false;
            }
        }
        true
    }
}

/// The sessions of `user` in `files` (the first pass of `--user`): each session id with the
/// user it authenticated as, if it did. Keeps only the matching sessions in memory.
pub fn sessions_of_user(
    files: &[PathBuf],
    user: &str,
    filter: &Filter,
) -> io::Result<HashMap<Vec<u8>, Option<String>>> {
    let mut out: HashMap<Vec<u8>, Option<String>> = HashMap::new();
    let mut rec = Rec::default();
    for p in files {
        let mut s = FileStream::open(p)?;
        while s.next_into(&mut rec)? {
            if rec.event() != b'*' || !filter.service_ok(&s.service) {
                continue;
            }
            if let Some((u, outcome)) = auth_record(&rec.data()) {
                if u == user {
                    let e = out.entry(rec.session().to_vec()).or_default();
                    if outcome == Some(true) {
                        *e = Some(u);
                    }
                }
            }
        }
    }
    // A session that failed as `user` and then logged in as someone else is shown too (it
    // matched); its `user` is the one it logged in as.
    let mut rec = Rec::default();
    for p in files {
        if out.values().all(Option::is_some) {
            break;
        }
        let mut s = FileStream::open(p)?;
        while s.next_into(&mut rec)? {
            if rec.event() != b'*' {
                continue;
            }
            if let Some(slot) = out.get_mut(rec.session()) {
                if slot.is_none() {
                    if let Some((u, Some(true))) = auth_record(&rec.data()) {
                        *slot = Some(u);
                    }
                }
            }
        }
    }
    Ok(out)
}

/// Writes `bytes` for a terminal: UTF-8 text as it is, control characters and bytes that
/// are not UTF-8 as `\xNN`.
pub fn push_display(out: &mut String, bytes: &[u8]) {
    for chunk in bytes.utf8_chunks() {
        for c in chunk.valid().chars() {
            if c.is_control() {
                let mut b = [0u8; 4];
                for x in c.encode_utf8(&mut b).bytes() {
                    out.push_str(&format!("\\x{x:02X}"));
                }
            } else {
                out.push(c);
            }
        }
        for x in chunk.invalid() {
            out.push_str(&format!("\\x{x:02X}"));
        }
    }
}

/// A JSON string holding `s`.
fn push_json_str(out: &mut String, s: &str) {
    out.push_str(&serde_json::to_string(s).expect("a string serializes"));
}

/// The JSON `data` of a record: the bytes as text where they are UTF-8, every other byte
/// and the backslash itself as `\xNN` (so, as in the file, a `\` always starts an escape).
fn push_json_data(out: &mut String, bytes: &[u8]) {
    let mut text = String::with_capacity(bytes.len());
    for chunk in bytes.utf8_chunks() {
        for c in chunk.valid().chars() {
            if c == '\\' {
                text.push_str("\\x5C");
            } else {
                text.push(c);
            }
        }
        for x in chunk.invalid() {
            text.push_str(&format!("\\x{x:02X}"));
        }
    }
    push_json_str(out, &text);
}

/// One `--json` object (fields named as `#Fields:`, plus `service`, `file`, `user`).
fn json_record(out: &mut String, r: &Rec, service: &str, file: &str, user: Option<&str>) {
    use super::record::*;
    out.push_str("{\"date-time\":");
    push_json_str(out, &r.text(DATE_TIME));
    out.push_str(",\"session-id\":");
    push_json_str(out, &r.text(SESSION_ID));
    out.push_str(&format!(",\"sequence-number\":{}", r.f.seq));
    out.push_str(",\"local-endpoint\":");
    push_json_str(out, &r.text(LOCAL));
    out.push_str(",\"remote-endpoint\":");
    push_json_str(out, &r.text(REMOTE));
    out.push_str(",\"event\":");
    push_json_str(out, &r.text(EVENT));
    out.push_str(",\"data\":");
    push_json_data(out, &r.data());
    out.push_str(",\"service\":");
    push_json_str(out, service);
    out.push_str(",\"file\":");
    push_json_str(out, file);
    if let Some(u) = user {
        out.push_str(",\"user\":");
        push_json_str(out, u);
    }
    out.push_str("}\n");
}

/// One session's transcript being collected.
struct SessionText {
    order: u64,
    service: String,
    file: String,
    local: String,
    remote: String,
    user: Option<String>,
    started: String,
    text: String,
    /// A piece of it was already printed.
    printed: bool,
}

/// The printer of `show`: the chosen format, the user of each session so far.
struct Printer<'a, W: Write> {
    out: &'a mut W,
    format: Format,
    /// `--user`'s first pass (or `--follow`'s decisions): session id → logged-in user.
    users: Option<HashMap<Vec<u8>, Option<String>>>,
    /// Without `--user`: the user of each session whose login record was seen (dropped at
    /// its `-` record).
    seen_users: HashMap<Vec<u8>, String>,
    sessions: HashMap<Vec<u8>, SessionText>,
    next_order: u64,
    line: String,
}

impl<W: Write> Printer<'_, W> {
    fn user_of(&self, session: &[u8]) -> Option<&str> {
        if let Some(Some(u)) = self.users.as_ref().and_then(|m| m.get(session)) {
            return Some(u);
        }
        self.seen_users.get(session).map(String::as_str)
    }

    fn record(&mut self, r: &Rec, service: &str, file: &str) -> io::Result<()> {
        if r.event() == b'*' {
            if let Some((u, Some(true))) = auth_record(&r.data()) {
                self.seen_users.insert(r.session().to_vec(), u);
            }
        }
        match self.format {
            Format::Csv => {
                self.out.write_all(&r.line)?;
                self.out.write_all(b"\n")?;
            }
            Format::Json => {
                self.line.clear();
                let user = self.user_of(r.session()).map(str::to_owned);
                json_record(&mut self.line, r, service, file, user.as_deref());
                self.out.write_all(self.line.as_bytes())?;
            }
            Format::Transcript => self.transcript(r, service, file)?,
        }
        if r.event() == b'-' {
            self.seen_users.remove(r.session());
        }
        Ok(())
    }

    fn transcript(&mut self, r: &Rec, service: &str, file: &str) -> io::Result<()> {
        use super::record::*;
        let user = self.user_of(r.session()).map(str::to_owned);
        let order = self.next_order;
        let s = self
            .sessions
            .entry(r.session().to_vec())
            .or_insert_with(|| SessionText {
                order,
                service: service.to_string(),
                file: file.to_string(),
                local: r.text(LOCAL),
                remote: r.text(REMOTE),
                user: None,
                started: r.text(DATE_TIME),
                text: String::new(),
                printed: false,
            });
        if s.order == order {
            self.next_order += 1;
        }
        if user.is_some() {
            s.user = user;
        }
        let t = r.time();
        s.text.push_str(&String::from_utf8_lossy(&t[11..23]));
        let data = r.data();
        match r.event() {
            b'+' => s.text.push_str(" * connected"),
            b'-' => s.text.push_str(" * disconnected "),
            b'<' => s.text.push_str(" C: "),
            b'>' => s.text.push_str(" S: "),
            _ => s.text.push_str(" * "),
        }
        push_display(&mut s.text, &data);
        s.text.push('\n');
        if r.event() == b'-' || s.text.len() >= SESSION_BUFFER {
            let key = r.session().to_vec();
            let done = r.event() == b'-';
            self.print_session(&key, done)?;
        }
        Ok(())
    }

    fn print_session(&mut self, key: &[u8], done: bool) -> io::Result<()> {
        let Some(s) = self.sessions.get_mut(key) else {
            return Ok(());
        };
        let id = String::from_utf8_lossy(key);
        let user = s
            .user
            .as_deref()
            .map(|u| {
                let mut d = String::from(" user ");
                push_display(&mut d, u.as_bytes());
                d
            })
            .unwrap_or_default();
        writeln!(
            self.out,
            "== session {id} {} {} -> {}{user} ({} {}){}",
            s.service,
            s.remote,
            s.local,
            s.file,
            s.started,
            if s.printed { " continued" } else { "" }
        )?;
        self.out.write_all(s.text.as_bytes())?;
        self.out.write_all(b"\n")?;
        s.text.clear();
        s.printed = true;
        if done {
            self.sessions.remove(key);
        }
        Ok(())
    }

    /// Sessions that had not ended, in the order they started.
    fn finish(&mut self) -> io::Result<()> {
        let mut left: Vec<(u64, Vec<u8>)> = self
            .sessions
            .iter()
            .filter(|(_, s)| !s.text.is_empty())
            .map(|(k, s)| (s.order, k.clone()))
            .collect();
        left.sort();
        for (_, k) in left {
            self.print_session(&k, true)?;
        }
        self.out.flush()
    }
}

/// What `show` reads and how it prints.
#[derive(Debug, Clone, Default)]
pub struct ShowOptions {
    pub paths: Vec<PathBuf>,
    pub filter: Filter,
    pub format: Format,
    pub follow: bool,
}

/// `protolog show`. Returns the number of lines that were neither header nor record.
pub fn show(opts: &ShowOptions, out: &mut impl Write) -> io::Result<u64> {
    if opts.follow {
        return follow(opts, out, None);
    }
    let files = expand(&opts.paths)?;
    let users = match &opts.filter.user {
        Some(u) => Some(sessions_of_user(&files, u, &opts.filter)?),
        None => None,
    };
    let mut merge = Merge::open(&files)?;
    let names: Vec<String> = merge.streams.iter().map(FileStream::name).collect();
    let mut p = Printer {
        out,
        format: opts.format,
        users,
        seen_users: HashMap::new(),
        sessions: HashMap::new(),
        next_order: 0,
        line: String::new(),
    };
    while let Some(i) = merge.next_index()? {
        let (s, r) = merge.get(i);
        if !opts.filter.record_ok(&s.service, r) {
            continue;
        }
        if let Some(u) = &p.users {
            if !u.contains_key(r.session()) {
                continue;
            }
        }
        p.record(r, &s.service, &names[i])?;
    }
    p.finish()?;
    Ok(merge.bad_lines())
}

/// `--follow`: the newest file of each service in the directory, from its start, then what
/// is appended; a new file (the next number: a roll-over or a session start after a level
/// change) is taken once its header says which service it is, after the old file of that
/// service has been read to its end. `stop` (tests) ends it after a time.
pub fn follow(opts: &ShowOptions, out: &mut impl Write, stop: Option<Duration>) -> io::Result<u64> {
    let [dir] = &opts.paths[..] else {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "--follow takes one directory",
        ));
    };
    if !dir.is_dir() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("--follow: {} is not a directory", dir.display()),
        ));
    }
    let started = Instant::now();
    let mut streams: Vec<FileStream> = Vec::new();
    let mut highest = 0u64;
    // The newest file of each service already there.
    let mut newest: BTreeMap<String, (u64, PathBuf)> = BTreeMap::new();
    for (n, p) in log_files(dir)? {
        highest = highest.max(n);
        let svc = FileStream::read_service(&p)?;
        newest.insert(svc, (n, p));
    }
    for (_, p) in newest.values() {
        streams.push(FileStream::open(p)?);
    }
    // New files whose header is not written yet.
    let mut waiting: Vec<(u64, PathBuf)> = Vec::new();
    let mut p = Printer {
        out,
        format: opts.format,
        users: opts.filter.user.as_ref().map(|_| HashMap::new()),
        seen_users: HashMap::new(),
        sessions: HashMap::new(),
        next_order: 0,
        line: String::new(),
    };
    // `--user`: the records of sessions not yet decided.
    let mut held: HashMap<Vec<u8>, Vec<(Rec, String, String)>> = HashMap::new();
    let mut rec = Rec::default();
    let mut bad = 0;
    loop {
        for s in streams.iter_mut() {
            let name = s.name();
            while s.next_into(&mut rec)? {
                if !opts.filter.record_ok(&s.service, &rec) {
                    continue;
                }
                let Some(user) = &opts.filter.user else {
                    p.record(&rec, &s.service, &name)?;
                    continue;
                };
                let key = rec.session().to_vec();
                let decided = p.users.as_ref().is_some_and(|u| u.contains_key(&key));
                if decided {
                    p.record(&rec, &s.service, &name)?;
                    if rec.event() == b'-' {
                        if let Some(u) = p.users.as_mut() {
                            u.remove(&key);
                        }
                    }
                    continue;
                }
                let auth = (rec.event() == b'*').then(|| auth_record(&rec.data())).flatten();
                let end = rec.event() == b'-';
                let h = held.entry(key.clone()).or_default();
                if h.len() >= FOLLOW_HELD_RECORDS {
                    h.remove(0);
                }
                h.push((rec.clone(), s.service.clone(), name.clone()));
                if let Some((u, outcome)) = auth.filter(|(u, _)| u == user) {
                    if let Some(m) = p.users.as_mut() {
                        m.insert(key.clone(), outcome.and(Some(u)).filter(|_| outcome == Some(true)));
                    }
                    for (r, svc, file) in held.remove(&key).unwrap_or_default() {
                        p.record(&r, &svc, &file)?;
                    }
                } else if end {
                    held.remove(&key);
                }
            }
            if opts.format == Format::Transcript {
                // Sessions are printed as they end; nothing to flush per record.
            }
        }
        p.out.flush()?;
        if stop.is_some_and(|d| started.elapsed() >= d) {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
        // New files: finish the old file of the same service, then switch.
        for (n, path) in log_files(dir)? {
            if n > highest {
                highest = n;
                waiting.push((n, path));
            }
        }
        let mut still = Vec::new();
        for (n, path) in waiting.drain(..) {
            let svc = FileStream::read_service(&path)?;
            if svc.is_empty() {
                still.push((n, path));
                continue;
            }
            if let Some(i) = streams.iter().position(|s| s.service == svc) {
                let mut old = streams.remove(i);
                let name = old.name();
                while old.next_into(&mut rec)? {
                    if opts.filter.record_ok(&old.service, &rec)
                        && opts.filter.user.is_none()
                    {
                        p.record(&rec, &old.service, &name)?;
                    }
                }
                bad += old.bad;
            }
            streams.push(FileStream::open(&path)?);
        }
        waiting = still;
    }
    p.finish()?;
    Ok(bad + streams.iter().map(|s| s.bad).sum::<u64>())
}

/// The figures of `stats`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Stats {
    pub records: u64,
    pub sessions: u64,
    pub first: Option<String>,
    pub last: Option<String>,
    /// user → (ok, failed)
    pub by_user: BTreeMap<String, (u64, u64)>,
    /// address → (ok, failed)
    pub by_address: BTreeMap<String, (u64, u64)>,
    pub bytes_in: u64,
    pub bytes_out: u64,
    /// command → count
    pub commands: BTreeMap<String, u64>,
}

const POP3_VERBS: &[&str] = &[
    "USER", "PASS", "APOP", "AUTH", "STAT", "LIST", "RETR", "DELE", "NOOP", "RSET", "QUIT",
    "TOP", "UIDL", "CAPA", "STLS", "UTF8",
];
const IMAP_VERBS: &[&str] = &[
    "CAPABILITY", "NOOP", "LOGOUT", "STARTTLS", "AUTHENTICATE", "LOGIN", "SELECT", "EXAMINE",
    "CREATE", "DELETE", "RENAME", "SUBSCRIBE", "UNSUBSCRIBE", "LIST", "LSUB", "STATUS",
    "APPEND", "CHECK", "CLOSE", "EXPUNGE", "SEARCH", "FETCH", "STORE", "COPY", "MOVE", "UID",
    "IDLE", "NAMESPACE", "ID", "ENABLE", "UNSELECT", "SORT", "THREAD", "COMPRESS", "GETQUOTA",
    "GETQUOTAROOT", "SETQUOTA", "DONE",
];
const LMTP_VERBS: &[&str] = &[
    "LHLO", "MAIL", "RCPT", "DATA", "RSET", "NOOP", "QUIT", "VRFY", "STARTTLS",
];

/// The command of a client line (`UID FETCH` for IMAP's UID commands), if the line is one.
fn command_of(service: &str, line: &[u8]) -> Option<String> {
    let s = std::str::from_utf8(line).ok()?;
    let mut words = s.split(' ');
    let (verbs, first) = if service.eq_ignore_ascii_case("IMAP4") {
        let w = words.next()?;
        if w.eq_ignore_ascii_case("DONE") {
            return Some("DONE".into());
        }
        (IMAP_VERBS, words.next()?)
    } else if service.eq_ignore_ascii_case("LMTP") {
        (LMTP_VERBS, words.next()?)
    } else {
        (POP3_VERBS, words.next()?)
    };
    let verb = first.to_ascii_uppercase();
    if !verbs.contains(&verb.as_str()) {
        return None;
    }
    if verb == "UID" {
        let sub = words.next()?.to_ascii_uppercase();
        return IMAP_VERBS.contains(&sub.as_str()).then(|| format!("UID {sub}"));
    }
    Some(verb)
}

/// `N` after `key=` in a `-` record's data.
fn number_after(data: &str, key: &str) -> u64 {
    data.split(' ')
        .find_map(|w| w.strip_prefix(key))
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

/// `protolog stats` over the records that pass `filter`.
pub fn stats(paths: &[PathBuf], filter: &Filter) -> io::Result<(Stats, u64)> {
    let files = expand(paths)?;
    let users = match &filter.user {
        Some(u) => Some(sessions_of_user(&files, u, filter)?),
        None => None,
    };
    let mut merge = Merge::open(&files)?;
    let mut st = Stats::default();
    while let Some(i) = merge.next_index()? {
        let (s, r) = merge.get(i);
        let service = &s.service;
        if !filter.record_ok(service, r) {
            continue;
        }
        if users.as_ref().is_some_and(|u| !u.contains_key(r.session())) {
            continue;
        }
        st.records += 1;
        let t = String::from_utf8_lossy(r.time()).into_owned();
        if st.first.is_none() {
            st.first = Some(t.clone());
        }
        st.last = Some(t);
        match r.event() {
            b'+' => st.sessions += 1,
            b'-' => {
                let d = r.data();
                let d = String::from_utf8_lossy(&d);
                st.bytes_in += number_after(&d, "bytes-in=");
                st.bytes_out += number_after(&d, "bytes-out=");
            }
            b'*' => {
                if let Some((u, outcome)) = auth_record(&r.data()) {
                    let ok = outcome == Some(true);
                    let addr = endpoint_ip(r.field(super::record::REMOTE))
                        .map(|a| a.to_string())
                        .unwrap_or_else(|| r.text(super::record::REMOTE));
                    for e in [
                        st.by_user.entry(u).or_default(),
                        st.by_address.entry(addr).or_default(),
                    ] {
                        if ok {
                            e.0 += 1;
                        } else {
                            e.1 += 1;
                        }
                    }
                }
            }
            b'<' => {
                if let Some(c) = command_of(service, &r.data()) {
                    *st.commands.entry(c).or_default() += 1;
                }
            }
            _ => {}
        }
    }
    Ok((st, merge.bad_lines()))
}

impl Stats {
    /// The commands, most used first (ties by name).
    pub fn top_commands(&self, n: usize) -> Vec<(&str, u64)> {
        let mut v: Vec<(&str, u64)> = self.commands.iter().map(|(k, &c)| (k.as_str(), c)).collect();
        v.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
        v.truncate(n);
        v
    }

    /// The report for a terminal.
    pub fn text(&self, top: usize) -> String {
        let mut t = String::new();
        let dash = |o: &Option<String>| o.clone().unwrap_or_else(|| "-".into());
        t.push_str(&format!(
            "records {}\nsessions {}\nfirst {}\nlast {}\nbytes-in {}\nbytes-out {}\n",
            self.records,
            self.sessions,
            dash(&self.first),
            dash(&self.last),
            self.bytes_in,
            self.bytes_out
        ));
        for (title, map) in [("user", &self.by_user), ("address", &self.by_address)] {
            t.push_str(&format!("\nlogins by {title}: ok failed\n"));
            for (k, (ok, failed)) in map {
                let mut name = String::new();
                push_display(&mut name, k.as_bytes());
                t.push_str(&format!("  {name} {ok} {failed}\n"));
            }
        }
        t.push_str("\ntop commands\n");
        for (c, n) in self.top_commands(top) {
            t.push_str(&format!("  {c} {n}\n"));
        }
        t
    }

    /// The report as one JSON object.
    pub fn json(&self, top: usize) -> String {
        let mut t = String::new();
        let opt = |t: &mut String, o: &Option<String>| match o {
            Some(s) => push_json_str(t, s),
            None => t.push_str("null"),
        };
        t.push_str(&format!(
            "{{\"records\":{},\"sessions\":{},\"first\":",
            self.records, self.sessions
        ));
        opt(&mut t, &self.first);
        t.push_str(",\"last\":");
        opt(&mut t, &self.last);
        t.push_str(&format!(
            ",\"bytes_in\":{},\"bytes_out\":{}",
            self.bytes_in, self.bytes_out
        ));
        for (title, map) in [("logins_by_user", &self.by_user), ("logins_by_address", &self.by_address)] {
            t.push_str(&format!(",\"{title}\":{{"));
            for (i, (k, (ok, failed))) in map.iter().enumerate() {
                if i > 0 {
                    t.push(',');
                }
                push_json_str(&mut t, k);
                t.push_str(&format!(":{{\"ok\":{ok},\"failed\":{failed}}}"));
            }
            t.push('}');
        }
        t.push_str(",\"top_commands\":[");
        for (i, (c, n)) in self.top_commands(top).into_iter().enumerate() {
            if i > 0 {
                t.push(',');
            }
            t.push_str("{\"command\":");
            push_json_str(&mut t, c);
            t.push_str(&format!(",\"count\":{n}}}"));
        }
        t.push_str("]}\n");
        t
    }
}

/// `ls` as text: one line per file.
pub fn ls_text(dir: &Path) -> io::Result<String> {
    let mut t = String::new();
    for f in super::list(dir)? {
        let name = f.path.display().to_string();
        let mut shown = String::new();
        push_display(&mut shown, name.as_bytes());
        t.push_str(&format!(
            "{shown}\t{}\t{}\t{}\t{}\t{}\n",
            if f.service.is_empty() { "-" } else { &f.service },
            f.first.as_deref().unwrap_or("-"),
            f.last.as_deref().unwrap_or("-"),
            f.size,
            match f.locked_by {
                Some(pid) => format!("open(pid {pid})"),
                None => "closed".into(),
            }
        ));
    }
    Ok(t)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn auth_records_and_commands() {
        assert_eq!(
            auth_record(b"authentication succeeded: user=alice mechanism=PLAIN"),
            Some(("alice".into(), Some(true)))
        );
        assert_eq!(
            auth_record(b"authentication failed: user=a b mechanism=x mechanism=LOGIN"),
            Some(("a b mechanism=x".into(), Some(false)))
        );
        assert_eq!(
            auth_record(b"authentication failed (temporary): user=bob mechanism=USER"),
            Some(("bob".into(), None))
        );
        assert_eq!(auth_record(b"TLS established: TLSv1_3 x"), None);
        assert_eq!(command_of("IMAP4", b"a1 uid fetch 1:* FLAGS"), Some("UID FETCH".into()));
        assert_eq!(command_of("IMAP4", b"Subject: hi"), None);
        assert_eq!(command_of("POP3", b"retr 1"), Some("RETR".into()));
        assert_eq!(command_of("POP3", b"***"), None);
    }

    #[test]
    fn times_and_events() {
        assert_eq!(parse_time("2026-11-27").unwrap(), "2026-11-27T00:00:00.000Z");
        assert_eq!(parse_time("2026-11-27T16:50").unwrap(), "2026-11-27T16:50:00.000Z");
        assert_eq!(
            parse_time("2026-11-27T17:50:09.5+01:00").unwrap(),
            "2026-11-27T16:50:09.500Z"
        );
        assert!(parse_time("yesterday").is_err());
        assert_eq!(parse_events("<>").unwrap(), b"<>");
        assert_eq!(parse_events("connect,info").unwrap(), b"+*");
        assert!(parse_events("x").is_err());
    }

    #[test]
    fn display_and_json_data() {
        let mut s = String::new();
        push_display(&mut s, "caf\u{e9}\r\x00\\\u{ff}".as_bytes());
        assert_eq!(s, "caf\u{e9}\\x0D\\x00\\\u{ff}");
        let mut s = String::new();
        push_display(&mut s, b"\xff ok");
        assert_eq!(s, "\\xFF ok");
        let mut j = String::new();
        push_json_data(&mut j, b"a\\b\"\xff\n");
        assert_eq!(j, r#""a\\x5Cb\"\\xFF\n""#);
    }
}
