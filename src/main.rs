//! The `mailserver` command line (README.md, "Command line"): `run` (default), `check-config`, `reg`, `passwd`, `deliver`,
//! `protolog`, and the admin commands `who`, `kick`, `mailbox status|list`, `force-resync`, `quota get`.
//!
//! Owns: argument parsing (clap derive; the reg.exe-style `/t /d /f` switches are parsed
//! here by hand, since they are not clap flags), the default config search, tracing setup
//! for the daemon, and the exit codes: 0 ok, 1 invalid configuration or request, 2 usage;
//! `deliver` has `dovecot-lda`'s sysexits codes instead (64 usage, 67 no such user, 75 try
//! again later: `mailserver::deliver`); the admin commands have doveadm's (64 usage, 67
//! unknown user, 69 daemon not running: `mailserver::admin_cli`).

use std::io::{BufRead, IsTerminal};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use mailserver::{escape_controls as esc, protolog_cli, regedit, RegType};

#[derive(Debug, Parser)]
#[command(
    name = "mailserver",
    version,
    about = "POP3 and IMAP4 server on Maildir with Exchange 5.5 (KB Q182504) protocol logging"
)]
struct Cli {
    /// Config file [default: $MAILSERVER_CONFIG, else /etc/mailserver/mailserver.toml if it
    /// exists, else etc/mailserver.toml]
    #[arg(short = 'c', long, global = true, value_name = "PATH")]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the daemon in the foreground (the default).
    Run,
    /// Validate the config, print the effective settings; exit 0 if valid, 1 if not.
    CheckConfig,
    /// reg.exe on the [ParametersSystem] table.
    #[command(subcommand)]
    Reg(RegCommand),
    /// Read a password (twice without echo on a terminal, else one line of stdin), print a
    /// {SCHEME}hash line for the users file.
    Passwd {
        /// ARGON2ID, SHA512-CRYPT or BLF-CRYPT.
        #[arg(long, default_value = "ARGON2ID")]
        scheme: String,
    },
    /// Deliver the message on stdin to a user's Maildir (an LDA, as dovecot-lda); exit 0
    /// delivered, 64 usage, 65 too big, 67 unknown user, 75 temporary failure.
    Deliver {
        /// The user (or an address, resolved as an LMTP recipient).
        #[arg(short = 'd', value_name = "USER")]
        user: String,
        /// The folder (INBOX when absent or missing).
        #[arg(short = 'm', value_name = "FOLDER")]
        folder: Option<String>,
        /// The envelope sender (Return-Path).
        #[arg(short = 'f', value_name = "SENDER")]
        from: Option<String>,
        /// The original recipient address (Delivered-To).
        #[arg(short = 'a', value_name = "ADDRESS")]
        address: Option<String>,
    },
    /// The running daemon's sessions: user, service, remote, since, state, session id (the
    /// protocol log's). Exit 69 if the daemon is not running.
    Who {
        #[command(flatten)]
        json: Json,
    },
    /// End the IMAP and POP3 sessions of USER, or the session ID (POP3 deletions are not
    /// applied). Exit 69 if the daemon is not running.
    Kick {
        #[arg(required_unless_present = "session")]
        user: Option<String>,
        /// The session id (16 hex digits, as `who` and the protocol log show it).
        #[arg(long, value_name = "ID", conflicts_with = "user")]
        session: Option<String>,
        #[command(flatten)]
        json: Json,
    },
    /// Mailbox status and list (as doveadm mailbox).
    #[command(subcommand)]
    Mailbox(MailboxCommand),
    /// Rebuild the caches of USER's folders (or FOLDER) from the files, keeping UIDs and
    /// UIDVALIDITY (as doveadm force-resync).
    ForceResync {
        user: String,
        folder: Option<String>,
        #[command(flatten)]
        json: Json,
    },
    /// Quota (as doveadm quota).
    #[command(subcommand)]
    Quota(QuotaCommand),
    /// Read the protocol logs (L???????.log): list, show, statistics.
    #[command(subcommand)]
    Protolog(ProtologCommand),
}

