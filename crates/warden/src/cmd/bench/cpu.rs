//! CPU time used by the bench's own threads, read from `/proc/self/task/*/schedstat` (Linux;
//! nanosecond on-CPU time per thread). It tells how much the client (and the in-process
//! ceiling server) cost per request, which holds even when other processes share the cores.

use std::path::Path;
use std::time::Duration;

/// The name of the client's runtime threads.
pub(crate) const CLIENT_THREADS: &str = "bench-client";
/// The name of the ceiling server's runtime threads.
pub(crate) const SERVER_THREADS: &str = "bench-ceiling";

/// The on-CPU time so far of this process's threads named `name`; `None` when there is no
/// such thread or `/proc` cannot tell.
pub(crate) fn threads_cpu(name: &str) -> Option<Duration> {
    let mut total = 0u64;
    let mut found = false;
    for entry in std::fs::read_dir("/proc/self/task").ok()?.flatten() {
        if let Some(ns) = thread_cpu_ns(&entry.path(), name) {
            total += ns;
            found = true;
        }
    }
    found.then(|| Duration::from_nanos(total))
}

fn thread_cpu_ns(task: &Path, name: &str) -> Option<u64> {
    let comm = std::fs::read_to_string(task.join("comm")).ok()?;
    if comm.trim_end() != name {
        return None;
    }
    parse_schedstat(&std::fs::read_to_string(task.join("schedstat")).ok()?)
}

/// The first field of a `schedstat` line: nanoseconds spent on the CPU.
fn parse_schedstat(line: &str) -> Option<u64> {
    line.split_ascii_whitespace().next()?.parse().ok()
}

/// CPU microseconds per request between two readings.
pub(crate) fn per_request(before: Option<Duration>, after: Option<Duration>, requests: u64) -> Option<f64> {
    let used = after?.checked_sub(before?)?;
    (requests > 0).then(|| (used.as_secs_f64() * 1e6 / requests as f64 * 10.0).round() / 10.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schedstat_lines() {
        assert_eq!(parse_schedstat("263874 2985661 2\n"), Some(263_874));
        assert_eq!(parse_schedstat(""), None);
        assert_eq!(parse_schedstat("x 1 2"), None);
    }

    #[test]
    fn cost_per_request() {
        let (a, b) = (Some(Duration::from_millis(100)), Some(Duration::from_millis(350)));
        assert_eq!(per_request(a, b, 10_000), Some(25.0));
        assert_eq!(per_request(a, b, 0), None);
        assert_eq!(per_request(None, b, 10), None);
        assert_eq!(per_request(b, a, 10), None);
    }

    #[test]
    fn a_named_thread_is_measured() {
        let t = std::thread::Builder::new()
            .name("cpu-test-spin".into())
            .spawn(|| {
                let mut x = 0u64;
                for i in 0..5_000_000u64 {
                    x = x.wrapping_mul(31).wrapping_add(i);
                }
                std::hint::black_box(x);
                threads_cpu("cpu-test-spin")
            })
            .unwrap();
        let used = t.join().unwrap();
        if Path::new("/proc/self/task").exists() {
            assert!(used.unwrap() > Duration::ZERO);
        }
        assert_eq!(threads_cpu("no-such-thread-name"), None);
    }
}
