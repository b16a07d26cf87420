//! Protocol logging exactly as KB Q182504 documents it (ARCHITECTURE.md, "Protocol log").
//!
//! Owns: the `L???????.log` files of the POP3 and IMAP4 streams (naming, `O_EXCL` creation,
//! `flock`, header), the level filter, the CSV record format and the writer threads.
//! Does not own: redaction (the session marks lines [`LineKind::Secret`] and passes them
//! already redacted: redaction happens where the command is understood) or deciding what a line is (the connection driver's
//! tee, fed with what the session already parsed).
//!
//! * `record.rs`: pure formatting (timestamps, `\xNN` escaping, RFC 4180 §2 quoting).
//! * `sink.rs`: one stream per service: file open/close transitions, queue, writer thread,
//!   size-cap rolling, failure handling.
//!
//! INTERFACE CONTRACT (implemented by the protolog work; used by `conn.rs`):
//! * [`ProtoLog`] is created once per daemon and holds one sink per [`Service`].
//! * [`ProtoLog::session_start`] is the **only** place files open/close. It is called once
//!   per accepted connection with that session's config snapshot.
//! * The returned [`SessionLog`] filters by the level of *that* snapshot.
//!
//! (Besides session starts, a file is only ever closed by a write error, by rolling to the
//! next name at the size cap, or by [`ProtoLog::shutdown`].)
//!
//! Additions beyond the contract: [`ProtoLog::with_writer_factory`] (fault injection),
//! [`ProtoLog::flush_all`], [`ProtoLog::shutdown`] (SIGTERM: flush and release the files),
//! [`SessionLog::tls_established`] and [`SessionLog::auth_result`] (uniform `*` records),
//! and the pure [`record`] module (formatting, and decoding for log readers and tests).
//!
//! Per-user logging (`... Protocol Log Users`, README.md, "Per-user protocol logging"): while
//! the snapshot lists users, a session starts *holding*: every record it would write at level
//! 5 is kept in the session ([`Held`], at most [`HELD_MAX_RECORDS`] records and
//! [`HELD_MAX_BYTES`] bytes of data; beyond that the oldest after the `+` record are dropped
//! and one `*` record says how many) until the driver says who logged in
//! ([`SessionLog::logged_in_as`]): a listed user's session then writes them all and logs at
//! level 5 from there on; any other session (or one that ends without logging in) writes
//! only the held records its snapshot's level allows. Held records keep the time they were
//! made; sequence numbers are given as they are written, so they stay gapless.
//!
//! Record details this module decides where KB Q182504 is silent:
//! * `+` has empty data; `-` has `duration=1.234s bytes-in=N bytes-out=N`.
//! * A backslash in data is escaped too (`\x5C`), so `\` always starts an escape.
//! * Records dropped because the writer fell 8 MiB behind are reported by one `*` record
//!   `N records dropped (queue full)` with session id `0000000000000000`, sequence 0 and
//!   empty endpoints; the sessions' own sequence numbers keep the gap.

pub mod record;
mod sink;

pub use sink::{default_writer_factory, WriterFactory};

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use crate::service::Service;
use crate::config::ProtocolLogSettings;
use record::{Event, SessionFields};
use sink::{Pushed, Sink};

/// Longest piece of a content line written as one record at level 5 (bytes before
/// escaping); longer lines are cut into pieces of this size.
pub const MAX_CONTENT_RECORD: usize = 64 * 1024;

/// Level-5 content records are formatted into one buffer per `content` call and handed to
/// the sink in one piece (one lock, one copy); a call producing more than this many bytes of
/// records hands them over in pieces of about this size, so memory stays bounded and a huge
/// literal never exceeds the queue cap in one piece.
const CONTENT_BATCH_BYTES: usize = 256 * 1024;

/// Most records a session holds before it is known whose it is (per-user logging).
pub const HELD_MAX_RECORDS: usize = 512;
/// Most bytes of record data a session holds before it is known whose it is.
pub const HELD_MAX_BYTES: usize = 64 * 1024;

/// One call made to a holding [`SessionLog`], replayed when the user is known.
enum Call {
    Connect,
    Client(LineKind, Vec<u8>),
    Server(LineKind, Vec<u8>),
    Content(Direction, Vec<u8>),
    Piece(Direction, Vec<u8>, Option<u64>),
    Summary(Direction, u64),
    Info(String),
}

impl Call {
    fn bytes(&self) -> usize {
        match self {
            Call::Client(_, d) | Call::Server(_, d) | Call::Content(_, d) | Call::Piece(_, d, _) => {
                d.len()
            }
            Call::Info(t) => t.len(),
            Call::Connect | Call::Summary(..) => 0,
        }
    }
}

