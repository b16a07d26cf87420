//! systemd `Type=notify` integration (SPEC §9): `READY=1` once every listener is bound,
//! `RELOADING=1` + `MONOTONIC_USEC` then `READY=1` around a reload, `STOPPING=1` at shutdown,
//! and `WATCHDOG=1` pings at half of `WATCHDOG_USEC` when the unit sets `WatchdogSec=`.
//! Without `NOTIFY_SOCKET` every call is a no-op.

use std::time::Duration;

use sd_notify::NotifyState;
use tokio_util::sync::CancellationToken;

fn send(states: &[NotifyState]) {
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
    let mut usec = 0u64;
    if std::env::var_os("NOTIFY_SOCKET").is_none() || !sd_notify::watchdog_enabled(false, &mut usec)
    {
        return;
    }
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
