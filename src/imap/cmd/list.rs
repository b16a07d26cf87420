//! LIST (RFC 3501 §6.3.8) and LSUB (§6.3.9) with CHILDREN (RFC 3348) and SPECIAL-USE
//! (RFC 6154) attributes. Hierarchy delimiter `/`; `*` matches anything, `%` anything but the
//! delimiter; `INBOX` matches case-insensitively.
//!
//! The extended LIST (RFC 5258; decoded by [`crate::imap::decode::ext`]) takes several
//! patterns, selection options (SUBSCRIBED, REMOTE — there are no remote mailboxes —,
//! RECURSIVEMATCH, RFC 6154 SPECIAL-USE) and return options (SUBSCRIBED, CHILDREN,
//! SPECIAL-USE, RFC 5819 STATUS). As in Dovecot, its attributes are only those asked for:
//! no `\HasChildren` without `RETURN (CHILDREN)`, no special use without SPECIAL-USE.

use imap_codec::imap_types::mailbox::{ListMailbox, Mailbox as ImapMailbox};

use super::super::decode::ext::ListExtended;
use super::super::state::{ImapSession, Res};
use super::status::status_items;
use super::{blocking, push_mailbox};
use crate::session::Output;
use crate::store::maildir::mutf7;
use crate::store::{MailboxInfo, SpecialUse};

impl ImapSession {
    pub(crate) async fn list(
        &mut self,
        reference: &ImapMailbox<'_>,
        pattern: &ListMailbox<'_>,
        lsub: bool,
        out: &mut Output,
    ) -> Res {
        let cmd = if lsub { "LSUB" } else { "LIST" };
        let utf8 = self.enabled.utf8_names();
        let rev2 = self.enabled.rev2;
        let raw = pattern_bytes(pattern);
        let reference = reference_bytes(reference);
        if let (false, Some(ext)) = (lsub, self.ext.list.take()) {
            return self.list_extended(reference, raw, ext, out).await;
        }
        if raw.is_empty() && !lsub {
            // §6.3.8: the delimiter and the root of the reference: as Dovecot (after
            // UW-IMAP), the reference up to its first delimiter, or "".
            let root = match reference.iter().position(|&b| b == b'/') {
                Some(i) => decode_pattern(&reference[..=i], utf8).unwrap_or_default(),
                None => String::new(),
            };
            let mut line = format!("* {cmd} (\\Noselect) \"/\" ").into_bytes();
            if root.is_empty() {
                line.extend_from_slice(b"\"\"");
            } else {
                push_mailbox(&mut line, &root, utf8);
            }
            out.reply(line);
            return Ok("List completed.".into());
        }
        // §6.3.8: the reference and the pattern are concatenated as they are (`LIST
        // "Work" "*"` names `Work*`, so `Work` itself too). A name that is not valid
        // modified UTF-7 names no mailbox: nothing matches, as in Dovecot.
        let mut joined = reference.to_vec();
        joined.extend_from_slice(raw);
        let Some(full) = decode_pattern(&joined, utf8) else {
            return Ok(format!("{} completed.", if lsub { "Lsub" } else { "List" }));
        };
        let user = self.user_store()?;
        let boxes = blocking(move || user.list()).await?;
        let mut listed: Vec<&str> = Vec::new();
        for info in &boxes {
            if lsub && !info.subscribed {
                continue;
            }
            if !matches(&full, &info.name) {
                if lsub {
                    // §6.3.9: a `%` that stops at a level above a subscribed mailbox
                    // shows that level, `\Noselect` unless it is subscribed itself.
                    noselect_levels(&full, info, &boxes, &mut listed, utf8, out);
                }
                continue;
            }
            if listed.contains(&info.name.as_str()) {
                continue;
            }
            listed.push(&info.name);
            let attrs = attributes(info, lsub, rev2);
            let mut line = format!("* {cmd} ({attrs}) \"/\" ").into_bytes();
            push_mailbox(&mut line, &info.name, utf8);
            out.reply(line);
        }
        Ok(format!("{} completed.", if lsub { "Lsub" } else { "List" }))
    }
}

fn pattern_bytes<'a>(pattern: &'a ListMailbox<'_>) -> &'a [u8] {
    match pattern {
        ListMailbox::Token(t) => t.as_ref(),
        ListMailbox::String(s) => s.as_ref(),
    }
}

fn reference_bytes<'a>(reference: &'a ImapMailbox<'_>) -> &'a [u8] {
    match reference {
        ImapMailbox::Inbox => b"INBOX",
        ImapMailbox::Other(o) => o.as_ref(),
    }
}

/// One mailbox an extended LIST may show.
struct Candidate {
    name: String,
    /// `None`: subscribed (or a level above one) but not a mailbox (`\NonExistent`).
    info: Option<MailboxInfo>,
    subscribed: bool,
}

