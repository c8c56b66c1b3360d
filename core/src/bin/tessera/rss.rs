//! The process's resident memory as Linux reports it, for the benchmarks.

/// A `/proc/self/status` line in KiB: `VmRSS:` now, `VmHWM:` the peak.
pub fn status_kib(key: &str) -> Option<u64> {
    let s = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = s.lines().find(|l| l.starts_with(key))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// Resets the peak (Linux 4.0+) and returns the resident KiB now, so the
/// peak of what follows can be told apart from the data already in memory.
pub fn reset_peak() -> Option<u64> {
    let _ = std::fs::write("/proc/self/clear_refs", "5");
    status_kib("VmRSS:")
}

/// KiB as GiB, NaN where Linux did not say.
pub fn gib(kib: Option<u64>) -> f64 {
    kib.map_or(f64::NAN, |k| k as f64 / (1u64 << 20) as f64)
}
