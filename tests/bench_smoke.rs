//! Keeps the benchmark harness honest: `mailbench corpus` builds a deterministic Maildir++
//! corpus, the real daemon serves it, and `mailbench smoke` runs its workloads for a couple of
//! seconds with zero errors (POP3 and IMAP, plain and implicit TLS), and `lmtp-deliver`'s
//! deliveries all land in the Maildir. Nothing here measures or asserts speed (that is BENCHMARKS.md).

mod common;

use std::process::Command;

fn mailbench() -> Command {
    Command::new(env!("CARGO_BIN_EXE_mailbench"))
}

#[test]
fn mailbench_smoke_against_the_daemon_on_a_generated_corpus() {
    let dir = tempfile::tempdir().unwrap();
    let corpus = dir.path().join("corpus");
    let st = mailbench()
        .args([
            "corpus",
            "--seed",
            "7",
            "--users",
            "2",
            "--messages",
            "20",
            "--out",
        ])
        .arg(&corpus)
        .status()
        .unwrap();
    assert!(st.success());
    let mail = dir.path().join("data").join("mail");
    std::fs::create_dir_all(mail.parent().unwrap()).unwrap();
    std::fs::rename(&corpus, &mail).unwrap();
    std::fs::rename(mail.join("users"), dir.path().join("users")).unwrap();
    let config = dir.path().join("mailserver.toml");
    std::fs::write(
        &config,
        common::config_text(
            dir.path(),
            &common::Options {
                extra: "[lmtp]\nlisten = [\"127.0.0.1:0\"]\n".into(),
                ..common::Options::default()
            },
        ),
    )
    .unwrap();
    let d = common::Daemon::spawn(dir, config, &[]);

    let pop3 = d.pop3.unwrap().port().to_string();
    for tls in [false, true] {
        let port = if tls {
            d.pop3s.unwrap().port().to_string()
        } else {
            pop3.clone()
        };
        let mut cmd = mailbench();
        cmd.args([
            "smoke",
            "--pop3-port",
            &port,
            "--user",
            "bench1",
            "--duration",
            "1",
        ]);
        if tls {
            cmd.arg("--tls");
        }
        let out = cmd.output().unwrap();
        assert!(
            out.status.success(),
            "smoke (tls={tls}) failed:\n{}\n{}\ndaemon log:\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr),
            d.log_text()
        );
    }

    // lmtp-deliver: every delivery it counts is one more message in bench1's INBOX.
    let out = mailbench()
        .args(["lmtp-deliver", "--port"])
        .arg(d.lmtp.unwrap().port().to_string())
        .args([
            "--user",
            "bench1",
            "--clients",
            "2",
            "--per-session",
            "3",
            "--size",
            "2000",
            "--duration",
            "1",
            "--json",
            "--quiet",
        ])
        .output()
        .unwrap();
    let json = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(out.status.success(), "{json}\n{}", d.log_text());
    let num = |key: &str| -> u64 {
        let at = json
            .find(&format!("\"{key}\":"))
            .unwrap_or_else(|| panic!("{json}"));
        json[at + key.len() + 3..]
            .split(|c: char| !c.is_ascii_digit())
            .next()
            .unwrap()
            .parse()
            .unwrap()
    };
    assert_eq!(num("errors"), 0, "{json}");
    let ops = num("ops");
    assert!(ops > 0, "{json}");
    let inbox = d.data_dir().join("mail/bench1");
    let delivered = ["new", "cur"]
        .iter()
        .flat_map(|sub| std::fs::read_dir(inbox.join(sub)).unwrap())
        .filter(|e| {
            let text = std::fs::read_to_string(e.as_ref().unwrap().path()).unwrap();
            text.contains("Subject: lmtp-deliver ") && text.len() > 2000
        })
        .count() as u64;
    assert_eq!(delivered, ops, "{json}");
}
