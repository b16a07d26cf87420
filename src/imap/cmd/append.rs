//! APPEND (RFC 3501 §6.3.11) with UIDPLUS `[APPENDUID]` (RFC 4315 §3). The message size is
//! bounded before its literal is read (`[TOOBIG]`, in the session's literal check).
//!
//! A message literal over [`STREAM_MIN`] is not assembled with its command: the session
//! recognises the APPEND from the command so far ([`decode::append_head`]) and calls
//! [`ImapSession::append_stream_begin`], which opens the mailbox and begins the save in the
//! store (`Mailbox::save_begin`: a file in the mailbox's `tmp/`) before the literal is read —
//! a missing mailbox is answered `NO [TRYCREATE]` before the `+` of a synchronizing literal,
//! as Dovecot does. Each piece the driver reads goes to the store on the blocking pool
//! ([`ImapSession::append_stream_piece`]); after the literal, the rest of the command line
//! is decoded with the head ([`ImapSession::append_stream_end`]) and the store saves the
//! message (`Mailbox::save_finish`). A failure at any step leaves nothing in the store.

use imap_codec::imap_types::command::CommandBody;
use imap_codec::imap_types::datetime::DateTime;
use imap_codec::imap_types::extensions::binary::LiteralOrLiteral8;
use imap_codec::imap_types::flag::Flag;
use imap_codec::imap_types::mailbox::Mailbox as ImapMailbox;

use super::super::commands::CommandSpec;
use super::super::decode::{self, literal_at_end};
use super::super::state::{AppendUpload, Fail, ImapSession, Input, Res};
use super::{blocking, mailbox_name, split_flags, trycreate};
use crate::session::{Output, Step};
use crate::store::{Flags, Mailbox, NewMessage};

/// Message literals larger than this are streamed into the store; smaller ones are decoded
/// with their command, as any other literal.
pub(crate) const STREAM_MIN: u64 = 64 * 1024;

/// A streamed message literal is read from the driver in pieces of at most this size.
pub(crate) const STREAM_PIECE: u64 = 64 * 1024;

/// How the message reaches the store.
enum Message<'a> {
    /// The whole message, decoded with its command.
    Bytes(&'a [u8]),
    /// Already written into the store by a streamed APPEND.
    Streamed(Box<dyn NewMessage>),
}