/// The records of a session whose user is not known yet (per-user logging).
struct Held {
    /// The snapshot's level: what a session of a user not listed writes.
    base: u32,
    /// The snapshot's `... Protocol Log Users`.
    users: Vec<String>,
    /// The calls in order, with the time each was made.
    calls: VecDeque<(SystemTime, Call)>,
    /// Data bytes in `calls`.
    bytes: usize,
    /// Calls dropped (the oldest after the first) to stay within the bounds.
    dropped: u64,
}

impl Held {
    fn hold(&mut self, call: Call) {
        self.bytes += call.bytes();
        self.calls.push_back((SystemTime::now(), call));
        while (self.calls.len() > HELD_MAX_RECORDS || self.bytes > HELD_MAX_BYTES)
            && self.calls.len() > 1
        {
            // The `+` record (first) stays: it says the session began.
            if let Some((_, c)) = self.calls.remove(1) {
                self.bytes -= c.bytes();
                self.dropped += 1;
            }
        }
    }
}

/// What a line is, as decided by the session that parsed or produced it (the driver tees it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LineKind {
    /// A client command line (level 2+).
    Command,
    /// A client line holding a secret; the bytes passed are already redacted by the session
    /// (e.g. `PASS ***`, `***` for an AUTH continuation). Logged at level 2+.
    Secret,
    /// A server completion line: POP3 `+OK`/`-ERR`, IMAP tagged OK/NO/BAD, continuation `+`
    /// (level 3+).
    Status,
    /// Any other server line: IMAP untagged, POP3 multi-line listing lines (level 4+).
    Reply,
}

/// Direction of message content.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    ClientToServer,
    ServerToClient,
}

/// One per daemon: the POP3 and IMAP4 sinks, each holding at most one open file.
pub struct ProtoLog {
    /// Indexed by [`Service::index`].
    sinks: [Arc<Sink>; 3],
    /// The writer threads (`None` if one could not be spawned: that service then logs
    /// nothing, and says so once in the daemon log).
    writers: Mutex<[Option<JoinHandle<()>>; 3]>,
    /// Low half of session ids; seeded randomly so two daemons started in the same second
    /// (or a restart within one) do not repeat ids.
    next_id: AtomicU32,
    /// `[cluster]`: this node's tag (its index in `nodes` plus one, 1..=255) in the top 8
    /// bits of each id's counter half, so ids of the nodes sharing a log directory never
    /// collide; 0 on a single node.
    node_tag: AtomicU32,
}

impl ProtoLog {
    pub fn new() -> Arc<ProtoLog> {
        ProtoLog::with_writer_factory(default_writer_factory())
    }

    /// Like [`ProtoLog::new`], writing every log file through `factory` (tests inject
    /// ENOSPC/EIO this way).
    pub fn with_writer_factory(factory: WriterFactory) -> Arc<ProtoLog> {
        let sinks = [
            Arc::new(Sink::new(Service::Pop3, factory.clone())),
            Arc::new(Sink::new(Service::Imap4, factory.clone())),
            Arc::new(Sink::new(Service::Lmtp, factory)),
        ];
        let spawn = |sink: &Arc<Sink>, service: Service| {
            let sink = Arc::clone(sink);
            // The writer reports through the subscriber of whoever built the ProtoLog.
            let dispatch = tracing::dispatcher::get_default(|d| d.clone());
            std::thread::Builder::new()
                .name(format!("protolog-{}", service.header_name()))
                .spawn(move || tracing::dispatcher::with_default(&dispatch, || sink.run_writer()))
                .map_err(|e| {
                    tracing::error!(
                        service = service.header_name(),
                        error = %e,
                        "cannot start the protocol log writer; this service will not log"
                    )
                })
                .ok()
        };
        let writers = [
            spawn(&sinks[0], Service::Pop3),
            spawn(&sinks[1], Service::Imap4),
            spawn(&sinks[2], Service::Lmtp),
        ];
        Arc::new(ProtoLog {
            sinks,
            writers: Mutex::new(writers),
            next_id: AtomicU32::new(rand::random()),
            node_tag: AtomicU32::new(0),
        })
    }

