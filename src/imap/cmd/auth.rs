//! Authentication: STARTTLS (RFC 3501 §6.2.1, RFC 2595), LOGIN (§6.2.3), AUTHENTICATE PLAIN
//! (§6.2.2, RFC 4616) with SASL-IR (RFC 4959), and UNAUTHENTICATE (RFC 8437) back to the
//! not-authenticated state on the same connection.
//!
//! Passwords are checked by the connection's [`crate::session::Authenticator`] (the daemon's
//! passwd-file users). A failure is delayed ([`login_result`], shared with POP3) and worded
//! the same whether or not the user exists; a temporary failure (unreadable users file) is `[UNAVAILABLE]`.
//! Plaintext mechanisms are refused without TLS from non-loopback peers unless
//! `auth.allow_plaintext` is set (`LOGINDISABLED`, RFC 3501 §6.2.3 / §7.1 PRIVACYREQUIRED).
//! Results reach the protocol log as `*` records through [`Output::info`].

use base64::Engine;
use imap_codec::imap_types::auth::AuthMechanism;

use super::super::state::{ImapSession, State};
use crate::auth::{AuthResult, Secret};
use crate::session::{authenticate, login_result, master_login, LoginRefused, Output, Step};

/// The `service` of this module's logins in the metrics.
const IMAP: crate::service::Service = crate::service::Service::Imap4;

const AUTH_FAILED: &str = "[AUTHENTICATIONFAILED] Authentication failed.";
const AUTH_TEMPFAIL: &str = "[UNAVAILABLE] Temporary authentication failure.";
const PRIVACY: &str =
    "[PRIVACYREQUIRED] Plaintext authentication disallowed on non-secure (SSL/TLS) connections.";

impl ImapSession {
    /// §6.2.1: OK, then the driver does the handshake (discarding pipelined plaintext).
    pub(crate) fn starttls(&mut self, tag: &str, out: &mut Output) -> Step {
        if self.tls {
            out.status(format!("{tag} BAD TLS is already active."));
            return Step::ReadLine;
        }
        out.status(format!("{tag} OK Begin TLS negotiation now."));
        Step::StartTls
    }

    /// RFC 8437 §3: forget the user, any selected mailbox (closed as UNSELECT does: no
    /// expunge) and what ENABLE turned on; keep TLS and COMPRESS, which belong to the
    /// connection (§3: STARTTLS and COMPRESS state is not reset). The login-failure count
    /// stays: logging out and in again does not reset the penalty.
    pub(crate) fn unauthenticate(&mut self, tag: &str, out: &mut Output) -> Step {
        if matches!(self.state, State::NotAuthenticated | State::Logout) {
            return self.bad(tag, "Error in IMAP command: Login first.", out);
        }
        if let Some((user, _)) = &self.user {
            out.info(format!("unauthenticated: user={user}"));
        }
        self.state = State::NotAuthenticated;
        self.user = None;
        self.enabled = Default::default();
        self.vanished_sent = false;
        self.fetch_job = None;
        self.ext = Default::default();
        self.bad = 0;
        out.status(format!(
            "{tag} OK [CAPABILITY {}] Unauthenticate completed.",
            self.capabilities()
        ));
        Step::ReadLine
    }

    pub(crate) async fn login(
        &mut self,
        tag: &str,
        user: &[u8],
        pass: &[u8],
        out: &mut Output,
    ) -> Step {
        if !self.plaintext_allowed() {
            out.status(format!("{tag} NO {PRIVACY}"));
            return Step::ReadLine;
        }
        let user = String::from_utf8_lossy(user).into_owned();
        let pass = Secret::new(String::from_utf8_lossy(pass).into_owned());
        self.check_password(tag, &user, &pass, "LOGIN", out).await
    }

    /// AUTHENTICATE: only PLAIN; with an initial response (SASL-IR) it completes at once,
    /// else a `+ ` continuation asks for the response line.
    pub(crate) async fn authenticate(
        &mut self,
        tag: &str,
        mechanism: &AuthMechanism<'_>,
        initial: Option<Vec<u8>>,
        out: &mut Output,
    ) -> Step {
        if !matches!(mechanism, AuthMechanism::Plain) {
            out.status(format!("{tag} NO Unsupported authentication mechanism."));
            return Step::ReadLine;
        }
        if !self.plaintext_allowed() {
            out.status(format!("{tag} NO {PRIVACY}"));
            return Step::ReadLine;
        }
        match initial {
            Some(ir) => self.plain(tag, &ir, out).await,
            None => {
                out.status("+ ");
                self.expect_sasl(tag.to_string());
                Step::ReadLine
            }
        }
    }

    /// The client's response line to `+ ` (§6.2.2): base64, or `*` to cancel.
    pub(crate) async fn sasl_response(&mut self, tag: &str, line: &[u8], out: &mut Output) -> Step {
        if line == b"*" {
            out.status(format!("{tag} BAD Authentication aborted by client."));
            return Step::ReadLine;
        }
        let decoded = match base64::engine::general_purpose::STANDARD.decode(line.trim_ascii()) {
            Ok(d) => d,
            Err(_) => {
                out.status(format!(
                    "{tag} BAD Invalid base64 data in continued response."
                ));
                return Step::ReadLine;
            }
        };
        self.plain(tag, &decoded, out).await
    }

