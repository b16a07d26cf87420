//! The IMAP command table: one row per command with everything the dispatcher needs to know
//! about it — its name, the states it is valid in (RFC 3501 §3, §6), which announcements
//! may come before its tagged completion (§7.4.1), and its handler — as Dovecot's
//! `src/imap/imap-commands.c` keeps name, function and flags in one row.
//!
//! The session ([`super::session`]) looks a decoded command up here by name, checks the
//! row's states in one place, runs the handler and, for handlers that end with a result,
//! writes the tagged completion after the announcements the row's [`SyncMode`] allows.
//! A handler that decides the next step itself (LOGIN, AUTHENTICATE, STARTTLS, IDLE,
//! LOGOUT, FETCH) returns a [`Done::Step`]; the rest return a [`Done::Res`]. The handlers
//! themselves live in `cmd/<family>.rs`.

use std::future::Future;
use std::pin::Pin;

use imap_codec::imap_types::command::CommandBody;

use super::state::{Fail, ImapSession, Res, State, SyncMode};
use crate::session::{Output, Step};

/// How a handler ended.
pub(crate) enum Done {
    /// A result; the dispatcher announces what the row's sync mode allows, then writes
    /// `<tag> OK/NO/BAD`.
    Res(Res),
    /// The handler wrote its own completion (or started something longer); go on with this.
    Step(Step),
}

/// A handler's future: borrows the session and the output for the command's duration.
pub(crate) type Running<'a> = Pin<Box<dyn Future<Output = Done> + Send + 'a>>;

/// A command handler: the session, the tag, the decoded command, the output.
pub(crate) type Handler =
    for<'a> fn(&'a mut ImapSession, &'a str, CommandBody<'static>, &'a mut Output) -> Running<'a>;

/// The session states a command is valid in (RFC 3501 §3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct States {
    pub not_authenticated: bool,
    pub authenticated: bool,
    pub selected: bool,
}

/// §6.1: any state.
const ANY: States = States {
    not_authenticated: true,
    authenticated: true,
    selected: true,
};
/// §6.2: not authenticated only.
const NOT_AUTH: States = States {
    not_authenticated: true,
    authenticated: false,
    selected: false,
};
/// §6.3: authenticated or selected.
const AUTH: States = States {
    not_authenticated: false,
    authenticated: true,
    selected: true,
};
/// §6.4: selected only.
const SELECTED: States = States {
    not_authenticated: false,
    authenticated: false,
    selected: true,
};

/// One row of the table.
pub(crate) struct CommandSpec {
    /// The command name as imap-codec reports it (`UID EXPUNGE` is `EXPUNGE`, `UID FETCH`
    /// is `FETCH`, ...).
    pub name: &'static str,
    /// The states the command is valid in.
    pub states: States,
    /// Which untagged announcements may precede the tagged completion (§7.4.1: none of
    /// EXPUNGE after FETCH, STORE, SEARCH).
    pub sync: SyncMode,
    pub run: Handler,
}

impl CommandSpec {
    /// The row for `body`: its command's, or [`UNKNOWN`] for a command the server does not
    /// implement (imap-codec decodes a few more than we serve).
    pub(crate) fn of(body: &CommandBody<'_>) -> &'static CommandSpec {
        let name = body.name();
        COMMANDS
            .iter()
            .find(|c| c.name == name)
            .unwrap_or(&UNKNOWN)
    }

    /// The announcements this command allows: the row's, except that the UID forms of
    /// FETCH, STORE and SEARCH may announce expunges (RFC 3501 §7.4.1: "UID FETCH, UID
    /// STORE, and UID SEARCH are different commands"; Dovecot announces them there).
    pub(crate) fn sync_for(&self, body: &CommandBody<'_>) -> SyncMode {
        let uid = matches!(
            body,
            CommandBody::Fetch { uid: true, .. }
                | CommandBody::Store { uid: true, .. }
                | CommandBody::Search { uid: true, .. }
                | CommandBody::Sort { uid: true, .. }
                | CommandBody::Thread { uid: true, .. }
        );
        match self.sync {
            SyncMode::NoExpunge if uid => SyncMode::Full,
            s => s,
        }
    }

    /// Whether the command may run in `state`; the `BAD` text if not (Dovecot's wording).
    pub(crate) fn check_state(&self, state: &State) -> Result<(), &'static str> {
        let ok = match state {
            State::NotAuthenticated => self.states.not_authenticated,
            State::Authenticated => self.states.authenticated,
            State::Selected(_) => self.states.selected,
            // Only the any-state commands (which the session never gets to after LOGOUT).
            State::Logout => self.states == ANY,
        };
        if ok {
            return Ok(());
        }
        match state {
            State::NotAuthenticated => Err("Error in IMAP command: Login first."),
            _ if self.states == NOT_AUTH => Err("Error in IMAP command: Already logged in."),
            State::Authenticated => Err("Error in IMAP command: No mailbox selected."),
            _ => Err("Error in IMAP command: Logging out."),
        }
    }
}