/// `--json` on every admin command.
#[derive(Debug, clap::Args)]
struct Json {
    /// Print the answer as one JSON object (for scripts).
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Subcommand)]
enum MailboxCommand {
    /// Messages, unseen, recent, size, UIDVALIDITY, UIDNEXT, HIGHESTMODSEQ of the folders
    /// (every folder when none is named); works without the daemon.
    Status {
        user: String,
        folders: Vec<String>,
        #[command(flatten)]
        json: Json,
    },
    /// The user's folders.
    List {
        user: String,
        #[command(flatten)]
        json: Json,
    },
}

#[derive(Debug, Subcommand)]
enum QuotaCommand {
    /// The quota root's usage and limits (as IMAP GETQUOTAROOT).
    Get {
        user: String,
        #[command(flatten)]
        json: Json,
    },
}

#[derive(Debug, Subcommand)]
enum ProtologCommand {
    /// Each log file: service, first and last record time, size, open by the daemon.
    Ls {
        /// Directories [default: the config's POP3, IMAP4 and LMTP log paths].
        dirs: Vec<PathBuf>,
    },
    /// Records of the files in time order, filtered.
    Show {
        #[command(flatten)]
        filter: FilterArgs,
        /// Sessions as conversations (C: client, S: server, * information).
        #[arg(long, conflicts_with = "json")]
        transcript: bool,
        /// One JSON object per record (docs/protolog-record.schema.json).
        #[arg(long)]
        json: bool,
        /// Follow the newest file of each service in DIR across roll-overs.
        #[arg(long, short = 'f')]
        follow: bool,
        /// Files or directories [default: the config's log paths].
        paths: Vec<PathBuf>,
    },
    /// Sessions, logins per user and address, bytes, top commands.
    Stats {
        #[command(flatten)]
        filter: FilterArgs,
        /// One JSON object.
        #[arg(long)]
        json: bool,
        /// How many commands to list.
        #[arg(long, default_value_t = 10)]
        top: usize,
        /// Files or directories [default: the config's log paths].
        paths: Vec<PathBuf>,
    },
}

#[derive(Debug, clap::Args)]
struct FilterArgs {
    /// POP3, IMAP4 (or IMAP), LMTP; may be repeated.
    #[arg(long, value_name = "S")]
    service: Vec<String>,
    /// A session id; may be repeated.
    #[arg(long, value_name = "ID")]
    session: Vec<String>,
    /// The sessions that authenticated (or tried to) as U, whole.
    #[arg(long, value_name = "U")]
    user: Option<String>,
    /// The client address (remote endpoint).
    #[arg(long, value_name = "ADDR")]
    ip: Option<std::net::IpAddr>,
    /// From this time (RFC 3339, or a UTC prefix such as 2026-11-27T16:50).
    #[arg(long, value_name = "T")]
    since: Option<String>,
    /// Before this time.
    #[arg(long, value_name = "T")]
    until: Option<String>,
    /// Events: codes (+-<>*) or names (connect,disconnect,client,server,info).
    #[arg(long, value_name = "EVS")]
    event: Option<String>,
}

#[derive(Debug, Subcommand)]
enum RegCommand {
    /// List the values present (or one VALUE; `/v VALUE` as reg.exe writes it also works).
    Query {
        #[arg(allow_hyphen_values = true, num_args = 0..=2, value_name = "VALUE")]
        args: Vec<String>,
    },
    /// reg add VALUE /t REG_DWORD|REG_SZ|REG_MULTI_SZ /d DATA [/f] (REG_MULTI_SZ: strings separated by \0)
    Add {
        value: String,
        /// /t TYPE, /d DATA, /f
        #[arg(allow_hyphen_values = true, num_args = 0.., value_name = "SWITCHES")]
        switches: Vec<String>,
    },
    /// reg delete VALUE [/f]
    Delete {
        value: String,
        /// /f
        #[arg(allow_hyphen_values = true, num_args = 0.., value_name = "SWITCHES")]
        switches: Vec<String>,
    },
    /// Import values from a .reg file (all or nothing).
    Import { file: PathBuf },
    /// Export the values to a .reg file (UTF-16LE, as regedit writes).
    Export { file: PathBuf },
}

/// The reg.exe switches we accept.
#[derive(Debug, Default)]
struct Switches {
    ty: Option<String>,
    data: Option<String>,
    force: bool,
}

