//! COPY / UID COPY (RFC 3501 §6.4.7) and MOVE / UID MOVE (RFC 6851), with UIDPLUS
//! `[COPYUID]` (RFC 4315 §3). A missing destination is `NO [TRYCREATE]`.

use imap_codec::imap_types::mailbox::Mailbox as ImapMailbox;
use imap_codec::imap_types::sequence::SequenceSet;

use super::super::session::{Fail, ImapSession, Res, SyncMode};
use super::{blocking, check_seq_range, mailbox_name, resolve, trycreate, uid_set};
use crate::session::Output;

impl ImapSession {
    /// The UIDs named by `set` in the selected view, and the destination's name.
    fn copy_args(
        &mut self,
        set: &SequenceSet,
        dest: &ImapMailbox<'_>,
        uid: bool,
    ) -> Result<(Vec<u32>, String), Fail> {
        let name = mailbox_name(dest)?;
        let sel = self.selected()?;
        check_seq_range(&sel.view, set, uid)?;
        let uids = resolve(&sel.view, set, uid)
            .into_iter()
            .map(|i| sel.view.messages[i].uid)
            .collect();
        Ok((uids, name))
    }

    pub(crate) async fn copy(
        &mut self,
        set: &SequenceSet,
        dest: &ImapMailbox<'_>,
        uid: bool,
        out: &mut Output,
    ) -> Res {
        let _ = out;
        let (uids, name) = self.copy_args(set, dest, uid)?;
        let user = self.user_store()?;
        let src = self.selected()?.mailbox.clone();
        let (pairs, validity) = blocking(move || {
            let dst = user.open(&name)?;
            let pairs = if uids.is_empty() {
                Vec::new()
            } else {
                src.copy_to(&uids, &*dst)?
            };
            let validity = user.status(&name)?.uid_validity;
            Ok((pairs, validity))
        })
        .await
        .map_err(trycreate)?;
        if pairs.is_empty() {
            return Ok("No messages found.".into());
        }
        let (from, to): (Vec<u32>, Vec<u32>) = pairs.into_iter().unzip();
        Ok(format!(
            "[COPYUID {validity} {} {}] Copy completed.",
            uid_set(&from),
            uid_set(&to)
        ))
    }

    /// RFC 6851 §3.3: `* OK [COPYUID ...]`, the EXPUNGEs, then the tagged OK.
    pub(crate) async fn move_(
        &mut self,
        set: &SequenceSet,
        dest: &ImapMailbox<'_>,
        uid: bool,
        out: &mut Output,
    ) -> Res {
        let (uids, name) = self.copy_args(set, dest, uid)?;
        let read_only = self.selected()?.read_only;
        if read_only {
            return Err(Fail::No("Mailbox is read-only.".into()));
        }
        let user = self.user_store()?;
        let src = self.selected()?.mailbox.clone();
        let (pairs, validity) = blocking(move || {
            let dst = user.open(&name)?;
            let pairs = if uids.is_empty() {
                Vec::new()
            } else {
                src.move_to(&uids, &*dst)?
            };
            let validity = user.status(&name)?.uid_validity;
            Ok((pairs, validity))
        })
        .await
        .map_err(trycreate)?;
        if pairs.is_empty() {
            return Ok("No messages found.".into());
        }
        let (from, to): (Vec<u32>, Vec<u32>) = pairs.into_iter().unzip();
        out.reply(format!(
            "* OK [COPYUID {validity} {} {}] Moved UIDs.",
            uid_set(&from),
            uid_set(&to)
        ));
        if let Err(_step) = self.announce(SyncMode::Forced, out).await {
            return Err(Fail::No("[SERVERBUG] Internal error.".into()));
        }
        Ok("Move completed.".into())
    }
}
