//! The admin socket and the `doveadm`-style commands (ARCHITECTURE.md, "Admin socket";
//! README.md, "Command line"): `who`, `kick`, `mailbox status`, `mailbox list`,
//! `force-resync`, `quota get`.
//!
//! * [`proto`]: the wire format, one JSON object per line each way (sans-IO reader).
//! * [`socket`]: the daemon's Unix socket (mode 0600, peer credentials checked) and the
//!   CLI's client.
//! * Here: [`handle`], one function per request over the store API — the same calls IMAP
//!   STATUS, LIST and GETQUOTAROOT make, so the numbers are the same — run by the daemon
//!   for socket requests and by the CLI itself when no daemon answers (`who` and `kick`
//!   need the daemon; the mailbox commands read the tree under the store's usual locks).
//!   [`cli`] picks the way and renders the answer (text, or `--json`).
//!
//! Above the protocols and beside `server` (which starts the socket): it imports the store,
//! the users and the session table, never `server`.

pub mod proto;
pub mod socket;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::UNIX_EPOCH;

use serde_json::{json, Value};

use crate::auth::Users;
use crate::service::Service;
use crate::session::Authenticator;
use crate::sessions::Registry;
use crate::store::{ErrorKind, SpecialUse, Store};
pub use proto::{ErrorCode, Request, Response};

/// The quota root every user has (the IMAP QUOTA answer's `"User quota"`).
const QUOTA_ROOT: &str = "User quota";

/// What requests are answered from.
pub struct Context {
    pub store: Arc<dyn Store>,
    pub auth: Arc<dyn Authenticator>,
    /// The users file now in force (the daemon: of the live config).
    pub users_file: Box<dyn Fn() -> PathBuf + Send + Sync>,
    /// The daemon's session table; `None` in the CLI's own process.
    pub sessions: Option<Arc<Registry>>,
}

impl Context {
    /// The CLI's own context when no daemon answers: the daemon's store and users for
    /// `config` (the same quota limits: the users file's `quota_rule` over `[quota]`).
    pub fn local(config: &crate::config::Config) -> Context {
        let store = crate::store::maildir::MaildirStore::new(config.server.data_dir.join("mail"));
        let users = Arc::new(Users::new());
        let (file, quota) = (config.auth.users_file.clone(), config.quota);
        let f = file.clone();
        store.set_quota_limits(Arc::new(crate::auth::UserQuotas::new(
            users.clone(),
            Box::new(move || (f.clone(), quota.default, quota.grace)),
        )));
        Context {
            store: Arc::new(store),
            auth: users,
            users_file: Box::new(move || file.clone()),
            sessions: None,
        }
    }
}

/// The daemon's socket handler: [`handle`] over `ctx`.
pub fn handler(ctx: Context) -> socket::Handler {
    Arc::new(move |req| handle(&ctx, req))
}

/// Answers one request (blocking: store and users-file work; the daemon runs it on the
/// blocking pool).
pub fn handle(ctx: &Context, req: &Request) -> Response {
    match run(ctx, req) {
        Ok(v) => Response::ok(v),
        Err((code, why)) => Response::err(code, why),
    }
}

type Outcome = Result<Value, (ErrorCode, String)>;

fn failed(e: impl std::fmt::Display) -> (ErrorCode, String) {
    (ErrorCode::Failed, e.to_string())
}