/// Parses `/t X /d Y /f` (case-insensitive, `-` accepted for `/` as reg.exe does).
fn parse_switches(args: &[String], allowed: &[&str]) -> Result<Switches, String> {
    let mut sw = Switches::default();
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let name = a
            .strip_prefix('/')
            .or_else(|| a.strip_prefix('-'))
            .map(str::to_ascii_lowercase);
        let Some(name) = name.filter(|n| allowed.contains(&n.as_str())) else {
            return Err(format!("ERROR: Invalid syntax: unexpected {a:?}."));
        };
        let mut value = || {
            it.next()
                .cloned()
                .ok_or_else(|| format!("ERROR: Invalid syntax: {a} needs a value."))
        };
        match name.as_str() {
            "t" if sw.ty.is_none() => sw.ty = Some(value()?),
            "d" if sw.data.is_none() => sw.data = Some(value()?),
            "f" if !sw.force => sw.force = true,
            _ => return Err(format!("ERROR: Invalid syntax: {a} given twice.")),
        }
    }
    Ok(sw)
}

/// README.md: `$MAILSERVER_CONFIG`, else `/etc/mailserver/mailserver.toml` if it exists, else
/// `etc/mailserver.toml` relative to the working directory.
fn default_config() -> PathBuf {
    if let Some(p) = std::env::var_os("MAILSERVER_CONFIG").filter(|p| !p.is_empty()) {
        return PathBuf::from(p);
    }
    let system = Path::new("/etc/mailserver/mailserver.toml");
    if system.exists() {
        return system.to_path_buf();
    }
    PathBuf::from("etc/mailserver.toml")
}

/// `--config PATH` written after the reg switches lands in the raw switch list (it takes
/// hyphen values); take it out so it works wherever it is written, as clap allows elsewhere.
fn take_config(switches: &mut Vec<String>) -> Result<Option<PathBuf>, String> {
    let mut found = None;
    let mut i = 0;
    while i < switches.len() {
        if let Some(v) = switches[i].strip_prefix("--config=") {
            found = Some(PathBuf::from(v));
            switches.remove(i);
        } else if switches[i] == "--config" {
            if i + 1 >= switches.len() {
                return Err("error: a value is required for '--config <PATH>'".into());
            }
            found = Some(PathBuf::from(switches.remove(i + 1)));
            switches.remove(i);
        } else {
            i += 1;
        }
    }
    Ok(found)
}

fn main() -> ExitCode {
    let mut cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            // `deliver`'s usage errors are EX_USAGE (64), as dovecot-lda's: the MTA bounces.
            let deliver = std::env::args().skip(1).any(|a| a == "deliver");
            let admin = std::env::args()
                .skip(1)
                .any(|a| ADMIN_COMMANDS.contains(&a.as_str()));
            if (deliver || admin) && e.use_stderr() {
                let _ = e.print();
                return ExitCode::from(mailserver::lda_usage_exit());
            }
            e.exit()
        }
    };
    if let Some(Command::Reg(
        RegCommand::Add { switches, .. } | RegCommand::Delete { switches, .. },
    )) = &mut cli.command
    {
        match take_config(switches) {
            Ok(Some(p)) => cli.config = Some(p),
            Ok(None) => {}
            Err(e) => {
                eprintln!("{e}");
                return ExitCode::from(2);
            }
        }
    }
    let config = cli.config.clone().unwrap_or_else(default_config);
    match cli.command.unwrap_or(Command::Run) {
        Command::Run => run(config),
        Command::CheckConfig => check_config(&config),
        Command::Reg(cmd) => reg(&config, cmd),
        Command::Passwd { scheme } => passwd(&scheme),
        Command::Protolog(cmd) => protolog(&config, cmd),
        Command::Who { json } => admin(&config, mailserver::AdminRequest::Who, json),
        Command::Kick {
            user,
            session,
            json,
        } => admin(
            &config,
            mailserver::AdminRequest::Kick { user, session },
            json,
        ),
        Command::Mailbox(MailboxCommand::Status {
            user,
            folders,
            json,
        }) => admin(
            &config,
            mailserver::AdminRequest::MailboxStatus { user, folders },
            json,
        ),
        Command::Mailbox(MailboxCommand::List { user, json }) => admin(
            &config,
            mailserver::AdminRequest::MailboxList { user },
            json,
        ),
        Command::ForceResync { user, folder, json } => admin(
            &config,
            mailserver::AdminRequest::ForceResync { user, folder },
            json,
        ),
        Command::Quota(QuotaCommand::Get { user, json }) => {
            admin(&config, mailserver::AdminRequest::QuotaGet { user }, json)
        }
        Command::Deliver {
            user,
            folder,
            from,
            address,
        } => {
            let args = mailserver::DeliverArgs {
                config,
                user,
                folder,
                from,
                address,
            };
            ExitCode::from(mailserver::deliver(args, &mut std::io::stdin().lock()))
        }
    }
}

