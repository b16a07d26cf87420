//! One service's log stream (SPEC §5 "When files open and close", "Names", "Failure never
//! stops mail", "Integrity"): the one open file, its `flock`, the record queue and the writer
//! thread that empties it.
//!
//! Ownership and locking:
//! * [`Sink::session_start`] is the one place a session start opens or closes a file; the
//!   writer thread only closes on a write error and rolls to the next name at the size cap.
//!   Both go through `Sink::open` (→ `open_file`) and `Sink::close`.
//! * Sessions format whole record lines themselves and append them to [`Queue::buf`] under a
//!   short mutex (a memcpy; never disk I/O), so lines of concurrent sessions never interleave.
//!   The queue is bounded in bytes; a full queue drops the record, counts it, and the writer
//!   later writes one `*` record "N records dropped (queue full)".
//! * The writer swaps the whole buffer out (double buffering: the queue buffer plays the role
//!   of a `BufWriter`, without a second copy) and writes it with one `write_all`. It is woken
//!   only when the queue holds [`WRITE_BATCH_BYTES`] (so a busy log is written in large
//!   writes, without a wake-up per record), when a session ending waits for its records, or
//!   at shutdown; otherwise it writes whatever is queued every [`FLUSH_INTERVAL`], well
//!   within SPEC's one second.
//! * Lock order is always `file` → `queue`, and `file` → `open_id`; `queue` and `open_id`
//!   are never held across I/O. That order makes batches reach the file in queue order even
//!   when a session start drains the queue itself before closing a file.
//! * A record never contains a raw `\n` (see `record.rs`), so `\n` is the record boundary
//!   used to roll at the size cap without splitting a record.

use std::fs::{File, OpenOptions, TryLockError};
use std::io::{self, Write};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime};

use super::record::{self, Event, SessionFields};
use super::Service;
use crate::config::ProtocolLogSettings;

/// Builds the writer the sink writes a freshly created and locked log file through. The
/// default clones the handle; tests wrap it to inject faults (ENOSPC, EIO). The returned
/// writer must not keep the file open beyond its own drop.
pub type WriterFactory = Arc<dyn Fn(&File) -> io::Result<Box<dyn Write + Send>> + Send + Sync>;

/// The factory used in production: the file itself, unbuffered (the queue is the buffer).
pub fn default_writer_factory() -> WriterFactory {
    Arc::new(|f: &File| Ok(Box::new(f.try_clone()?) as Box<dyn Write + Send>))
}

/// Most bytes of formatted records waiting for the writer before records are dropped.
pub const QUEUE_CAP_BYTES: usize = 8 << 20;
/// Extra room for `+`, `-` and `*` records once the queue is full.
pub const ESSENTIAL_HEADROOM: usize = 1 << 20;
/// How long `SessionLog::end` waits for its records to be flushed before giving up (a hung
/// disk must not hang a session forever).
pub const END_FLUSH_WAIT: Duration = Duration::from_secs(2);
/// Queued bytes that wake the writer at once (one large `write` instead of many small ones).
pub const WRITE_BATCH_BYTES: usize = 256 * 1024;
/// Longest time a queued record waits for the writer when nothing wakes it earlier (SPEC §5
/// "Integrity": in the file at most one second after it was made).
pub const FLUSH_INTERVAL: Duration = Duration::from_millis(200);
/// The largest number `L???????.log` can carry.
const MAX_NUMBER: u32 = 9_999_999;

/// What happened to a record handed to [`Sink::push`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Pushed {
    /// Queued; the number to wait for with [`Sink::wait_flushed`].
    Queued(u64),
    /// The file this session was logging to was released (level 0) or the daemon is
    /// shutting down: the session stops writing records.
    Released,
    /// The queue was full; counted and reported later.
    Dropped,
}

/// Records between sessions and the writer thread.
#[derive(Default)]
struct Queue {
    /// Whole formatted records, each ending in `\n`.
    buf: Vec<u8>,
    /// Records ever accepted; the last accepted record's number.
    pushed: u64,
    /// Every record numbered up to this has been written and flushed (or discarded because
    /// no file was open); sessions ending wait for it.
    flushed: u64,
    /// Records dropped since the writer last reported drops.
    dropped: u64,
    /// Bumped when a level-0 session start releases the file: sessions started under an
    /// older epoch stop writing (SPEC §5 "Sessions still running from before stop writing").
    epoch: u64,
    /// The daemon is shutting down: the writer exits once the queue is empty, no file opens.
    shutdown: bool,
    /// Someone waits for `flushed` (saves a notify per batch when nobody does).
    waiters: usize,
}

