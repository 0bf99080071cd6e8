//! What a run measured: per-worker recorders (a latency histogram and error counts), their merge,
//! and the summary that is printed as text or as one JSON object.

use std::collections::BTreeMap;
use std::fmt;
use std::fmt::Write as _;
use std::time::Duration;

use hdrhistogram::Histogram;
use onem2m::Rsc;
use serde::Serialize;
use tokio::time::Instant;

/// Why a request did not count as a success. Errors are counted by this key: the oneM2M RSC when
/// the answer has one, else the HTTP status, else what went wrong on the connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) enum ErrorKey {
    /// An answer whose `X-M2M-RSC` is not the expected one.
    Rsc(u16),
    /// An answer without `X-M2M-RSC` whose HTTP status is not the expected one.
    Status(u16),
    /// No answer: the connection failed (refused, reset, closed, timed out, TLS, bad HTTP).
    Transport(&'static str),
    /// An answer with the expected code but the wrong content (e.g. a short discovery result).
    Check(&'static str),
}

impl fmt::Display for ErrorKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            ErrorKey::Rsc(code) => match Rsc::from_u16(code) {
                Some(rsc) => write!(f, "rsc {rsc}"),
                None => write!(f, "rsc {code}"),
            },
            ErrorKey::Status(status) => write!(f, "http {status}"),
            ErrorKey::Transport(kind) => write!(f, "transport: {kind}"),
            ErrorKey::Check(what) => write!(f, "check: {what}"),
        }
    }
}

/// One worker's measurements. Recording allocates nothing in the steady state: the histogram
/// grows only when a latency beyond its current range appears, and error kinds are few.
#[derive(Debug)]
pub(crate) struct Recorder {
    /// Latencies of successful requests, in microseconds.
    hist: Histogram<u64>,
    ok: u64,
    errors: Vec<(ErrorKey, u64)>,
    last_done: Option<Instant>,
    /// Open loop: requests that started more than 1 ms behind their timetable.
    late: u64,
}

impl Default for Recorder {
    fn default() -> Self {
        Self::new()
    }
}

impl Recorder {
    pub(crate) fn new() -> Self {
        // 3 significant figures (0.1 % resolution), auto-resizing from 1 µs upwards.
        let hist = Histogram::new(3).expect("3 significant figures is a valid histogram precision");
        Self { hist, ok: 0, errors: Vec::new(), last_done: None, late: 0 }
    }

    pub(crate) fn success(&mut self, latency: Duration, done: Instant) {
        let us = u64::try_from(latency.as_micros()).unwrap_or(u64::MAX).max(1);
        // `record` grows the histogram as needed; `saturating_record` would clamp to its
        // current range instead. It fails only beyond what a histogram can track at all.
        if self.hist.record(us).is_err() {
            self.hist.saturating_record(us);
        }
        self.ok += 1;
        self.done(done);
    }

    pub(crate) fn failure(&mut self, key: ErrorKey, done: Instant) {
        match self.errors.iter_mut().find(|(k, _)| *k == key) {
            Some((_, n)) => *n += 1,
            None => self.errors.push((key, 1)),
        }
        self.done(done);
    }

    /// An open-loop request that started late because every worker was busy.
    pub(crate) fn late(&mut self) {
        self.late += 1;
    }

    fn done(&mut self, at: Instant) {
        if self.last_done.is_none_or(|t| at > t) {
            self.last_done = Some(at);
        }
    }

    pub(crate) fn errors(&self) -> u64 {
        self.errors.iter().map(|(_, n)| n).sum()
    }

    /// When the last measured request completed, if any did.
    pub(crate) fn last_done(&self) -> Option<Instant> {
        self.last_done
    }

    pub(crate) fn merge(&mut self, other: &Recorder) {
        // Both histograms auto-resize, so adding cannot fail for range reasons.
        let _ = self.hist.add(&other.hist);
        self.ok += other.ok;
        self.late += other.late;
        for &(key, n) in &other.errors {
            match self.errors.iter_mut().find(|(k, _)| *k == key) {
                Some((_, m)) => *m += n,
                None => self.errors.push((key, n)),
            }
        }
        if let Some(t) = other.last_done {
            self.done(t);
        }
    }

