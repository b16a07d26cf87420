//! QUOTA (RFC 9208): `GETQUOTA`, `GETQUOTAROOT` and a refused `SETQUOTA`. A user has one
//! quota root, `"User quota"` (the name Dovecot's `quota = maildir:User quota` gives it, so
//! clients see the same on either server), over every folder; its resources are `STORAGE`
//! (KiB, §5.1) and `MESSAGE` (§5.2) where a limit is set. A user without limits has no
//! quota root (`* QUOTAROOT INBOX`; `GETQUOTA` is `NO`). `GETQUOTA ""` names the same root
//! (the empty root name of RFC 9208's examples).

use imap_codec::imap_types::core::AString;
use imap_codec::imap_types::mailbox::Mailbox as ImapMailbox;

use super::super::encode::quote::push_string;
use super::super::state::{Fail, ImapSession, Res};
use super::{blocking, mailbox_name, push_mailbox};
use crate::session::Output;
use crate::store::quota::{Limits, Usage};

/// The one quota root's name.
pub(crate) const ROOT: &str = "User quota";

/// `* QUOTA "User quota" (STORAGE u l MESSAGE u l)`: only the resources with a limit.
fn quota_line(limits: Limits, usage: Usage) -> Vec<u8> {
    let mut line = b"* QUOTA ".to_vec();
    push_string(&mut line, ROOT.as_bytes());
    let mut res = Vec::new();
    if limits.bytes != 0 {
        // KiB rounded up, as Dovecot (RFC 9208 §5.1 leaves the rounding open).
        res.push(format!(
            "STORAGE {} {}",
            usage.bytes.div_ceil(1024),
            limits.bytes.div_ceil(1024)
        ));
    }
    if limits.messages != 0 {
        res.push(format!("MESSAGE {} {}", usage.messages, limits.messages));
    }
    line.extend_from_slice(format!(" ({})", res.join(" ")).as_bytes());
    line
}

impl ImapSession {
    async fn quota_now(&self) -> Result<Option<(Limits, Usage)>, Fail> {
        let user = self.user_store()?;
        blocking(move || user.quota()).await
    }

    /// RFC 9208 §4.2 GETQUOTA.
    pub(crate) async fn get_quota(&mut self, root: &AString<'_>, out: &mut Output) -> Res {
        let name: &[u8] = root.as_ref();
        let known = name.is_empty() || name == ROOT.as_bytes();
        match self.quota_now().await? {
            Some((limits, usage)) if known => {
                out.reply(quota_line(limits, usage));
                Ok("Getquota completed.".into())
            }
            _ => Err(Fail::No("Quota root does not exist.".into())),
        }
    }

    /// RFC 9208 §4.3 GETQUOTAROOT: the mailbox must exist.
    pub(crate) async fn get_quota_root(&mut self, m: &ImapMailbox<'_>, out: &mut Output) -> Res {
        let utf8 = self.enabled.utf8_names();
        let name = mailbox_name(m, utf8)?;
        let user = self.user_store()?;
        let n = name.clone();
        blocking(move || user.open(&n).map(|_| ())).await?;
        let quota = self.quota_now().await?;
        let mut line = b"* QUOTAROOT ".to_vec();
        push_mailbox(&mut line, &name, utf8);
        if let Some((limits, usage)) = quota {
            line.push(b' ');
            push_string(&mut line, ROOT.as_bytes());
            out.reply(line);
            out.reply(quota_line(limits, usage));
        } else {
            out.reply(line);
        }
        Ok("Getquotaroot completed.".into())
    }

    /// RFC 9208 §4.1 SETQUOTA: limits are the administrator's (users file, config), as
    /// Dovecot without `quota_set` admin rights.
    pub(crate) fn set_quota(&mut self) -> Res {
        Err(Fail::No("[NOPERM] Quota can be changed only by admin.".into()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quota_lines() {
        let l = |bytes, messages| Limits { bytes, messages };
        let u = |bytes, messages| Usage { bytes, messages };
        assert_eq!(
            quota_line(l(1 << 20, 10), u(5000, 3)),
            b"* QUOTA \"User quota\" (STORAGE 5 1024 MESSAGE 3 10)".to_vec()
        );
        assert_eq!(
            quota_line(l(0, 10), u(5000, 3)),
            b"* QUOTA \"User quota\" (MESSAGE 3 10)".to_vec()
        );
    }
}
