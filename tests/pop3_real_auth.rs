//! POP3 through `conn::serve` with the daemon's real `Users` (passwd-file, ARCHITECTURE.md
//! "Users and authentication"): USER/PASS
//! against `{PLAIN}` and `{SHA512-CRYPT}` entries, APOP only for `{PLAIN}`, identical failures.
//!
//! The users file here is this test's own (not `pop3_common::users_text`); mail is in the
//! real Maildir store.

mod pop3_common;

use md5::{Digest, Md5};
use pop3_common::*;

const USERS: &str = "# test users\n\
bob:{PLAIN}secret\n\
carol:{SHA512-CRYPT}$6$abcdefgh12345678$bwDMF6gv1WO15PCyaD7RKKz35179yhgQoWXf/P/qTiQCFI419g09LrH1KbBPY9IOv2NJ5YtvE3WX9HxadsNdR.\n";

#[tokio::test]
async fn real_passwd_file_users() {
    let s = Server::start(Options {
        users_file: USERS.into(),
        ..Options::default()
    })
    .await;
    s.deliver("bob", "Subject: x\n\nhi\n");
    s.deliver("carol", "Subject: y\n\nho\n");

    let mut c = s.connect().await;
    c.login("carol", "pw2").await;
    c.cmd("STAT", "+OK 1 ").await;
    c.cmd("QUIT", "+OK").await;

    let mut c = s.connect().await;
    let g = c.expect("+OK").await;
    let apop = |greeting: &str, pw: &str| {
        let ts = &greeting[greeting.find('<').unwrap()..];
        let mut m = Md5::new();
        m.update(ts.as_bytes());
        m.update(pw.as_bytes());
        m.finalize()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect::<String>()
    };
    let wrong = c
        .cmd(&format!("APOP carol {}", apop(&g, "pw2")), "-ERR")
        .await;
    let unknown = c
        .cmd(&format!("APOP nobody {}", apop(&g, "x")), "-ERR")
        .await;
    assert_eq!(wrong, "-ERR [AUTH] Authentication failed.");
    assert_eq!(wrong, unknown);
    c.cmd("USER nobody", "+OK").await;
    // The session's third failure also closes it (auth::MAX_AUTH_FAILURES).
    assert_eq!(
        c.cmd("PASS secret", "-ERR").await,
        "-ERR [AUTH] Authentication failed. Too many failed logins, closing the connection."
    );
    let mut c = s.connect().await;
    let g = c.expect("+OK").await;
    c.cmd("USER bob", "+OK").await;
    assert_eq!(c.cmd("PASS wrong", "-ERR").await, wrong);
    c.cmd(
        &format!("APOP bob {}", apop(&g, "secret")),
        "+OK Logged in.",
    )
    .await;
    c.cmd("STAT", "+OK 1 ").await;
    c.cmd("QUIT", "+OK").await;
}