/// Builds a [`Handler`]: `$body` is the command's pattern, `$run` the handler's result
/// (a [`Done`]). The row is chosen by the command's name, so a body of another shape never
/// arrives; if one did, it gets the unknown-command `BAD` instead of a panic.
macro_rules! handler {
    (|$s:pat_param, $tag:pat_param, $body:pat, $out:pat_param| $run:expr) => {{
        fn run<'a>(
            s: &'a mut ImapSession,
            tag: &'a str,
            body: CommandBody<'static>,
            out: &'a mut Output,
        ) -> Running<'a> {
            Box::pin(async move {
                #[allow(unused_variables)]
                let ($s, $tag, $out) = (s, tag, out);
                #[allow(irrefutable_let_patterns)]
                let $body = body else {
                    return unknown();
                };
                $run
            })
        }
        run as Handler
    }};
}

fn unknown() -> Done {
    Done::Res(Err(Fail::Bad("Error in IMAP command: Unknown command.".into())))
}

/// A command decoded by imap-codec that the server does not implement.
static UNKNOWN: CommandSpec = CommandSpec {
    name: "",
    states: AUTH,
    sync: SyncMode::Skip,
    run: handler!(|_, _, _body, _| unknown()),
};

use CommandBody as C;
use SyncMode::{Forced, Full, NoExpunge, Skip};