    /// Called at each session start with that session's snapshot: performs the open/close
    /// transitions (ARCHITECTURE.md, "Protocol log") for `service`, then returns the session's logger (which writes
    /// the `+` connect record). Never fails: errors go to the daemon log.
    pub fn session_start(
        &self,
        service: Service,
        settings: &ProtocolLogSettings,
        local: SocketAddr,
        remote: SocketAddr,
    ) -> SessionLog {
        let sink = &self.sinks[service.index()];
        let epoch = sink.session_start(settings);
        let has_writer = self.writers.lock().map(|w| w[service.index()].is_some());
        let level = settings.level.min(5);
        // Given whether or not logging is on: `mailserver who` shows it (crate::sessions).
        let id = self.session_id();
        let active = match (epoch, has_writer) {
            (Some(epoch), Ok(true)) => Some(Active {
                sink: Arc::clone(sink),
                epoch,
                fields: SessionFields::new(id, local, remote),
                seq: 0,
                last_queued: 0,
                released: false,
                line: Vec::with_capacity(256),
                batch: Vec::new(),
                batch_records: 0,
                prefix: record::RecordPrefix::default(),
            }),
            _ => None,
        };
        let held = (active.is_some() && !settings.users.is_empty()).then(|| Held {
            base: level,
            users: settings.users.clone(),
            calls: VecDeque::new(),
            bytes: 0,
            dropped: 0,
        });
        let mut log = SessionLog {
            id,
            // Holding: whatever may be written is level 5 until the user is known.
            level: match (&active, &held) {
                (None, _) => 0,
                (Some(_), Some(_)) => 5,
                (Some(_), None) => level,
            },
            active,
            held,
            clock: None,
            started: Instant::now(),
            ended: false,
            partial: Vec::new(),
            partial_event: Event::ToClient,
        };
        log.connect();
        log
    }

    /// Writes and flushes every queued record of both services now (tests, benchmarks).
    #[cfg(any(test, feature = "test-support"))]
    pub fn flush_all(&self) {
        for sink in &self.sinks {
            sink.flush();
        }
    }

    /// Daemon shutdown: flushes both streams, releases their files (unlock + close), stops
    /// the writer threads. Sessions still running stop logging. Idempotent.
    pub fn shutdown(&self) {
        for sink in &self.sinks {
            sink.shutdown();
        }
        let handles = match self.writers.lock() {
            Ok(mut w) => [w[0].take(), w[1].take()],
            Err(e) => {
                let mut w = e.into_inner();
                [w[0].take(), w[1].take()]
            }
        };
        for h in handles.into_iter().flatten() {
            let _ = h.join();
        }
    }

    /// `[cluster]`: this node's index in `nodes`; session ids then carry it (README.md,
    /// "Cluster"). Indexes past 254 share tags (a cluster that large may see collisions).
    pub fn set_node(&self, index: usize) {
        let tag = (index % 255) as u32 + 1;
        self.node_tag.store(tag, Ordering::Relaxed);
    }

    /// 32 bits of the session's start time (unix seconds) and 32 bits of a counter; in a
    /// cluster the counter's top 8 bits are the node's tag ([`ProtoLog::set_node`]), so two
    /// nodes never give the same id (each node's counter repeats only after 2^24 sessions).
    fn session_id(&self) -> u64 {
        let secs = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or_default();
        let mut low = self.next_id.fetch_add(1, Ordering::Relaxed);
        let tag = self.node_tag.load(Ordering::Relaxed);
        if tag != 0 {
            low = tag << 24 | (low & 0x00FF_FFFF);
        }
        (secs & 0xFFFF_FFFF) << 32 | u64::from(low)
    }
}

impl Drop for ProtoLog {
    fn drop(&mut self) {
        self.shutdown();
    }
}

/// The parts of a session log that exist only when it writes at all.
struct Active {
    sink: Arc<Sink>,
    /// The sink epoch at session start; a level-0 release bumps it and silences us.
    epoch: u64,
    fields: SessionFields,
    /// The next `sequence-number`. Dropped records (queue full) still take a number, so
    /// the gap shows where they were.
    seq: u64,
    /// Queue number of our last queued record, for the end-of-session flush barrier.
    last_queued: u64,
    /// Set once the sink refused a record because the file was released.
    released: bool,
    /// Reused formatting buffer.
    line: Vec<u8>,
    /// Level 5: the records of one `content` call, formatted back to back.
    batch: Vec<u8>,
    /// How many records `batch` holds.
    batch_records: u64,
    /// The record prefix shared by the records of one `content` call (one `date-time`: the
    /// same millisecond anyway, give or take the formatting time), counting `seq` along.
    prefix: record::RecordPrefix,
}

impl Active {
    /// Formats one content record into `batch` (handing the batch over when it is big);
    /// `prefix` was set up for this event and is at `seq`.
    fn batch_record(&mut self, data: &[u8]) {
        if self.released {
            return;
        }
        self.prefix.push_record(&mut self.batch, data);
        self.seq += 1;
        self.batch_records += 1;
        if self.batch.len() >= CONTENT_BATCH_BYTES {
            self.push_batch();
        }
    }

