//! IMAP flag lists as clients see them (RFC 3501 §2.3.2, §7.2.6): one message's `FLAGS`, a
//! mailbox's `FLAGS` and `PERMANENTFLAGS`. Pure encoders over the store's flag types; used
//! by the handlers and by the announcements of the session state.

use crate::session::Output;
use crate::store::{Flags, MessageMeta};

/// `(\Answered \Flagged \Deleted \Seen \Draft \Recent keyword...)`, Dovecot's order.
pub(crate) fn flags_list(flags: Flags, keywords: &[String], recent: bool) -> String {
    let mut parts: Vec<&str> = Vec::new();
    for (f, name) in [
        (Flags::ANSWERED, "\\Answered"),
        (Flags::FLAGGED, "\\Flagged"),
        (Flags::DELETED, "\\Deleted"),
        (Flags::SEEN, "\\Seen"),
        (Flags::DRAFT, "\\Draft"),
    ] {
        if flags.contains(f) {
            parts.push(name);
        }
    }
    if recent {
        parts.push("\\Recent");
    }
    parts.extend(keywords.iter().map(String::as_str));
    format!("({})", parts.join(" "))
}

/// The keywords in use in `messages`, in first-seen order.
pub(crate) fn keywords_in(messages: &[MessageMeta]) -> Vec<String> {
    let mut kws: Vec<String> = Vec::new();
    for m in messages {
        for k in &m.keywords {
            if !kws.contains(k) {
                kws.push(k.clone());
            }
        }
    }
    kws
}

/// The FLAGS a mailbox shows (RFC 3501 §7.2.6): the system flags and every keyword in use.
pub(crate) fn mailbox_flags(keywords: &[String]) -> String {
    let mut s = String::from("\\Answered \\Flagged \\Deleted \\Seen \\Draft");
    for k in keywords {
        s.push(' ');
        s.push_str(k);
    }
    s
}

/// `* FLAGS` and `* OK [PERMANENTFLAGS]` (RFC 3501 §7.2.6, §7.1) for the mailbox's keywords;
/// `\*` only when a new keyword can still be created (`keyword_room`).
pub(crate) fn write_flags(
    keywords: &[String],
    read_only: bool,
    keyword_room: bool,
    out: &mut Output,
) {
    out.reply(format!("* FLAGS ({})", mailbox_flags(keywords)));
    if read_only {
        out.reply("* OK [PERMANENTFLAGS ()] Read-only mailbox.");
    } else {
        let any = if keyword_room { " \\*" } else { "" };
        out.reply(format!(
            "* OK [PERMANENTFLAGS ({}{any})] Flags permitted.",
            mailbox_flags(keywords)
        ));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flag_lists_in_dovecot_order() {
        let f = Flags::SEEN.union(Flags::ANSWERED);
        assert_eq!(
            flags_list(f, &["$Forwarded".into()], true),
            "(\\Answered \\Seen \\Recent $Forwarded)"
        );
        assert_eq!(flags_list(Flags::NONE, &[], false), "()");
    }
}
