//! `mailbench`: load generator and corpus generator for comparing `mailserver` with Dovecot.
//!
//! Owns the benchmark side of the project only; it talks to servers over the wire (POP3,
//! RFC 1939; IMAP4rev1, RFC 3501; IDLE, RFC 2177) with its own minimal clients and never
//! links the server code. See `benches/README.md` for how to run it and `benches/compare.sh`
//! for the side-by-side comparison.
//!
//! Modules: `rng` (splitmix64), `corpus` (deterministic Maildir++ corpus), `client` (POP3 and
//! IMAP client, TLS), `workloads` (the load loops and idle-hold), `procstat` (server CPU and
//! memory from /proc), `report` (percentiles, table and JSON output).
#![forbid(unsafe_code)]

mod client;
mod corpus;
mod procstat;
mod report;
mod rng;
mod workloads;
mod zio;

use anyhow::{bail, Result};
use clap::{Args, Parser, Subcommand, ValueEnum};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;
use workloads::{Common, Creds, Kind};

#[derive(Parser)]
#[command(
    name = "mailbench",
    version,
    about = "POP3/IMAP load generator and Maildir corpus generator"
)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Write a deterministic Maildir++ corpus and a passwd-file `DIR/users`.
    Corpus(CorpusArgs),
    /// N clients: USER/PASS, STAT, LIST, RETR every message, QUIT; repeat until the duration.
    Pop3Retrieve(LoadArgs),
    /// LOGIN, SELECT INBOX, FETCH 1:* (FLAGS RFC822.SIZE ENVELOPE), then FETCH n BODY[] for
    /// random n.
    ImapFetch {
        #[command(flatten)]
        load: LoadArgs,
        /// FETCH n BODY[] commands per session before LOGOUT and a new session.
        #[arg(long, default_value_t = 50)]
        per_session: u32,
    },
    /// APPEND messages from the generated corpus.
    ImapAppend {
        #[command(flatten)]
        load: LoadArgs,
        #[arg(long, default_value = "INBOX")]
        mailbox: String,
        /// APPENDs per session before LOGOUT and a new session.
        #[arg(long, default_value_t = 50)]
        per_session: u32,
        /// Distinct messages generated in memory (with --seed) to append.
        #[arg(long, default_value_t = 200)]
        corpus_messages: u32,
    },
    /// LMTP deliveries (RFC 2033): LHLO, then MAIL/RCPT/DATA of --size-byte messages to
    /// USER@--domain (the --user or --users-file-prefix names), --per-session per connection.
    LmtpDeliver {
        #[command(flatten)]
        load: LoadArgs,
        #[arg(long, default_value = "bench.test")]
        domain: String,
        /// Deliveries per LMTP session before QUIT and a new session.
        #[arg(long, default_value_t = 50)]
        per_session: u32,
        /// Message size in bytes.
        #[arg(long, default_value_t = 20_480)]
        size: usize,
        /// Distinct messages generated in memory (with --seed).
        #[arg(long, default_value_t = 32)]
        corpus_messages: u32,
    },
    /// Connect, log in, log out, as fast as possible.
    LoginStorm {
        #[command(flatten)]
        load: LoadArgs,
        #[arg(long, value_enum)]
        proto: Proto,
    },
    /// K (--clients) connections LOGIN, SELECT, IDLE, held --hold seconds; reports the
    /// server's RSS/PSS per connection (needs --server-pid).
    IdleHold {
        #[command(flatten)]
        load: LoadArgs,
        #[arg(long, default_value_t = 10)]
        hold: u64,
        #[arg(long, default_value = "INBOX")]
        mailbox: String,
    },
    /// A few seconds of pop3-retrieve and imap-fetch; exit 1 on any error or no operation.
    Smoke(SmokeArgs),
}

#[derive(Clone, Copy, ValueEnum)]
enum Proto {
    Pop3,
    Imap,
}

#[derive(Args)]
struct CorpusArgs {
    #[arg(long, default_value_t = 1)]
    seed: u64,
    #[arg(long)]
    out: PathBuf,
    #[arg(long, default_value_t = 10)]
    users: u32,
    /// Messages per user INBOX (.Sent gets a tenth, .Archive a fifth).
    #[arg(long, default_value_t = 100)]
    messages: u32,
    #[arg(long, default_value = "bench")]
    prefix: String,
    #[arg(long, default_value = "benchpass")]
    password: String,
}