    /// One content line (without its LF): pieces of [`MAX_CONTENT_RECORD`] bytes while more
    /// than that is left, then the rest without a trailing CR.
    fn line_records(&mut self, line: &[u8]) {
        let mut rest = line;
        while rest.len() > MAX_CONTENT_RECORD {
            let (head, tail) = rest.split_at(MAX_CONTENT_RECORD);
            self.batch_record(head);
            rest = tail;
        }
        let rest = rest.strip_suffix(b"\r").unwrap_or(rest);
        self.batch_record(rest);
    }

    /// Hands the formatted batch to the sink in one piece: the buffer itself is queued and
    /// `batch` becomes a recycled empty buffer (or, if the records were not queued, is
    /// emptied for reuse).
    fn push_batch(&mut self) {
        if self.batch_records == 0 {
            return;
        }
        if !self.released {
            match self
                .sink
                .push_batch(self.epoch, &mut self.batch, self.batch_records)
            {
                Pushed::Queued(n) => self.last_queued = n,
                Pushed::Dropped => {}
                Pushed::Released => self.released = true,
            }
        }
        self.batch.clear();
        self.batch_records = 0;
        if self.batch.capacity() > 2 * CONTENT_BATCH_BYTES {
            self.batch = Vec::new();
        }
    }
}

/// A session's view of its service's log, at the level of its own snapshot.
pub struct SessionLog {
    /// The session id of the `+` record (also when nothing is written).
    id: u64,
    /// The snapshot level (0 when nothing is written at all).
    level: u32,
    active: Option<Active>,
    /// Per-user logging: the records held until the user is known (module doc).
    held: Option<Held>,
    /// While held records are written: the time they were made (instead of now).
    clock: Option<SystemTime>,
    /// For the `duration=` of the `-` record.
    started: Instant,
    /// `end` ran; `Drop` writes the `-` record otherwise.
    ended: bool,
    /// Level 5: the content line still waiting for its LF.
    partial: Vec<u8>,
    /// Direction of `partial`.
    partial_event: Event,
}

impl SessionLog {
    /// The session id its records carry (`record::session_id_text` writes it).
    pub fn id(&self) -> u64 {
        self.id
    }

    /// The level from the session's snapshot (0 = writes nothing).
    pub fn level(&self) -> u32 {
        self.level
    }

    /// Per-user logging: whether records are held until the user is known (the driver then
    /// asks the session for [`crate::session::Session::log_user`] after each command).
    pub fn holding(&self) -> bool {
        self.held.is_some()
    }

    /// Per-user logging: the session authenticated as `user` (the users file's name). A
    /// listed user's held records are written and the session logs at level 5 from now on;
    /// any other user's session writes the held records its snapshot's level allows and
    /// goes on at that level. Nothing happens when not holding.
    pub fn logged_in_as(&mut self, user: &str) {
        let listed = self
            .held
            .as_ref()
            .is_some_and(|h| h.users.iter().any(|u| u.eq_ignore_ascii_case(user)));
        self.release_held(listed);
    }

    /// Writes the held records at level 5 (`listed`) or at the snapshot's level, and stops
    /// holding.
    fn release_held(&mut self, listed: bool) {
        let Some(held) = self.held.take() else {
            return;
        };
        self.level = if listed { 5 } else { held.base };
        let mut calls = held.calls.into_iter();
        if let Some((t, call)) = calls.next() {
            self.replay(t, call);
        }
        if held.dropped > 0 {
            self.clock = None;
            self.info(&format!(
                "{} records held before login were dropped (more than {HELD_MAX_RECORDS} \
                 records or {HELD_MAX_BYTES} bytes)",
                held.dropped
            ));
        }
        for (t, call) in calls {
            self.replay(t, call);
        }
        self.clock = None;
    }

    fn replay(&mut self, t: SystemTime, call: Call) {
        self.clock = Some(t);
        match call {
            Call::Connect => self.connect(),
            Call::Client(k, d) => self.client(k, &d),
            Call::Server(k, d) => self.server(k, &d),
            Call::Content(dir, d) => self.content(dir, &d),
            Call::Piece(dir, d, total) => self.content_piece(dir, &d, total),
            Call::Summary(dir, total) => self.content_summary(dir, total),
            Call::Info(t) => self.info(&t),
        }
    }

    /// Keeps the call when holding (true); false when the caller is to write it.
    fn hold(&mut self, call: impl FnOnce() -> Call) -> bool {
        match &mut self.held {
            Some(h) => {
                h.hold(call());
                true
            }
            None => false,
        }
    }

    /// The `+` record.
    fn connect(&mut self) {
        if !self.hold(|| Call::Connect) {
            self.record(1, Event::Connect, b"");
        }
    }

    /// A client line (without CRLF); `Secret` lines arrive already redacted.
    pub fn client(&mut self, kind: LineKind, line: &[u8]) {
        if self.hold(|| Call::Client(kind, line.to_vec())) {
            return;
        }
        // Every client line is level 2, whatever its kind; the bytes are written as given.
        let _ = kind;
        self.record(2, Event::FromClient, line);
    }

