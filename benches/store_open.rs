//! Maildir store open/sync timings: generates 10k and 100k small messages directly as
//! Maildir files (Dovecot-style names with `S=`/`W=`, no uidlist), then times
//!
//! * cold: first open + sync (numbers every file, writes `dovecot-uidlist`),
//! * warm: open + sync in a fresh store instance (reads the uidlist, readdir + stat),
//! * no-change: another sync of the same view on the same handle (stamps unchanged),
//! * append: one append followed by a sync (the rescan a change costs).
//!
//! Run: `cargo bench --bench store_open` (add `--profile dev` to skip the release build;
//! numbers are then debug-build numbers). `STORE_BENCH_SIZES=1000,5000` overrides the sizes.

use mailserver::store::maildir::MaildirStore;
use mailserver::store::{Flags, Store, View};
use std::fs;
use std::path::Path;
use std::time::{Duration, Instant};

fn generate(maildir: &Path, n: usize) {
    for d in ["cur", "new", "tmp"] {
        fs::create_dir_all(maildir.join(d)).unwrap();
    }
    let body = "From: bench@example.org\nSubject: message\n\nshort body\n";
    let size = body.len();
    let vsize = size + body.matches('\n').count();
    for i in 0..n {
        let flags = if i % 3 == 0 { "S" } else { "" };
        let name = format!(
            "{}.M{}P1Q{i}.bench,S={size},W={vsize}:2,{flags}",
            1_700_000_000 + i / 1000,
            i % 1_000_000
        );
        fs::write(maildir.join("cur").join(name), body).unwrap();
    }
}

fn time<T>(f: impl FnOnce() -> T) -> (T, Duration) {
    let t = Instant::now();
    let v = f();
    (v, t.elapsed())
}

fn ms(d: Duration) -> String {
    format!("{:.1}", d.as_secs_f64() * 1000.0)
}

fn main() {
    // `cargo bench` passes `--bench`; nothing else to parse.
    let sizes: Vec<usize> = std::env::var("STORE_BENCH_SIZES")
        .ok()
        .map(|s| s.split(',').filter_map(|x| x.trim().parse().ok()).collect())
        .unwrap_or_else(|| vec![10_000, 100_000]);
    println!(
        "{:>8} {:>10} {:>10} {:>10} {:>12} {:>14}",
        "messages", "gen ms", "cold ms", "warm ms", "no-change ms", "append+sync ms"
    );
    for n in sizes {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().join("mail");
        let (_, gen) = time(|| generate(&root.join("bench"), n));
        let (cold, warm, nochange, append) = {
            let store = MaildirStore::new(root.clone());
            let user = store.user("bench").unwrap();
            let (_, cold) = time(|| {
                let mb = user.open("INBOX").unwrap();
                let mut v = View::default();
                mb.sync(&mut v).unwrap();
                assert_eq!(v.messages.len(), n);
            });
            let store2 = MaildirStore::new(root.clone());
            let user2 = store2.user("bench").unwrap();
            let mb = user2.open("INBOX").unwrap();
            let mut view = View::default();
            let (_, warm) = time(|| {
                mb.sync(&mut view).unwrap();
                assert_eq!(view.messages.len(), n);
            });
            // Directory mtimes within a second of a scan are not trusted (coarse clocks).
            std::thread::sleep(Duration::from_millis(1100));
            mb.sync(&mut view).unwrap();
            let (_, nochange) = time(|| {
                for _ in 0..10 {
                    let ch = mb.sync(&mut view).unwrap();
                    assert_eq!(ch.added, 0);
                }
            });
            let (_, append) = time(|| {
                mb.append(b"Subject: new\r\n\r\nx\r\n", Flags::NONE, &[], None)
                    .unwrap();
                let ch = mb.sync(&mut view).unwrap();
                assert_eq!(ch.added, 1);
            });
            (cold, warm, nochange / 10, append)
        };
        println!(
            "{n:>8} {:>10} {:>10} {:>10} {:>12} {:>14}",
            ms(gen),
            ms(cold),
            ms(warm),
            ms(nochange),
            ms(append)
        );
    }
}