impl ImapSession {
    pub(crate) async fn append(
        &mut self,
        m: &ImapMailbox<'_>,
        flags: &[Flag<'_>],
        date: Option<DateTime>,
        message: LiteralOrLiteral8<'_>,
        out: &mut Output,
    ) -> Res {
        let _ = out;
        let name = mailbox_name(m, self.enabled.utf8_names())?;
        let data: &[u8] = match &message {
            LiteralOrLiteral8::Literal(l) => l.data(),
            LiteralOrLiteral8::Literal8(l) => &l.data,
        };
        if data.is_empty() {
            // As Dovecot: an empty message is no message.
            return Err(Fail::No("Can't save a zero byte message.".into()));
        }
        if data.len() as u64 > self.env.snapshot.config.limits.max_message_bytes {
            return Err(Fail::No("[TOOBIG] Message is too large.".into()));
        }
        let user = self.user_store()?;
        let opened = name.clone();
        let mailbox = blocking(move || user.open(&opened))
            .await
            .map_err(trycreate)?;
        self.save(name, mailbox, Message::Bytes(data), flags, date)
            .await
    }

    /// Saves the message into `mailbox` (the store's `name`) with its flags and
    /// INTERNALDATE; the text of the tagged `OK`.
    async fn save(
        &mut self,
        name: String,
        mailbox: std::sync::Arc<dyn Mailbox>,
        message: Message<'_>,
        flags: &[Flag<'_>],
        date: Option<DateTime>,
    ) -> Res {
        let (sys, keywords): (Flags, Vec<String>) = split_flags(flags)?;
        let when = date.map(|d| std::time::SystemTime::from(*d.as_ref()));
        let user = self.user_store()?;
        // UIDVALIDITY is read before the save: once the message is saved nothing may fail
        // the command, or a client that retries has it twice.
        let (validity, uid) = match message {
            Message::Bytes(data) => {
                let data = data.to_vec();
                blocking(move || {
                    let validity = user.status(&name)?.uid_validity;
                    let uid = mailbox.append(&data, sys, &keywords, when)?;
                    Ok((validity, uid))
                })
                .await
            }
            Message::Streamed(msg) => {
                blocking(move || {
                    let validity = user.status(&name)?.uid_validity;
                    let uid = mailbox.save_finish(msg, sys, &keywords, when)?;
                    Ok((validity, uid))
                })
                .await
            }
        }
        .map_err(trycreate)?;
        Ok(format!("[APPENDUID {validity} {uid}] Append completed."))
    }

    /// The command so far (`head`, decoded as `cmd`) is an APPEND whose message literal of
    /// `len` octets comes next: opens the mailbox and begins the save, then asks for the
    /// literal (`+ OK` first if it is synchronizing). Refused (a bad name, a missing
    /// mailbox), the command is answered now: a synchronizing literal is then never sent,
    /// a non-synchronizing one is skipped.
    pub(crate) async fn append_stream_begin(
        &mut self,
        head: Vec<u8>,
        cmd: imap_codec::imap_types::command::Command<'static>,
        len: u64,
        sync: bool,
        out: &mut Output,
    ) -> Step {
        let tag = cmd.tag.inner().to_string();
        let spec = CommandSpec::of(&cmd.body);
        let CommandBody::Append { mailbox, .. } = cmd.body else {
            return self.bad(&tag, "Error in IMAP command: unknown command", out);
        };
        let begun = async {
            let name = mailbox_name(&mailbox, self.enabled.utf8_names())?;
            let user = self.user_store()?;
            blocking(move || {
                let mb = user.open(&name)?;
                let msg = mb.save_begin()?;
                Ok((name, mb, msg))
            })
            .await
            .map_err(trycreate)
        };
        match begun.await {
            Ok((name, mailbox, msg)) => {
                if sync {
                    // RFC 3501 §7.5: the client waits for this before sending the data.
                    out.status("+ OK");
                }
                self.input = Input::Append(Box::new(AppendUpload {
                    tag,
                    head,
                    total: len,
                    remaining: len,
                    nul: false,
                    name,
                    mailbox,
                    msg: Some(msg),
                    failed: None,
                }));
                Step::ReadLiteral(len.min(STREAM_PIECE) as usize)
            }
            Err(fail) => {
                let step = self.complete(&tag, Err(fail), spec.sync, out).await;
                match step {
                    Step::ReadLine if !sync => self.skip(len),
                    step => step,
                }
            }
        }
    }

    /// One piece of a streamed message literal: written to the store on the blocking pool
    /// (after a failure, dropped); then the next piece, or the rest of the command line.
    pub(crate) async fn append_stream_piece(
        &mut self,
        mut up: Box<AppendUpload>,
        data: Vec<u8>,
    ) -> Step {
        up.remaining = up.remaining.saturating_sub(data.len() as u64);
        up.nul = up.nul || memchr::memchr(0, &data).is_some();
        if let Some(mut msg) = up.msg.take() {
            // On failure the message is dropped (its file removed) on the blocking pool.
            let written = tokio::task::spawn_blocking(move || msg.write(&data).map(|()| msg));
            match written.await {
                Ok(Ok(msg)) => up.msg = Some(msg),
                Ok(Err(e)) => up.failed = Some(e.into()),
                Err(e) => {
                    tracing::error!("IMAP store task failed: {e}");
                    up.failed = Some(Fail::internal());
                }
            }
        }
        let step = match up.remaining {
            0 => Step::ReadLine,
            n => Step::ReadLiteral(n.min(STREAM_PIECE) as usize),
        };
        self.input = Input::Append(up);
        step
    }

    /// The rest of a streamed APPEND's command line (`tail`, after the message): decoded
    /// with the head as the whole command would have been; then the message is saved, or
    /// the failure answered (the message discarded).
    pub(crate) async fn append_stream_end(
        &mut self,
        mut up: Box<AppendUpload>,
        tail: &[u8],
        out: &mut Output,
    ) -> Step {
        let cmd = match decode::parse_streamed_append(&up.head, up.nul, tail) {
            Ok(cmd) => cmd,
            Err(e) => {
                let tag = std::mem::take(&mut up.tag);
                drop(up);
                let step = self.bad(&tag, e.text, out);
                // Another literal after the message (no MULTIAPPEND here): skip its data.
                return match (step, literal_at_end(tail)) {
                    (Step::ReadLine, Some((len, false))) => self.skip(len),
                    (step, _) => step,
                };
            }
        };
        let spec = CommandSpec::of(&cmd.body);
        let CommandBody::Append { flags, date, .. } = cmd.body else {
            return self.bad(&up.tag, "Error in IMAP command: unknown command", out);
        };
        let tag = std::mem::take(&mut up.tag);
        let res = match (up.failed.take(), up.msg.take()) {
            (Some(fail), _) => Err(fail),
            (None, Some(msg)) => {
                let (name, mailbox) = (up.name.clone(), up.mailbox.clone());
                self.save(name, mailbox, Message::Streamed(msg), &flags, date)
                    .await
            }
            (None, None) => Err(Fail::internal()),
        };
        drop(up);
        self.complete(&tag, res, spec.sync, out).await
    }
}
