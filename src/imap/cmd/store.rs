//! STORE and UID STORE (RFC 3501 §6.4.6): `FLAGS`, `+FLAGS`, `-FLAGS`, `.SILENT`. The new
//! flags are announced as untagged FETCH (with UID for UID STORE, §6.4.8) unless `.SILENT`
//! or unchanged (Dovecot sends nothing for a message the STORE did not change).

use imap_codec::imap_types::flag::{Flag, StoreResponse, StoreType};
use imap_codec::imap_types::sequence::SequenceSet;

use super::super::flags::flags_list;
use super::super::state::{announce_new_keywords, Fail, ImapSession, Res};
use super::{blocking, check_seq_range, resolve, split_flags};
use crate::session::Output;
use crate::store::FlagOp;

impl ImapSession {
    pub(crate) async fn store(
        &mut self,
        set: &SequenceSet,
        kind: StoreType,
        response: StoreResponse,
        flags: &[Flag<'_>],
        uid: bool,
        out: &mut Output,
    ) -> Res {
        let sel = self.selected()?;
        if sel.read_only {
            // Dovecot's answer: nothing changes, and the client is told so without failing.
            return Ok("Store ignored with read-only mailbox.".into());
        }
        check_seq_range(&sel.view, set, uid)?;
        let uids: Vec<u32> = resolve(&sel.view, set, uid)
            .into_iter()
            .map(|i| sel.view.messages[i].uid)
            .collect();
        let (sys, keywords) = split_flags(flags);
        let op = match kind {
            StoreType::Replace => FlagOp::Replace,
            StoreType::Add => FlagOp::Add,
            StoreType::Remove => FlagOp::Remove,
        };
        let metas = if uids.is_empty() {
            Vec::new()
        } else {
            let mb = sel.mailbox.clone();
            let u = uids.clone();
            blocking(move || mb.store_flags(&u, op, sys, &keywords)).await?
        };
        let mut gone = metas.len() < uids.len();
        announce_new_keywords(sel, metas.iter(), out);
        for m in metas {
            let Some(seq) = sel.view.seq_of(m.uid) else {
                gone = true;
                continue;
            };
            let v = &mut sel.view.messages[seq as usize - 1];
            // As Dovecot: a message whose flags did not change gets no FETCH.
            let changed = v.flags != m.flags || v.keywords != m.keywords;
            v.flags = m.flags;
            v.keywords = m.keywords;
            if changed && response == StoreResponse::Answer {
                let flags = flags_list(v.flags, &v.keywords, v.recent);
                out.reply(if uid {
                    format!("* {seq} FETCH (UID {} FLAGS {flags})", v.uid)
                } else {
                    format!("* {seq} FETCH (FLAGS {flags})")
                });
            }
        }
        if gone {
            return Err(Fail::No(
                "[EXPUNGEISSUED] Some of the messages no longer exist.".into(),
            ));
        }
        Ok("Store completed.".into())
    }
}
