//! One service's log stream (ARCHITECTURE.md, "Protocol log": when files open and close,
//! names, failure never stops mail, integrity): the one open file, its `flock`, the record queue and the writer
//! thread that empties it.
//!
//! Ownership and locking:
//! * [`Sink::session_start`] is the one place a session start opens or closes a file; the
//!   writer thread only closes on a write error and rolls to the next name at the size cap.
//!   Both go through `Sink::open` (→ `open_file`) and `Sink::close`.
//! * Sessions format whole record lines themselves and queue them under a short mutex (never
//!   disk I/O), so lines of concurrent sessions never interleave. A level-5 batch (many
//!   records formatted into one buffer) is queued by handing the buffer itself over
//!   ([`Sink::push_batch`]: the session gets an empty recycled buffer back, nothing is
//!   copied); a single record is copied into the last queued chunk ([`Sink::push`]). The
//!   queue is bounded in bytes; a full queue drops the record, counts it, and the writer
//!   later writes one `*` record "N records dropped (queue full)".
//! * The writer takes all queued chunks at once and writes them in order, one `write_all`
//!   per chunk, straight from the buffers the sessions formatted into; the emptied buffers go
//!   back to a small pool the next batches are formatted into. It is woken
//!   only when the queue holds [`WRITE_BATCH_BYTES`] (so a busy log is written in large
//!   writes, without a wake-up per record), when a session ending waits for its records, or
//!   at shutdown; otherwise it writes whatever is queued every [`FLUSH_INTERVAL`], well
//!   within the one second promised (ARCHITECTURE.md, "Protocol log").
//! * Lock order is always `file` → `queue`, and `file` → `open_id`; `queue` and `open_id`
//!   are never held across I/O. That order makes batches reach the file in queue order even
//!   when a session start drains the queue itself before closing a file.
//! * A record never contains a raw `\n` (see `record.rs`), so `\n` is the record boundary
//!   used to roll at the size cap without splitting a record.

use std::fs::{File, OpenOptions, TryLockError};
use std::io::{self, IoSlice, Write};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime};

use super::record::{self, Event, SessionFields};
use crate::service::Service;
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
/// Longest time a queued record waits for the writer when nothing wakes it earlier (a record
/// is in the file at most one second after it was made: ARCHITECTURE.md, "Protocol log").
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

/// Fewest spare bytes a chunk created for a single record gets, so the records that follow
/// it are appended to it instead of starting chunks of their own.
const MIN_CHUNK: usize = 64 * 1024;
/// A written buffer larger than this is freed rather than kept for reuse.
const POOL_MAX_BUFFER: usize = 1 << 20;
/// Most bytes (capacity) of empty buffers kept for reuse.
const POOL_MAX_BYTES: usize = 4 << 20;

/// Records between sessions and the writer thread.
#[derive(Default)]
struct Queue {
    /// Whole formatted records in queue order, each chunk a run of whole records ending in
    /// `\n` (never empty).
    chunks: Vec<Vec<u8>>,
    /// Bytes in `chunks`.
    bytes: usize,
    /// Empty buffers (already written) for the next batches to be formatted into.
    pool: Vec<Vec<u8>>,
    /// Capacity held by `pool`.
    pool_bytes: usize,
    /// Records ever accepted; the last accepted record's number.
    pushed: u64,
    /// Every record numbered up to this has been written and flushed (or discarded because
    /// no file was open); sessions ending wait for it.
    flushed: u64,
    /// Records dropped since the writer last reported drops.
    dropped: u64,
    /// Bumped when a level-0 session start releases the file: sessions started under an
    /// older epoch stop writing (KB Q182504: the handle is released; sessions still running from before stop writing).
    epoch: u64,
    /// The daemon is shutting down: the writer exits once the queue is empty, no file opens.
    shutdown: bool,
    /// Someone waits for `flushed` (saves a notify per batch when nobody does).
    waiters: usize,
}

