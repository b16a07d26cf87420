//! Delivery into a user's Maildir, shared by the LMTP session and `mailserver deliver` (the
//! LDA): which user and folder an address means (sub-addressing), the trace headers each
//! copy gets, and one copy saved a piece at a time through the store's streaming save
//! (`Mailbox::save_begin` / `save_finish`: `tmp/` → fsync → rename, as APPEND), so a message
//! is never held whole in memory and a copy dropped before [`Copy::finish`] leaves nothing.
//!
//! **Addresses** (README.md, "LMTP"): `local[+detail][@domain]`. The users file decides the
//! domain rule, as Dovecot's `auth_username_format`: the full address `local@domain` is
//! looked up first (a users file of full addresses), then the bare `local` (a users file of
//! bare names: the domain is stripped, Dovecot's `%n`); each exactly, then in lower case
//! (`%Ln`). With a non-empty `recipient_delimiter`, the local part is cut at the first
//! delimiter and the rest is the detail: a folder of that name gets the copy when it
//! exists (Dovecot's `lmtp_save_to_detail_mailbox = yes`), else INBOX.

use std::sync::Arc;

use crate::store::{self, ErrorKind, Mailbox, NewMessage, Store};

/// A recipient the users file knows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recipient {
    /// The user name as the users file has it (the Maildir is `mail/<user>/`).
    pub user: String,
    /// The folder the address asks for (the detail), if any.
    pub detail: Option<String>,
}

/// Maps an address (without brackets) to a user of the users file, asking `exists` about
/// candidate names in the order the module doc gives; `Ok(None)` when no candidate exists.
/// `exists` errors (the users file cannot be read) are passed on.
pub fn resolve<E>(
    address: &str,
    delimiter: &str,
    mut exists: impl FnMut(&str) -> Result<bool, E>,
) -> Result<Option<Recipient>, E> {
    let (local, domain) = match address.rsplit_once('@') {
        Some((l, d)) => (l, Some(d)),
        None => (address, None),
    };
    let local = unquote(local);
    let (base, detail) = match (delimiter.is_empty(), local.split_once(delimiter)) {
        (false, Some((b, d))) if !b.is_empty() => (b.to_string(), Some(d.to_string())),
        _ => (local.clone(), None),
    };
    let mut candidates = Vec::new();
    if let Some(d) = domain {
        candidates.push(format!("{base}@{d}"));
    }
    candidates.push(base);
    for c in candidates {
        for name in [c.clone(), c.to_lowercase()] {
            if !name.is_empty() && exists(&name)? {
                let detail = detail.filter(|d| !d.is_empty());
                return Ok(Some(Recipient { user: name, detail }));
            }
        }
    }
    Ok(None)
}

/// A quoted local part (`"a b"`) without its quotes and backslash escapes.
fn unquote(local: &str) -> String {
    let Some(inner) = local.strip_prefix('"').and_then(|l| l.strip_suffix('"')) else {
        return local.to_string();
    };
    let mut out = String::with_capacity(inner.len());
    let mut escaped = false;
    for c in inner.chars() {
        if escaped || c != '\\' {
            out.push(c);
            escaped = false;
        } else {
            escaped = true;
        }
    }
    out
}

/// The trace header block of one copy (RFC 5321 §4.4, RFC 2033 §4.2; the order Dovecot's
/// `lmtp` writes): `Return-Path` (when the sender is known), `Delivered-To`, `Received`.
pub fn trace_headers(return_path: Option<&str>, delivered_to: &str, received: &str) -> Vec<u8> {
    let mut h = String::new();
    if let Some(rp) = return_path {
        h.push_str(&format!("Return-Path: <{}>\r\n", clean(rp)));
    }
    h.push_str(&format!("Delivered-To: {}\r\n", clean(delivered_to)));
    h.push_str("Received: ");
    h.push_str(received);
    h.push_str("\r\n");
    h.into_bytes()
}

/// `s` without CR, LF and other controls (no header injection through an address).
fn clean(s: &str) -> String {
    s.chars().filter(|c| !c.is_control()).collect()
}

/// The `Received` field value (folded), e.g. `from mx ([127.0.0.1])\r\n\tby host with LMTP
/// id X\r\n\tfor <u@x>; <date>`. `from` is `None` for the LDA.
pub fn received(from: Option<(&str, &str)>, by: &str, with: &str, id: &str, rcpt: &str) -> String {
    let date = chrono::Local::now().to_rfc2822();
    let by = format!("by {} with {with} id {id}", clean(by));
    let head = match from {
        Some((helo, ip)) => format!("from {} ({})\r\n\t{by}", clean(helo), clean(ip)),
        None => by,
    };
    format!("{head}\r\n\tfor <{}>; {date}", clean(rcpt))
}

