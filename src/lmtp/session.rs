//! The LMTP session (RFC 2033): a sans-IO state machine behind the shared connection driver
//! (ARCHITECTURE.md, "LMTP").
//!
//! LHLO opens the session; a transaction is MAIL, one or more RCPT (each checked against the
//! users file at once: `550 5.1.1` for an unknown user), then DATA (dot-stuffed lines until
//! `.`) or BDAT chunks (RFC 3030). The message goes straight to each recipient's `tmp/` a
//! piece at a time ([`deliver::Copy`]), with that recipient's trace headers; at the end each
//! copy is fsynced and renamed into its folder and only then gets its `250` — one reply per
//! accepted recipient, in RCPT order (RFC 2033 §4.2); a copy that fails gets `451 4.3.0`.
//! A session that ends before the end of the data (the client vanished, a timeout,
//! shutdown) drops its copies, which removes their files: nothing is half delivered.
//!
//! Store and users-file calls run on the blocking pool; store errors go to the daemon log,
//! the client gets a fixed reply.

use std::sync::Arc;

use crate::session::{LiteralPiece, Output, Session, SessionEnv, Step};
use crate::store::Store;

use super::command::{self, Command, ParseError};
use super::deliver::{self, Copy, Recipient};

/// Longest command line, CRLF included (RFC 5321 §4.5.3.1.4 says 512; parameters make some
/// clients' lines longer, and Dovecot allows more).
const COMMAND_LINE_LIMIT: usize = 4096;
/// Longest line of DATA content (RFC 5321 §4.5.3.1.6 says 1000; real mail has longer ones).
/// A longer line fails the transaction (`552 5.3.4`) instead of being cut.
const DATA_LINE_LIMIT: usize = 1024 * 1024;
/// Message data is written to the copies once this much is buffered, and BDAT chunks are
/// read in pieces of at most this size.
const PIECE: usize = 64 * 1024;
/// RFC 5321 §4.5.3.1.8: at least 100 recipients must be accepted.
const MAX_RECIPIENTS: usize = 1000;
/// Errors in a row that end the session (as the POP3/IMAP sessions' `BAD` count).
const MAX_ERRORS: u32 = 10;

/// One LMTP connection.
pub struct LmtpSession {
    env: SessionEnv,
    /// Our name: the greeting, LHLO reply and `Received ... by`.
    hostname: String,
    /// This session's id in `Received ... id` and the replies (as Dovecot's session id).
    id: String,
    /// The client's LHLO name, once it said LHLO.
    lhlo: Option<String>,
    /// The transaction MAIL opened, until the end of its data or RSET.
    tx: Option<Transaction>,
    input: Input,
    /// Error replies in a row.
    errors: u32,
    /// Deliveries so far (part of each copy's id).
    delivered: u64,
}

/// An open mail transaction.
struct Transaction {
    /// The reverse path (empty for `<>`).
    from: String,
    /// The accepted recipients, in RCPT order.
    rcpts: Vec<(String, Recipient)>,
    /// BDAT chunks have begun: DATA is refused until the transaction ends (RFC 3030 §2).
    bdat: bool,
    /// The data being received (DATA or the BDAT chunks so far).
    body: Option<Body>,
}

/// What the next input is.
enum Input {
    Commands,
    /// DATA lines until the `.` line.
    Data,
    /// The rest of a BDAT chunk: `left` octets, then the chunk reply (or, `last`, the
    /// per-recipient replies).
    Bdat { left: u64, total: u64, first: bool, last: bool },
}

/// The message being received and its copies.
struct Body {
    /// One per accepted recipient, in RCPT order: the copy, or the reply it will get.
    copies: Vec<Result<Copy, &'static str>>,
    /// Data not yet written to the copies.
    pending: Vec<u8>,
    /// Octets received so far (after unstuffing).
    size: u64,
    /// Why the transaction fails for every recipient (over the size limit, a line too
    /// long), once known: the data is still read to its end, then this is every reply.
    failed: Option<&'static str>,
    /// Discard the data (no transaction or no recipient): the end gets one `503`.
    discard: bool,
}

const TOO_BIG: &str = "552 5.3.4 Message too big for system";
const LINE_TOO_LONG: &str = "552 5.3.4 Message line too long";
const TEMPFAIL: &str = "451 4.3.0 Temporary internal failure";
/// Over the user's quota (RFC 3463 X.2.2, Dovecot's wording); `452 4.2.2` with
/// `quota.full_tempfail`.
const OVER_QUOTA: &str = "552 5.2.2 Quota exceeded (mailbox for user is full)";
const OVER_QUOTA_TEMP: &str = "452 4.2.2 Quota exceeded (mailbox for user is full)";

