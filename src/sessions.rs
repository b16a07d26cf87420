//! The daemon's live session table (ARCHITECTURE.md, "Admin socket"): what `mailserver who`
//! lists and `mailserver kick` ends.
//!
//! The connection driver registers every session at its start with the protocol log's
//! session id (the 16-hex id of its `+` record), service, client address and start time, and
//! updates its state and user after each round of commands ([`Registration::update`]); the
//! [`Registration`] guard removes the row when the driver is done (RAII: a panic or an early
//! return deregisters too). Each row holds the session's kill token, which the driver selects
//! on besides input and shutdown: a kicked session says goodbye ([`crate::session::Session::on_kick`])
//! and closes without QUIT-time work, exactly as at shutdown.
//!
//! Moves (README.md, "Cluster"): [`Registry::kick_moved`] kicks the sessions of users another
//! node owns now, with [`KickReason::Moved`] so their goodbye says so. A session that only
//! relays bytes to another node (state [`RELAY_STATE`]...) is never kicked by a move: the
//! owner closes its end when the user moves, and that ends the relay.
//!
//! A leaf: it knows services and tokens, nothing of protocols or sockets.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::SystemTime;

use tokio_util::sync::CancellationToken;

use crate::service::Service;

/// One row of the table as `who` shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionInfo {
    /// The protocol log's session id (16 lower-case hex digits in the log).
    pub id: u64,
    pub service: Service,
    pub remote: SocketAddr,
    /// When the connection was accepted.
    pub since: SystemTime,
    /// The canonical user name once logged in (LMTP: none).
    pub user: Option<String>,
    /// The protocol state: `not authenticated`, `authenticated`, `selected INBOX`;
    /// POP3 `authorization`, `transaction`; LMTP `transaction`; `connecting` before the
    /// greeting (an implicit-TLS handshake).
    pub state: String,
}

struct Row {
    info: SessionInfo,
    kill: CancellationToken,
    /// Why the session was kicked, set before `kill` fires (shared with its [`Registration`]).
    reason: Arc<Mutex<KickReason>>,
}

/// Why a session is kicked: its goodbye says so.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum KickReason {
    /// `mailserver kick`.
    #[default]
    Admin,
    /// Another node of the cluster owns the session's user now (README.md, "Cluster"): IMAP
    /// `* BYE [UNAVAILABLE]`, POP3 closed without applying DELE.
    Moved,
}

/// The start of the state of a front session relaying to the owner (`proxied to node2`).
pub const RELAY_STATE: &str = "proxied to ";

/// The table; one per daemon, shared by the driver (register, update) and the admin socket
/// (list, kick).
#[derive(Default)]
pub struct Registry {
    rows: Mutex<BTreeMap<u64, Row>>,
}

impl Registry {
    fn rows(&self) -> MutexGuard<'_, BTreeMap<u64, Row>> {
        self.rows.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Adds a session; the row lives until the returned guard is dropped. The guard's
    /// [`Registration::kill`] token fires when the session is kicked.
    pub fn register(
        self: &Arc<Self>,
        id: u64,
        service: Service,
        remote: SocketAddr,
    ) -> Registration {
        let kill = CancellationToken::new();
        let reason = Arc::new(Mutex::new(KickReason::Admin));
        let info = SessionInfo {
            id,
            service,
            remote,
            since: SystemTime::now(),
            user: None,
            state: "connecting".into(),
        };
        self.rows().insert(
            id,
            Row {
                info,
                kill: kill.clone(),
                reason: reason.clone(),
            },
        );
        Registration {
            registry: self.clone(),
            id,
            kill,
            reason,
            shown: Mutex::new((None, "connecting".into())),
        }
    }

    /// Every session, oldest id first.
    pub fn list(&self) -> Vec<SessionInfo> {
        self.rows().values().map(|r| r.info.clone()).collect()
    }

    /// Kicks every IMAP and POP3 session of `user` (LMTP sessions deliver to many users
    /// and are never kicked by user); returns how many.
    pub fn kick_user(&self, user: &str) -> usize {
        let rows = self.rows();
        let mut n = 0;
        for r in rows.values() {
            if r.info.service != Service::Lmtp && r.info.user.as_deref() == Some(user) {
                r.kill.cancel();
                n += 1;
            }
        }
        n
    }

    /// Kicks every IMAP and POP3 session whose user `moved` says is now another node's
    /// (README.md, "Cluster", "Moves"); returns the users whose sessions were kicked, each
    /// once. Sessions not logged in yet are left alone: the login decides where they go.
    pub fn kick_moved(&self, moved: impl Fn(&str) -> bool) -> Vec<String> {
        let rows = self.rows();
        let mut users: Vec<String> = Vec::new();
        for r in rows.values() {
            let Some(user) = r.info.user.as_deref() else {
                continue;
            };
            let relaying = r.info.state.starts_with(RELAY_STATE);
            if r.info.service == Service::Lmtp || relaying || !moved(user) {
                continue;
            }
            *r.reason.lock().unwrap_or_else(|p| p.into_inner()) = KickReason::Moved;
            r.kill.cancel();
            if !users.iter().any(|u| u == user) {
                users.push(user.to_string());
            }
        }
        users
    }