/// The admin commands: their usage errors are `EX_USAGE` (64), as doveadm's.
const ADMIN_COMMANDS: [&str; 5] = ["who", "kick", "mailbox", "force-resync", "quota"];

fn admin(config: &Path, req: mailserver::AdminRequest, json: Json) -> ExitCode {
    ExitCode::from(mailserver::admin_cli(config, req, json.json))
}

/// How long the process waits, after the drain, for blocking-pool work still running.
const RUNTIME_SHUTDOWN: std::time::Duration = std::time::Duration::from_secs(1);

fn run(config: PathBuf) -> ExitCode {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        // async-nats logs each connection event at info level beside our own line for
        // it (`cluster: NATS ...`): only its warnings and errors by default.
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,async_nats=warn"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .init();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the runtime: {e}");
            return ExitCode::from(1);
        }
    };
    let result = runtime.block_on(mailserver::run_daemon(config));
    // Dropping the runtime would wait for every blocking-pool task still running (a long
    // SEARCH, a stuck disk): shutdown has already waited `shutdown_grace_secs` for the
    // sessions, so what is left gets a moment to end and the process exits anyway.
    runtime.shutdown_timeout(RUNTIME_SHUTDOWN);
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e:#}");
            ExitCode::from(1)
        }
    }
}

fn check_config(path: &Path) -> ExitCode {
    match mailserver::load_config(path) {
        Ok(cfg) => {
            for w in &cfg.warnings {
                eprintln!("warning: {}", esc(w));
            }
            // Files the daemon reads later: a missing one is worth saying now, but it is not
            // a config error (it may be created before the daemon starts).
            let mut files = vec![("auth.users_file", &cfg.auth.users_file)];
            if let Some(tls) = &cfg.tls {
                files.push(("tls.cert", &tls.cert));
                files.push(("tls.key", &tls.key));
            }
            for (key, file) in files {
                if let Err(e) = std::fs::metadata(file) {
                    let w = format!("{}: {key} {}: {e}", path.display(), file.display());
                    eprintln!("warning: {}", esc(&w));
                }
            }
            if let Ok(users) = mailserver::load_users_file(&cfg.auth.users_file) {
                for w in users.warnings() {
                    eprintln!("warning: {}", esc(&w.to_string()));
                }
            }
            print!("{}", esc(&mailserver::render_effective(&cfg)));
            // The daemon refuses to start without a required marker (README.md, "Shared
            // storage"): say it, and fail, as an invalid config would.
            let (marker, refused) = mailserver::data_marker_text(&cfg.server);
            println!("\n{}", esc(&marker));
            if refused {
                eprintln!("error: {}", esc(marker.trim_start_matches("# ")));
                return ExitCode::FAILURE;
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            for line in e.0.lines() {
                eprintln!("error: {}", esc(line));
            }
            ExitCode::from(1)
        }
    }
}

const VALUE_MISSING: &str = "ERROR: Invalid syntax: /v needs a value name.";

/// The value name: `NAME`, or reg.exe's `/v NAME` (the name then comes from the switches).
/// Returns the name and the remaining switches.
fn value_arg(
    mut first: Vec<String>,
    mut switches: Vec<String>,
) -> Result<(Option<String>, Vec<String>), regedit::RegError> {
    first.append(&mut switches);
    let mut rest = first.into_iter();
    let name = match rest.next() {
        Some(v) if v.eq_ignore_ascii_case("/v") || v.eq_ignore_ascii_case("-v") => Some(
            rest.next()
                .ok_or_else(|| regedit::RegError::Usage(VALUE_MISSING.into()))?,
        ),
        other => other,
    };
    Ok((name, rest.collect()))
}

fn reg(config: &Path, cmd: RegCommand) -> ExitCode {
    use regedit::{Edited, RegError};
    let printed = |r: Result<String, RegError>| {
        r.map(|message| Edited {
            message,
            warnings: Vec::new(),
        })
    };
    let result = match cmd {
        RegCommand::Query { args } => {
            value_arg(args, Vec::new()).and_then(|(value, rest)| match rest.first() {
                Some(extra) => Err(RegError::Usage(format!(
                    "ERROR: Invalid syntax: unexpected {extra:?}."
                ))),
                None => printed(regedit::query(config, value.as_deref())),
            })
        }
        RegCommand::Add { value, switches } => {
            value_arg(vec![value], switches).and_then(|(value, switches)| {
                let value = value.ok_or_else(|| RegError::Usage(VALUE_MISSING.into()))?;
                let sw = parse_switches(&switches, &["t", "d", "f"]).map_err(RegError::Usage)?;
                // reg.exe's default type is REG_SZ and its default data is empty.
                let ty_name = sw.ty.as_deref().unwrap_or("REG_SZ");
                let ty = RegType::parse(ty_name).ok_or_else(|| {
                    RegError::Invalid(format!(
                        "ERROR: Unsupported type {ty_name}: use REG_DWORD, REG_SZ or REG_MULTI_SZ."
                    ))
                })?;
                let data = regedit::parse_data(ty, sw.data.as_deref().unwrap_or(""))?;
                regedit::add(config, &value, data, sw.force)
            })
        }
        RegCommand::Delete { value, switches } => {
            value_arg(vec![value], switches).and_then(|(value, switches)| {
                let value = value.ok_or_else(|| RegError::Usage(VALUE_MISSING.into()))?;
                let sw = parse_switches(&switches, &["f"]).map_err(RegError::Usage)?;
                regedit::delete(config, &value, sw.force)
            })
        }
        RegCommand::Import { file } => regedit::import(config, &file),
        RegCommand::Export { file } => printed(regedit::export(config, &file)),
    };
    match result {
        Ok(done) => {
            for w in &done.warnings {
                eprintln!("warning: {}", esc(&w.to_string()));
            }
            if done.message.ends_with('\n') {
                print!("{}", esc(&done.message));
            } else {
                println!("{}", esc(&done.message));
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("{}", esc(&e.to_string()));
            ExitCode::from(e.exit_code())
        }
    }
}

impl FilterArgs {
    fn filter(self) -> Result<protolog_cli::Filter, String> {
        let time = |t: Option<String>| t.map(|t| protolog_cli::parse_time(&t)).transpose();
        Ok(protolog_cli::Filter {
            services: self
                .service
                .iter()
                .map(|s| protolog_cli::service_name(s))
                .collect(),
            sessions: self.session,
            user: self.user,
            ip: self.ip.map(|ip| ip.to_canonical()),
            since: time(self.since)?,
            until: time(self.until)?,
            events: self
                .event
                .map(|e| protolog_cli::parse_events(&e))
                .transpose()?,
        })
    }
}

/// The directories to read: those given, else the config's protocol-log paths.
fn log_paths(config: &Path, given: Vec<PathBuf>) -> Result<Vec<PathBuf>, String> {
    if !given.is_empty() {
        return Ok(given);
    }
    match mailserver::load_config(config) {
        Ok(cfg) => Ok(protolog_cli::config_dirs(&cfg)
            .into_iter()
            .filter(|d| d.is_dir())
            .collect()),
        Err(e) => Err(e.0),
    }
}

fn protolog(config: &Path, cmd: ProtologCommand) -> ExitCode {
    use std::io::Write;
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::with_capacity(256 * 1024, stdout.lock());
    let result: Result<u64, String> = (|| match cmd {
        ProtologCommand::Ls { dirs } => {
            for dir in log_paths(config, dirs)? {
                let text =
                    protolog_cli::ls_text(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
                out.write_all(text.as_bytes()).map_err(|e| e.to_string())?;
            }
            Ok(0)
        }
        ProtologCommand::Show {
            filter,
            transcript,
            json,
            follow,
            paths,
        } => {
            let opts = protolog_cli::ShowOptions {
                paths: log_paths(config, paths)?,
                filter: filter.filter()?,
                format: if transcript {
                    protolog_cli::Format::Transcript
                } else if json {
                    protolog_cli::Format::Json
                } else {
                    protolog_cli::Format::Csv
                },
                follow,
            };
            protolog_cli::show(&opts, &mut out).map_err(|e| e.to_string())
        }
        ProtologCommand::Stats {
            filter,
            json,
            top,
            paths,
        } => {
            let paths = log_paths(config, paths)?;
            let (st, bad) =
                protolog_cli::stats(&paths, &filter.filter()?).map_err(|e| e.to_string())?;
            let text = if json { st.json(top) } else { st.text(top) };
            out.write_all(text.as_bytes()).map_err(|e| e.to_string())?;
            Ok(bad)
        }
    })();
    let flushed = out.flush();
    match result {
        Ok(bad) => {
            if bad > 0 {
                eprintln!("warning: {bad} lines were not records and were skipped");
            }
            if let Err(e) = flushed {
                if e.kind() != std::io::ErrorKind::BrokenPipe {
                    eprintln!("error: {e}");
                    return ExitCode::from(1);
                }
            }
            ExitCode::SUCCESS
        }
        // Output piped to `head`: not an error.
        Err(e) if e.contains("Broken pipe") => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {}", esc(&e));
            ExitCode::from(1)
        }
    }
}

fn passwd(scheme: &str) -> ExitCode {
    let line = if std::io::stdin().is_terminal() {
        // As `doveadm pw` does: twice, not echoed (the terminal's echo is restored after).
        let ask = |prompt: &str| {
            rpassword::prompt_password(prompt).map_err(|e| {
                eprintln!("error: cannot read the password from the terminal: {e}");
                ExitCode::from(1)
            })
        };
        let first = match ask("Enter new password: ") {
            Ok(p) => p,
            Err(code) => return code,
        };
        let again = match ask("Retype new password: ") {
            Ok(p) => p,
            Err(code) => return code,
        };
        if first != again {
            eprintln!("error: passwords don't match");
            return ExitCode::from(1);
        }
        first
    } else {
        let mut line = String::new();
        if let Err(e) = std::io::stdin().lock().read_line(&mut line) {
            eprintln!("error: cannot read the password from stdin: {e}");
            return ExitCode::from(1);
        }
        line
    };
    let password = line.strip_suffix('\n').unwrap_or(&line);
    let password = password.strip_suffix('\r').unwrap_or(password);
    if password.is_empty() {
        eprintln!("error: empty password");
        return ExitCode::from(1);
    }
    match mailserver::hash_password(&scheme.to_ascii_uppercase(), password) {
        Ok(hash) => {
            println!("{hash}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(1)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(args: &[&str]) -> Vec<String> {
        args.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn reg_switches_parse_as_written() {
        let sw =
            parse_switches(&v(&["/t", "REG_DWORD", "/d", "5", "/f"]), &["t", "d", "f"]).unwrap();
        assert_eq!(sw.ty.as_deref(), Some("REG_DWORD"));
        assert_eq!(sw.data.as_deref(), Some("5"));
        assert!(sw.force);
        // any order, either case, '-' for '/'
        let sw =
            parse_switches(&v(&["/F", "-D", "/x y", "-T", "REG_SZ"]), &["t", "d", "f"]).unwrap();
        assert_eq!(sw.data.as_deref(), Some("/x y"));
        assert_eq!(sw.ty.as_deref(), Some("REG_SZ"));
        assert!(sw.force);
        assert!(parse_switches(&v(&["/t"]), &["t"]).is_err());
        assert!(parse_switches(&v(&["/f", "/f"]), &["f"]).is_err());
        assert!(parse_switches(&v(&["/d", "1"]), &["f"]).is_err());
        assert!(parse_switches(&v(&["stray"]), &["f"]).is_err());
    }

    #[test]
    fn config_option_is_taken_out_of_switches() {
        let mut sw = v(&["/f", "--config", "a.toml", "/d", "1"]);
        assert_eq!(take_config(&mut sw).unwrap(), Some(PathBuf::from("a.toml")));
        assert_eq!(sw, v(&["/f", "/d", "1"]));
        let mut sw = v(&["--config=b.toml"]);
        assert_eq!(take_config(&mut sw).unwrap(), Some(PathBuf::from("b.toml")));
        assert!(sw.is_empty());
        assert!(take_config(&mut v(&["/f", "--config"])).is_err());
    }

    #[test]
    fn cli_definition_is_consistent() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
    }
}
