//! COPY / UID COPY (RFC 3501 §6.4.7) and MOVE / UID MOVE (RFC 6851), with UIDPLUS
//! `[COPYUID]` (RFC 4315 §3). A missing destination is `NO [TRYCREATE]`. A set naming a
//! message another session expunged copies (or moves) nothing: `NO [EXPUNGEISSUED]`, as
//! Dovecot answers (RFC 2180 §4.4.1 allows it), with the expunges announced.

use imap_codec::imap_types::mailbox::Mailbox as ImapMailbox;
use imap_codec::imap_types::sequence::SequenceSet;

use super::super::state::{Fail, ImapSession, Res, SyncMode};
use super::{blocking, check_seq_range, mailbox_name, resolve, trycreate, uid_set};
use crate::session::Output;

/// Which of the two the shared body does.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Transfer {
    Copy,
    Move,
}

impl ImapSession {
    /// The body COPY and MOVE share: resolves the set in the selected view, copies or moves
    /// the messages into `dest` on the blocking pool, and returns the destination's
    /// UIDVALIDITY with the source and destination UID sets (RFC 4315 §3 `[COPYUID]`), or
    /// `None` when the set named no message.
    async fn transfer(
        &mut self,
        set: &SequenceSet,
        dest: &ImapMailbox<'_>,
        uid: bool,
        how: Transfer,
    ) -> Result<Option<(u32, String, String)>, Fail> {
        let name = mailbox_name(dest, self.enabled.utf8_names())?;
        let sel = self.selected()?;
        check_seq_range(&sel.view, set, uid)?;
        if how == Transfer::Move && sel.read_only {
            return Err(Fail::No("Mailbox is read-only.".into()));
        }
        let uids: Vec<u32> = resolve(&sel.view, set, uid)
            .into_iter()
            .map(|i| sel.view.messages[i].uid)
            .collect();
        let src = sel.mailbox.clone();
        let user = self.user_store()?;
        if uids.is_empty() {
            // As Dovecot (`cmd-copy.c`): a UID set naming no message is done before the
            // destination is looked at.
            return Ok(None);
        }
        let r = blocking(move || {
            let dst = user.open(&name)?;
            // As Dovecot (`cmd-copy.c`): a set naming a message another session expunged
            // copies nothing and fails with `[EXPUNGEISSUED]`; the expunge is announced.
            if !uids.is_empty() && !src.missing(&uids)?.is_empty() {
                return Ok(None);
            }
            // Before the copy: once messages are copied (or moved), nothing may fail the
            // command, or a client that retries makes them twice.
            let validity = user.status(&name)?.uid_validity;
            let pairs = match (uids.is_empty(), how) {
                (true, _) => Vec::new(),
                (false, Transfer::Copy) => src.copy_to(&uids, &*dst)?,
                (false, Transfer::Move) => src.move_to(&uids, &*dst)?,
            };
            Ok(Some((pairs, validity)))
        })
        .await
        .map_err(trycreate)?;
        let Some((pairs, validity)) = r else {
            return Err(Fail::No(
                "[EXPUNGEISSUED] Some of the requested messages no longer exist.".into(),
            ));
        };
        if pairs.is_empty() {
            return Ok(None);
        }
        let (from, to): (Vec<u32>, Vec<u32>) = pairs.into_iter().unzip();
        Ok(Some((validity, uid_set(&from), uid_set(&to))))
    }

    pub(crate) async fn copy(
        &mut self,
        set: &SequenceSet,
        dest: &ImapMailbox<'_>,
        uid: bool,
    ) -> Res {
        match self.transfer(set, dest, uid, Transfer::Copy).await? {
            None => Ok("No messages found.".into()),
            Some((validity, from, to)) => {
                Ok(format!("[COPYUID {validity} {from} {to}] Copy completed."))
            }
        }
    }

    /// RFC 6851 §3.3: `* OK [COPYUID ...]`, the EXPUNGEs, then the tagged OK.
    pub(crate) async fn move_(
        &mut self,
        set: &SequenceSet,
        dest: &ImapMailbox<'_>,
        uid: bool,
        out: &mut Output,
    ) -> Res {
        let moved = match self.transfer(set, dest, uid, Transfer::Move).await {
            Ok(m) => m,
            Err(f) => {
                // MOVE announces nothing itself on failure (its row says `Skip`): what
                // changed meanwhile (the expunges behind `[EXPUNGEISSUED]`) is told here.
                if let Err(_step) = self.announce(SyncMode::Full, out).await {
                    return Err(Fail::internal());
                }
                return Err(f);
            }
        };
        let Some((validity, from, to)) = moved else {
            return Ok("No messages found.".into());
        };
        out.reply(format!("* OK [COPYUID {validity} {from} {to}] Moved UIDs."));
        if let Err(_step) = self.announce(SyncMode::Forced, out).await {
            return Err(Fail::internal());
        }
        Ok(self.with_highest_modseq("Move completed."))
    }
}