#[derive(Args, Clone)]
struct LoadArgs {
    #[arg(long, default_value = "127.0.0.1")]
    host: String,
    #[arg(long)]
    port: u16,
    /// Implicit TLS (IMAPS/POP3S); any server certificate is accepted.
    #[arg(long)]
    tls: bool,
    /// IMAP: turn on COMPRESS=DEFLATE (RFC 4978) after every LOGIN.
    #[arg(long)]
    compress: bool,
    /// One account for every client (otherwise --users-file-prefix).
    #[arg(long, conflicts_with = "users_file_prefix")]
    user: Option<String>,
    #[arg(long, default_value = "benchpass")]
    pass: String,
    /// Users PREFIX1..PREFIXN (N = --users, default --clients), client i logs in as user
    /// i mod N + 1.
    #[arg(long)]
    users_file_prefix: Option<String>,
    #[arg(long)]
    users: Option<u32>,
    #[arg(long, default_value_t = 4)]
    clients: u32,
    /// Seconds to run (not used by idle-hold, see --hold).
    #[arg(long, default_value_t = 10.0)]
    duration: f64,
    /// Server PID: report server CPU per operation (its process tree, from /proc).
    #[arg(long)]
    server_pid: Option<u32>,
    /// Print one JSON object on stdout instead of a table.
    #[arg(long)]
    json: bool,
    /// Bound on each network step, in seconds.
    #[arg(long, default_value_t = 30)]
    timeout: u64,
    /// Seed for the random message numbers and appended messages.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Free text copied into the report.
    #[arg(long, default_value = "")]
    label: String,
    /// No progress lines on stderr.
    #[arg(long)]
    quiet: bool,
}

#[derive(Args)]
struct SmokeArgs {
    #[arg(long, default_value = "127.0.0.1")]
    host: String,
    /// POP3 port (pop3-retrieve is skipped without it).
    #[arg(long)]
    pop3_port: Option<u16>,
    /// IMAP port (imap-fetch is skipped without it).
    #[arg(long)]
    imap_port: Option<u16>,
    #[arg(long)]
    tls: bool,
    #[arg(long, default_value = "bench1")]
    user: String,
    #[arg(long, default_value = "benchpass")]
    pass: String,
    #[arg(long, default_value_t = 2.0)]
    duration: f64,
    #[arg(long, default_value_t = 2)]
    clients: u32,
    #[arg(long)]
    json: bool,
}

const MAX_CLIENTS: u32 = 20_000;
const MAX_DURATION: f64 = 24.0 * 3600.0;

fn common(a: &LoadArgs) -> Result<Common> {
    if a.clients == 0 || a.clients > MAX_CLIENTS {
        bail!("--clients must be 1..={MAX_CLIENTS}");
    }
    if !(a.duration > 0.0 && a.duration <= MAX_DURATION) {
        bail!("--duration must be in (0, {MAX_DURATION}] seconds");
    }
    let creds = match (&a.user, &a.users_file_prefix) {
        (Some(u), None) => Creds::One {
            user: u.clone(),
            pass: a.pass.clone(),
        },
        (None, Some(p)) => Creds::Prefix {
            prefix: p.clone(),
            count: a.users.unwrap_or(a.clients).max(1),
            pass: a.pass.clone(),
        },
        _ => bail!("give --user NAME or --users-file-prefix PREFIX"),
    };
    let mut target = client::Target::new(
        &a.host,
        a.port,
        a.tls,
        Duration::from_secs(a.timeout.max(1)),
    );
    target.compress = a.compress;
    Ok(Common {
        target,
        creds,
        clients: a.clients,
        duration: Duration::from_secs_f64(a.duration),
        server_pid: a.server_pid,
        seed: a.seed,
        label: a.label.clone(),
        progress: !a.quiet,
    })
}

fn print(r: &report::Report, json: bool) {
    if json {
        println!("{}", r.to_json());
    } else {
        print!("{}", r.to_table());
    }
}

