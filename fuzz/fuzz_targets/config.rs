//! TOML text → config validation (`config::parse`, with the `[ParametersSystem]` registry
//! table of `config::registry`) → `check-config`'s rendering and the reload diff.
//!
//! Invariants: no panic; an error starts with the file, line and column; so does every
//! warning; a valid config renders and compares equal to itself.
#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;
use mailserver::config;

const FILE: &str = "/fuzz/mailserver.toml";

/// `FILE:LINE:COL: ` at the start of `msg`.
fn has_position(msg: &str) -> bool {
    let Some(rest) = msg.strip_prefix(FILE).and_then(|r| r.strip_prefix(':')) else {
        return false;
    };
    let mut parts = rest.splitn(3, ':');
    let num =
        |s: Option<&str>| s.is_some_and(|s| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()));
    num(parts.next()) && num(parts.next()) && parts.next().is_some()
}

fuzz_target!(|data: &[u8]| {
    match config::parse(Path::new(FILE), data) {
        Ok(cfg) => {
            let _ = config::render_effective(&cfg);
            assert!(
                config::diff(&cfg, &cfg).is_empty(),
                "a config differs from itself"
            );
            for w in &cfg.warnings {
                assert!(has_position(w), "warning without FILE:LINE:COL: {w:?}");
            }
        }
        // One error per line, but a name quoted from the file may hold a line break, so
        // only the first line is sure to start an error.
        Err(e) => assert!(has_position(&e.0), "error without FILE:LINE:COL: {:?}", e.0),
    }
});