    /// A server line (without CRLF).
    pub fn server(&mut self, kind: LineKind, line: &[u8]) {
        if self.hold(|| Call::Server(kind, line.to_vec())) {
            return;
        }
        let min = match kind {
            LineKind::Status => 3,
            LineKind::Reply | LineKind::Command | LineKind::Secret => 4,
        };
        self.flush_partial();
        self.emit_as(min, Event::ToClient, line, true);
    }

    /// Message content (POP3 RETR/TOP body, IMAP literals).
    ///
    /// Level 4 writes one record `<literal N octets>` per call (so pass a whole body or
    /// literal per call). Level 5 writes one record per line: lines end at LF, a CR before
    /// the LF is removed, and a line may span calls — the unfinished tail is kept until its
    /// LF arrives, or written as it is before the next record of any other kind, on a change
    /// of direction, or at the end. The records are therefore the same however the content
    /// is chunked. A line longer than [`MAX_CONTENT_RECORD`] bytes is written in pieces of
    /// that size.
    pub fn content(&mut self, dir: Direction, data: &[u8]) {
        if self.hold(|| Call::Content(dir, data.to_vec())) {
            return;
        }
        let event = match dir {
            Direction::ClientToServer => Event::FromClient,
            Direction::ServerToClient => Event::ToClient,
        };
        if self.level >= 5 {
            self.content_lines(event, data);
        } else if self.level == 4 {
            let text = format!("<literal {} octets>", data.len());
            self.record(4, event, text.as_bytes());
        }
    }

    /// A piece of content that arrives in pieces (a streamed IMAP APPEND literal), logged
    /// as [`SessionLog::content`] logs the whole: level 5 the same records (they do not
    /// depend on the pieces), level 4 the summary `<literal N octets>` of the whole once,
    /// with the first piece (the one given `total`).
    pub fn content_piece(&mut self, dir: Direction, data: &[u8], total: Option<u64>) {
        if self.hold(|| Call::Piece(dir, data.to_vec(), total)) {
            return;
        }
        if self.level >= 5 {
            self.content(dir, data);
        } else if let (4, Some(total)) = (self.level, total) {
            let event = match dir {
                Direction::ClientToServer => Event::FromClient,
                Direction::ServerToClient => Event::ToClient,
            };
            let text = format!("<literal {total} octets>");
            self.record(4, event, text.as_bytes());
        }
    }

    /// The level-4 summary `<literal N octets>` of content that arrived as lines whose
    /// total was not known before (LMTP DATA), written when it has ended; level 5 wrote the
    /// lines themselves ([`SessionLog::content_piece`] without a total).
    pub fn content_summary(&mut self, dir: Direction, total: u64) {
        if self.hold(|| Call::Summary(dir, total)) {
            return;
        }
        if self.level == 4 {
            let event = match dir {
                Direction::ClientToServer => Event::FromClient,
                Direction::ServerToClient => Event::ToClient,
            };
            let text = format!("<literal {total} octets>");
            self.record(4, event, text.as_bytes());
        }
    }

    /// Level 5 content: whole lines now (formatted into one batch with one timestamp and
    /// queued in one piece), the tail into `partial`.
    fn content_lines(&mut self, event: Event, data: &[u8]) {
        if !self.partial.is_empty() && self.partial_event != event {
            self.flush_partial();
        }
        self.partial_event = event;
        let Some(a) = self.active.as_mut() else {
            return;
        };
        if a.released {
            return;
        }
        let now = self.clock.unwrap_or_else(SystemTime::now);
        a.prefix.reset(now, &a.fields, a.seq, event);
        // Room for the usual output at once (records of ~64-byte lines take about 2.3 times
        // the content) instead of growing a recycled or new buffer step by step.
        a.batch
            .reserve((data.len() * 5 / 2 + 256).min(CONTENT_BATCH_BYTES + MAX_CONTENT_RECORD));
        let mut rest = data;
        if !self.partial.is_empty() {
            // The line begun by an earlier call.
            let upto = memchr::memchr(b'\n', rest);
            let (head, tail) = match upto {
                Some(p) => (&rest[..p], &rest[p + 1..]),
                None => (rest, &rest[rest.len()..]),
            };
            self.partial.extend_from_slice(head);
            rest = tail;
            if upto.is_some() {
                let line = std::mem::take(&mut self.partial);
                a.line_records(&line);
                self.partial = line;
                self.partial.clear();
            } else {
                let mut cut = 0;
                while self.partial.len() - cut > MAX_CONTENT_RECORD {
                    a.batch_record(&self.partial[cut..cut + MAX_CONTENT_RECORD]);
                    cut += MAX_CONTENT_RECORD;
                }
                self.partial.drain(..cut);
            }
        }
        let mut start = 0;
        for lf in memchr::memchr_iter(b'\n', rest) {
            a.line_records(&rest[start..lf]);
            start = lf + 1;
        }
        rest = &rest[start..];
        while rest.len() > MAX_CONTENT_RECORD {
            let (head, tail) = rest.split_at(MAX_CONTENT_RECORD);
            a.batch_record(head);
            rest = tail;
        }
        self.partial.extend_from_slice(rest);
        a.push_batch();
    }