    /// Kicks the session with this id (any service); returns 1, or 0 if there is none.
    pub fn kick_session(&self, id: u64) -> usize {
        match self.rows().get(&id) {
            Some(r) => {
                r.kill.cancel();
                1
            }
            None => 0,
        }
    }
}

/// A session's row, removed on drop.
pub struct Registration {
    registry: Arc<Registry>,
    id: u64,
    kill: CancellationToken,
    reason: Arc<Mutex<KickReason>>,
    /// What the row says now: the table's lock (shared by every session) is taken only
    /// when this changes. Only the session's own task locks it.
    shown: Mutex<(Option<String>, String)>,
}

impl Registration {
    /// Fired by `kick`.
    pub fn kill(&self) -> &CancellationToken {
        &self.kill
    }

    /// Why [`Registration::kill`] fired.
    pub fn kick_reason(&self) -> KickReason {
        *self.reason.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Sets the row's user and state (cheap when nothing changed: the driver calls it before
    /// every wait for input).
    pub fn update(&self, user: Option<&str>, state: &str) {
        let mut shown = self.shown.lock().unwrap_or_else(|p| p.into_inner());
        if shown.0.as_deref() == user && shown.1 == state {
            return;
        }
        *shown = (user.map(str::to_owned), state.to_owned());
        drop(shown);
        let mut rows = self.registry.rows();
        if let Some(r) = rows.get_mut(&self.id) {
            if r.info.user.as_deref() != user {
                r.info.user = user.map(str::to_owned);
            }
            if r.info.state != state {
                r.info.state = state.to_owned();
            }
        }
    }
}

impl Drop for Registration {
    fn drop(&mut self) {
        self.registry.rows().remove(&self.id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_live_as_long_as_their_guard_and_kicks_pick_the_right_ones() {
        let reg = Arc::new(Registry::default());
        let addr: SocketAddr = "127.0.0.1:1".parse().unwrap();
        let a = reg.register(1, Service::Imap4, addr);
        let b = reg.register(2, Service::Pop3, addr);
        let c = reg.register(3, Service::Lmtp, addr);
        let d = reg.register(4, Service::Imap4, addr);
        a.update(Some("alice"), "selected INBOX");
        b.update(Some("alice"), "transaction");
        c.update(Some("alice"), "transaction");
        d.update(Some("bob"), "authenticated");
        assert_eq!(reg.list().len(), 4);
        assert_eq!(reg.list()[0].state, "selected INBOX");
        assert_eq!(reg.kick_user("alice"), 2);
        assert!(a.kill().is_cancelled() && b.kill().is_cancelled());
        assert!(!c.kill().is_cancelled() && !d.kill().is_cancelled());
        assert_eq!(a.kick_reason(), KickReason::Admin);
        assert_eq!(reg.kick_session(3), 1);
        assert!(c.kill().is_cancelled());
        assert_eq!(reg.kick_session(99), 0);
        drop((a, b));
        let ids: Vec<u64> = reg.list().iter().map(|s| s.id).collect();
        assert_eq!(ids, [3, 4]);
        drop((c, d));
        assert!(reg.list().is_empty());
    }

    #[test]
    fn moves_kick_logged_in_imap_and_pop3_sessions_of_moved_users_only() {
        let reg = Arc::new(Registry::default());
        let addr: SocketAddr = "127.0.0.1:1".parse().unwrap();
        let a = reg.register(1, Service::Imap4, addr);
        let b = reg.register(2, Service::Pop3, addr);
        let c = reg.register(3, Service::Lmtp, addr);
        let d = reg.register(4, Service::Imap4, addr);
        let e = reg.register(5, Service::Imap4, addr);
        a.update(Some("alice"), "selected INBOX");
        b.update(Some("alice"), "transaction");
        c.update(Some("alice"), "transaction");
        d.update(Some("bob"), "authenticated");
        assert_eq!(reg.kick_moved(|u| u == "alice"), ["alice"]);
        assert!(a.kill().is_cancelled() && b.kill().is_cancelled());
        assert_eq!(a.kick_reason(), KickReason::Moved);
        assert_eq!(b.kick_reason(), KickReason::Moved);
        assert!(!c.kill().is_cancelled() && !d.kill().is_cancelled());
        // Not logged in: never kicked by a move.
        assert!(reg.kick_moved(|_| true) == ["alice", "bob"] && !e.kill().is_cancelled());
        // A front session relaying to the owner: the owner's side is the one a move closes.
        let f = reg.register(6, Service::Imap4, addr);
        f.update(Some("carol"), &format!("{RELAY_STATE}node2"));
        assert!(reg.kick_moved(|u| u == "carol").is_empty() && !f.kill().is_cancelled());
    }
}