fn run(ctx: &Context, req: &Request) -> Outcome {
    match req {
        Request::Who => {
            let reg = daemon_only(ctx)?;
            let rows: Vec<Value> = reg
                .list()
                .into_iter()
                .map(|s| {
                    let since = s
                        .since
                        .duration_since(UNIX_EPOCH)
                        .map(|d| d.as_secs())
                        .unwrap_or(0);
                    json!({
                        "id": crate::protolog::record::session_id_text(s.id),
                        "service": service_name(s.service),
                        "remote": s.remote.to_string(),
                        "since": since,
                        "user": s.user,
                        "state": s.state,
                    })
                })
                .collect();
            Ok(json!({ "sessions": rows }))
        }
        Request::Kick { user, session } => {
            let reg = daemon_only(ctx)?;
            let kicked = match (user, session) {
                (Some(u), None) => match reg.kick_user(u) {
                    // A user just removed from the users file can still be kicked.
                    0 => known_user(ctx, u).map(|()| 0)?,
                    n => n,
                },
                (None, Some(id)) => {
                    let id = u64::from_str_radix(id, 16)
                        .ok()
                        .filter(|_| id.len() == 16)
                        .ok_or((ErrorCode::Usage, format!("not a session id: {id:?}")))?;
                    reg.kick_session(id)
                }
                _ => {
                    return Err((ErrorCode::Usage, "kick needs a user or a session id".into()));
                }
            };
            Ok(json!({ "kicked": kicked }))
        }
        Request::MailboxStatus { user, folders } => {
            let us = user_store(ctx, user)?;
            let names = if folders.is_empty() {
                selectable(&*us)?
            } else {
                folders.clone()
            };
            let mut rows = Vec::new();
            for name in names {
                let st = us.status(&name).map_err(|e| failed(store_text(&name, &e)))?;
                rows.push(json!({
                    "name": name,
                    "messages": st.messages,
                    "unseen": st.unseen,
                    "recent": st.recent,
                    "size": st.size,
                    "uidvalidity": st.uid_validity,
                    "uidnext": st.uid_next,
                    // As IMAP STATUS: at least 1 (0 would mean NOMODSEQ, RFC 7162 §3.1.1).
                    "highestmodseq": st.highest_modseq.max(1),
                }));
            }
            Ok(json!({ "folders": rows }))
        }
        Request::MailboxList { user } => {
            let us = user_store(ctx, user)?;
            let rows: Vec<Value> = us
                .list()
                .map_err(failed)?
                .into_iter()
                .map(|b| {
                    json!({
                        "name": b.name,
                        "special_use": b.special_use.map(special_use_name),
                        "subscribed": b.subscribed,
                        "selectable": !b.no_select,
                    })
                })
                .collect();
            Ok(json!({ "folders": rows }))
        }
        Request::ForceResync { user, folder } => {
            let us = user_store(ctx, user)?;
            let names = match folder {
                Some(f) => vec![f.clone()],
                None => selectable(&*us)?,
            };
            for name in &names {
                us.force_resync(name)
                    .map_err(|e| failed(store_text(name, &e)))?;
            }
            Ok(json!({ "folders": names }))
        }
        Request::QuotaGet { user } => {
            let us = user_store(ctx, user)?;
            let Some((limits, usage)) = us.quota().map_err(failed)? else {
                return Ok(json!({ "root": null, "resources": [] }));
            };
            // GETQUOTA's resources: only those with a limit; STORAGE in KiB rounded up.
            let mut res = Vec::new();
            if limits.bytes != 0 {
                res.push(json!({
                    "name": "STORAGE",
                    "usage": usage.bytes.div_ceil(1024),
                    "limit": limits.bytes.div_ceil(1024),
                    "usage_bytes": usage.bytes,
                    "limit_bytes": limits.bytes,
                }));
            }
            if limits.messages != 0 {
                res.push(json!({
                    "name": "MESSAGE",
                    "usage": usage.messages,
                    "limit": limits.messages,
                }));
            }
            Ok(json!({ "root": QUOTA_ROOT, "resources": res }))
        }
    }
}

fn daemon_only(ctx: &Context) -> Result<&Registry, (ErrorCode, String)> {
    ctx.sessions
        .as_deref()
        .ok_or((ErrorCode::Failed, "the daemon is not running".into()))
}

/// The user's tree, after checking the users file has the user (the store would create a
/// tree for any name).
fn user_store(
    ctx: &Context,
    user: &str,
) -> Result<Arc<dyn crate::store::UserStore>, (ErrorCode, String)> {
    known_user(ctx, user)?;
    ctx.store.user(user).map_err(failed)
}

/// `UnknownUser` unless the users file has `user`.
fn known_user(ctx: &Context, user: &str) -> Result<(), (ErrorCode, String)> {
    let file = (ctx.users_file)();
    match ctx.auth.user_exists(&file, user) {
        Ok(true) => Ok(()),
        Ok(false) => Err((ErrorCode::UnknownUser, format!("unknown user {user:?}"))),
        Err(e) => Err(failed(format!("cannot read {}: {e}", file.display()))),
    }
}

fn selectable(us: &dyn crate::store::UserStore) -> Result<Vec<String>, (ErrorCode, String)> {
    Ok(us
        .list()
        .map_err(failed)?
        .into_iter()
        .filter(|b| !b.no_select)
        .map(|b| b.name)
        .collect())
}

fn store_text(name: &str, e: &crate::store::Error) -> String {
    match e.kind {
        ErrorKind::NotFound => format!("{name}: no such folder"),
        _ => format!("{name}: {e}"),
    }
}

fn service_name(s: Service) -> &'static str {
    match s {
        Service::Imap4 => "imap",
        Service::Pop3 => "pop3",
        Service::Lmtp => "lmtp",
    }
}

fn special_use_name(s: SpecialUse) -> &'static str {
    match s {
        SpecialUse::Drafts => "\\Drafts",
        SpecialUse::Sent => "\\Sent",
        SpecialUse::Trash => "\\Trash",
        SpecialUse::Junk => "\\Junk",
        SpecialUse::Archive => "\\Archive",
    }
}