    /// RFC 4616 `[authzid] NUL authcid NUL passwd`; an authzid other than the user is refused.
    async fn plain(&mut self, tag: &str, msg: &[u8], out: &mut Output) -> Step {
        let parts: Vec<&[u8]> = msg.split(|&b| b == 0).collect();
        if parts.len() != 3 || parts[1].is_empty() {
            out.status(format!("{tag} BAD Invalid AUTHENTICATE PLAIN data."));
            return Step::ReadLine;
        }
        let user = String::from_utf8_lossy(parts[1]).into_owned();
        let pass = Secret::new(String::from_utf8_lossy(parts[2]).into_owned());
        if user == crate::cluster::internal::MASTER_USER {
            // The cluster's master login (README.md, "Cluster"): only on an internal
            // listener; anywhere else a failed login like a wrong password.
            let authz = String::from_utf8_lossy(parts[0]).into_owned();
            let result = master_login(&self.env, &authz, &pass).await;
            return self.finish_login(tag, &authz, result, "PLAIN", out).await;
        }
        if !parts[0].is_empty() && parts[0] != parts[1] {
            // No proxy authorization: acting as someone else is refused like a bad password.
            let failures = &mut self.auth_failures;
            let refused = login_result(&self.env, AuthResult::Failed, failures, &user, "PLAIN", IMAP, out);
            return match refused.await {
                Err(LoginRefused::TooMany) => failed_closing(tag, out),
                _ => {
                    out.status(format!("{tag} NO {AUTH_FAILED}"));
                    Step::ReadLine
                }
            };
        }
        self.check_password(tag, &user, &pass, "PLAIN", out).await
    }

    async fn check_password(
        &mut self,
        tag: &str,
        user: &str,
        pass: &Secret<String>,
        mechanism: &str,
        out: &mut Output,
    ) -> Step {
        let result = authenticate(&self.env, user, pass).await;
        self.finish_login(tag, user, result, mechanism, out).await
    }

    /// The end of every login: the failure replies, the cluster's login proxy, the store.
    async fn finish_login(
        &mut self,
        tag: &str,
        user: &str,
        result: AuthResult,
        mechanism: &str,
        out: &mut Output,
    ) -> Step {
        let shown: String = user.chars().filter(|c| !c.is_control()).take(64).collect();
        let failures = &mut self.auth_failures;
        let user = match login_result(&self.env, result, failures, &shown, mechanism, IMAP, out).await {
            Ok(user) => user,
            Err(LoginRefused::Failed) => {
                out.status(format!("{tag} NO {AUTH_FAILED}"));
                return Step::ReadLine;
            }
            Err(LoginRefused::TooMany) => return failed_closing(tag, out),
            Err(LoginRefused::TempFail) => {
                out.status(format!("{tag} NO {AUTH_TEMPFAIL}"));
                return Step::ReadLine;
            }
        };
        if let Some(step) = self.proxy_login(tag, &user, mechanism, out).await {
            return step;
        }
        let store = self.env.store.clone();
        let name = user.clone();
        let tree = match super::blocking(move || store.user(&name)).await {
            Ok(t) => t,
            Err(_) => {
                out.info(format!(
                    "authentication failed (temporary): user={shown} mechanism={mechanism}"
                ));
                out.status(format!("{tag} NO {AUTH_TEMPFAIL}"));
                return Step::ReadLine;
            }
        };
        out.info(format!(
            "authentication succeeded: user={user} mechanism={mechanism}"
        ));
        self.user = Some((user, tree));
        self.state = State::Authenticated;
        out.status(format!(
            "{tag} OK [CAPABILITY {}] Logged in",
            self.capabilities()
        ));
        Step::ReadLine
    }
}

impl ImapSession {
    /// The cluster's login proxy (README.md, "Cluster"): `None` to serve locally (no
    /// cluster, an internal listener, or this node comes first), else the step that relays
    /// to the owner or refuses for now.
    async fn proxy_login(&mut self, tag: &str, user: &str, mechanism: &str, out: &mut Output) -> Option<Step> {
        use crate::cluster::proxy::{route, Client, Route};
        let cluster = self.env.cluster.clone()?;
        if self.env.internal || cluster.owns(user) {
            return None;
        }
        let client = Client {
            service: IMAP,
            remote: self.env.remote,
            tls: self.tls || self.env.proxy_tls,
            session_id: self.env.session_id,
        };
        match route(&cluster, user, client).await {
            Route::Local => None,
            Route::Proxied(backend) => {
                out.info(format!(
                    "authentication succeeded: user={user} mechanism={mechanism}"
                ));
                let caps = backend.capability.clone();
                self.relay_user = Some(user.to_string());
                self.relay = Some(backend);
                out.status(match caps {
                    Some(c) => format!("{tag} OK [CAPABILITY {c}] Logged in"),
                    None => format!("{tag} OK Logged in"),
                });
                Some(Step::Relay)
            }
            Route::Unavailable => {
                out.info(format!(
                    "login not proxied: user={user}: no node of the cluster could be reached"
                ));
                out.status(format!(
                    "{tag} NO [UNAVAILABLE] The mailbox server is not reachable now, try again later."
                ));
                Some(Step::ReadLine)
            }
        }
    }
}

/// The session's last allowed failed login ([`crate::auth::MAX_AUTH_FAILURES`]): the tagged
/// `NO`, then `* BYE` and the connection closes.
fn failed_closing(tag: &str, out: &mut Output) -> Step {
    out.status(format!("{tag} NO {AUTH_FAILED}"));
    out.reply("* BYE Too many failed logins, closing the connection.");
    Step::Close
}