/// The open log file of a sink.
struct OpenFile {
    /// Directory it lives in (compared with the session snapshot's path).
    dir: PathBuf,
    /// Full file name, for the daemon log.
    path: PathBuf,
    /// The handle that holds the `flock`; unlocked and dropped on close.
    lock: File,
    /// What records are written through (see [`WriterFactory`]).
    out: Box<dyn Write + Send>,
    /// Bytes written and flushed: the size used for the cap and the length a failed write
    /// truncates back to, so a torn record never stays in the file.
    len: u64,
    /// Length of the header; a file holding only its header always takes the next record.
    header_len: u64,
}

/// What a session start needs to know about the open file without the file mutex.
#[derive(Debug, Clone, PartialEq, Eq)]
struct OpenId {
    /// Directory of the open file (compared with the snapshot's path).
    dir: PathBuf,
    /// The file's name, to notice it (or its directory) was deleted or replaced.
    path: PathBuf,
    /// `(st_dev, st_ino)` of the open file.
    ino: (u64, u64),
}

impl OpenId {
    /// Whether the name still refers to the file we hold. Writes to a deleted file succeed
    /// on Linux, so without this check a deleted log directory would never recover.
    fn still_there(&self) -> bool {
        std::fs::metadata(&self.path).is_ok_and(|m| (m.dev(), m.ino()) == self.ino)
    }
}

/// Everything that needs the file mutex.
struct FileState {
    open: Option<OpenFile>,
    /// The directory of the current failure episode: errors are reported once per episode,
    /// which ends when a file opens again.
    failing: Option<PathBuf>,
    /// The writer's half of the double buffer.
    spare: Vec<u8>,
}

/// One service's stream.
pub(crate) struct Sink {
    service: Service,
    factory: WriterFactory,
    queue: Mutex<Queue>,
    /// The writer waits here for records or shutdown.
    work: Condvar,
    /// Sessions ending wait here for `Queue::flushed`.
    flushed_cv: Condvar,
    file: Mutex<FileState>,
    /// The open file, or `None`: lets a session start that changes nothing skip the file
    /// mutex, which the writer holds while it does disk I/O.
    open_id: Mutex<Option<OpenId>>,
    /// Size cap in bytes from the latest session start (0 = none).
    size_limit: AtomicU64,
}