    /// The summary of everything recorded, over `elapsed` of measurement.
    pub(crate) fn summarize(&self, elapsed: Duration) -> Summary {
        let errors = self.errors();
        let secs = elapsed.as_secs_f64();
        let latency = (self.ok > 0).then(|| Latency {
            min: self.hist.min(),
            mean: (self.hist.mean() * 10.0).round() / 10.0,
            p50: self.hist.value_at_quantile(0.50),
            p90: self.hist.value_at_quantile(0.90),
            p99: self.hist.value_at_quantile(0.99),
            p999: self.hist.value_at_quantile(0.999),
            max: self.hist.max(),
        });
        Summary {
            requests: self.ok + errors,
            ok: self.ok,
            errors,
            duration_s: round3(secs),
            throughput_rps: if secs > 0.0 { round1(self.ok as f64 / secs) } else { 0.0 },
            latency_us: latency,
            errors_by_kind: self.errors.iter().map(|(k, n)| (k.to_string(), *n)).collect(),
            connections: 0,
            late_starts: Some(self.late),
            first_error: None,
            client_cpu_us_per_request: None,
            server_cpu_us_per_request: None,
            interrupted: false,
        }
    }
}

fn round1(x: f64) -> f64 {
    (x * 10.0).round() / 10.0
}

fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

/// Latency percentiles of the successful requests, in microseconds.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub(crate) struct Latency {
    pub(crate) min: u64,
    pub(crate) mean: f64,
    pub(crate) p50: u64,
    pub(crate) p90: u64,
    pub(crate) p99: u64,
    pub(crate) p999: u64,
    pub(crate) max: u64,
}

/// The result of one measured load phase.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct Summary {
    /// Completed requests: successes plus errors (requests cut off by Ctrl-C are not counted).
    pub(crate) requests: u64,
    pub(crate) ok: u64,
    pub(crate) errors: u64,
    /// From the end of the warm-up to the completion of the last measured request.
    pub(crate) duration_s: f64,
    /// Successful requests per second.
    pub(crate) throughput_rps: f64,
    /// Percentiles of the successful requests; `null` when none succeeded.
    pub(crate) latency_us: Option<Latency>,
    /// Error counts by RSC (`rsc 4105 CONFLICT`), HTTP status (`http 502`), transport failure
    /// (`transport: connection reset`) or content check (`check: ...`).
    pub(crate) errors_by_kind: BTreeMap<String, u64>,
    /// Connections opened, including the initial one per worker (more means the server closed some).
    pub(crate) connections: u64,
    /// Open loop: measured requests that started more than 1 ms behind their timetable, because
    /// every worker was busy or the client was short of CPU (their latency counts from the
    /// scheduled time). `null` in closed loop.
    pub(crate) late_starts: Option<u64>,
    /// The first failure seen, in full: request, status, RSC and body.
    pub(crate) first_error: Option<String>,
    /// On-CPU microseconds of the client's threads per request (warm-up included), on Linux.
    pub(crate) client_cpu_us_per_request: Option<f64>,
    /// The same for the in-process server of the `ceiling` scenario.
    pub(crate) server_cpu_us_per_request: Option<f64>,
    /// True when Ctrl-C stopped the run early.
    pub(crate) interrupted: bool,
}

/// How the preload of the registry went.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct ImportStats {
    /// Records imported by this run (0 when they were all there already).
    pub(crate) records: u64,
    pub(crate) seconds: f64,
    pub(crate) records_per_s: f64,
    /// True when the check found the preload already in place, so nothing was imported.
    pub(crate) already_present: bool,
    /// Records found already there (whole chunks of an earlier, smaller preload) and skipped.
    pub(crate) skipped: u64,
    pub(crate) interrupted: bool,
}

impl ImportStats {
    pub(crate) fn new(records: u64, elapsed: Duration, already_present: bool, interrupted: bool) -> Self {
        let secs = elapsed.as_secs_f64();
        let rate = if secs > 0.0 { round1(records as f64 / secs) } else { 0.0 };
        Self { records, seconds: round3(secs), records_per_s: rate, already_present, skipped: 0, interrupted }
    }
}