impl LmtpSession {
    pub fn new(env: SessionEnv) -> LmtpSession {
        let hostname = env.snapshot.config.server.hostname.clone();
        LmtpSession {
            env,
            hostname,
            id: format!("{:016x}", rand::random::<u64>()),
            lhlo: None,
            tx: None,
            input: Input::Commands,
            errors: 0,
            delivered: 0,
        }
    }

    fn max_size(&self) -> u64 {
        self.env.snapshot.config.limits.max_message_bytes
    }

    /// An error reply; the [`MAX_ERRORS`]-th in a row closes the session.
    fn error(&mut self, out: &mut Output, line: &str) -> Step {
        out.status(line);
        self.errors += 1;
        if self.errors >= MAX_ERRORS {
            out.status("421 4.7.0 Too many errors, closing connection");
            return Step::Close;
        }
        Step::ReadLine
    }

    fn ok(&mut self, out: &mut Output, line: &str) -> Step {
        self.errors = 0;
        out.status(line);
        Step::ReadLine
    }

    async fn command(&mut self, line: &[u8], out: &mut Output) -> Step {
        let cmd = match command::parse(line) {
            Ok(c) => c,
            Err(ParseError::Unknown) => return self.error(out, "500 5.5.1 Unknown command"),
            Err(ParseError::Syntax) => return self.error(out, "501 5.5.4 Invalid arguments"),
            Err(ParseError::Param) => {
                return self.error(out, "555 5.5.4 Unsupported parameter")
            }
        };
        match cmd {
            Command::Lhlo(name) => {
                self.tx = None;
                self.lhlo = Some(name);
                out.reply(format!("250-{}", self.hostname));
                for ext in ["8BITMIME", "ENHANCEDSTATUSCODES", "PIPELINING", "CHUNKING"] {
                    out.reply(format!("250-{ext}"));
                }
                let size = format!("250 SIZE {}", self.max_size());
                self.ok(out, &size)
            }
            Command::HeloEhlo => self.error(out, "500 5.5.1 This is LMTP: use LHLO"),
            Command::NotImplemented(_) => self.error(out, "502 5.5.1 Not implemented"),
            Command::Noop => self.ok(out, "250 2.0.0 OK"),
            Command::Rset => {
                self.tx = None;
                self.ok(out, "250 2.0.0 OK")
            }
            Command::Quit => {
                out.status("221 2.0.0 Bye");
                Step::Close
            }
            _ if self.lhlo.is_none() => self.error(out, "503 5.5.1 LHLO needed first"),
            Command::Mail { from, size } => {
                if self.tx.is_some() {
                    return self.error(out, "503 5.5.1 Nested MAIL command");
                }
                if size.is_some_and(|s| s > self.max_size()) {
                    return self.error(out, TOO_BIG);
                }
                self.tx = Some(Transaction {
                    from,
                    rcpts: Vec::new(),
                    bdat: false,
                    body: None,
                });
                self.ok(out, "250 2.1.0 OK")
            }
            Command::Rcpt(to) => self.rcpt(to, out).await,
            Command::Data => {
                match &self.tx {
                    None => return self.error(out, "503 5.5.1 MAIL needed first"),
                    Some(t) if t.bdat => {
                        return self.error(out, "503 5.5.1 DATA after BDAT is not allowed")
                    }
                    Some(t) if t.rcpts.is_empty() => {
                        return self.error(out, "503 5.5.1 No valid recipients")
                    }
                    Some(_) => {}
                }
                let body = self.begin_body().await;
                if let Some(tx) = self.tx.as_mut() {
                    tx.body = Some(body);
                }
                self.input = Input::Data;
                self.ok(out, "354 OK")
            }
            Command::Bdat { size, last } => {
                let usable = self.tx.as_ref().is_some_and(|t| !t.rcpts.is_empty());
                if usable && self.tx.as_ref().is_some_and(|t| t.body.is_none()) {
                    let body = self.begin_body().await;
                    if let Some(tx) = self.tx.as_mut() {
                        tx.bdat = true;
                        tx.body = Some(body);
                    }
                } else if !usable {
                    // RFC 3030 §3: the chunk is read (and dropped) before the 503.
                    self.tx = Some(Transaction {
                        from: String::new(),
                        rcpts: Vec::new(),
                        bdat: true,
                        body: Some(Body::discarding()),
                    });
                }
                self.input = Input::Bdat {
                    left: size,
                    total: size,
                    first: true,
                    last,
                };
                self.next_bdat_step(out).await
            }
        }
    }

