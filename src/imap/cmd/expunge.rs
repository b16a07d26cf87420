//! EXPUNGE (RFC 3501 §6.4.3), UID EXPUNGE (RFC 4315 §2.1), CLOSE (§6.4.2), UNSELECT
//! (RFC 3691).

use imap_codec::imap_types::sequence::SequenceSet;

use super::super::state::{Fail, ImapSession, Res, State, SyncMode};
use super::{blocking, resolve};
use crate::session::Output;

impl ImapSession {
    /// Removes `\Deleted` messages (only among `uids` for UID EXPUNGE), then announces every
    /// expunge (ours and others') as `* n EXPUNGE`.
    pub(crate) async fn expunge(&mut self, uids: Option<&SequenceSet>, out: &mut Output) -> Res {
        let sel = self.selected()?;
        if sel.read_only {
            // As Dovecot: nothing is expunged, what others changed is told, and the
            // command does not fail (as STORE in a read-only mailbox).
            self.announce(SyncMode::Forced, out)
                .await
                .map_err(|_| Fail::internal())?;
            return Ok("Expunge ignored with read-only mailbox.".into());
        }
        let only: Option<Vec<u32>> = uids.map(|set| {
            resolve(&sel.view, set, true)
                .into_iter()
                .map(|i| sel.view.messages[i].uid)
                .collect()
        });
        if only.as_ref().is_some_and(|u| u.is_empty()) {
            self.announce(SyncMode::Forced, out)
                .await
                .map_err(|_| Fail::internal())?;
            return Ok(self.with_highest_modseq("Expunge completed."));
        }
        let mb = sel.mailbox.clone();
        blocking(move || mb.expunge(only.as_deref())).await?;
        self.announce(SyncMode::Forced, out)
            .await
            .map_err(|_| Fail::internal())?;
        Ok(self.with_highest_modseq("Expunge completed."))
    }

    /// The completion of a command that expunged: with QRESYNC on, the HIGHESTMODSEQ
    /// after it (RFC 7162 §3.2.10, as Dovecot; EXPUNGE, UID EXPUNGE, MOVE).
    pub(crate) fn with_highest_modseq(&self, text: &str) -> String {
        match &self.state {
            State::Selected(sel) if self.enabled.qresync => format!(
                "[HIGHESTMODSEQ {}] {text}",
                sel.view.highest_modseq.max(1)
            ),
            _ => text.into(),
        }
    }

    /// Expunges silently (unless read-only) and leaves the Selected state.
    pub(crate) async fn close(&mut self) -> Res {
        let sel = self.selected()?;
        let (read_only, mb) = (sel.read_only, sel.mailbox.clone());
        self.state = State::Authenticated;
        if !read_only {
            blocking(move || mb.expunge(None)).await?;
        }
        Ok("Close completed.".into())
    }

    pub(crate) fn unselect(&mut self) -> Res {
        self.selected()?;
        self.state = State::Authenticated;
        Ok("Unselect completed.".into())
    }
}