    /// Writes an unfinished content line as it is.
    fn flush_partial(&mut self) {
        if self.partial.is_empty() {
            return;
        }
        let line = std::mem::take(&mut self.partial);
        self.emit(5, self.partial_event, &line);
        if line.capacity() <= MAX_CONTENT_RECORD {
            self.partial = line;
            self.partial.clear();
        }
    }

    /// A `*` information record (level 1+): TLS established, auth success/failure.
    pub fn info(&mut self, text: &str) {
        if self.hold(|| Call::Info(text.to_string())) {
            return;
        }
        self.record(1, Event::Info, text.as_bytes());
    }

    /// The `-` disconnect record with duration and byte counts; waits (bounded by
    /// [`END_FLUSH_WAIT`]) until the session's records are flushed to the file. The wait
    /// blocks the calling thread (normally for one `write`), so an async caller that cannot
    /// afford that may call it from `spawn_blocking`.
    pub fn end(mut self, bytes_in: u64, bytes_out: u64) {
        // Never logged in (or not as a listed user): the snapshot's level decides.
        self.release_held(false);
        let text = format!(
            "duration={:.3}s bytes-in={bytes_in} bytes-out={bytes_out}",
            self.started.elapsed().as_secs_f64()
        );
        self.ended = true;
        self.record(1, Event::Disconnect, text.as_bytes());
        if let Some(a) = &self.active {
            if a.last_queued > 0 {
                a.sink.wait_flushed(a.last_queued);
            }
        }
    }

    /// Any record other than content: first writes an unfinished content line.
    fn record(&mut self, min_level: u32, event: Event, data: &[u8]) {
        self.flush_partial();
        self.emit(min_level, event, data);
    }

    /// Formats and queues one record if the session's level includes `min_level`.
    fn emit(&mut self, min_level: u32, event: Event, data: &[u8]) {
        self.emit_as(min_level, event, data, false);
    }

    /// [`SessionLog::emit`]; `server_line` for a line the server wrote itself (its `+OK`,
    /// `-ERR`, `+` starts stay readable: `record::push_server_line_field`).
    fn emit_as(&mut self, min_level: u32, event: Event, data: &[u8], server_line: bool) {
        if self.level < min_level {
            return;
        }
        let Some(a) = self.active.as_mut() else {
            return;
        };
        if a.released {
            return;
        }
        a.line.clear();
        let now = self.clock.unwrap_or_else(SystemTime::now);
        if server_line {
            record::push_server_record(&mut a.line, now, &a.fields, a.seq, data);
        } else {
            record::push_record(&mut a.line, now, &a.fields, a.seq, event, data);
        }
        let essential = matches!(event, Event::Connect | Event::Disconnect | Event::Info);
        match a.sink.push(a.epoch, &a.line, 1, essential) {
            Pushed::Queued(n) => {
                a.last_queued = n;
                a.seq += 1;
            }
            Pushed::Dropped => a.seq += 1,
            Pushed::Released => a.released = true,
        }
        if a.line.capacity() > 64 * 1024 {
            a.line = Vec::with_capacity(256);
        }
    }
}

