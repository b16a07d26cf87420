//! LIST (RFC 3501 §6.3.8) and LSUB (§6.3.9) with CHILDREN (RFC 3348) and SPECIAL-USE
//! (RFC 6154) attributes. Hierarchy delimiter `/`; `*` matches anything, `%` anything but the
//! delimiter; `INBOX` matches case-insensitively.

use imap_codec::imap_types::mailbox::{ListMailbox, Mailbox as ImapMailbox};

use super::super::state::{ImapSession, Res};
use super::{blocking, mailbox_name, push_mailbox, wire_to_name};
use crate::session::Output;
use crate::store::{MailboxInfo, SpecialUse};

impl ImapSession {
    pub(crate) async fn list(
        &mut self,
        reference: &ImapMailbox<'_>,
        pattern: &ListMailbox<'_>,
        lsub: bool,
        out: &mut Output,
    ) -> Res {
        let reference = match reference {
            ImapMailbox::Other(o) if o.as_ref().is_empty() => String::new(),
            r => mailbox_name(r)?,
        };
        let raw: &[u8] = match pattern {
            ListMailbox::Token(t) => t.as_ref(),
            ListMailbox::String(s) => s.as_ref(),
        };
        let pattern = wire_to_name(raw)?;
        let cmd = if lsub { "LSUB" } else { "LIST" };
        if pattern.is_empty() && !lsub {
            // §6.3.8: the delimiter and the root of the reference.
            out.reply(format!("* {cmd} (\\Noselect) \"/\" \"\""));
            return Ok("List completed.".into());
        }
        let full = if reference.is_empty() || pattern.starts_with('/') {
            pattern
        } else if reference.ends_with('/') {
            format!("{reference}{pattern}")
        } else {
            format!("{reference}/{pattern}")
        };
        let user = self.user_store()?;
        let boxes = blocking(move || user.list()).await?;
        for info in &boxes {
            if lsub && !info.subscribed {
                continue;
            }
            if !matches(&full, &info.name) {
                continue;
            }
            let mut line = format!("* {cmd} ({}) \"/\" ", attributes(info, lsub)).into_bytes();
            push_mailbox(&mut line, &info.name);
            out.reply(line);
        }
        Ok(format!("{} completed.", if lsub { "Lsub" } else { "List" }))
    }
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