    async fn rcpt(&mut self, to: String, out: &mut Output) -> Step {
        let Some(tx) = &self.tx else {
            return self.error(out, "503 5.5.1 MAIL needed first");
        };
        if tx.bdat {
            return self.error(out, "503 5.5.1 RCPT after BDAT is not allowed");
        }
        if tx.rcpts.len() >= MAX_RECIPIENTS {
            return self.error(out, "452 4.5.3 Too many recipients");
        }
        let auth = self.env.auth.clone();
        let file = self.env.snapshot.config.auth.users_file.clone();
        let delimiter = self.env.snapshot.config.lmtp.recipient_delimiter.clone();
        let address = to.clone();
        let found = tokio::task::spawn_blocking(move || {
            deliver::resolve(&address, &delimiter, |name| auth.user_exists(&file, name))
        })
        .await
        .unwrap_or_else(|e| Err(format!("users lookup task failed: {e}")));
        match found {
            Ok(Some(r)) => {
                if let Some(tx) = self.tx.as_mut() {
                    tx.rcpts.push((to, r));
                }
                self.ok(out, "250 2.1.5 OK")
            }
            Ok(None) => {
                out.info(format!("unknown recipient <{to}>"));
                let line = format!("550 5.1.1 <{to}> User doesn't exist");
                self.error(out, &line)
            }
            Err(e) => {
                tracing::error!("lmtp: RCPT TO:<{to}>: {e}");
                self.error(out, TEMPFAIL)
            }
        }
    }

    /// Begins one copy per accepted recipient (on the blocking pool).
    async fn begin_body(&mut self) -> Body {
        let Some(tx) = &self.tx else {
            return Body::discarding();
        };
        let store: Arc<dyn Store> = self.env.store.clone();
        let remote = self.env.remote.ip().to_canonical();
        let from_ip = received_ip(remote);
        let helo = self.lhlo.clone().unwrap_or_default();
        let mut plans = Vec::new();
        for (i, (addr, r)) in tx.rcpts.iter().enumerate() {
            let id = format!("{}-{}-{i}", self.id, self.delivered);
            let received = deliver::received(
                Some((&helo, &from_ip)),
                &self.hostname,
                "LMTP",
                &id,
                addr,
            );
            let headers = deliver::trace_headers(Some(&tx.from), &format!("<{addr}>"), &received);
            plans.push((r.clone(), headers));
        }
        let copies = tokio::task::spawn_blocking(move || {
            plans
                .into_iter()
                .map(|(r, headers)| {
                    Copy::begin(&*store, &r.user, r.detail.as_deref(), &headers).map_err(|e| {
                        tracing::error!("lmtp({}): cannot begin the save: {e}", r.user);
                        TEMPFAIL
                    })
                })
                .collect()
        })
        .await
        .unwrap_or_default();
        Body {
            copies,
            pending: Vec::with_capacity(PIECE),
            size: 0,
            failed: None,
            discard: false,
        }
    }

    /// One DATA line (dot-stuffed, RFC 5321 §4.5.2), or the `.` that ends the data.
    async fn data_line(&mut self, line: &[u8], out: &mut Output) -> Step {
        let Some(line) = command::data_line(line) else {
            self.input = Input::Commands;
            return self.end_of_data(out).await;
        };
        let max = self.max_size();
        let Some(body) = self.tx.as_mut().and_then(|t| t.body.as_mut()) else {
            return Step::ReadLine;
        };
        body.push(&[line, b"\r\n"], max);
        if body.pending.len() >= PIECE {
            self.flush().await;
        }
        Step::ReadLine
    }

    /// Writes the buffered data to every copy (on the blocking pool).
    async fn flush(&mut self) {
        let Some(tx) = self.tx.as_mut() else { return };
        let Some(mut body) = tx.body.take() else { return };
        let body = tokio::task::spawn_blocking(move || {
            body.write_pending();
            body
        })
        .await;
        if let (Ok(body), Some(tx)) = (body, self.tx.as_mut()) {
            tx.body = Some(body);
        }
    }