/// Everything a `warden bench` invocation reports; `--json` prints exactly this.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct Report {
    pub(crate) scenario: &'static str,
    pub(crate) target: String,
    /// `closed` (each worker sends when its previous answer arrived) or `open` (fixed timetable).
    pub(crate) mode: &'static str,
    pub(crate) concurrency: usize,
    /// The open-loop rate asked for, requests per second.
    pub(crate) rate: Option<f64>,
    pub(crate) client_threads: usize,
    pub(crate) warmup_s: f64,
    #[serde(flatten)]
    pub(crate) summary: Summary,
    /// The `ceiling` run made first by `--with-ceiling`.
    pub(crate) ceiling: Option<Summary>,
    /// This run's throughput divided by the ceiling's.
    pub(crate) ratio_to_ceiling: Option<f64>,
    /// The registry preload (`registry-lookup` only).
    pub(crate) import: Option<ImportStats>,
}

impl Report {
    pub(crate) fn set_ceiling(&mut self, ceiling: Summary) {
        self.ratio_to_ceiling = (ceiling.throughput_rps > 0.0)
            .then(|| (self.summary.throughput_rps / ceiling.throughput_rps * 1000.0).round() / 1000.0);
        self.ceiling = Some(ceiling);
    }

    /// The human-readable form.
    pub(crate) fn to_text(&self) -> String {
        let mut out = String::new();
        let mode = match self.rate {
            Some(rate) => format!("open loop at {rate} req/s, up to {} in flight", self.concurrency),
            None => format!("closed loop, {} connections", self.concurrency),
        };
        let threads = if self.client_threads == 1 { "thread" } else { "threads" };
        let _ = writeln!(
            out,
            "warden bench {} -> {} ({mode}, {} client {threads}, warm-up {} s)",
            self.scenario, self.target, self.client_threads, self.warmup_s
        );
        if let Some(import) = &self.import {
            if import.already_present {
                let _ = writeln!(out, "  import       skipped: the bench App-IDs are already in the registry");
            } else {
                let cut = if import.interrupted { " (interrupted)" } else { "" };
                let _ = write!(
                    out,
                    "  import       {} records in {:.2} s ({:.0} records/s){cut}",
                    import.records, import.seconds, import.records_per_s
                );
                if import.skipped > 0 {
                    let _ = write!(out, "; {} were there already", import.skipped);
                }
                out.push('\n');
            }
        }
        write_summary(&mut out, &self.summary);
        if let Some(ceiling) = &self.ceiling {
            let _ = write!(out, "  ceiling      {:.1} req/s", ceiling.throughput_rps);
            if let Some(l) = &ceiling.latency_us {
                let _ = write!(out, " (p50 {}, p99 {})", fmt_us(l.p50), fmt_us(l.p99));
            }
            if let Some(ratio) = self.ratio_to_ceiling {
                let _ = write!(out, "; this run is {:.1} % of it", ratio * 100.0);
            }
            out.push('\n');
            if ceiling.errors > 0 {
                let _ = writeln!(out, "  ceiling errors: {}", ceiling.errors);
            }
        }
        out
    }
}