/// Locks a mutex, recovering from poisoning: the log must never take the daemon down.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Sink {
    pub(crate) fn new(service: Service, factory: WriterFactory) -> Sink {
        Sink {
            service,
            factory,
            queue: Mutex::new(Queue::default()),
            work: Condvar::new(),
            flushed_cv: Condvar::new(),
            file: Mutex::new(FileState {
                open: None,
                failing: None,
                spare: Vec::new(),
            }),
            open_id: Mutex::new(None),
            size_limit: AtomicU64::new(0),
        }
    }

    /// The open/close transitions of SPEC §5 for one session start; returns the epoch the
    /// session logs under, or `None` when it must not log (level 0, or shutting down).
    pub(crate) fn session_start(&self, settings: &ProtocolLogSettings) -> Option<u64> {
        self.size_limit
            .store(u64::from(settings.size_limit_kib) * 1024, Ordering::Relaxed);
        let enabled = settings.level > 0;
        let open = lock(&self.open_id).clone();
        let unchanged = match open {
            None => !enabled,
            Some(id) => enabled && id.dir == settings.path && id.still_there(),
        };
        if !unchanged {
            let mut st = lock(&self.file);
            self.transition(&mut st, settings);
        }
        let q = lock(&self.queue);
        (enabled && !q.shutdown).then_some(q.epoch)
    }

    /// The transition table, with the file mutex held.
    fn transition(&self, st: &mut FileState, settings: &ProtocolLogSettings) {
        let shutdown = lock(&self.queue).shutdown;
        let want = (settings.level > 0 && !shutdown).then_some(settings.path.as_path());
        let current = lock(&self.open_id).clone();
        match (current, want) {
            (None, None) => {}
            (Some(id), Some(path)) if id.dir == path => {
                if !id.still_there() {
                    self.drain_locked(st, false);
                    self.close(st, "file or directory removed");
                    self.open(st, path, "file or directory removed");
                }
            }
            (Some(_), None) => {
                self.drain_locked(st, true);
                self.close(st, "level 0");
            }
            (Some(_), Some(path)) => {
                self.drain_locked(st, false);
                self.close(st, "path changed");
                self.open(st, path, "path changed");
            }
            (None, Some(path)) => {
                let why = if st.failing.is_some() {
                    "retry after failure"
                } else {
                    "level > 0"
                };
                self.open(st, path, why);
            }
        }
    }

    /// Appends `records` whole record lines (`lines`, formatted back to back) for a session
    /// of `epoch`; they are queued or dropped together. `essential` records (`+`, `-`, `*`:
    /// small, a few per session) may use [`ESSENTIAL_HEADROOM`] beyond the cap, so a stalled
    /// disk loses transcript lines before it loses who connected and for how long.
    pub(crate) fn push(&self, epoch: u64, lines: &[u8], records: u64, essential: bool) -> Pushed {
        let mut q = lock(&self.queue);
        if q.epoch != epoch || q.shutdown {
            return Pushed::Released;
        }
        let cap = if essential {
            QUEUE_CAP_BYTES + ESSENTIAL_HEADROOM
        } else {
            QUEUE_CAP_BYTES
        };
        if q.buf.len() + lines.len() > cap {
            q.dropped += records;
            return Pushed::Dropped;
        }
        let before = q.buf.len();
        q.buf.extend_from_slice(lines);
        q.pushed += records;
        let n = q.pushed;
        let wake = before < WRITE_BATCH_BYTES && q.buf.len() >= WRITE_BATCH_BYTES;
        drop(q);
        if wake {
            self.work.notify_one();
        }
        Pushed::Queued(n)
    }

    /// Waits (at most [`END_FLUSH_WAIT`]) until record `n` is in the file and flushed.
    pub(crate) fn wait_flushed(&self, n: u64) {
        let deadline = Instant::now() + END_FLUSH_WAIT;
        let mut q = lock(&self.queue);
        if q.flushed >= n || q.shutdown {
            return;
        }
        q.waiters += 1;
        // The writer does not wait for the batch size or the interval while someone waits.
        self.work.notify_one();
        while q.flushed < n && !q.shutdown {
            let now = Instant::now();
            if now >= deadline {
                break;
            }
            q = self
                .flushed_cv
                .wait_timeout(q, deadline - now)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
        q.waiters -= 1;
    }

    /// The writer thread's loop: wait for records, write them, until shutdown. Records are
    /// written when [`WRITE_BATCH_BYTES`] are queued, when a session ending waits for them,
    /// at shutdown, or at the latest [`FLUSH_INTERVAL`] after the writer last looked.
    pub(crate) fn run_writer(&self) {
        loop {
            {
                let mut q = lock(&self.queue);
                let mut deadline = Instant::now() + FLUSH_INTERVAL;
                loop {
                    if q.shutdown && q.buf.is_empty() {
                        return;
                    }
                    let urgent = q.buf.len() >= WRITE_BATCH_BYTES || q.waiters > 0 || q.shutdown;
                    if !q.buf.is_empty() && urgent {
                        break;
                    }
                    let now = Instant::now();
                    if now >= deadline {
                        if !q.buf.is_empty() {
                            break;
                        }
                        deadline = now + FLUSH_INTERVAL;
                    }
                    q = self
                        .work
                        .wait_timeout(q, deadline - now)
                        .unwrap_or_else(|e| e.into_inner())
                        .0;
                }
            }
            let mut st = lock(&self.file);
            self.drain_locked(&mut st, false);
        }
    }

    /// Writes and flushes everything queued, now, in the caller's thread.
    pub(crate) fn flush(&self) {
        let mut st = lock(&self.file);
        self.drain_locked(&mut st, false);
    }

    /// Flushes, releases the file and stops the writer; later records are refused.
    pub(crate) fn shutdown(&self) {
        let mut st = lock(&self.file);
        self.drain_locked(&mut st, true);
        self.close(&mut st, "shutdown");
        lock(&self.queue).shutdown = true;
        drop(st);
        self.work.notify_all();
        self.flushed_cv.notify_all();
    }

    /// Takes the queued records (and, for a release, bumps the epoch in the same critical
    /// section so no record slips between) and writes them to the open file.
    fn drain_locked(&self, st: &mut FileState, release: bool) {
        let (upto, dropped) = {
            let mut q = lock(&self.queue);
            std::mem::swap(&mut st.spare, &mut q.buf);
            if release {
                q.epoch += 1;
            }
            (q.pushed, std::mem::take(&mut q.dropped))
        };
        let batch = std::mem::take(&mut st.spare);
        self.write_batch(st, &batch, dropped);
        st.spare = batch;
        st.spare.clear();
        if st.spare.capacity() > QUEUE_CAP_BYTES / 8 {
            st.spare.shrink_to(QUEUE_CAP_BYTES / 8);
        }
        let mut q = lock(&self.queue);
        q.flushed = q.flushed.max(upto);
        let notify = q.waiters > 0;
        drop(q);
        if notify {
            self.flushed_cv.notify_all();
        }
    }

    /// Writes whole records to the open file (discarded if none is open), rolling at the
    /// size cap, then the drop notice if records were dropped.
    fn write_batch(&self, st: &mut FileState, batch: &[u8], dropped: u64) {
        let mut rest = batch;
        while !rest.is_empty() {
            let Some(of) = st.open.as_ref() else {
                return;
            };
            let limit = self.size_limit.load(Ordering::Relaxed);
            let take = if limit == 0 {
                rest.len()
            } else {
                fitting_prefix(rest, of.len, of.header_len, limit)
            };
            if take == 0 {
                let dir = of.dir.clone();
                self.close(st, "size limit");
                self.open(st, &dir, "size limit");
                continue;
            }
            let (chunk, tail) = rest.split_at(take);
            self.write_chunk(st, chunk);
            rest = tail;
        }
        if dropped > 0 {
            tracing::warn!(
                service = self.service.header_name(),
                dropped,
                "protocol log queue full: records dropped"
            );
        }
        if dropped > 0 && st.open.is_some() {
            let fields = SessionFields {
                id: record::session_id_text(0),
                local: String::new(),
                remote: String::new(),
            };
            let mut line = Vec::with_capacity(96);
            let text = format!("{dropped} records dropped (queue full)");
            record::push_record(
                &mut line,
                SystemTime::now(),
                &fields,
                0,
                Event::Info,
                text.as_bytes(),
            );
            self.write_chunk(st, &line);
        }
    }

    /// One `write_all` + `flush`; on failure the file is truncated back to its last whole
    /// record, released, and the failure reported once.
    fn write_chunk(&self, st: &mut FileState, chunk: &[u8]) {
        let Some(of) = st.open.as_mut() else {
            return;
        };
        match of.out.write_all(chunk).and_then(|()| of.out.flush()) {
            Ok(()) => of.len += chunk.len() as u64,
            Err(e) => {
                let (dir, good) = (of.dir.clone(), of.len);
                // Best effort: a torn record must not stay behind the last whole one.
                let _ = of.lock.set_len(good);
                self.report_failure(st, &dir, "write failed", &e);
                self.close(st, "write error");
            }
        }
    }

    /// Opens the next file in `dir` (SPEC §5 "Names", "Header"), or reports the failure.
    fn open(&self, st: &mut FileState, dir: &Path, why: &str) {
        match open_file(self.service, dir, &self.factory) {
            Ok(of) => {
                tracing::info!(
                    service = self.service.header_name(),
                    file = %of.path.display(),
                    reason = why,
                    "protocol log opened"
                );
                if st.failing.take().is_some() {
                    tracing::info!(
                        service = self.service.header_name(),
                        "protocol log recovered"
                    );
                }
                let ino = of
                    .lock
                    .metadata()
                    .map(|m| (m.dev(), m.ino()))
                    .unwrap_or_default();
                *lock(&self.open_id) = Some(OpenId {
                    dir: of.dir.clone(),
                    path: of.path.clone(),
                    ino,
                });
                st.open = Some(of);
            }
            Err(e) => self.report_failure(st, dir, "cannot open a log file", &e),
        }
    }

    /// Flushes, unlocks and drops the open file, if any: the handle is released.
    fn close(&self, st: &mut FileState, why: &str) {
        let Some(mut of) = st.open.take() else {
            return;
        };
        *lock(&self.open_id) = None;
        let _ = of.out.flush();
        drop(of.out);
        let _ = of.lock.unlock();
        drop(of.lock);
        tracing::info!(
            service = self.service.header_name(),
            file = %of.path.display(),
            reason = why,
            "protocol log released"
        );
    }

    /// One `error!` per failure episode (per directory); repeats go to `debug!`.
    fn report_failure(&self, st: &mut FileState, dir: &Path, what: &str, e: &io::Error) {
        if st.failing.as_deref() == Some(dir) {
            tracing::debug!(
                service = self.service.header_name(),
                dir = %dir.display(),
                error = %e,
                "{what} (failure continues)"
            );
        } else {
            tracing::error!(
                service = self.service.header_name(),
                dir = %dir.display(),
                error = %e,
                "protocol log: {what}; sessions carry on unlogged, retrying at the next session start"
            );
            st.failing = Some(dir.to_path_buf());
        }
    }
}