    /// The end of the data: each copy saved, one reply per recipient.
    async fn end_of_data(&mut self, out: &mut Output) -> Step {
        let Some(mut tx) = self.tx.take() else {
            return self.error(out, "503 5.5.1 No transaction");
        };
        let Some(body) = tx.body.take() else {
            return self.error(out, "503 5.5.1 No transaction");
        };
        if body.discard {
            return self.error(out, "503 5.5.1 No valid recipients");
        }
        let n = tx.rcpts.len();
        let tempfail = self.env.snapshot.config.quota.full_tempfail;
        let results = tokio::task::spawn_blocking(move || body.finish(n, tempfail))
            .await
            .unwrap_or_else(|_| vec![Err(TEMPFAIL); tx.rcpts.len()]);
        self.errors = 0;
        for ((addr, r), result) in tx.rcpts.iter().zip(results) {
            match result {
                Ok((folder, uid)) => {
                    self.delivered += 1;
                    let uid = uid.map(|u| format!(" (uid {u})")).unwrap_or_default();
                    tracing::info!(
                        "lmtp({}): saved mail to {folder}{uid}: from=<{}> rcpt=<{addr}>",
                        r.user,
                        tx.from
                    );
                    out.info(format!("delivered <{addr}> to {} {folder}", r.user));
                    out.status(format!("250 2.0.0 <{addr}> {} Saved", self.id));
                }
                Err(reply) => {
                    out.info(format!("not delivered <{addr}>: {reply}"));
                    let (code, text) = reply.split_at(9);
                    out.status(format!("{code} <{addr}>{text}"));
                }
            }
        }
        Step::ReadLine
    }

    /// Asks for the next piece of the current BDAT chunk, or ends it.
    async fn next_bdat_step(&mut self, out: &mut Output) -> Step {
        let Input::Bdat { left, total, last, .. } = self.input else {
            return Step::ReadLine;
        };
        if left > 0 {
            return Step::ReadLiteral(left.min(PIECE as u64) as usize);
        }
        self.input = Input::Commands;
        if self.tx.as_ref().and_then(|t| t.body.as_ref()).is_some_and(|b| b.discard) {
            self.tx = None;
            return self.error(out, "503 5.5.1 No valid recipients");
        }
        if last {
            return self.end_of_data(out).await;
        }
        if self.tx.as_ref().and_then(|t| t.body.as_ref()).is_some_and(|b| b.failed.is_some()) {
            // Over the limit already: say so now (RFC 3030 §4.2) and end the transaction.
            let failed = self.tx.take().and_then(|t| t.body).and_then(|b| b.failed);
            return self.error(out, failed.unwrap_or(TOO_BIG));
        }
        self.flush().await;
        self.ok(out, &format!("250 2.0.0 {total} octets received"))
    }
}

impl Body {
    fn discarding() -> Body {
        Body {
            copies: Vec::new(),
            pending: Vec::new(),
            size: 0,
            failed: None,
            discard: true,
        }
    }

    /// Adds data, unless the transaction has failed; over `max` octets it fails (the copies
    /// are dropped, which removes their files).
    fn push(&mut self, parts: &[&[u8]], max: u64) {
        self.size += parts.iter().map(|p| p.len() as u64).sum::<u64>();
        if self.discard || self.failed.is_some() {
            return;
        }
        if self.size > max {
            self.fail(TOO_BIG);
            return;
        }
        for p in parts {
            self.pending.extend_from_slice(p);
        }
    }

    fn fail(&mut self, why: &'static str) {
        self.failed = Some(why);
        self.copies.clear();
        self.pending = Vec::new();
    }

    /// Writes `pending` to every copy still good. Blocking.
    fn write_pending(&mut self) {
        for c in &mut self.copies {
            if let Ok(copy) = c {
                if let Err(e) = copy.write(&self.pending) {
                    tracing::error!("lmtp: writing a copy to {} failed: {e}", copy.folder);
                    *c = Err(TEMPFAIL);
                }
            }
        }
        self.pending.clear();
    }