/// One recipient's copy being saved.
pub struct Copy {
    /// The folder it goes to (the detail's, or INBOX).
    pub folder: String,
    mailbox: Arc<dyn Mailbox>,
    msg: Box<dyn NewMessage>,
}

impl Copy {
    /// Opens `user`'s `folder` (INBOX when it is `None` or does not exist), begins the save
    /// in its `tmp/`, and writes `headers`. Blocking: call it off the async runtime.
    pub fn begin(
        store: &dyn Store,
        user: &str,
        folder: Option<&str>,
        headers: &[u8],
    ) -> store::Result<Copy> {
        let us = store.user(user)?;
        let mut opened = None;
        if let Some(f) = folder.filter(|f| !f.is_empty()) {
            match us.open(f) {
                Ok(m) => opened = Some((f.to_string(), m)),
                Err(e) if matches!(e.kind, ErrorKind::NotFound | ErrorKind::NoPermission) => {}
                Err(e) => return Err(e),
            }
        }
        let (folder, mailbox) = match opened {
            Some(o) => o,
            None => ("INBOX".to_string(), us.open("INBOX")?),
        };
        let mut msg = mailbox.save_begin()?;
        msg.write(headers)?;
        Ok(Copy {
            folder,
            mailbox,
            msg,
        })
    }

    /// Appends message data (CRLF or LF lines; stored as the store stores them). Blocking.
    pub fn write(&mut self, data: &[u8]) -> store::Result<()> {
        self.msg.write(data)
    }

    /// Saves the copy: fsynced and renamed into the folder's `new/` (its name fsynced too)
    /// before this returns ([`Mailbox::deliver_finish`]); its UID when the store gave one
    /// already (Maildir numbers it at the next sync). Blocking.
    pub fn finish(self) -> store::Result<Option<u32>> {
        self.mailbox.deliver_finish(self.msg)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lookup(names: &[&str], addr: &str) -> Option<Recipient> {
        resolve(addr, "+", |n| Ok::<_, ()>(names.contains(&n))).unwrap()
    }

    #[test]
    fn bare_names_strip_the_domain_and_full_addresses_match_whole() {
        let bare = ["alice", "bob"];
        let r = |u: &str, d: Option<&str>| Some(Recipient { user: u.into(), detail: d.map(Into::into) });
        assert_eq!(lookup(&bare, "alice@example.org"), r("alice", None));
        assert_eq!(lookup(&bare, "Alice@Example.org"), r("alice", None));
        assert_eq!(lookup(&bare, "bob+Lists@x"), r("bob", Some("Lists")));
        assert_eq!(lookup(&bare, "bob+@x"), r("bob", None));
        assert_eq!(lookup(&bare, "bob"), r("bob", None));
        assert_eq!(lookup(&bare, "carol@x"), None);
        assert_eq!(lookup(&bare, "+bob@x"), None);
        let full = ["alice@a.example", "bob@b.example"];
        assert_eq!(lookup(&full, "alice@a.example"), r("alice@a.example", None));
        assert_eq!(lookup(&full, "alice+x@a.example"), r("alice@a.example", Some("x")));
        assert_eq!(lookup(&full, "alice@b.example"), None);
        assert_eq!(lookup(&["a b"], "\"a b\"@x"), r("a b", None));
    }

    #[test]
    fn an_empty_delimiter_turns_sub_addressing_off() {
        let got = resolve("bob+x@y", "", |n| Ok::<_, ()>(n == "bob+x")).unwrap();
        assert_eq!(got, Some(Recipient { user: "bob+x".into(), detail: None }));
    }

    #[test]
    fn lookup_errors_are_passed_on() {
        assert_eq!(resolve("a@b", "+", |_| Err("unreadable")), Err("unreadable"));
    }

    #[test]
    fn trace_headers_cannot_be_injected() {
        let h = trace_headers(Some("s@x\r\nBcc: y"), "<u@x>", "by h with LMTP id 1");
        let text = String::from_utf8(h).unwrap();
        assert_eq!(text.matches("\r\n").count(), 3, "{text}");
        assert!(text.starts_with("Return-Path: <s@xBcc: y>\r\nDelivered-To: <u@x>\r\n"));
    }
}