/// How many leading bytes of `batch` (whole records) fit in a file of `len` bytes under
/// `limit`; a file holding only its header always takes one record, however long.
fn fitting_prefix(batch: &[u8], len: u64, header_len: u64, limit: u64) -> usize {
    let mut take = 0usize;
    let mut size = len;
    for line in batch.split_inclusive(|&b| b == b'\n') {
        let n = line.len() as u64;
        if size + n > limit && !(size == header_len && take == 0) {
            break;
        }
        size += n;
        take += line.len();
    }
    take
}

/// The number after the highest `L` + 7 digits + `.log` in `dir` (1 if there is none).
pub(crate) fn next_number(dir: &Path) -> io::Result<u32> {
    let mut highest = 0u32;
    for entry in std::fs::read_dir(dir)? {
        let Ok(entry) = entry else { continue };
        if let Some(n) = entry.file_name().to_str().and_then(parse_log_name) {
            highest = highest.max(n);
        }
    }
    Ok(highest + 1)
}

/// `Some(n)` for exactly `L` + 7 ASCII digits + `.log`.
pub(crate) fn parse_log_name(name: &str) -> Option<u32> {
    let digits = name.strip_prefix('L')?.strip_suffix(".log")?;
    if digits.len() != 7 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

/// Creates the directory, the next file with `O_EXCL` (retrying on collision), takes the
/// exclusive non-blocking `flock` and writes the header. An existing file is never touched.
fn open_file(service: Service, dir: &Path, factory: &WriterFactory) -> io::Result<OpenFile> {
    std::fs::create_dir_all(dir)?;
    let mut n = next_number(dir)?;
    let (path, file) = loop {
        if n > MAX_NUMBER {
            return Err(io::Error::other("no free L???????.log name left"));
        }
        let path = dir.join(format!("L{n:07}.log"));
        match OpenOptions::new().write(true).create_new(true).open(&path) {
            Ok(f) => break (path, f),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => n += 1,
            Err(e) => return Err(e),
        }
    };
    match file.try_lock() {
        Ok(()) => {}
        Err(TryLockError::WouldBlock) => {
            return Err(io::Error::new(
                io::ErrorKind::WouldBlock,
                format!("{} is locked by another process", path.display()),
            ))
        }
        Err(TryLockError::Error(e)) => return Err(e),
    }
    let header = record::header(service.header_name(), SystemTime::now());
    let written = factory(&file).and_then(|mut out| {
        out.write_all(header.as_bytes())?;
        out.flush()?;
        Ok(out)
    });
    let out = match written {
        Ok(out) => out,
        Err(e) => {
            // Our own O_EXCL file, without a whole header: not worth keeping.
            drop(file);
            let _ = std::fs::remove_file(&path);
            return Err(e);
        }
    };
    Ok(OpenFile {
        dir: dir.to_path_buf(),
        path,
        lock: file,
        out,
        len: header.len() as u64,
        header_len: header.len() as u64,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_names_are_exactly_seven_digits() {
        assert_eq!(parse_log_name("L0000001.log"), Some(1));
        assert_eq!(parse_log_name("L9999999.log"), Some(9_999_999));
        assert_eq!(parse_log_name("L000001.log"), None);
        assert_eq!(parse_log_name("L00000001.log"), None);
        assert_eq!(parse_log_name("L000000a.log"), None);
        assert_eq!(parse_log_name("l0000001.log"), None);
        assert_eq!(parse_log_name("L0000001.LOG"), None);
        assert_eq!(parse_log_name("L+000001.log"), None);
        assert_eq!(parse_log_name("L0000001.log.bak"), None);
    }

    #[test]
    fn next_number_skips_past_the_highest() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(next_number(dir.path()).unwrap(), 1);
        for name in [
            "L0000003.log",
            "L0000010.log",
            "L00000099.log",
            "notes.txt",
            "L12.log",
        ] {
            std::fs::write(dir.path().join(name), b"x").unwrap();
        }
        std::fs::create_dir(dir.path().join("L0000050.lo")).unwrap();
        assert_eq!(next_number(dir.path()).unwrap(), 11);
    }

    #[test]
    fn fitting_prefix_cuts_at_record_boundaries() {
        let batch = b"aaaa\nbbbb\ncccc\n";
        // header 10 bytes, limit 20: one 5-byte record fits twice.
        assert_eq!(fitting_prefix(batch, 10, 10, 20), 10);
        assert_eq!(fitting_prefix(batch, 11, 10, 20), 5);
        assert_eq!(fitting_prefix(batch, 16, 10, 20), 0);
        // A file with only its header takes one record even if it is too long.
        assert_eq!(fitting_prefix(batch, 10, 10, 12), 5);
        assert_eq!(fitting_prefix(batch, 0, 0, 1000), batch.len());
    }
}
