//! Commands valid in any state or without mailbox work: CAPABILITY (RFC 3501 §6.1.1),
//! LOGOUT (§6.1.3), ID (RFC 2971), ENABLE (RFC 5161), NAMESPACE (RFC 2342), COMPRESS
//! (RFC 4978). NOOP and CHECK are answered by the dispatcher (their work is the sync it
//! does).

use imap_codec::imap_types::core::{IString, NString};
use imap_codec::imap_types::extensions::enable::CapabilityEnable;

use super::super::state::{ImapSession, Res, State};
use crate::session::{Output, Step};

/// RFC 2971 §3.3: at most 30 field-value pairs, field names of at most 30 octets, values of
/// at most 1024.
const ID_MAX_PAIRS: usize = 30;
const ID_MAX_FIELD: usize = 30;
const ID_MAX_VALUE: usize = 1024;

/// `s` cut at `max` octets, control characters and non-ASCII as `\xNN` (and `\` as
/// `\\`), for the daemon log.
fn escaped(s: &[u8], max: usize) -> String {
    let cut = &s[..s.len().min(max)];
    let mut out = cut.escape_ascii().to_string();
    if s.len() > max {
        out.push_str("...");
    }
    out
}

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

    /// RFC 2971: the client's parameters are only logged (daemon log, debug level); we
    /// answer with ours. As RFC 2971 §3.3 bounds them: at most [`ID_MAX_PAIRS`] pairs are
    /// logged, each field name cut at 30 octets and each value at 1024; every octet
    /// outside printable ASCII is escaped (`\xNN`), so a client cannot forge log lines.
    /// More or longer pairs are accepted (as Dovecot does), just not logged.
    pub(crate) fn id(
        &mut self,
        params: Option<&[(IString<'_>, NString<'_>)]>,
        out: &mut Output,
    ) -> Res {
        if let Some(p) = params {
            let shown: Vec<String> = p
                .iter()
                .take(ID_MAX_PAIRS)
                .map(|(k, v)| {
                    let v = v.0.as_ref().map_or_else(
                        || "NIL".to_string(),
                        |s| escaped(s.as_ref(), ID_MAX_VALUE),
                    );
                    format!("{}={v}", escaped(k.as_ref(), ID_MAX_FIELD))
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

    /// RFC 4978: the tagged OK goes out plain, then the driver compresses both directions
    /// ([`Step::Compress`]). Only DEFLATE exists (imap-codec refuses other names: `BAD`); a
    /// second COMPRESS gets `NO [COMPRESSIONACTIVE]` in Dovecot's words.
    pub(crate) fn compress(&mut self, tag: &str, out: &mut Output) -> Step {
        self.bad = 0;
        if self.compressed {
            out.status(format!(
                "{tag} NO [COMPRESSIONACTIVE] COMPRESSION=DEFLATE already enabled"
            ));
            return Step::ReadLine;
        }
        self.compressed = true;
        out.status(format!("{tag} OK Begin compression."));
        Step::Compress
    }

    /// RFC 5161: turns on CONDSTORE and QRESYNC (RFC 7162 §3.1, §3.2.3; QRESYNC implies
    /// CONDSTORE), UTF8=ACCEPT (RFC 6855 §3) and IMAP4rev2 (RFC 9051 §6.3.1, unless
    /// `imap.imap4rev2` is off); `* ENABLED` lists only what this command turned on, in the
    /// order asked.
    pub(crate) fn enable(&mut self, caps: &[CapabilityEnable<'_>], out: &mut Output) -> Res {
        let mut line = String::from("* ENABLED");
        let rev2_allowed = self.env.snapshot.config.imap_protocol.imap4rev2;
        for c in caps {
            let name = c.to_string();
            let is = |n: &str| name.eq_ignore_ascii_case(n);
            if is("CONDSTORE") && !self.enabled.condstore {
                self.enable_condstore(out);
                line.push_str(" CONDSTORE");
            } else if is("QRESYNC") && !self.enabled.qresync {
                self.enable_condstore(out);
                self.enabled.qresync = true;
                line.push_str(" QRESYNC");
            } else if is("UTF8=ACCEPT") && !self.enabled.utf8 {
                self.enabled.utf8 = true;
                line.push_str(" UTF8=ACCEPT");
            } else if is("IMAP4rev2") && rev2_allowed && !self.enabled.rev2 {
                self.enabled.rev2 = true;
                if let State::Selected(sel) = &mut self.state {
                    super::super::state::forget_recent(&mut sel.view);
                }
                line.push_str(" IMAP4rev2");
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn id_values_are_escaped_and_bounded() {
        assert_eq!(escaped(b"Thunderbird", 1024), "Thunderbird");
        assert_eq!(escaped(b"a\r\nb\x1b\xc3\xa9\\", 1024), "a\\r\\nb\\x1b\\xc3\\xa9\\\\");
        assert_eq!(escaped(&[b'x'; 2000], 1024).len(), 1027);
    }
}