    /// Writes the rest and saves every copy: its folder and UID, or its reply. Blocking.
    /// `tempfail`: over quota is `452 4.2.2`, else `552 5.2.2`.
    fn finish(
        mut self,
        recipients: usize,
        tempfail: bool,
    ) -> Vec<Result<(String, Option<u32>), &'static str>> {
        if let Some(why) = self.failed {
            return vec![Err(why); recipients];
        }
        self.write_pending();
        self.copies
            .into_iter()
            .map(|c| {
                let copy = c?;
                let folder = copy.folder.clone();
                match copy.finish() {
                    Ok(uid) => Ok((folder, uid)),
                    Err(e) if e.kind == crate::store::ErrorKind::OverQuota => {
                        tracing::info!("lmtp: {e}");
                        Err(if tempfail { OVER_QUOTA_TEMP } else { OVER_QUOTA })
                    }
                    Err(e) => {
                        tracing::error!("lmtp: saving a copy to {folder} failed: {e}");
                        Err(TEMPFAIL)
                    }
                }
            })
            .collect()
    }
}

impl Session for LmtpSession {
    fn line_limit(&self) -> usize {
        match self.input {
            Input::Data => DATA_LINE_LIMIT,
            _ => COMMAND_LINE_LIMIT,
        }
    }

    /// LMTP has no login: the trusted MTA is timed by `lmtp_idle_timeout_secs` from the
    /// start.
    fn logged_in(&self) -> bool {
        true
    }

    fn state_name(&self) -> &'static str {
        "active"
    }

    fn greeting(&mut self, out: &mut Output) {
        out.status(format!("220 {} LMTP ready", self.hostname));
    }

    fn redact(&self, _line: &[u8]) -> Option<Vec<u8>> {
        None
    }

    fn line_is_content(&self) -> bool {
        matches!(self.input, Input::Data)
    }

    fn literal_piece(&self) -> LiteralPiece {
        match self.input {
            Input::Bdat { total, first: true, .. } => LiteralPiece::First { total },
            _ => LiteralPiece::Rest,
        }
    }

    async fn on_line(&mut self, line: &[u8], out: &mut Output) -> Step {
        match self.input {
            Input::Data => self.data_line(line, out).await,
            _ => self.command(line, out).await,
        }
    }

    async fn on_literal(&mut self, data: Vec<u8>, out: &mut Output) -> Step {
        if let Input::Bdat { left, first, .. } = &mut self.input {
            *left -= data.len() as u64;
            *first = false;
        }
        let max = self.max_size();
        if let Some(body) = self.tx.as_mut().and_then(|t| t.body.as_mut()) {
            body.push(&[&data], max);
            if body.pending.len() >= PIECE {
                self.flush().await;
            }
        }
        self.next_bdat_step(out).await
    }

    fn on_too_long(&mut self, out: &mut Output) -> Step {
        if let Input::Data = self.input {
            // The line is dropped: the message would be damaged, so none is delivered.
            if let Some(body) = self.tx.as_mut().and_then(|t| t.body.as_mut()) {
                if !body.discard && body.failed.is_none() {
                    body.fail(LINE_TOO_LONG);
                }
            }
            return Step::ReadLine;
        }
        self.error(out, "500 5.5.2 Line too long")
    }

    fn on_tls(&mut self) {}

    fn on_timeout(&mut self, out: &mut Output) {
        out.status(format!("421 4.4.2 {} Timeout, closing connection", self.hostname));
    }

    fn on_shutdown(&mut self, out: &mut Output) {
        out.status(format!("421 4.3.2 {} Shutting down", self.hostname));
    }

    fn who(&self) -> (Option<&str>, &str) {
        (None, "transaction")
    }
}

/// The client's address as `Received` writes it: an RFC 5321 address literal (`[192.0.2.1]`,
/// `[IPv6:2001:db8::1]`), or `local` for a Unix-socket client.
fn received_ip(ip: std::net::IpAddr) -> String {
    match ip {
        ip if ip.is_unspecified() => "local".to_string(),
        std::net::IpAddr::V4(v4) => format!("[{v4}]"),
        std::net::IpAddr::V6(v6) => format!("[IPv6:{v6}]"),
    }
}

#[cfg(test)]
mod received_tests {
    #[test]
    fn address_literals_follow_rfc_5321() {
        let f = |s: &str| super::received_ip(s.parse::<std::net::IpAddr>().unwrap().to_canonical());
        assert_eq!(f("127.0.0.1"), "[127.0.0.1]");
        assert_eq!(f("::1"), "[IPv6:::1]");
        assert_eq!(f("2001:db8::7"), "[IPv6:2001:db8::7]");
        assert_eq!(f("::ffff:192.0.2.1"), "[192.0.2.1]");
        assert_eq!(f("0.0.0.0"), "local");
    }
}
