//! systemd `Type=notify` integration (ARCHITECTURE.md, "Server"): `READY=1` once every listener is bound,
//! `RELOADING=1` + `MONOTONIC_USEC` then `READY=1` around a reload, `STOPPING=1` at shutdown,
//! and `WATCHDOG=1` pings at half of `WATCHDOG_USEC` when the unit sets `WatchdogSec=`.
//! Without `NOTIFY_SOCKET` every call is a no-op.

use std::time::Duration;

use sd_notify::NotifyState;
use tokio_util::sync::CancellationToken;

fn send(states: &[NotifyState<'_>]) {
    if std::env::var_os("NOTIFY_SOCKET").is_none() {
        return;
    }
    if let Err(e) = sd_notify::notify(false, states) {
        tracing::warn!("sd_notify failed: {e}");
    }
}

/// All listeners are bound; also sent after a reload.
pub fn ready() {
    send(&[NotifyState::Ready]);
}

/// A reload starts (systemd ≥ 253 wants the monotonic time with it).
pub fn reloading() {
    match NotifyState::monotonic_usec_now() {
        Ok(now) => send(&[NotifyState::Reloading, now]),
        Err(_) => send(&[NotifyState::Reloading]),
    }
}

/// Shutdown has begun.
pub fn stopping() {
    send(&[NotifyState::Stopping]);
}

/// Spawns the watchdog pinger when the service manager asked for one (`WATCHDOG_USEC`).
pub fn spawn_watchdog(shutdown: CancellationToken) {
    if std::env::var_os("NOTIFY_SOCKET").is_none() {
        return;
    }
    let Some(usec) = watchdog_usec(
        std::env::var("WATCHDOG_USEC").ok().as_deref(),
        std::env::var("WATCHDOG_PID").ok().as_deref(),
        std::process::id(),
    ) else {
        return;
    };
    let period = Duration::from_micros(usec / 2).max(Duration::from_millis(10));
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(period);
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => break,
                _ = tick.tick() => send(&[NotifyState::Watchdog]),
            }
        }
    });
}

/// `sd_watchdog_enabled(3)`: the interval from `WATCHDOG_USEC`, unless `WATCHDOG_PID` names
/// another process (an absent `WATCHDOG_PID` means this one).
fn watchdog_usec(usec: Option<&str>, pid: Option<&str>, me: u32) -> Option<u64> {
    let usec: u64 = usec?.trim().parse().ok().filter(|&u| u > 0)?;
    match pid {
        Some(p) if p.trim().parse::<u32>().ok() != Some(me) => None,
        _ => Some(usec),
    }
}

#[cfg(test)]
mod tests {
    use super::watchdog_usec;

    #[test]
    fn watchdog_env_rules() {
        assert_eq!(watchdog_usec(Some("30000000"), None, 7), Some(30_000_000));
        assert_eq!(
            watchdog_usec(Some("30000000"), Some("7"), 7),
            Some(30_000_000)
        );
        assert_eq!(watchdog_usec(Some("30000000"), Some("8"), 7), None);
        assert_eq!(watchdog_usec(Some("0"), None, 7), None);
        assert_eq!(watchdog_usec(Some("x"), None, 7), None);
        assert_eq!(watchdog_usec(None, None, 7), None);
    }
}