impl ImapSession {
    /// RFC 5258 LIST with its options (see the module docs).
    async fn list_extended(
        &mut self,
        reference: &[u8],
        first: &[u8],
        ext: ListExtended,
        out: &mut Output,
    ) -> Res {
        let utf8 = self.enabled.utf8_names();
        let mut patterns: Vec<String> = Vec::new();
        let more = ext.more_patterns.iter().map(pattern_bytes);
        for raw in std::iter::once(first).chain(more) {
            let mut joined = reference.to_vec();
            joined.extend_from_slice(raw);
            // Not modified UTF-7: names no mailbox (as in a plain LIST).
            patterns.extend(decode_pattern(&joined, utf8));
        }
        let user = self.user_store()?;
        let (boxes, subs) = blocking(move || Ok((user.list()?, user.subscriptions()?))).await?;
        let is_sub = |n: &str| subs.iter().any(|s| s == n);
        let mut all: Vec<Candidate> = boxes
            .iter()
            .map(|b| Candidate {
                name: b.name.clone(),
                info: Some(b.clone()),
                subscribed: is_sub(&b.name),
            })
            .collect();
        // Subscriptions of mailboxes that do not exist, and the levels above them.
        for s in &subs {
            let levels = s.match_indices('/').map(|(i, _)| &s[..i]).chain([s.as_str()]);
            for level in levels {
                if !all.iter().any(|c| c.name == level) {
                    all.push(Candidate {
                        name: level.to_string(),
                        info: None,
                        subscribed: is_sub(level),
                    });
                }
            }
        }
        let sel = ext.select;
        let ret = &ext.ret;
        let matched = |n: &str| patterns.iter().any(|p| matches(p, n));
        let selected = |c: &Candidate| {
            if sel.subscribed {
                c.subscribed
            } else if sel.special_use {
                c.info.as_ref().is_some_and(|i| i.special_use.is_some())
            } else {
                c.info.is_some()
            }
        };
        let filtered = sel.subscribed || sel.special_use;
        for c in &all {
            if !matched(&c.name) {
                continue;
            }
            // RFC 5258 §3.5 (as Dovecot reads it): a mailbox with descendants that meet
            // the selection criteria says so in CHILDINFO; one that does not meet them
            // itself is listed for that only when such a descendant is not listed (it
            // does not match the patterns).
            let below = |d: &&Candidate| {
                d.name.len() > c.name.len()
                    && d.name.starts_with(&c.name)
                    && d.name.as_bytes()[c.name.len()] == b'/'
                    && selected(d)
            };
            let child_info = sel.recursive_match && all.iter().any(|d| below(&d));
            let unlisted = sel.recursive_match && all.iter().filter(below).any(|d| !matched(&d.name));
            if !selected(c) && !unlisted {
                continue;
            }
            // Dovecot's order: `\Subscribed`, `\NonExistent`, children, special use.
            let mut a: Vec<&str> = Vec::new();
            if (sel.subscribed || ret.subscribed) && c.subscribed {
                a.push("\\Subscribed");
            }
            // RFC 5258 §3.4: a level that exists only because of its children (or a
            // subscription) is `\NonExistent` (which implies `\Noselect`).
            if c.info.as_ref().is_none_or(|i| i.no_select) {
                a.push("\\NonExistent");
            }
            if ret.children {
                let children = all.iter().any(|d| {
                    d.info.is_some()
                        && d.name.len() > c.name.len()
                        && d.name.starts_with(&c.name)
                        && d.name.as_bytes()[c.name.len()] == b'/'
                });
                a.push(if children {
                    "\\HasChildren"
                } else {
                    "\\HasNoChildren"
                });
            }
            if ret.special_use || sel.special_use {
                if let Some(su) = c.info.as_ref().and_then(|i| i.special_use) {
                    a.push(special_use_attr(su));
                }
            }
            let mut line = format!("* LIST ({}) \"/\" ", a.join(" ")).into_bytes();
            push_mailbox(&mut line, &c.name, utf8);
            if child_info {
                let why = if sel.subscribed { "SUBSCRIBED" } else { "SPECIAL-USE" };
                line.extend_from_slice(format!(" (CHILDINFO (\"{why}\"))").as_bytes());
            }
            out.reply(line);
            // RFC 5819 §2: STATUS right after the mailbox's LIST, for selectable ones.
            if let (Some(items), Some(info)) = (&ret.status, &c.info) {
                if !info.no_select && (!filtered || selected(c)) {
                    // Gone meanwhile, or unreadable: its LIST stands alone (§2).
                    if let Ok(st) = self.status_of(&c.name).await {
                        let mut line = b"* STATUS ".to_vec();
                        push_mailbox(&mut line, &c.name, utf8);
                        let parts = status_items(&st, items);
                        line.extend_from_slice(format!(" ({})", parts.join(" ")).as_bytes());
                        out.reply(line);
                    }
                }
            }
        }
        Ok("List completed.".into())
    }
}

