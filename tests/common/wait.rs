//! Bounded waiting for effects that happen after the action a test took: a daemon-log line
//! the harness's reader thread has not consumed yet, a protocol-log record, a file in a
//! Maildir, a lock released after a disconnect, a process that exits.
//!
//! A test never sleeps a fixed time and then asserts: it waits *for the condition* it is
//! about to assert, at most a bound, and on timeout fails with what it saw last. Polling
//! starts at 2 ms and backs off to 50 ms, so a condition that holds at once costs nothing
//! and a slow machine only makes the wait longer, never the test red.
//!
//! Self-contained (std and tokio only) so that test crates can `#[path]`-include it without the rest of
//! `common`. `dead_code` is allowed because each crate uses a subset.
#![allow(dead_code)]

use std::time::{Duration, Instant};

/// The usual bound: generous, because the suite runs many daemons on two cores at once.
pub const WAIT: Duration = Duration::from_secs(20);

fn next_pause(pause: Duration) -> Duration {
    (pause * 2).min(Duration::from_millis(50))
}

/// Polls `probe` until it returns `Ok(value)` and returns the value; after `within`, panics
/// with `what` and the last `Err` the probe gave (what it saw instead).
pub fn wait_for<T>(
    what: &str,
    within: Duration,
    mut probe: impl FnMut() -> Result<T, String>,
) -> T {
    let start = Instant::now();
    let mut pause = Duration::from_millis(2);
    // Bounded in count as well as time: `within` / 2 ms polls at most.
    let max_polls = (within.as_millis() / 2).max(1) as u64 + 1;
    let mut last = String::new();
    for _ in 0..max_polls {
        match probe() {
            Ok(v) => return v,
            Err(seen) => last = seen,
        }
        if start.elapsed() >= within {
            break;
        }
        std::thread::sleep(pause.min(within.saturating_sub(start.elapsed())));
        pause = next_pause(pause);
    }
    panic!("timed out after {within:?} waiting for {what}; last seen:\n{last}");
}

/// [`wait_for`] with a plain condition; `seen` describes the state for the failure message.
pub fn wait_until(
    what: &str,
    within: Duration,
    mut cond: impl FnMut() -> bool,
    seen: impl Fn() -> String,
) {
    wait_for(what, within, || if cond() { Ok(()) } else { Err(seen()) })
}

/// [`wait_for`] for async tests: sleeps on the tokio timer between polls.
pub async fn wait_for_async<T>(
    what: &str,
    within: Duration,
    mut probe: impl FnMut() -> Result<T, String>,
) -> T {
    let start = Instant::now();
    let mut pause = Duration::from_millis(2);
    let max_polls = (within.as_millis() / 2).max(1) as u64 + 1;
    let mut last = String::new();
    for _ in 0..max_polls {
        match probe() {
            Ok(v) => return v,
            Err(seen) => last = seen,
        }
        if start.elapsed() >= within {
            break;
        }
        tokio::time::sleep(pause.min(within.saturating_sub(start.elapsed()))).await;
        pause = next_pause(pause);
    }
    panic!("timed out after {within:?} waiting for {what}; last seen:\n{last}");
}