fn write_summary(out: &mut String, s: &Summary) {
    let cut = if s.interrupted { " (interrupted by Ctrl-C)" } else { "" };
    let _ =
        writeln!(out, "  requests     {} in {:.2} s (ok {}, errors {}){cut}", s.requests, s.duration_s, s.ok, s.errors);
    let _ = writeln!(out, "  throughput   {:.1} req/s", s.throughput_rps);
    match &s.latency_us {
        Some(l) => {
            let _ = writeln!(
                out,
                "  latency      p50 {}   p90 {}   p99 {}   p99.9 {}   max {}   (min {}, mean {})",
                fmt_us(l.p50),
                fmt_us(l.p90),
                fmt_us(l.p99),
                fmt_us(l.p999),
                fmt_us(l.max),
                fmt_us(l.min),
                fmt_us(l.mean.round() as u64)
            );
        }
        None => out.push_str("  latency      no successful request\n"),
    }
    if s.connections > 0 {
        let _ = writeln!(out, "  connections  {}", s.connections);
    }
    if let Some(late) = s.late_starts.filter(|&n| n > 0) {
        let _ = writeln!(
            out,
            "  timetable    {late} requests started > 1 ms behind schedule (all workers busy, or the client short of CPU)"
        );
    }
    if let Some(client) = s.client_cpu_us_per_request {
        let _ = write!(out, "  cpu          client {client:.1} µs/request");
        if let Some(server) = s.server_cpu_us_per_request {
            let _ = write!(out, ", server {server:.1} µs/request");
        }
        out.push('\n');
    }
    if !s.errors_by_kind.is_empty() {
        let mut kinds: Vec<_> = s.errors_by_kind.iter().collect();
        kinds.sort_by(|a, b| b.1.cmp(a.1).then(a.0.cmp(b.0)));
        out.push_str("  errors      ");
        for (i, (k, n)) in kinds.iter().enumerate() {
            let sep = if i == 0 { " " } else { ", " };
            let _ = write!(out, "{sep}{k}: {n}");
        }
        out.push('\n');
    }
    if let Some(first) = &s.first_error {
        let _ = writeln!(out, "  first error  {first}");
    }
}