async fn real_main(cli: Cli) -> Result<ExitCode> {
    match cli.cmd {
        Cmd::Corpus(a) => {
            let spec = corpus::CorpusSpec {
                seed: a.seed,
                users: a.users,
                messages: a.messages,
                prefix: a.prefix,
                password: a.password,
            };
            let out = a.out.clone();
            let s = tokio::task::spawn_blocking(move || corpus::generate(&spec, &out)).await??;
            eprintln!(
                "corpus: {} files, {:.1} MB in {}",
                s.files,
                s.bytes as f64 / 1e6,
                a.out.display()
            );
        }
        Cmd::Pop3Retrieve(a) => print(
            &workloads::run(&common(&a)?, Kind::Pop3Retrieve).await?,
            a.json,
        ),
        Cmd::ImapFetch { load, per_session } => print(
            &workloads::run(
                &common(&load)?,
                Kind::ImapFetch {
                    per_session: per_session.max(1),
                },
            )
            .await?,
            load.json,
        ),
        Cmd::ImapAppend {
            load,
            mailbox,
            per_session,
            corpus_messages,
        } => {
            let messages = Arc::new(corpus::append_messages(
                load.seed,
                corpus_messages.clamp(1, 10_000),
            ));
            let kind = Kind::ImapAppend {
                mailbox,
                per_session: per_session.max(1),
                messages,
            };
            print(&workloads::run(&common(&load)?, kind).await?, load.json)
        }
        Cmd::LmtpDeliver {
            load,
            domain,
            per_session,
            size,
            corpus_messages,
        } => {
            let messages = corpus::lmtp_messages(
                load.seed,
                corpus_messages.clamp(1, 10_000),
                size.clamp(256, 50_000_000),
            );
            let kind = Kind::LmtpDeliver {
                domain,
                per_session: per_session.max(1),
                messages: Arc::new(messages.iter().map(|m| client::dot_stuff(m)).collect()),
            };
            print(&workloads::run(&common(&load)?, kind).await?, load.json)
        }
        Cmd::LoginStorm { load, proto } => {
            let kind = Kind::LoginStorm {
                imap: matches!(proto, Proto::Imap),
            };
            print(&workloads::run(&common(&load)?, kind).await?, load.json)
        }
        Cmd::IdleHold {
            load,
            hold,
            mailbox,
        } => {
            let hold = Duration::from_secs(hold.min(MAX_DURATION as u64));
            print(
                &workloads::idle_hold(&common(&load)?, hold, &mailbox).await?,
                load.json,
            )
        }
        Cmd::Smoke(s) => return smoke(s).await,
    }
    Ok(ExitCode::SUCCESS)
}

/// The CI smoke run: brief pop3-retrieve and imap-fetch; fails on any error or no progress.
async fn smoke(s: SmokeArgs) -> Result<ExitCode> {
    let mut ok = true;
    let mut ran = 0;
    for (kind, port) in [
        (Kind::Pop3Retrieve, s.pop3_port),
        (Kind::ImapFetch { per_session: 5 }, s.imap_port),
    ] {
        let Some(port) = port else { continue };
        ran += 1;
        // POP3 locks the maildrop (ARCHITECTURE.md, "POP3": [IN-USE]): one POP3 client per user.
        let clients = if matches!(kind, Kind::Pop3Retrieve) {
            1
        } else {
            s.clients.max(1)
        };
        let c = Common {
            target: client::Target::new(&s.host, port, s.tls, Duration::from_secs(10)),
            creds: Creds::One {
                user: s.user.clone(),
                pass: s.pass.clone(),
            },
            clients,
            duration: Duration::from_secs_f64(s.duration.clamp(0.1, 60.0)),
            server_pid: None,
            seed: 1,
            label: "smoke".into(),
            progress: false,
        };
        let name = kind.name();
        let r = workloads::run(&c, kind).await?;
        print(&r, s.json);
        let ops = r.get_num("ops").unwrap_or(0.0);
        let errors = r.get_num("errors").unwrap_or(1.0);
        if ops < 1.0 || errors > 0.0 {
            eprintln!("smoke: {name} FAILED (ops={ops}, errors={errors})");
            ok = false;
        } else {
            eprintln!("smoke: {name} ok (ops={ops})");
        }
    }
    if ran == 0 {
        eprintln!("smoke: give --pop3-port and/or --imap-port");
        ok = false;
    }
    Ok(if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("mailbench: cannot start runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match rt.block_on(real_main(cli)) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("mailbench: {e:#}");
            ExitCode::from(2)
        }
    }
}
