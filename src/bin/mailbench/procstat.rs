//! Server-side cost from `/proc` (proc(5)): CPU time and memory of a process tree.
//!
//! The tree is the given PID plus every descendant, found through the `ppid` field of
//! `/proc/*/stat`. CPU is `utime + stime + cutime + cstime` summed over the live tree, so
//! the work of per-connection processes that already exited (Dovecot's `imap-login`, `pop3`)
//! still counts once their parent has reaped them. Memory is `Rss` and `Pss` from
//! `/proc/PID/smaps_rollup` (Linux 4.14+); PSS splits shared pages between the processes
//! that map them, which is what makes a multi-process server comparable with a threaded one.
use anyhow::{Context, Result};
use std::collections::HashMap;
use std::fs;

/// Clock ticks per second for `/proc/PID/stat` times. Linux reports in USER_HZ, which is 100
/// on every mainstream architecture; `getconf CLK_TCK` confirms it where available.
fn clk_tck() -> f64 {
    std::process::Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.trim().parse::<f64>().ok())
        .filter(|v| *v > 0.0)
        .unwrap_or(100.0)
}

/// Fields of `/proc/PID/stat` after the `comm` field (which may contain spaces and parens).
fn stat_fields(pid: u32) -> Option<Vec<u64>> {
    let s = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = &s[s.rfind(')')? + 1..];
    // Field 3 (state) is a letter; keep positions by mapping non-numbers to 0.
    Some(
        rest.split_whitespace()
            .map(|f| f.parse::<i64>().map(|v| v.max(0) as u64).unwrap_or(0))
            .collect(),
    )
}

/// `pid` and all its descendants that are alive now.
pub fn tree(pid: u32) -> Vec<u32> {
    let mut children: HashMap<u32, Vec<u32>> = HashMap::new();
    if let Ok(rd) = fs::read_dir("/proc") {
        for e in rd.flatten() {
            let Some(p) = e.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else {
                continue;
            };
            if let Some(f) = stat_fields(p) {
                // After comm: [0] state, [1] ppid.
                if let Some(&ppid) = f.get(1) {
                    children.entry(ppid as u32).or_default().push(p);
                }
            }
        }
    }
    let mut out = vec![pid];
    let mut i = 0;
    while i < out.len() && out.len() < 100_000 {
        if let Some(c) = children.get(&out[i]) {
            out.extend_from_slice(c);
        }
        i += 1;
    }
    out
}

/// CPU seconds (user + system, own + reaped children) of the tree rooted at `pid`.
pub fn tree_cpu_secs(pid: u32) -> Result<f64> {
    stat_fields(pid).with_context(|| format!("no process {pid}"))?;
    let mut ticks = 0u64;
    for p in tree(pid) {
        if let Some(f) = stat_fields(p) {
            // utime, stime, cutime, cstime are stat fields 14..=17, i.e. [11..=14] here.
            ticks += f.get(11..=14).map(|s| s.iter().sum()).unwrap_or(0);
        }
    }
    Ok(ticks as f64 / clk_tck())
}

/// Memory of a process tree, in KiB.
#[derive(Clone, Copy, Debug, Default)]
pub struct Memory {
    pub rss_kb: u64,
    pub pss_kb: u64,
    pub processes: u32,
}

fn rollup_value(text: &str, key: &str) -> u64 {
    text.lines()
        .find_map(|l| {
            let v = l.strip_prefix(key)?.strip_prefix(':')?;
            v.split_whitespace().next()?.parse().ok()
        })
        .unwrap_or(0)
}

pub fn tree_memory(pid: u32) -> Result<Memory> {
    stat_fields(pid).with_context(|| format!("no process {pid}"))?;
    let mut m = Memory::default();
    for p in tree(pid) {
        // Kernel threads and exited processes have no readable rollup: skip them.
        if let Ok(t) = fs::read_to_string(format!("/proc/{p}/smaps_rollup")) {
            m.rss_kb += rollup_value(&t, "Rss");
            m.pss_kb += rollup_value(&t, "Pss");
            m.processes += 1;
        }
    }
    Ok(m)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn own_process_tree_has_cpu_and_memory() {
        let me = std::process::id();
        let mut child = std::process::Command::new("sleep")
            .arg("5")
            .spawn()
            .unwrap();
        let t = tree(me);
        assert!(t.contains(&child.id()), "child {} not in {t:?}", child.id());
        let m = tree_memory(me).unwrap();
        assert!(m.rss_kb > 0 && m.pss_kb > 0 && m.processes >= 2, "{m:?}");
        assert!(tree_cpu_secs(me).unwrap() >= 0.0);
        child.kill().unwrap();
        child.wait().unwrap();
        assert!(tree_memory(u32::MAX).is_err());
    }

    #[test]
    fn rollup_parsing() {
        let t = "55d0-7ffd ---p 00000000 00:00 0 [rollup]\nRss:  1234 kB\nPss:   567 kB\nPss_Anon: 1 kB\n";
        assert_eq!(rollup_value(t, "Rss"), 1234);
        assert_eq!(rollup_value(t, "Pss"), 567);
        assert_eq!(rollup_value(t, "Swap"), 0);
    }
}