impl Drop for SessionLog {
    /// A session that never called [`SessionLog::end`] still gets its `-` record (no wait:
    /// drop may run on an async worker; the writer flushes within moments anyway).
    fn drop(&mut self) {
        if !self.ended {
            self.release_held(false);
            let text = format!(
                "duration={:.3}s ended without byte counts",
                self.started.elapsed().as_secs_f64()
            );
            self.record(1, Event::Disconnect, text.as_bytes());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use record::{decode_data_field, split_record};

    use crate::config::ProtocolLogSettings;
    use std::path::Path;
    use std::time::Duration;

    fn config(level: u32, dir: &Path) -> ProtocolLogSettings {
        ProtocolLogSettings {
            level,
            path: dir.to_path_buf(),
            size_limit_kib: 0,
            users: Vec::new(),
        }
    }

    /// The `(event, data)` of every record written for one session feeding `content` in
    /// chunks of `chunk` bytes (0 = one call), at `level`.
    fn content_records(level: u32, content: &[u8], chunk: usize) -> Vec<(String, Vec<u8>)> {
        let tmp = tempfile::tempdir().unwrap();
        let log = ProtoLog::new();
        let a = "127.0.0.1:143".parse().unwrap();
        let mut s = log.session_start(Service::Imap4, &config(level, tmp.path()), a, a);
        if chunk == 0 {
            s.content(Direction::ServerToClient, content);
        } else {
            for piece in content.chunks(chunk) {
                s.content(Direction::ServerToClient, piece);
            }
        }
        s.content(Direction::ClientToServer, b"up\r\nload");
        s.server(LineKind::Reply, b")");
        s.end(0, 0);
        let text = std::fs::read_to_string(tmp.path().join("L0000001.log")).unwrap();
        text.lines()
            .filter(|l| !l.starts_with('#'))
            .map(|l| {
                let f = split_record(l).unwrap();
                (f[5].to_string(), decode_data_field(f[6]).unwrap())
            })
            .filter(|(e, _)| e == "<" || e == ">")
            .collect()
    }

    #[test]
    fn level_5_content_records_do_not_depend_on_chunking() {
        let mut content = b"Subject: a\r\n\r\nbody, \"x\"\r\nno-cr\n\r\r\nend".to_vec();
        content.extend(std::iter::repeat_n(b'z', MAX_CONTENT_RECORD + 10));
        content.extend_from_slice(b"\r\n");
        // A line of exactly the maximum before its CR: the CR alone is the last piece.
        content.extend(std::iter::repeat_n(b'y', MAX_CONTENT_RECORD));
        content.extend_from_slice(b"\r\ntail");
        let whole = content_records(5, &content, 0);
        let mut long = b"end".to_vec();
        long.extend(std::iter::repeat_n(b'z', MAX_CONTENT_RECORD - 3));
        let ys = vec![b'y'; MAX_CONTENT_RECORD];
        let expected: Vec<(&str, &[u8])> = vec![
            (">", b"Subject: a"),
            (">", b""),
            (">", b"body, \"x\""),
            (">", b"no-cr"),
            (">", b"\r"),
            (">", &long),
            (">", b"zzzzzzzzzzzzz"),
            (">", &ys),
            (">", b""),
            (">", b"tail"),
            ("<", b"up"),
            ("<", b"load"),
            (">", b")"),
        ];
        let expected: Vec<(String, Vec<u8>)> = expected
            .into_iter()
            .map(|(e, d)| (e.to_string(), d.to_vec()))
            .collect();
        assert_eq!(whole, expected);
        for chunk in (1..=40).chain([97, 1000, 65_535, 65_536, 65_537, content.len()]) {
            assert_eq!(
                content_records(5, &content, chunk),
                whole,
                "chunk size {chunk}"
            );
        }
    }

    /// Integrity (ARCHITECTURE.md, "Protocol log"): a record reaches the file while its session is still open, with
    /// nothing else happening (no batch filling up, no session end waiting). Bounded wait,
    /// no timing assertion.
    #[test]
    fn a_lone_record_is_written_while_the_session_is_open() {
        let tmp = tempfile::tempdir().unwrap();
        let log = ProtoLog::new();
        let a = "127.0.0.1:110".parse().unwrap();
        let mut s = log.session_start(Service::Pop3, &config(5, tmp.path()), a, a);
        s.client(LineKind::Command, b"NOOP");
        s.content(Direction::ServerToClient, b"one line\r\n");
        let file = tmp.path().join("L0000001.log");
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        loop {
            let text = std::fs::read_to_string(&file).unwrap_or_default();
            if text.contains(",<,NOOP\n") && text.contains(",>,one line\n") {
                break;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "records not written while the session is open:\n{text}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        s.end(0, 0);
    }

    /// Many content calls of several sessions on threads: every record whole, in
    /// per-session sequence order, and every batch (crossing the writer's wake-up size many
    /// times) in the file after the sessions end. (2.6 MB in all: below the queue cap, so
    /// no record may be dropped however slow the disk.)
    #[test]
    fn concurrent_level_5_batches_stay_whole_and_ordered() {
        let tmp = tempfile::tempdir().unwrap();
        let log = ProtoLog::new();
        let cfg = config(5, tmp.path());
        let a: SocketAddr = "127.0.0.1:110".parse().unwrap();
        let mut body = Vec::new();
        for i in 0..200 {
            body.extend_from_slice(format!("line {i}, with \"quotes\" and \t tab\r\n").as_bytes());
        }
        std::thread::scope(|scope| {
            for t in 0..4u16 {
                let (log, cfg, body) = (&log, &cfg, &body);
                scope.spawn(move || {
                    let remote = SocketAddr::from(([127, 0, 0, 1], 40_000 + t));
                    let mut s = log.session_start(Service::Pop3, cfg, a, remote);
                    for _ in 0..30 {
                        s.content(Direction::ServerToClient, body);
                    }
                    s.end(0, 0);
                });
            }
        });
        let text = std::fs::read_to_string(tmp.path().join("L0000001.log")).unwrap();
        let mut next_seq = std::collections::HashMap::new();
        let mut content = 0;
        for l in text.lines().filter(|l| !l.starts_with('#')) {
            let f = split_record(l).unwrap();
            let seq: u64 = f[2].parse().unwrap();
            let expected = next_seq.entry(f[4].to_string()).or_insert(0u64);
            assert_eq!(seq, *expected, "{l}");
            *expected += 1;
            if f[5] == ">" {
                let data = decode_data_field(f[6]).unwrap();
                let i = (seq - 1) % 200;
                assert_eq!(
                    data,
                    format!("line {i}, with \"quotes\" and \t tab").into_bytes()
                );
                content += 1;
            }
        }
        assert_eq!(content, 4 * 30 * 200);
        assert_eq!(next_seq.len(), 4);
        assert!(next_seq.values().all(|&n| n == 1 + 30 * 200 + 1));
    }

    /// Per-user logging: more pre-login records than the bound keeps the `+` record and
    /// the newest ones, says how many were dropped in one `*` record right after `+`, and
    /// numbers what is written without a gap; records keep the time they were made.
    #[test]
    fn held_records_are_bounded_and_released_for_a_listed_user() {
        let tmp = tempfile::tempdir().unwrap();
        let log = ProtoLog::new();
        let a = "127.0.0.1:143".parse().unwrap();
        let mut cfg = config(0, tmp.path());
        cfg.users = vec!["Alice".into()];
        let mut s = log.session_start(Service::Imap4, &cfg, a, a);
        assert!(s.holding());
        assert_eq!(s.level(), 5);
        let n = HELD_MAX_RECORDS + 10;
        for i in 0..n {
            s.client(LineKind::Command, format!("a{i} NOOP").as_bytes());
        }
        std::thread::sleep(Duration::from_millis(5));
        s.logged_in_as("alice");
        assert!(!s.holding());
        s.client(LineKind::Command, b"after");
        s.end(0, 0);
        let text = std::fs::read_to_string(tmp.path().join("L0000001.log")).unwrap();
        let recs: Vec<Vec<String>> = text
            .lines()
            .filter(|l| !l.starts_with('#'))
            .map(|l| split_record(l).unwrap().iter().map(|f| f.to_string()).collect())
            .collect();
        for (i, r) in recs.iter().enumerate() {
            assert_eq!(r[2], i.to_string(), "{r:?}");
        }
        assert_eq!(recs[0][5], "+");
        assert_eq!(recs[1][5], "*");
        assert_eq!(
            recs[1][6],
            format!(
                "11 records held before login were dropped (more than {HELD_MAX_RECORDS} \
                 records or {HELD_MAX_BYTES} bytes)"
            )
        );
        assert_eq!(recs[2][6], "a11 NOOP");
        assert_eq!(recs[recs.len() - 3][6], format!("a{} NOOP", n - 1));
        assert_eq!(recs[recs.len() - 2][6], "after");
        assert_eq!(recs[recs.len() - 1][5], "-");
        // Held records keep their own time; the later `after` is not older than them.
        assert!(recs[2][0] <= recs[recs.len() - 2][0]);
    }

    /// A session that is not listed writes the held records its level allows: none at 0.
    #[test]
    fn held_records_of_others_follow_the_level() {
        let tmp = tempfile::tempdir().unwrap();
        let log = ProtoLog::new();
        let a = "127.0.0.1:110".parse().unwrap();
        let mut cfg = config(0, tmp.path());
        cfg.users = vec!["alice".into()];
        let mut s = log.session_start(Service::Pop3, &cfg, a, a);
        s.client(LineKind::Command, b"USER bob");
        s.logged_in_as("bob");
        assert_eq!(s.level(), 0);
        s.client(LineKind::Command, b"STAT");
        s.end(0, 0);
        let mut never = log.session_start(Service::Pop3, &cfg, a, a);
        never.client(LineKind::Command, b"CAPA");
        drop(never);
        log.flush_all();
        let text = std::fs::read_to_string(tmp.path().join("L0000001.log")).unwrap();
        assert_eq!(text.lines().filter(|l| !l.starts_with('#')).count(), 0, "{text}");
    }

    #[test]
    fn handles_cross_threads_and_await_points() {
        fn send_sync<T: Send + Sync>() {}
        fn send<T: Send>() {}
        send_sync::<ProtoLog>();
        send::<SessionLog>();
    }
}
