//! `.reg` file bytes → the import parser (`config::regedit::parse_reg`) → the edits applied
//! to the shipped config as `reg import` applies them → validation → `reg export`'s
//! rendering → parsed again.
//!
//! Invariants: no panic; errors name a line; an import that validates leaves every value it
//! set with the data it gave and every value it deleted absent; exporting the result and
//! parsing the export gives the same values, without warnings.
#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;
use mailserver::config::{self, regedit};
use toml_edit::DocumentMut;

const BASE: &str = include_str!("../../etc/mailserver.toml");

fuzz_target!(|data: &[u8]| {
    let reg = match regedit::parse_reg(data) {
        Ok(r) => r,
        Err(e) => {
            assert!(
                e.starts_with("line ")
                    || e.starts_with("empty file")
                    || e.contains("UTF-16LE")
                    || e.starts_with("not UTF-16LE"),
                "error names no line: {e:?}"
            );
            return;
        }
    };
    let mut doc: DocumentMut = BASE.parse().expect("etc/mailserver.toml parses");
    for op in &reg.ops {
        regedit::apply(&mut doc, op);
    }
    let text = doc.to_string();
    let Ok(cfg) = config::parse(Path::new("/fuzz/mailserver.toml"), text.as_bytes()) else {
        return;
    };
    // The last operation on each name (case-insensitive) is what the config holds.
    let mut last: Vec<(String, Option<&config::registry::RegData>)> = Vec::new();
    for op in &reg.ops {
        let (name, data) = match op {
            regedit::RegOp::Set(n, d) => (n, Some(d)),
            regedit::RegOp::Delete(n) => (n, None),
        };
        last.retain(|(n, _)| !n.eq_ignore_ascii_case(name));
        last.push((name.clone(), data));
    }
    for (name, data) in &last {
        let got = cfg.registry.get(name).map(|e| &e.data);
        assert_eq!(got, *data, "value {name:?} after import:\n{text}");
    }
    // Export, then import the export.
    let exported = regedit::render_reg(&cfg.registry);
    let back = regedit::parse_reg(&exported).expect("an export parses");
    assert!(
        back.warnings.is_empty(),
        "export gives warnings: {:?}",
        back.warnings
    );
    let want: Vec<regedit::RegOp> = cfg
        .registry
        .present
        .iter()
        .map(|e| regedit::RegOp::Set(e.name.clone(), e.data.clone()))
        .collect();
    assert_eq!(back.ops, want, "export does not read back");
});