/// Exit codes (sysexits, as `doveadm`): ok, usage, unknown user, daemon not running.
pub const EX_OK: u8 = 0;
pub const EX_USAGE: u8 = 64;
pub const EX_NOUSER: u8 = 67;
pub const EX_UNAVAILABLE: u8 = 69;
/// Anything else (no such folder, an unreadable tree, a refused connection).
pub const EX_FAILED: u8 = 1;

/// `mailserver who|kick|mailbox|force-resync|quota`: asks the daemon at the config's admin
/// socket; when none answers, `who` and `kick` fail with 69 and the others are answered
/// here from the tree. Prints the answer (text or `--json`); returns the exit code.
pub fn cli(config_path: &Path, req: Request, json: bool) -> u8 {
    let config = match crate::config::load(config_path) {
        Ok(c) => c,
        Err(e) => {
            for line in e.0.lines() {
                eprintln!("error: {line}");
            }
            return EX_FAILED;
        }
    };
    let resp = match socket::request(&config.admin_socket, &req) {
        Ok(r) => r,
        Err(socket::ClientError::NotRunning(why)) => {
            if matches!(req, Request::Who | Request::Kick { .. }) {
                eprintln!(
                    "error: the daemon is not running (admin socket {}: {why})",
                    config.admin_socket.display()
                );
                return EX_UNAVAILABLE;
            }
            handle(&Context::local(&config), &req)
        }
        Err(socket::ClientError::Other(why)) => {
            eprintln!("error: admin socket {}: {why}", config.admin_socket.display());
            return EX_FAILED;
        }
    };
    if !resp.ok {
        let why = resp.error.as_deref().unwrap_or("failed");
        eprintln!("error: {}", crate::config::escape_controls(why));
        return match resp.code {
            Some(ErrorCode::Usage) => EX_USAGE,
            Some(ErrorCode::UnknownUser) => EX_NOUSER,
            _ => EX_FAILED,
        };
    }
    let result = resp.result.unwrap_or(Value::Null);
    if json {
        println!("{result}");
    } else {
        print!("{}", crate::config::escape_controls(&render(&req, &result)));
    }
    EX_OK
}

/// The text form of an answer: one line per row, tab-free columns as `doveadm` prints.
fn render(req: &Request, v: &Value) -> String {
    let s = |v: &Value| match v {
        Value::String(s) => s.clone(),
        Value::Null => "-".into(),
        other => other.to_string(),
    };
    let mut out = String::new();
    let rows = |key: &str| v[key].as_array().cloned().unwrap_or_default();
    match req {
        Request::Who => {
            out.push_str("username service remote since state session\n");
            for r in rows("sessions") {
                let since = r["since"].as_i64().unwrap_or(0);
                let since = chrono::DateTime::from_timestamp(since, 0)
                    .map(|t| t.format("%Y-%m-%dT%H:%M:%SZ").to_string())
                    .unwrap_or_default();
                out.push_str(&format!(
                    "{} {} {} {} {:?} {}\n",
                    s(&r["user"]),
                    s(&r["service"]),
                    s(&r["remote"]),
                    since,
                    s(&r["state"]),
                    s(&r["id"]),
                ));
            }
        }
        Request::Kick { .. } => out.push_str(&format!("kicked {}\n", s(&v["kicked"]))),
        Request::MailboxStatus { .. } => {
            for r in rows("folders") {
                out.push_str(&format!(
                    "{} messages={} unseen={} recent={} size={} uidvalidity={} uidnext={} \
                     highestmodseq={}\n",
                    s(&r["name"]),
                    s(&r["messages"]),
                    s(&r["unseen"]),
                    s(&r["recent"]),
                    s(&r["size"]),
                    s(&r["uidvalidity"]),
                    s(&r["uidnext"]),
                    s(&r["highestmodseq"]),
                ));
            }
        }
        Request::MailboxList { .. } => {
            for r in rows("folders") {
                out.push_str(&s(&r["name"]));
                out.push('\n');
            }
        }
        Request::ForceResync { .. } => {
            for r in rows("folders") {
                out.push_str(&format!("{}: resynced\n", s(&r)));
            }
        }
        Request::QuotaGet { .. } => {
            out.push_str("quota_root resource usage limit\n");
            for r in rows("resources") {
                out.push_str(&format!(
                    "{} {} {} {}\n",
                    s(&v["root"]),
                    s(&r["name"]),
                    s(&r["usage"]),
                    s(&r["limit"])
                ));
            }
        }
    }
    out
}
