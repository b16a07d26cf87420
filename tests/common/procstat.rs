//! What a process costs, from Linux's `/proc` (proc(5)): resident memory (`VmRSS`, and its
//! peak `VmHWM`, in `/proc/PID/status`) and CPU time (`utime` + `stime` in `/proc/PID/stat`,
//! in clock ticks of `getconf CLK_TCK`). The hostile-input tests measure the real daemon
//! with a [`Meter`] around an attack and assert generous ceilings on what it cost.

use std::time::Duration;

/// A `/proc/PID/status` field in KiB (`VmRSS`, `VmHWM`).
fn status_kib(pid: u32, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status
        .lines()
        .find(|l| l.starts_with(field) && l[field.len()..].starts_with(':'))
        .unwrap_or_else(|| panic!("{field} in /proc/{pid}/status"));
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

/// The process's resident set now, in KiB.
pub fn rss_kib(pid: u32) -> u64 {
    status_kib(pid, "VmRSS")
}

/// The largest resident set the process has had (since it started, or since
/// [`reset_peak_rss`]), in KiB.
pub fn peak_rss_kib(pid: u32) -> u64 {
    status_kib(pid, "VmHWM")
}

/// Resets the process's `VmHWM` to its current resident set (writing `5` to
/// `/proc/PID/clear_refs`, Linux 4.0+); false if that is not possible here.
pub fn reset_peak_rss(pid: u32) -> bool {
    std::fs::write(format!("/proc/{pid}/clear_refs"), "5").is_ok()
}

/// Clock ticks per second (`getconf CLK_TCK`, normally 100).
fn clock_ticks() -> u64 {
    static HZ: std::sync::OnceLock<u64> = std::sync::OnceLock::new();
    *HZ.get_or_init(|| {
        let out = std::process::Command::new("getconf")
            .arg("CLK_TCK")
            .output()
            .expect("getconf CLK_TCK");
        String::from_utf8(out.stdout)
            .unwrap()
            .trim()
            .parse()
            .unwrap()
    })
}

/// The CPU time the process has used so far (user + system, all threads).
pub fn cpu_time(pid: u32) -> Duration {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    // The fields after `(comm)` (which may hold spaces): state is field 3, utime 14, stime 15.
    let rest: Vec<&str> = stat[stat.rfind(')').unwrap() + 2..].split(' ').collect();
    let ticks: u64 = rest[11].parse::<u64>().unwrap() + rest[12].parse::<u64>().unwrap();
    Duration::from_millis(ticks * 1000 / clock_ticks())
}

/// What a process costs from [`Meter::start`] on: the growth of its resident set (its peak
/// since the start, minus the resident set at the start) and the CPU time it used.
pub struct Meter {
    pid: u32,
    rss_before: u64,
    cpu_before: Duration,
    /// The peak could be reset at the start (else it may include earlier peaks, which only
    /// makes the growth larger: a bound on it still holds).
    pub peak_reset: bool,
}

impl Meter {
    pub fn start(pid: u32) -> Meter {
        let peak_reset = reset_peak_rss(pid);
        Meter {
            pid,
            rss_before: rss_kib(pid),
            cpu_before: cpu_time(pid),
            peak_reset,
        }
    }

    /// The resident set at the start, in KiB.
    pub fn rss_before_kib(&self) -> u64 {
        self.rss_before
    }

    /// How far the resident set rose above its value at the start, at its highest (KiB).
    pub fn rss_growth_kib(&self) -> u64 {
        peak_rss_kib(self.pid).saturating_sub(self.rss_before)
    }

    /// CPU time used since the start.
    pub fn cpu(&self) -> Duration {
        cpu_time(self.pid).saturating_sub(self.cpu_before)
    }

    /// One line for the test output: "RSS +N KiB (from M KiB), CPU x s".
    pub fn report(&self) -> String {
        format!(
            "RSS +{} KiB at peak (from {} KiB{}), CPU {:.2} s",
            self.rss_growth_kib(),
            self.rss_before,
            if self.peak_reset {
                ""
            } else {
                "; peak not reset"
            },
            self.cpu().as_secs_f64()
        )
    }
}