fn special_use_attr(su: SpecialUse) -> &'static str {
    match su {
        SpecialUse::Drafts => "\\Drafts",
        SpecialUse::Sent => "\\Sent",
        SpecialUse::Trash => "\\Trash",
        SpecialUse::Junk => "\\Junk",
        SpecialUse::Archive => "\\Archive",
    }
}

/// The levels above the subscribed `info` that `pattern` matches and that are not
/// subscribed themselves: each is shown once as `* LSUB (\\Noselect) "/" level`.
fn noselect_levels<'a>(
    pattern: &str,
    info: &'a MailboxInfo,
    boxes: &[MailboxInfo],
    listed: &mut Vec<&'a str>,
    utf8: bool,
    out: &mut Output,
) {
    let levels = info.name.match_indices('/').map(|(i, _)| &info.name[..i]);
    for level in levels {
        let subscribed = boxes.iter().any(|b| b.subscribed && b.name == level);
        if subscribed || listed.contains(&level) || !matches(pattern, level) {
            continue;
        }
        listed.push(level);
        let mut line = b"* LSUB (\\Noselect) \"/\" ".to_vec();
        push_mailbox(&mut line, level, utf8);
        out.reply(line);
    }
}

/// A LIST pattern (reference and mailbox joined) as a store name, or `None` if it is not
/// modified UTF-7 (UTF-8 when `utf8`). Wildcards pass through the decoding unchanged.
fn decode_pattern(raw: &[u8], utf8: bool) -> Option<String> {
    let s = std::str::from_utf8(raw).ok()?;
    if utf8 {
        return Some(s.to_string());
    }
    mutf7::decode(s)
}

/// The attribute list of one LIST/LSUB line. An IMAP4rev2 LIST (RFC 9051 §7.3.1) says
/// `\\NonExistent` (which implies `\\Noselect`) for a level that exists only because a
/// child does: Maildir++ has no directory for it.
fn attributes(info: &MailboxInfo, lsub: bool, rev2: bool) -> String {
    let mut a: Vec<&str> = Vec::new();
    if info.no_select {
        a.push(if rev2 && !lsub {
            "\\NonExistent"
        } else {
            "\\Noselect"
        });
    }
    if !lsub {
        a.push(if info.has_children {
            "\\HasChildren"
        } else {
            "\\HasNoChildren"
        });
    }
    // Dovecot shows the special-use attributes in LSUB too.
    {
        if let Some(su) = info.special_use {
            a.push(special_use_attr(su));
        }
    }
    a.join(" ")
}

/// LIST wildcard matching (§6.3.8); an `INBOX` prefix of the pattern matches any case.
pub(crate) fn matches(pattern: &str, name: &str) -> bool {
    let inbox = |s: &str| s.get(..5).is_some_and(|p| p.eq_ignore_ascii_case("INBOX"));
    let (p, n): (Vec<char>, Vec<char>) = if inbox(name) && inbox(pattern) {
        (
            "INBOX".chars().chain(pattern[5..].chars()).collect(),
            "INBOX".chars().chain(name[5..].chars()).collect(),
        )
    } else {
        (pattern.chars().collect(), name.chars().collect())
    };
    wild(&p, &n)
}

/// Wildcard matching by dynamic programming: `O(pattern × name)`, whatever the pattern.
fn wild(p: &[char], n: &[char]) -> bool {
    // dp[j]: the pattern so far matches the first j characters of the name.
    let mut dp = vec![false; n.len() + 1];
    dp[0] = true;
    for &pc in p {
        let mut next = vec![false; n.len() + 1];
        match pc {
            '*' => {
                let mut any = false;
                for j in 0..=n.len() {
                    any |= dp[j];
                    next[j] = any;
                }
            }
            '%' => {
                let mut any = false;
                for j in 0..=n.len() {
                    if j > 0 && n[j - 1] == '/' {
                        any = false;
                    }
                    any |= dp[j];
                    next[j] = any;
                }
            }
            c => {
                for j in 1..=n.len() {
                    next[j] = dp[j - 1] && n[j - 1] == c;
                }
            }
        }
        dp = next;
    }
    dp[n.len()]
}

#[cfg(test)]
mod tests {
    use super::matches;

    #[test]
    fn wildcards() {
        assert!(matches("*", "INBOX"));
        assert!(matches("*", "a/b/c"));
        assert!(matches("%", "Sent"));
        assert!(!matches("%", "a/b"));
        assert!(matches("a/%", "a/b"));
        assert!(!matches("a/%", "a/b/c"));
        assert!(matches("a/*", "a/b/c"));
        assert!(matches("inbox", "INBOX"));
        assert!(matches("Inbox/%", "INBOX/x"));
        assert!(!matches("Sent", "sent"));
        assert!(matches("S*t", "Sent"));
        assert!(matches("Entw*", "Entwürfe"));
        assert!(!matches("Inbox", "Entwü"));
        assert!(!matches("Entwü", "INBOX"));
    }
}
