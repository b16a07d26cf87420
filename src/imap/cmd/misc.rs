//! Commands valid in any state or without mailbox work: CAPABILITY (RFC 3501 §6.1.1),
//! LOGOUT (§6.1.3), ID (RFC 2971), ENABLE (RFC 5161), NAMESPACE (RFC 2342). NOOP and CHECK
//! are answered by the dispatcher (their work is the sync it does).

use imap_codec::imap_types::core::{IString, NString};
use imap_codec::imap_types::extensions::enable::CapabilityEnable;

use super::super::state::{ImapSession, Res, State};
use crate::session::{Output, Step};

impl ImapSession {
    /// `* CAPABILITY ...` for the current state.
    pub(crate) fn capability(&mut self, out: &mut Output) -> Res {
        out.reply(format!("* CAPABILITY {}", self.capabilities()));
        Ok(if matches!(self.state, State::NotAuthenticated) {
            "Pre-login capabilities listed, post-login capabilities have more.".into()
        } else {
            "Capability completed.".into()
        })
    }

    /// `* BYE`, the tagged OK, then close (§6.1.3).
    pub(crate) fn logout(&mut self, tag: &str, out: &mut Output) -> Step {
        out.reply("* BYE Logging out");
        out.status(format!("{tag} OK Logout completed."));
        self.state = State::Logout;
        Step::Close
    }

    /// RFC 2971: the client's parameters are only logged (daemon log); we answer with ours.
    pub(crate) fn id(
        &mut self,
        params: Option<&[(IString<'_>, NString<'_>)]>,
        out: &mut Output,
    ) -> Res {
        if let Some(p) = params {
            let shown: Vec<String> = p
                .iter()
                .take(30)
                .map(|(k, v)| {
                    let v =
                        v.0.as_ref()
                            .map(|s| String::from_utf8_lossy(s.as_ref()).into_owned());
                    format!(
                        "{}={}",
                        String::from_utf8_lossy(k.as_ref()),
                        v.unwrap_or_else(|| "NIL".into())
                    )
                })
                .collect();
            tracing::debug!(peer = %self.env.remote, "IMAP ID: {}", shown.join(", "));
        }
        out.reply(format!(
            "* ID (\"name\" \"mailserver\" \"version\" \"{}\")",
            env!("CARGO_PKG_VERSION")
        ));
        Ok("ID completed.".into())
    }

    /// RFC 5161: turns on CONDSTORE and QRESYNC (RFC 7162 §3.1, §3.2.3; QRESYNC implies
    /// CONDSTORE); `* ENABLED` lists only what this command turned on, in the order asked.
    pub(crate) fn enable(&mut self, caps: &[CapabilityEnable<'_>], out: &mut Output) -> Res {
        let mut line = String::from("* ENABLED");
        for c in caps {
            let name = c.to_string();
            let qresync = name.eq_ignore_ascii_case("QRESYNC");
            if name.eq_ignore_ascii_case("CONDSTORE") && !self.enabled.condstore {
                self.enable_condstore(out);
                line.push_str(" CONDSTORE");
            } else if qresync && !self.enabled.qresync {
                self.enable_condstore(out);
                self.enabled.qresync = true;
                line.push_str(" QRESYNC");
            }
        }
        out.reply(line);
        Ok("Enabled.".into())
    }

    /// RFC 2342: one personal namespace, no prefix, `/` delimiter.
    pub(crate) fn namespace(&mut self, out: &mut Output) -> Res {
        out.reply("* NAMESPACE ((\"\" \"/\")) NIL NIL");
        Ok("Namespace completed.".into())
    }
}