/// The commands, in RFC 3501 §6 order, then the extensions.
static COMMANDS: &[CommandSpec] = &[
    // §6.1 any state.
    CommandSpec {
        name: "CAPABILITY",
        states: ANY,
        sync: Full,
        run: handler!(|s, _, C::Capability, out| Done::Res(s.capability(out))),
    },
    CommandSpec {
        name: "NOOP",
        states: ANY,
        sync: Forced,
        run: handler!(|_, _, C::Noop, _| Done::Res(Ok("NOOP completed.".into()))),
    },
    CommandSpec {
        name: "LOGOUT",
        states: ANY,
        sync: Skip,
        run: handler!(|s, tag, C::Logout, out| Done::Step(s.logout(tag, out))),
    },
    // §6.2 not authenticated.
    CommandSpec {
        name: "STARTTLS",
        states: NOT_AUTH,
        sync: Skip,
        run: handler!(|s, tag, C::StartTLS, out| Done::Step(s.starttls(tag, out))),
    },
    CommandSpec {
        name: "AUTHENTICATE",
        states: NOT_AUTH,
        sync: Skip,
        run: handler!(|s,
                       tag,
                       C::Authenticate {
                           mechanism,
                           initial_response,
                       },
                       out| {
            let ir = initial_response.map(|r| r.declassify().to_vec());
            Done::Step(s.authenticate(tag, &mechanism, ir, out).await)
        }),
    },
    CommandSpec {
        name: "LOGIN",
        states: NOT_AUTH,
        sync: Skip,
        run: handler!(|s, tag, C::Login { username, password }, out| {
            let password = password.declassify();
            Done::Step(s.login(tag, username.as_ref(), password.as_ref(), out).await)
        }),
    },
    // §6.3 authenticated.
    CommandSpec {
        name: "SELECT",
        states: AUTH,
        sync: Skip,
        run: handler!(|s, _, C::Select { mailbox, parameters }, out| {
            Done::Res(s.select(&mailbox, false, &parameters, out).await)
        }),
    },
    CommandSpec {
        name: "EXAMINE",
        states: AUTH,
        sync: Skip,
        run: handler!(|s, _, C::Examine { mailbox, parameters }, out| {
            Done::Res(s.select(&mailbox, true, &parameters, out).await)
        }),
    },
    CommandSpec {
        name: "CREATE",
        states: AUTH,
        sync: Full,
        run: handler!(|s, _, C::Create { mailbox }, _| Done::Res(s.create(&mailbox).await)),
    },
    CommandSpec {
        name: "DELETE",
        states: AUTH,
        sync: Full,
        run: handler!(|s, _, C::Delete { mailbox }, _| Done::Res(s.delete(&mailbox).await)),
    },
    CommandSpec {
        name: "RENAME",
        states: AUTH,
        sync: Full,
        run: handler!(|s, _, C::Rename { from, to }, out| Done::Res(s.rename(&from, &to, out).await)),
    },
    CommandSpec {
        name: "SUBSCRIBE",
        states: AUTH,
        sync: Full,
        run: handler!(|s, _, C::Subscribe { mailbox }, _| {
            Done::Res(s.subscribe(&mailbox, true).await)
        }),
    },
    CommandSpec {
        name: "UNSUBSCRIBE",
        states: AUTH,
        sync: Full,
        run: handler!(|s, _, C::Unsubscribe { mailbox }, _| {
            Done::Res(s.subscribe(&mailbox, false).await)
        }),
    },
    CommandSpec {
        name: "LIST",
        states: AUTH,
        sync: Full,
        run: handler!(|s,
                       _,
                       C::List {
                           reference,
                           mailbox_wildcard,
                       },
                       out| {
            Done::Res(s.list(&reference, &mailbox_wildcard, false, out).await)
        }),
    },
    CommandSpec {
        name: "LSUB",
        states: AUTH,
        sync: Full,
        run: handler!(|s,
                       _,
                       C::Lsub {
                           reference,
                           mailbox_wildcard,
                       },
                       out| {
            Done::Res(s.list(&reference, &mailbox_wildcard, true, out).await)
        }),
    },
    CommandSpec {
        name: "STATUS",
        states: AUTH,
        sync: Full,
        run: handler!(|s,
                       _,
                       C::Status {
                           mailbox,
                           item_names,
                       },
                       out| {
            Done::Res(s.status(&mailbox, &item_names, out).await)
        }),
    },
    CommandSpec {
        name: "APPEND",
        states: AUTH,
        sync: Full,
        run: handler!(|s,
                       _,
                       C::Append {
                           mailbox,
                           flags,
                           date,
                           message,
                       },
                       out| {
            Done::Res(s.append(&mailbox, &flags, date, message, out).await)
        }),
    },
    // §6.4 selected.
    CommandSpec {
        name: "CHECK",
        states: SELECTED,
        sync: Forced,
        run: handler!(|_, _, C::Check, _| Done::Res(Ok("Check completed.".into()))),
    },
    CommandSpec {
        name: "CLOSE",
        states: SELECTED,
        sync: Skip,
        run: handler!(|s, _, C::Close, _| Done::Res(s.close().await)),
    },
    CommandSpec {
        name: "EXPUNGE",
        states: SELECTED,
        sync: Skip,
        run: handler!(|s, _, body, out| match body {
            C::Expunge => Done::Res(s.expunge(None, out).await),
            // RFC 4315 §2.1 UID EXPUNGE.
            C::ExpungeUid { sequence_set } => Done::Res(s.expunge(Some(&sequence_set), out).await),
            _ => unknown(),
        }),
    },
    CommandSpec {
        name: "SEARCH",
        states: SELECTED,
        sync: NoExpunge,
        run: handler!(|s,
                       tag,
                       C::Search {
                           charset,
                           criteria,
                           uid,
                       },
                       out| {
            Done::Res(s.search(tag, charset, criteria, uid, out).await)
        }),
    },
    // RFC 5256 SORT and THREAD (and ESORT, RFC 5267): SEARCH with an order.
    CommandSpec {
        name: "SORT",
        states: SELECTED,
        sync: NoExpunge,
        run: handler!(|s,
                       tag,
                       C::Sort {
                           sort_criteria,
                           charset,
                           search_criteria,
                           uid,
                       },
                       out| {
            Done::Res(
                s.sort(tag, sort_criteria, charset, search_criteria, uid, out)
                    .await,
            )
        }),
    },
    CommandSpec {
        name: "THREAD",
        states: SELECTED,
        sync: NoExpunge,
        run: handler!(|s,
                       _,
                       C::Thread {
                           algorithm,
                           charset,
                           search_criteria,
                           uid,
                       },
                       out| {
            Done::Res(s.thread(algorithm, charset, search_criteria, uid, out).await)
        }),
    },
    CommandSpec {
        name: "FETCH",
        states: SELECTED,
        sync: NoExpunge,
        run: handler!(|s,
                       tag,
                       C::Fetch {
                           sequence_set,
                           macro_or_item_names,
                           uid,
                           modifiers,
                       },
                       out| {
            Done::Step(
                s.fetch(tag, &sequence_set, macro_or_item_names, uid, &modifiers, out)
                    .await,
            )
        }),
    },
    CommandSpec {
        name: "STORE",
        states: SELECTED,
        sync: NoExpunge,
        run: handler!(|s,
                       _,
                       C::Store {
                           sequence_set,
                           kind,
                           response,
                           flags,
                           uid,
                           modifiers,
                       },
                       out| {
            Done::Res(
                s.store(&sequence_set, kind, response, &flags, uid, &modifiers, out)
                    .await,
            )
        }),
    },
    CommandSpec {
        name: "COPY",
        states: SELECTED,
        sync: Full,
        run: handler!(|s,
                       _,
                       C::Copy {
                           sequence_set,
                           mailbox,
                           uid,
                       },
                       _| {
            Done::Res(s.copy(&sequence_set, &mailbox, uid).await)
        }),
    },
    // RFC 6851 MOVE (its own EXPUNGEs are announced by the handler).
    CommandSpec {
        name: "MOVE",
        states: SELECTED,
        sync: Skip,
        run: handler!(|s,
                       _,
                       C::Move {
                           sequence_set,
                           mailbox,
                           uid,
                       },
                       out| {
            Done::Res(s.move_(&sequence_set, &mailbox, uid, out).await)
        }),
    },
    // RFC 3691 UNSELECT.
    CommandSpec {
        name: "UNSELECT",
        states: SELECTED,
        sync: Skip,
        run: handler!(|s, _, C::Unselect, _| Done::Res(s.unselect())),
    },
    // RFC 2177 IDLE.
    CommandSpec {
        name: "IDLE",
        states: AUTH,
        sync: Skip,
        run: handler!(|s, tag, C::Idle, out| Done::Step(s.idle(tag, out).await)),
    },
    // RFC 2971 ID.
    CommandSpec {
        name: "ID",
        states: ANY,
        sync: Full,
        run: handler!(|s, _, C::Id { parameters }, out| {
            Done::Res(s.id(parameters.as_deref(), out))
        }),
    },
    // RFC 5161 ENABLE.
    CommandSpec {
        name: "ENABLE",
        states: AUTH,
        sync: Full,
        run: handler!(|s, _, C::Enable { capabilities }, out| {
            Done::Res(s.enable(capabilities.as_ref(), out))
        }),
    },
    // RFC 4978 COMPRESS (the driver switches after the tagged OK).
    CommandSpec {
        name: "COMPRESS",
        states: AUTH,
        sync: Skip,
        run: handler!(|s, tag, C::Compress { .. }, out| Done::Step(s.compress(tag, out))),
    },
    // RFC 2342 NAMESPACE.
    CommandSpec {
        name: "NAMESPACE",
        states: AUTH,
        sync: Full,
        run: handler!(|s, _, C::Namespace, out| Done::Res(s.namespace(out))),
    },
    // RFC 9208 QUOTA.
    CommandSpec {
        name: "GETQUOTA",
        states: AUTH,
        sync: Full,
        run: handler!(|s, _, C::GetQuota { root }, out| Done::Res(s.get_quota(&root, out).await)),
    },
    CommandSpec {
        name: "GETQUOTAROOT",
        states: AUTH,
        sync: Full,
        run: handler!(|s, _, C::GetQuotaRoot { mailbox }, out| {
            Done::Res(s.get_quota_root(&mailbox, out).await)
        }),
    },
    CommandSpec {
        name: "SETQUOTA",
        states: AUTH,
        sync: Full,
        run: handler!(|s, _, C::SetQuota { .. }, _| Done::Res(s.set_quota())),
    },
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_unique_and_rows_are_found_by_name() {
        for (i, c) in COMMANDS.iter().enumerate() {
            assert!(
                COMMANDS[i + 1..].iter().all(|d| d.name != c.name),
                "{} twice",
                c.name
            );
        }
        assert_eq!(CommandSpec::of(&CommandBody::Noop).name, "NOOP");
        assert_eq!(CommandSpec::of(&CommandBody::Check).sync, Forced);
    }

    #[test]
    fn state_check_uses_dovecots_wording() {
        let of = |b: CommandBody<'static>| CommandSpec::of(&b);
        assert_eq!(of(C::Check).check_state(&State::NotAuthenticated), Err("Error in IMAP command: Login first."));
        assert_eq!(of(C::Check).check_state(&State::Authenticated), Err("Error in IMAP command: No mailbox selected."));
        assert_eq!(of(C::StartTLS).check_state(&State::Authenticated), Err("Error in IMAP command: Already logged in."));
        assert_eq!(of(C::Noop).check_state(&State::NotAuthenticated), Ok(()));
        assert_eq!(of(C::Namespace).check_state(&State::Authenticated), Ok(()));
    }
}