impl Queue {
    /// Whether `len` bytes of `records` records from a session of `epoch` may be queued:
    /// `Err(Released)` if that session must stop logging, `Err(Dropped)` (counted) if the
    /// queue is full.
    fn admit(
        &mut self,
        epoch: u64,
        len: usize,
        records: u64,
        essential: bool,
    ) -> Result<(), Pushed> {
        if self.epoch != epoch || self.shutdown {
            return Err(Pushed::Released);
        }
        let cap = if essential {
            QUEUE_CAP_BYTES + ESSENTIAL_HEADROOM
        } else {
            QUEUE_CAP_BYTES
        };
        if self.bytes + len > cap {
            self.dropped += records;
            return Err(Pushed::Dropped);
        }
        Ok(())
    }

    /// An empty buffer from the pool (or a new one without capacity).
    fn take_buffer(&mut self) -> Vec<u8> {
        let buf = self.pool.pop().unwrap_or_default();
        self.pool_bytes -= buf.capacity();
        buf
    }

    /// Keeps a written buffer for reuse, within the pool's bounds.
    fn recycle(&mut self, mut buf: Vec<u8>) {
        let cap = buf.capacity();
        if cap <= POOL_MAX_BUFFER && self.pool_bytes + cap <= POOL_MAX_BYTES {
            buf.clear();
            self.pool_bytes += cap;
            self.pool.push(buf);
        }
    }
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
    /// The chunks being written (kept to reuse the list's allocation).
    writing: Vec<Vec<u8>>,
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
                writing: Vec::new(),
            }),
            open_id: Mutex::new(None),
            size_limit: AtomicU64::new(0),
        }
    }

    /// The open/close transitions (ARCHITECTURE.md, "Protocol log") for one session start; returns the epoch the
    /// session logs under, or `None` when it must not log (level 0, or shutting down).
    pub(crate) fn session_start(&self, settings: &ProtocolLogSettings) -> Option<u64> {
        self.size_limit
            .store(u64::from(settings.size_limit_kib) * 1024, Ordering::Relaxed);
        // Level > 0, or per-user logging (a listed user's session logs at level 5).
        let enabled = settings.wants_file();
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
        let want = (settings.wants_file() && !shutdown).then_some(settings.path.as_path());
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
        if lines.is_empty() {
            return Pushed::Dropped;
        }
        let mut q = lock(&self.queue);
        if let Err(p) = q.admit(epoch, lines.len(), records, essential) {
            if matches!(p, Pushed::Dropped) {
                crate::metrics::get().protolog_dropped(self.service, records);
            }
            return p;
        }
        let fits = q
            .chunks
            .last()
            .is_some_and(|c| c.capacity() - c.len() >= lines.len());
        if !fits {
            let mut chunk = q.take_buffer();
            chunk.reserve(lines.len().max(MIN_CHUNK));
            q.chunks.push(chunk);
        }
        if let Some(last) = q.chunks.last_mut() {
            last.extend_from_slice(lines);
        }
        self.queued(q, lines.len(), records)
    }

    /// Like [`Sink::push`] for `records` whole records formatted back to back in `batch`
    /// (not `essential`), without copying them: when queued, the buffer itself is queued and
    /// `batch` is replaced by an empty (recycled) buffer; otherwise `batch` is left as it is.
    pub(crate) fn push_batch(&self, epoch: u64, batch: &mut Vec<u8>, records: u64) -> Pushed {
        if batch.is_empty() {
            return Pushed::Dropped;
        }
        let mut q = lock(&self.queue);
        if let Err(p) = q.admit(epoch, batch.len(), records, false) {
            if matches!(p, Pushed::Dropped) {
                crate::metrics::get().protolog_dropped(self.service, records);
            }
            return p;
        }
        let spare = q.take_buffer();
        let chunk = std::mem::replace(batch, spare);
        let len = chunk.len();
        q.chunks.push(chunk);
        self.queued(q, len, records)
    }

    /// Counts `len` bytes of `records` records just queued and wakes the writer when the
    /// queue crosses [`WRITE_BATCH_BYTES`].
    fn queued(&self, mut q: MutexGuard<'_, Queue>, len: usize, records: u64) -> Pushed {
        crate::metrics::get().protolog_queued(self.service, records);
        let before = q.bytes;
        q.bytes += len;
        q.pushed += records;
        let n = q.pushed;
        let wake = before < WRITE_BATCH_BYTES && q.bytes >= WRITE_BATCH_BYTES;
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
                    if q.shutdown && q.bytes == 0 {
                        return;
                    }
                    let urgent = q.bytes >= WRITE_BATCH_BYTES || q.waiters > 0 || q.shutdown;
                    if q.bytes > 0 && urgent {
                        break;
                    }
                    let now = Instant::now();
                    if now >= deadline {
                        if q.bytes > 0 {
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
    #[cfg(any(test, feature = "test-support"))]
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
            std::mem::swap(&mut st.writing, &mut q.chunks);
            q.bytes = 0;
            if release {
                q.epoch += 1;
            }
            (q.pushed, std::mem::take(&mut q.dropped))
        };
        let mut chunks = std::mem::take(&mut st.writing);
        self.write_chunks(st, &chunks);
        self.write_dropped(st, dropped);
        let mut q = lock(&self.queue);
        for chunk in chunks.drain(..) {
            q.recycle(chunk);
        }
        st.writing = chunks;
        q.flushed = q.flushed.max(upto);
        let notify = q.waiters > 0;
        drop(q);
        if notify {
            self.flushed_cv.notify_all();
        }
    }

    /// Writes the queued chunks in order: with no size cap in one vectored write (one
    /// `writev` for up to 1024 chunks), else chunk by chunk with [`Sink::write_batch`].
    fn write_chunks(&self, st: &mut FileState, chunks: &[Vec<u8>]) {
        if self.size_limit.load(Ordering::Relaxed) != 0 {
            for chunk in chunks {
                self.write_batch(st, chunk);
            }
            return;
        }
        let mut slices: Vec<IoSlice<'_>> = chunks.iter().map(|c| IoSlice::new(c)).collect();
        self.write_slices(st, &mut slices);
    }

    /// Writes whole records to the open file (discarded if none is open), rolling at the
    /// size cap.
    fn write_batch(&self, st: &mut FileState, batch: &[u8]) {
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
    }

    /// Reports `dropped` records in the daemon log and, if a file is open, by one `*` record.
    fn write_dropped(&self, st: &mut FileState, dropped: u64) {
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

    /// [`Sink::write_slices`] of one piece.
    fn write_chunk(&self, st: &mut FileState, chunk: &[u8]) {
        self.write_slices(st, &mut [IoSlice::new(chunk)]);
    }

    /// Writes all of `slices` (whole records) + `flush`; on failure the file is truncated
    /// back to its last whole record, released, and the failure reported once.
    fn write_slices(&self, st: &mut FileState, slices: &mut [IoSlice<'_>]) {
        let Some(of) = st.open.as_mut() else {
            return;
        };
        let len: usize = slices.iter().map(|s| s.len()).sum();
        match write_all_vectored(&mut of.out, slices).and_then(|()| of.out.flush()) {
            Ok(()) => {
                of.len += len as u64;
                crate::metrics::get().protolog_written(self.service, len as u64);
            }
            Err(e) => {
                let (dir, good) = (of.dir.clone(), of.len);
                // Best effort: a torn record must not stay behind the last whole one.
                let _ = of.lock.set_len(good);
                self.report_failure(st, &dir, "write failed", &e);
                self.close(st, "write error");
            }
        }
    }

    /// Opens the next file in `dir` (ARCHITECTURE.md, "Protocol log": names, header), or reports the failure.
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
                crate::metrics::get().protolog_file(self.service, 1);
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
        crate::metrics::get().protolog_file(self.service, -1);
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

/// `Write::write_all_vectored` (unstable in std): writes every byte of `slices`, in order.
fn write_all_vectored(out: &mut dyn Write, mut slices: &mut [IoSlice<'_>]) -> io::Result<()> {
    IoSlice::advance_slices(&mut slices, 0);
    while !slices.is_empty() {
        match out.write_vectored(slices) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => IoSlice::advance_slices(&mut slices, n),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
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

    /// A sink with an open file in `dir` and no writer thread (the test flushes).
    fn sink_in(dir: &Path) -> Sink {
        let sink = Sink::new(Service::Pop3, default_writer_factory());
        let settings = ProtocolLogSettings {
            level: 5,
            path: dir.to_path_buf(),
            size_limit_kib: 0,
            users: Vec::new(),
        };
        assert_eq!(sink.session_start(&settings), Some(0));
        sink
    }

    /// Single records (copied into the last chunk) and handed-over batches (queued as
    /// chunks of their own) reach the file whole and in push order, and a written batch
    /// buffer comes back through the pool.
    #[test]
    fn copied_records_and_handed_over_batches_keep_their_order() {
        let tmp = tempfile::tempdir().unwrap();
        let sink = sink_in(tmp.path());
        let mut expected = String::new();
        let mut batch = Vec::new();
        let mut n = 0u64;
        for round in 0..3 {
            for i in 0..5 {
                let line = format!("single {round} {i}\n");
                assert_eq!(
                    sink.push(0, line.as_bytes(), 1, false),
                    Pushed::Queued(n + 1)
                );
                n += 1;
                expected.push_str(&line);
                batch.clear();
                for j in 0..=i {
                    batch.extend_from_slice(format!("batch {round} {i} {j}\n").as_bytes());
                }
                let text = String::from_utf8(batch.clone()).unwrap();
                let records = i as u64 + 1;
                assert_eq!(
                    sink.push_batch(0, &mut batch, records),
                    Pushed::Queued(n + records)
                );
                n += records;
                expected.push_str(&text);
                assert!(batch.is_empty(), "the batch buffer was handed over");
            }
            sink.flush();
        }
        // After a flush the written buffers are in the pool: the next hand-over returns one.
        batch.extend_from_slice(b"last\n");
        sink.push_batch(0, &mut batch, 1);
        expected.push_str("last\n");
        assert!(batch.is_empty() && batch.capacity() > 0);
        sink.flush();
        let text = std::fs::read_to_string(tmp.path().join("L0000001.log")).unwrap();
        let body: String = text
            .lines()
            .filter(|l| !l.starts_with('#'))
            .map(|l| format!("{l}\n"))
            .collect();
        assert_eq!(body, expected);
    }

    /// At the queue cap a batch is refused whole (counted as its records, the buffer left to
    /// the caller) and a single essential record still fits in the headroom; nothing queued
    /// before is lost.
    #[test]
    fn a_full_queue_refuses_whole_batches_and_loses_nothing_queued() {
        let tmp = tempfile::tempdir().unwrap();
        let sink = sink_in(tmp.path());
        let line = [b'x'; 99];
        let mut queued = 0u64;
        let mut refused = 0u64;
        for i in 0..(QUEUE_CAP_BYTES / (100 * 100) + 10) {
            let mut batch = Vec::new();
            for _ in 0..100 {
                batch.extend_from_slice(&line);
                batch.push(b'\n');
            }
            match sink.push_batch(0, &mut batch, 100) {
                Pushed::Queued(n) => {
                    queued += 100;
                    assert_eq!(n, queued, "batch {i}");
                }
                Pushed::Dropped => {
                    refused += 100;
                    assert_eq!(
                        batch.len(),
                        100 * 100,
                        "a refused batch stays with the caller"
                    );
                }
                Pushed::Released => panic!("released"),
            }
        }
        assert!(refused > 0 && queued as usize * 100 <= QUEUE_CAP_BYTES);
        assert!(matches!(
            sink.push(0, b"essential\n", 1, true),
            Pushed::Queued(_)
        ));
        sink.flush();
        let text = std::fs::read_to_string(tmp.path().join("L0000001.log")).unwrap();
        let records: Vec<&str> = text.lines().filter(|l| !l.starts_with('#')).collect();
        let xs = records
            .iter()
            .filter(|l| l.len() == 99 && l.bytes().all(|b| b == b'x'));
        assert_eq!(xs.count() as u64, queued);
        assert_eq!(records[queued as usize], "essential");
        assert!(records[queued as usize + 1]
            .ends_with(&format!(",{refused} records dropped (queue full)")));
        assert_eq!(records.len() as u64, queued + 2);
    }

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
