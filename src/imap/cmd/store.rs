//! STORE and UID STORE (RFC 3501 §6.4.6): `FLAGS`, `+FLAGS`, `-FLAGS`, `.SILENT`. The new
//! flags are announced as untagged FETCH (with UID for UID STORE, §6.4.8) unless `.SILENT`
//! or unchanged (Dovecot sends nothing for a message the STORE did not change). A message
//! another session expunged but this one has not been told of yet is not an error: the
//! STORE stores what still exists and completes `OK` (as Dovecot 2.3; RFC 2180 §4.2.1).

use imap_codec::imap_types::command::StoreModifier;
use imap_codec::imap_types::flag::{Flag, StoreResponse, StoreType};
use imap_codec::imap_types::sequence::SequenceSet;

use super::super::flags::flags_list;
use super::super::state::{announce_new_keywords, ImapSession, Res};
use super::{blocking, check_seq_range, resolve, split_flags, uid_set};
use crate::session::Output;
use crate::store::{FlagOp, Flags, MessageMeta};

impl ImapSession {
    #[allow(clippy::too_many_arguments)]
    pub(crate) async fn store(
        &mut self,
        set: &SequenceSet,
        kind: StoreType,
        response: StoreResponse,
        flags: &[Flag<'_>],
        uid_cmd: bool,
        modifiers: &[StoreModifier],
        out: &mut Output,
    ) -> Res {
        let unchanged_since = modifiers
            .iter()
            .map(|StoreModifier::UnchangedSince(n)| *n)
            .next();
        if unchanged_since.is_some() {
            self.enable_condstore(out);
        }
        let enabled = self.enabled;
        let sel = self.selected()?;
        if sel.read_only {
            // Dovecot's answer: nothing changes, and the client is told so without failing.
            return Ok("Store ignored with read-only mailbox.".into());
        }
        check_seq_range(&sel.view, set, uid_cmd)?;
        let uids: Vec<u32> = resolve(&sel.view, set, uid_cmd)
            .into_iter()
            .map(|i| sel.view.messages[i].uid)
            .collect();
        let (sys, keywords) = split_flags(flags)?;
        let op = match kind {
            StoreType::Replace => FlagOp::Replace,
            StoreType::Add => FlagOp::Add,
            StoreType::Remove => FlagOp::Remove,
        };
        let (metas, failed) = if uids.is_empty() {
            (Vec::new(), Vec::new())
        } else {
            let mb = sel.mailbox.clone();
            let (u, k) = (uids.clone(), keywords.clone());
            blocking(move || match unchanged_since {
                Some(n) => mb.store_flags_unchanged_since(&u, op, sys, &k, n),
                None => mb.store_flags(&u, op, sys, &k).map(|m| (m, Vec::new())),
            })
            .await?
        };
        announce_new_keywords(sel, metas.iter(), out);
        let mut metas = metas.into_iter().peekable();
        for uid in uids {
            let Some(seq) = sel.view.seq_of(uid) else {
                continue;
            };
            if failed.binary_search(&uid).is_ok() {
                continue;
            }
            let v = &mut sel.view.messages[seq as usize - 1];
            let expected = apply(v, op, sys, &keywords);
            let (flags, keywords, modseq) = match metas.next_if(|m| m.uid == uid) {
                Some(m) => (m.flags, m.keywords, m.modseq),
                // UID STORE announces the expunge itself (RFC 3501 §7.4.1); as Dovecot,
                // no FETCH for a message about to be announced gone.
                None if uid_cmd => continue,
                // Expunged by another session, not yet announced (RFC 2180 §4.2.1): as
                // Dovecot, the STORE succeeds and changes this session's picture of it
                // only; the expunge is announced at the next command that may.
                None => (expected.0, expected.1.clone(), v.modseq),
            };
            // As Dovecot: a message whose flags did not change gets no FETCH; with
            // `.SILENT` one still does if its flags are not just what this STORE made of
            // them (another session changed them too, not yet announced here).
            let changed = v.flags != flags || v.keywords != keywords;
            let others = flags != expected.0 || !same_keywords(&keywords, &expected.1);
            v.flags = flags;
            v.keywords = keywords;
            v.modseq = modseq;
            let show_flags = response == StoreResponse::Answer || others;
            // RFC 7162 §3.1.3: with CONDSTORE on, a changed message's FETCH carries its
            // MODSEQ, even after `.SILENT` (then without FLAGS).
            if changed && (show_flags || enabled.condstore) {
                let mut items = Vec::new();
                if uid_cmd || enabled.qresync {
                    items.push(format!("UID {}", v.uid));
                }
                // Dovecot's order: UID, MODSEQ, FLAGS.
                if enabled.condstore {
                    items.push(format!("MODSEQ ({})", v.modseq));
                }
                if show_flags {
                    items.push(format!("FLAGS {}", flags_list(v.flags, &v.keywords, v.recent)));
                }
                out.reply(format!("* {seq} FETCH ({})", items.join(" ")));
            }
        }
        if !failed.is_empty() {
            // §3.1.3: the messages that failed the UNCHANGEDSINCE test, by the numbers the
            // command used.
            let mut ids: Vec<u32> = if uid_cmd {
                failed
            } else {
                failed.iter().filter_map(|u| sel.view.seq_of(*u)).collect()
            };
            ids.sort_unstable();
            return Ok(format!("[MODIFIED {}] Conditional STORE failed", uid_set(&ids)));
        }
        Ok("Store completed.".into())
    }
}

/// Whether two keyword lists hold the same keywords (case-insensitively), in any order.
fn same_keywords(a: &[String], b: &[String]) -> bool {
    let within = |x: &[String], y: &[String]| {
        x.iter().all(|k| y.iter().any(|o| o.eq_ignore_ascii_case(k)))
    };
    within(a, b) && within(b, a)
}

/// The flags `op` gives a message as the session's view shows it (what this STORE alone
/// makes of them; also the new flags of a message gone from the store), keywords in the
/// view's order.
fn apply(
    v: &MessageMeta,
    op: FlagOp,
    sys: Flags,
    keywords: &[String],
) -> (Flags, Vec<String>) {
    let has = |list: &[String], k: &String| list.iter().any(|x| x.eq_ignore_ascii_case(k));
    match op {
        FlagOp::Replace => (sys, keywords.to_vec()),
        FlagOp::Add => {
            let mut kw = v.keywords.clone();
            kw.extend(keywords.iter().filter(|k| !has(&v.keywords, k)).cloned());
            (v.flags.union(sys), kw)
        }
        FlagOp::Remove => (
            v.flags.minus(sys),
            v.keywords
                .iter()
                .filter(|k| !has(keywords, k))
                .cloned()
                .collect(),
        ),
    }
}
