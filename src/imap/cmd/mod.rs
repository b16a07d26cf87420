//! IMAP command handlers, one file per command family (as Dovecot's `cmd-*.c`). Each handler is
//! an `impl` block on [`super::state::ImapSession`] with short functions over the store API
//! (`crate::store`), run on the blocking pool (`blocking`); which handler runs for which
//! command, in which states and with which announcements, is the table in
//! [`super::commands`].
//!
//! This file holds what several families share: mailbox names (RFC 3501 §5.1, modified
//! UTF-7 §5.1.3), flag arguments (§2.3.2), sequence sets (§9 `sequence-set`) and dates (§9
//! `date-time`).

pub mod append;
pub mod auth;
pub mod copy_move;
pub mod expunge;
pub mod fetch;
pub mod idle;
pub mod list;
pub mod mailbox;
pub mod misc;
pub mod quota;
pub mod search;
pub mod sort;
pub mod status;
pub mod store;

use std::time::SystemTime;

use imap_codec::imap_types::flag::Flag;
use imap_codec::imap_types::mailbox::Mailbox as ImapMailbox;
use imap_codec::imap_types::sequence::SequenceSet;

use super::state::Fail;
pub(crate) use super::encode::uid_set;
use crate::store::maildir::mutf7;
use crate::store::{self as st, Flags, View};

/// Runs store work on the blocking pool (the runtime never waits on disk).
pub(crate) async fn blocking<T, F>(f: F) -> Result<T, Fail>
where
    F: FnOnce() -> st::Result<T> + Send + 'static,
    T: Send + 'static,
{
    match tokio::task::spawn_blocking(f).await {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => Err(e.into()),
        Err(e) => {
            tracing::error!("IMAP store task failed: {e}");
            Err(Fail::internal())
        }
    }
}

/// The store's name (UTF-8, `/`) of a mailbox argument: modified UTF-7 on the wire, or
/// UTF-8 when `utf8` (the session enabled UTF8=ACCEPT or IMAP4rev2:
/// [`super::state::Enabled::utf8_names`]).
pub(crate) fn mailbox_name(m: &ImapMailbox<'_>, utf8: bool) -> Result<String, Fail> {
    match m {
        ImapMailbox::Inbox => Ok("INBOX".into()),
        ImapMailbox::Other(o) => wire_to_name(o.as_ref(), utf8),
    }
}

/// Decodes a mailbox name from the wire. A name that is not valid modified UTF-7 (RFC 3501
/// §5.1.3) is still a well-formed argument: it names no mailbox, so the command fails with
/// `NO` (Dovecot's answer and wording), never `BAD`. With `utf8` (RFC 6855 §3, RFC 9051
/// §5.1) the name is taken as it is, UTF-8: `&` is then an ordinary character.
pub(crate) fn wire_to_name(raw: &[u8], utf8: bool) -> Result<String, Fail> {
    let name = if utf8 {
        std::str::from_utf8(raw)
            .map_err(|_| Fail::No("Mailbox name is not valid UTF-8.".into()))?
            .to_string()
    } else {
        let invalid = || Fail::No("Mailbox name is not valid mUTF-7.".into());
        let s = std::str::from_utf8(raw).map_err(|_| invalid())?;
        mutf7::decode(s).ok_or_else(invalid)?
    };
    if name.eq_ignore_ascii_case("INBOX") {
        return Ok("INBOX".into());
    }
    Ok(name)
}

/// Appends a mailbox name as the wire wants it: modified UTF-7 (or UTF-8 when `utf8`), an
/// atom when possible, else a quoted string (a UTF-8 quoted string, RFC 6855 §3, when
/// `utf8`).
pub(crate) fn push_mailbox(out: &mut Vec<u8>, name: &str, utf8: bool) {
    let enc = if utf8 {
        name.to_string()
    } else {
        mutf7::encode(name)
    };
    let atom = !enc.is_empty()
        && enc.bytes().all(|b| {
            b > b' '
                && b < 0x7f
                && !matches!(b, b'(' | b')' | b'{' | b'%' | b'*' | b'"' | b'\\' | b']')
        });
    if atom {
        out.extend_from_slice(enc.as_bytes());
    } else if utf8 {
        super::encode::quote::push_string_utf8(out, enc.as_bytes());
    } else {
        super::encode::quote::push_string(out, enc.as_bytes());
    }
}

