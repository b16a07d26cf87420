//! LIST (RFC 3501 §6.3.8) and LSUB (§6.3.9) with CHILDREN (RFC 3348) and SPECIAL-USE
//! (RFC 6154) attributes. Hierarchy delimiter `/`; `*` matches anything, `%` anything but the
//! delimiter; `INBOX` matches case-insensitively.

use imap_codec::imap_types::mailbox::{ListMailbox, Mailbox as ImapMailbox};

use super::super::state::{ImapSession, Res};
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
        let raw: &[u8] = match pattern {
            ListMailbox::Token(t) => t.as_ref(),
            ListMailbox::String(s) => s.as_ref(),
        };
        let reference: &[u8] = match reference {
            ImapMailbox::Inbox => b"INBOX",
            ImapMailbox::Other(o) => o.as_ref(),
        };
        if raw.is_empty() && !lsub {
            // §6.3.8: the delimiter and the root of the reference: as Dovecot (after
            // UW-IMAP), the reference up to its first delimiter, or "".
            let root = match reference.iter().position(|&b| b == b'/') {
                Some(i) => decode_pattern(&reference[..=i]).unwrap_or_default(),
                None => String::new(),
            };
            let mut line = format!("* {cmd} (\\Noselect) \"/\" ").into_bytes();
            if root.is_empty() {
                line.extend_from_slice(b"\"\"");
            } else {
                push_mailbox(&mut line, &root);
            }
            out.reply(line);
            return Ok("List completed.".into());
        }
        // §6.3.8: the reference and the pattern are concatenated as they are (`LIST
        // "Work" "*"` names `Work*`, so `Work` itself too). A name that is not valid
        // modified UTF-7 names no mailbox: nothing matches, as in Dovecot.
        let mut joined = reference.to_vec();
        joined.extend_from_slice(raw);
        let Some(full) = decode_pattern(&joined) else {
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
                    noselect_levels(&full, info, &boxes, &mut listed, out);
                }
                continue;
            }
            if listed.contains(&info.name.as_str()) {
                continue;
            }
            listed.push(&info.name);
            let mut line = format!("* {cmd} ({}) \"/\" ", attributes(info, lsub)).into_bytes();
            push_mailbox(&mut line, &info.name);
            out.reply(line);
        }
        Ok(format!("{} completed.", if lsub { "Lsub" } else { "List" }))
    }
}

/// The levels above the subscribed `info` that `pattern` matches and that are not
/// subscribed themselves: each is shown once as `* LSUB (\\Noselect) "/" level`.
fn noselect_levels<'a>(
    pattern: &str,
    info: &'a MailboxInfo,
    boxes: &[MailboxInfo],
    listed: &mut Vec<&'a str>,
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
        push_mailbox(&mut line, level);
        out.reply(line);
    }
}

/// A LIST pattern (reference and mailbox joined) as a store name, or `None` if it is not
/// modified UTF-7. Wildcards pass through the decoding unchanged.
fn decode_pattern(raw: &[u8]) -> Option<String> {
    let s = std::str::from_utf8(raw).ok()?;
    mutf7::decode(s)
}

/// The attribute list of one LIST/LSUB line.
fn attributes(info: &MailboxInfo, lsub: bool) -> String {
    let mut a: Vec<&str> = Vec::new();
    if info.no_select {
        a.push("\\Noselect");
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
            a.push(match su {
                SpecialUse::Drafts => "\\Drafts",
                SpecialUse::Sent => "\\Sent",
                SpecialUse::Trash => "\\Trash",
                SpecialUse::Junk => "\\Junk",
                SpecialUse::Archive => "\\Archive",
            });
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