/// `850 µs`, `2.81 ms`, `1.20 s`.
pub(crate) fn fmt_us(us: u64) -> String {
    if us < 1_000 {
        format!("{us} µs")
    } else if us < 1_000_000 {
        format!("{:.2} ms", us as f64 / 1e3)
    } else {
        format!("{:.2} s", us as f64 / 1e6)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(t0: Instant, ms: u64) -> Instant {
        t0 + Duration::from_millis(ms)
    }

    #[test]
    fn percentiles_of_a_known_distribution() {
        let t0 = Instant::now();
        let mut r = Recorder::new();
        for us in 1..=1000u64 {
            r.success(Duration::from_micros(us), at(t0, us));
        }
        let s = r.summarize(Duration::from_secs(2));
        let l = s.latency_us.unwrap();
        assert_eq!((l.min, l.p50, l.p90, l.p99, l.max), (1, 500, 900, 990, 1000));
        assert_eq!(l.p999, 999);
        assert_eq!(l.mean, 500.5);
        assert_eq!((s.requests, s.ok, s.errors), (1000, 1000, 0));
        assert_eq!(s.throughput_rps, 500.0);
        assert_eq!(s.duration_s, 2.0);
    }

    #[test]
    fn large_latencies_keep_three_significant_figures() {
        let t0 = Instant::now();
        let mut r = Recorder::new();
        r.success(Duration::from_micros(123_456), t0);
        r.success(Duration::from_secs(90), t0);
        let l = r.summarize(Duration::from_secs(1)).latency_us.unwrap();
        assert!((123_400..=123_600).contains(&l.min), "{l:?}");
        assert!((89_900_000..=90_100_000).contains(&l.max), "{l:?}");
    }

    #[test]
    fn sub_microsecond_latency_counts_as_one() {
        let mut r = Recorder::new();
        r.success(Duration::from_nanos(10), Instant::now());
        assert_eq!(r.summarize(Duration::from_secs(1)).latency_us.unwrap().max, 1);
    }

    #[test]
    fn merging_workers_adds_counts_and_histograms() {
        let t0 = Instant::now();
        let mut a = Recorder::new();
        let mut b = Recorder::new();
        for us in 1..=500u64 {
            a.success(Duration::from_micros(us), at(t0, 1));
        }
        for us in 501..=1000u64 {
            b.success(Duration::from_micros(us), at(t0, 5));
        }
        a.failure(ErrorKey::Rsc(4105), at(t0, 2));
        b.failure(ErrorKey::Rsc(4105), at(t0, 3));
        b.failure(ErrorKey::Transport("connection reset"), at(t0, 4));
        a.merge(&b);
        assert_eq!(a.last_done(), Some(at(t0, 5)));
        let s = a.summarize(Duration::from_secs(1));
        assert_eq!((s.requests, s.ok, s.errors), (1003, 1000, 3));
        assert_eq!(s.latency_us.as_ref().unwrap().p50, 500);
        assert_eq!(s.errors_by_kind["rsc 4105 CONFLICT"], 2);
        assert_eq!(s.errors_by_kind["transport: connection reset"], 1);
        // Throughput counts successes only.
        assert_eq!(s.throughput_rps, 1000.0);
    }

    #[test]
    fn error_keys_name_the_rsc_the_status_or_the_failure() {
        assert_eq!(ErrorKey::Rsc(4126).to_string(), "rsc 4126 APP_RULE_VALIDATION_FAILED");
        assert_eq!(ErrorKey::Rsc(4999).to_string(), "rsc 4999");
        assert_eq!(ErrorKey::Status(502).to_string(), "http 502");
        assert_eq!(ErrorKey::Transport("timeout").to_string(), "transport: timeout");
        assert_eq!(ErrorKey::Check("uril count").to_string(), "check: uril count");
    }

    #[test]
    fn no_success_means_no_latency_and_zero_throughput() {
        let mut r = Recorder::new();
        r.failure(ErrorKey::Status(401), Instant::now());
        let s = r.summarize(Duration::from_secs(1));
        assert!(s.latency_us.is_none());
        assert_eq!(s.throughput_rps, 0.0);
        assert_eq!(r.summarize(Duration::ZERO).throughput_rps, 0.0);
        assert!(s.errors_by_kind.contains_key("http 401"));
    }

    fn report(summary: Summary) -> Report {
        Report {
            scenario: "cin-create",
            target: "http://127.0.0.1:8080".into(),
            mode: "closed",
            concurrency: 32,
            rate: None,
            client_threads: 1,
            warmup_s: 1.0,
            summary,
            ceiling: None,
            ratio_to_ceiling: None,
            import: None,
        }
    }

    #[test]
    fn ratio_to_ceiling_and_json_shape() {
        let t0 = Instant::now();
        let mut r = Recorder::new();
        for _ in 0..100 {
            r.success(Duration::from_micros(2000), t0);
        }
        let mut c = Recorder::new();
        for _ in 0..400 {
            c.success(Duration::from_micros(500), t0);
        }
        let mut rep = report(r.summarize(Duration::from_secs(1)));
        rep.set_ceiling(c.summarize(Duration::from_secs(1)));
        assert_eq!(rep.ratio_to_ceiling, Some(0.25));
        let v: serde_json::Value = serde_json::to_value(&rep).unwrap();
        assert_eq!(v["scenario"], "cin-create");
        assert_eq!(v["throughput_rps"], 100.0);
        assert_eq!(v["latency_us"]["p99"], 2000);
        assert_eq!(v["ceiling"]["throughput_rps"], 400.0);
        assert_eq!(v["ratio_to_ceiling"], 0.25);
        assert!(v["import"].is_null());
        let text = rep.to_text();
        assert!(text.contains("throughput   100.0 req/s"), "{text}");
        assert!(text.contains("this run is 25.0 % of it"), "{text}");
        assert!(text.contains("p99 2.00 ms"), "{text}");
    }

    #[test]
    fn text_lists_errors_most_frequent_first() {
        let t0 = Instant::now();
        let mut r = Recorder::new();
        r.failure(ErrorKey::Status(500), t0);
        for _ in 0..3 {
            r.failure(ErrorKey::Rsc(4105), t0);
        }
        let mut s = r.summarize(Duration::from_secs(1));
        s.first_error = Some("POST /cse-in: HTTP 409, X-M2M-RSC 4105".into());
        let text = report(s).to_text();
        assert!(text.contains("errors       rsc 4105 CONFLICT: 3, http 500: 1"), "{text}");
        assert!(text.contains("first error  POST /cse-in: HTTP 409"), "{text}");
        assert!(text.contains("no successful request"), "{text}");
    }

    #[test]
    fn import_rate() {
        let s = ImportStats::new(1_000_000, Duration::from_secs(80), false, false);
        assert_eq!(s.records_per_s, 12_500.0);
        assert_eq!(s.seconds, 80.0);
    }

    #[test]
    fn human_latency_units() {
        assert_eq!(fmt_us(850), "850 µs");
        assert_eq!(fmt_us(2_810), "2.81 ms");
        assert_eq!(fmt_us(1_200_000), "1.20 s");
    }
}