/// Splits IMAP flags into system flags and keywords. `\Recent` (RFC 3501 §2.3.2: a client
/// cannot set it) and other `\` names are `BAD`, as Dovecot answers them ("Invalid system
/// flag"), so a typo is not silently dropped.
pub(crate) fn split_flags(flags: &[Flag<'_>]) -> Result<(Flags, Vec<String>), Fail> {
    let mut sys = Flags::NONE;
    let mut kw: Vec<String> = Vec::new();
    for f in flags {
        match f {
            Flag::Answered => sys = sys.union(Flags::ANSWERED),
            Flag::Deleted => sys = sys.union(Flags::DELETED),
            Flag::Draft => sys = sys.union(Flags::DRAFT),
            Flag::Flagged => sys = sys.union(Flags::FLAGGED),
            Flag::Seen => sys = sys.union(Flags::SEEN),
            Flag::Keyword(a) => {
                let k = a.as_ref().to_string();
                if !kw.iter().any(|x| x.eq_ignore_ascii_case(&k)) {
                    kw.push(k);
                }
            }
            Flag::Extension(_) => {
                return Err(Fail::Bad(format!(
                    "Invalid system flag {}",
                    f.to_string().to_ascii_uppercase()
                )))
            }
        }
    }
    Ok((sys, kw))
}

/// The messages of `view` a sequence set names, as `(seq, index)` pairs in view order:
/// message sequence numbers, or UIDs for the UID forms (RFC 3501 §6.4.8: non-existent UIDs
/// are ignored; `*` is the last message / the largest UID).
pub(crate) fn resolve(view: &View, set: &SequenceSet, uid: bool) -> Vec<usize> {
    let n = view.messages.len() as u32;
    if n == 0 {
        return Vec::new();
    }
    if uid {
        let max_uid = view.messages.last().map_or(0, |m| m.uid);
        view.messages
            .iter()
            .enumerate()
            .filter(|(_, m)| super::search::set_contains(set, m.uid, max_uid))
            .map(|(i, _)| i)
            .collect()
    } else {
        (0..n as usize)
            .filter(|i| super::search::set_contains(set, *i as u32 + 1, n))
            .collect()
    }
}

/// A sequence set names a message number beyond the mailbox (RFC 3501 §9: `BAD` in Dovecot).
pub(crate) fn check_seq_range(view: &View, set: &SequenceSet, uid: bool) -> Result<(), Fail> {
    use imap_codec::imap_types::sequence::{SeqOrUid, Sequence};
    if uid {
        return Ok(());
    }
    let n = view.messages.len() as u32;
    let too_big = |x: &SeqOrUid| matches!(x, SeqOrUid::Value(v) if v.get() > n);
    let bad = set.0.as_ref().iter().any(|s| match s {
        Sequence::Single(x) => too_big(x),
        Sequence::Range(a, b) => too_big(a) || too_big(b),
    });
    if bad {
        return Err(Fail::Bad(
            "Error in IMAP command: Invalid messageset.".into(),
        ));
    }
    Ok(())
}

/// INTERNALDATE as RFC 3501 §9 `date-time` (`"27-Nov-2026 18:57:46 +0000"`), local time.
pub(crate) fn internal_date(t: SystemTime) -> String {
    // Built from seconds so an absurd file time cannot panic (chrono's `From` would).
    let secs = match t.duration_since(SystemTime::UNIX_EPOCH) {
        Ok(d) => i64::try_from(d.as_secs()).unwrap_or(0),
        Err(e) => i64::try_from(e.duration().as_secs()).map_or(0, |s| -s),
    };
    let utc = chrono::DateTime::from_timestamp(secs, 0).unwrap_or_default();
    let dt = utc.with_timezone(&chrono::Local);
    format!("\"{}\"", dt.format("%d-%b-%Y %H:%M:%S %z"))
}

/// A destination that does not exist says `[TRYCREATE]` (RFC 3501 §6.3.11, §6.4.7).
pub(crate) fn trycreate(f: Fail) -> Fail {
    match f {
        Fail::No(t) if t.starts_with("[NONEXISTENT]") => {
            Fail::No("[TRYCREATE] Mailbox doesn't exist.".into())
        }
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn internal_dates_never_panic() {
        use std::time::Duration;
        let d = internal_date(SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000));
        assert!(d.starts_with('"') && d.len() == 28, "{d}");
        for t in [
            SystemTime::UNIX_EPOCH + Duration::from_secs(u64::MAX / 4),
            SystemTime::UNIX_EPOCH - Duration::from_secs(1 << 40),
        ] {
            let d = internal_date(t);
            assert!(d.starts_with('"'), "{d}");
        }
    }

    #[test]
    fn uid_sets_are_compact() {
        assert_eq!(uid_set(&[1, 2, 3, 5, 7, 8]), "1:3,5,7:8");
        assert_eq!(uid_set(&[4]), "4");
        assert_eq!(uid_set(&[]), "");
    }

    #[test]
    fn mailbox_names_on_the_wire() {
        let p = |n: &str| {
            let mut v = Vec::new();
            push_mailbox(&mut v, n, false);
            String::from_utf8(v).unwrap()
        };
        let u = |n: &str| {
            let mut v = Vec::new();
            push_mailbox(&mut v, n, true);
            String::from_utf8(v).unwrap()
        };
        assert_eq!(p("INBOX"), "INBOX");
        assert_eq!(p("Sent"), "Sent");
        assert_eq!(p("a/b"), "a/b");
        assert_eq!(p("My Folder"), "\"My Folder\"");
        assert_eq!(p("Entwürfe"), "Entw&APw-rfe");
        assert_eq!(wire_to_name(b"Entw&APw-rfe", false).unwrap(), "Entwürfe");
        assert_eq!(wire_to_name(b"inbox", false).unwrap(), "INBOX");
        // UTF8=ACCEPT / IMAP4rev2: UTF-8 both ways, `&` is a character.
        assert_eq!(u("Entwürfe"), "\"Entwürfe\"");
        assert_eq!(u("Sent"), "Sent");
        assert_eq!(u("a&b"), "a&b");
        assert_eq!(wire_to_name("Entwürfe".as_bytes(), true).unwrap(), "Entwürfe");
        assert_eq!(wire_to_name(b"Entw&APw-rfe", true).unwrap(), "Entw&APw-rfe");
        assert_eq!(wire_to_name(b"Inbox", true).unwrap(), "INBOX");
        assert!(wire_to_name("Entwürfe".as_bytes(), false).is_err());
        assert!(wire_to_name(b"\xff", true).is_err());
    }
}
