//! IDLE (RFC 2177): `+ idling`, then untagged updates whenever the selected mailbox's
//! change counter moves (the driver watches [`crate::session::Session::idle_watch`] and calls
//! `on_wakeup`) and every `imap.idle_check_interval_secs` (`Session::idle_check`: a write
//! on another host sharing the store fires no inotify event), until the client sends `DONE`. Shutdown ends it with `* BYE` (the driver's
//! `on_shutdown`).

use super::super::state::{ImapSession, SyncMode};
use crate::session::{Output, Step};

impl ImapSession {
    pub(crate) async fn idle(&mut self, tag: &str, out: &mut Output) -> Step {
        // Whatever is already pending is announced before idling starts.
        if let Err(step) = self.announce(SyncMode::Forced, out).await {
            return step;
        }
        out.status("+ idling");
        self.expect_done(tag.to_string());
        Step::Idle
    }

    /// The line that ends IDLE: `DONE` (any case); anything else is `BAD` and ends it too.
    pub(crate) async fn idle_line(&mut self, tag: &str, line: &[u8], out: &mut Output) -> Step {
        if line.trim_ascii().eq_ignore_ascii_case(b"DONE") {
            self.complete(tag, Ok("Idle completed.".into()), SyncMode::Forced, out)
                .await
        } else {
            self.complete(
                tag,
                Err(super::super::state::Fail::Bad("Expected DONE.".into())),
                SyncMode::Skip,
                out,
            )
            .await
        }
    }
}
