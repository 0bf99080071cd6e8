//! The load phase: `-c` workers, each with one keep-alive connection, sending the workload's
//! requests in a closed loop (send, wait for the answer, send again) or on an open-loop
//! timetable (`--rate`), for a duration or a count, after a warm-up that is not counted.
//!
//! Latency is taken with `Instant::now()` (a vDSO clock read, no allocation) around the
//! exchange; in open loop it starts at the *scheduled* send time when the request had to wait
//! for a busy worker, so a server that stalls is charged for the requests that queued up behind
//! the stall (no coordinated omission). See [`Origin`].

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use bytes::BytesMut;
use indicatif::ProgressBar;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::client::{Conn, Endpoint, Head};
use super::cpu;
use super::stats::{ErrorKey, Recorder, Summary};
use super::workload::{Rng, Workload};

/// How a worker waits after a request could not be sent at all, so that a dead server is not
/// hammered by reconnect attempts (the error is still counted).
const TRANSPORT_BACKOFF: Duration = Duration::from_millis(50);

/// When the measured phase ends.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Stop {
    After(Duration),
    Count(u64),
}

/// How to run the load phase.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Plan {
    pub(crate) concurrency: usize,
    pub(crate) warmup: Duration,
    pub(crate) stop: Stop,
    /// Open loop at this many requests per second; closed loop when `None`.
    pub(crate) rate: Option<f64>,
    pub(crate) timeout: Duration,
}

/// The run's clock: when measurement starts and ends, and the open-loop timetable.
#[derive(Debug, Clone)]
pub(crate) struct Timeline {
    start: Instant,
    measure_start: Instant,
    end: Option<Instant>,
    count: Option<u64>,
    /// Open loop: nanoseconds between two scheduled sends, and how many slots are warm-up.
    schedule: Option<(f64, u64)>,
}

impl Timeline {
    pub(crate) fn new(plan: &Plan, start: Instant) -> Self {
        let schedule = plan.rate.map(|rate| {
            let warmup_slots = (plan.warmup.as_secs_f64() * rate).ceil() as u64;
            (1e9 / rate, warmup_slots)
        });
        let measure_start = match schedule {
            Some((interval, warmup_slots)) => start + nanos(warmup_slots as f64 * interval),
            None => start + plan.warmup,
        };
        let (end, count) = match plan.stop {
            Stop::After(d) => (Some(measure_start + d), None),
            Stop::Count(n) => (None, Some(n)),
        };
        Self { start, measure_start, end, count, schedule }
    }

    /// The scheduled send time of open-loop slot `slot`.
    pub(crate) fn slot_time(&self, slot: u64) -> Option<Instant> {
        self.schedule.map(|(interval, _)| self.start + nanos(slot as f64 * interval))
    }
}

fn nanos(x: f64) -> Duration {
    Duration::from_nanos(x.max(0.0) as u64)
}

/// What the next request of a worker is.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Ticket {
    /// The request number: unique in the run, used for names and request IDs.
    pub(crate) n: u64,
    /// Open loop: when it is due; latency counts from then.
    pub(crate) due: Option<Instant>,
    /// False during the warm-up.
    pub(crate) measured: bool,
}

/// The counters the workers share.
#[derive(Debug)]
pub(crate) struct Dispenser {
    timeline: Timeline,
    /// Request numbers (closed loop) or timetable slots (open loop).
    seq: AtomicU64,
    /// Closed loop with `--count`: measured requests handed out so far.
    tickets: AtomicU64,
}

impl Dispenser {
    pub(crate) fn new(timeline: Timeline) -> Self {
        Self { timeline, seq: AtomicU64::new(0), tickets: AtomicU64::new(0) }
    }

    /// The next request to send at `now`, or `None` when the run is over.
    pub(crate) fn next(&self, now: Instant) -> Option<Ticket> {
        let tl = &self.timeline;
        match tl.schedule {
            Some((_, warmup_slots)) => {
                let slot = self.seq.fetch_add(1, Ordering::Relaxed);
                let due = tl.slot_time(slot)?;
                let measured = slot >= warmup_slots;
                if tl.end.is_some_and(|end| due >= end) || tl.count.is_some_and(|c| slot >= warmup_slots + c) {
                    return None;
                }
                Some(Ticket { n: slot, due: Some(due), measured })
            }
            None => {
                let measured = now >= tl.measure_start;
                if measured {
                    if tl.end.is_some_and(|end| now >= end) {
                        return None;
                    }
                    if tl.count.is_some_and(|c| self.tickets.fetch_add(1, Ordering::Relaxed) >= c) {
                        return None;
                    }
                }
                Some(Ticket { n: self.seq.fetch_add(1, Ordering::Relaxed), due: None, measured })
            }
        }
    }
}

/// What the workers share besides the dispenser.
struct Shared {
    dispenser: Dispenser,
    workload: Arc<Workload>,
    timeout: Duration,
    cancel: CancellationToken,
    progress: ProgressBar,
    /// Measured completions and failures, for the progress display.
    completed: AtomicU64,
    /// Every exchange, warm-up included, for the CPU cost per request.
    exchanges: AtomicU64,
    failed: AtomicU64,
    first_error: OnceLock<String>,
}

impl Shared {
    fn report_first_error(&self, make: impl FnOnce() -> String) {
        if self.first_error.get().is_some() {
            return;
        }
        if self.first_error.set(make()).is_ok()
            && let Some(msg) = self.first_error.get()
        {
            self.progress.suspend(|| eprintln!("first error: {msg}"));
        }
    }
}

/// Runs the load phase and summarises it.
pub(crate) async fn run_load(
    endpoint: &Arc<Endpoint>,
    workload: Arc<Workload>,
    plan: &Plan,
    cancel: &CancellationToken,
    progress: &ProgressBar,
) -> anyhow::Result<Summary> {
    // Open every connection first: a wrong address fails here, before anything is measured.
    let opened = futures_util::future::join_all((0..plan.concurrency).map(|_| Conn::open(endpoint.clone()))).await;
    let mut conns = Vec::with_capacity(opened.len());
    for c in opened {
        conns.push(c.map_err(|e| anyhow::anyhow!("cannot connect to {}: {}", endpoint.url, e.detail))?);
    }

    let start = Instant::now();
    let timeline = Timeline::new(plan, start);
    let measure_start = timeline.measure_start;
    let shared = Arc::new(Shared {
        dispenser: Dispenser::new(timeline),
        workload,
        timeout: plan.timeout,
        cancel: cancel.clone(),
        progress: progress.clone(),
        completed: AtomicU64::new(0),
        exchanges: AtomicU64::new(0),
        failed: AtomicU64::new(0),
        first_error: OnceLock::new(),
    });
    let cpu_before = (cpu::threads_cpu(cpu::CLIENT_THREADS), cpu::threads_cpu(cpu::SERVER_THREADS));
    let mut workers = tokio::task::JoinSet::new();
    for (id, conn) in conns.into_iter().enumerate() {
        workers.spawn(worker(id as u64, conn, shared.clone()));
    }

    let mut display = Display::new(plan, progress);
    let mut total = Recorder::new();
    let mut connections = 0;
    let mut tick = tokio::time::interval(Duration::from_millis(250));
    loop {
        tokio::select! {
            joined = workers.join_next() => match joined {
                Some(joined) => {
                    let (rec, opened) = joined?;
                    total.merge(&rec);
                    connections += opened;
                }
                None => break,
            },
            _ = tick.tick() => display.update(&shared, start, measure_start),
        }
    }
    progress.set_message("");
    let exchanges = shared.exchanges.load(Ordering::Relaxed);
    let client_cpu = cpu::per_request(cpu_before.0, cpu::threads_cpu(cpu::CLIENT_THREADS), exchanges);
    let server_cpu = cpu::per_request(cpu_before.1, cpu::threads_cpu(cpu::SERVER_THREADS), exchanges);

    let elapsed = total.last_done().map_or(Duration::ZERO, |t| t.saturating_duration_since(measure_start));
    let mut summary = total.summarize(elapsed);
    summary.connections = connections;
    summary.first_error = shared.first_error.get().cloned();
    summary.interrupted = cancel.is_cancelled();
    if plan.rate.is_none() {
        summary.late_starts = None;
    }
    summary.client_cpu_us_per_request = client_cpu;
    summary.server_cpu_us_per_request = server_cpu;
    Ok(summary)
}

async fn worker(id: u64, mut conn: Conn, shared: Arc<Shared>) -> (Recorder, u64) {
    let mut rec = Recorder::new();
    let mut rng = Rng::from_os(id);
    let mut scratch = BytesMut::with_capacity(1024);
    let mut body = Vec::with_capacity(4096);
    let mut first = true;
    let wl = &*shared.workload;
    // One cancellation future for the whole loop: it registers its waker once, not per request.
    let cancelled = shared.cancel.cancelled();
    tokio::pin!(cancelled);
    while let Some(ticket) = shared.dispenser.next(Instant::now()) {
        if shared.cancel.is_cancelled() {
            break;
        }
        let origin = latency_origin(ticket.due, Instant::now());
        if let Origin::Wait(due) = origin {
            tokio::select! {
                biased;
                _ = &mut cancelled => break,
                _ = tokio::time::sleep_until(due) => {}
            }
        }
        let (req, tag) = wl.request(ticket.n, &mut rng, &mut scratch);
        let sent = match origin {
            Origin::Scheduled { due, late } => {
                if late && ticket.measured {
                    rec.late();
                }
                due
            }
            Origin::Now | Origin::Wait(_) => Instant::now(),
        };
        let result = tokio::select! {
            biased;
            _ = &mut cancelled => break,
            result = conn.send(req, &mut body, shared.timeout) => result,
        };
        let done = Instant::now();
        shared.exchanges.fetch_add(1, Ordering::Relaxed);
        let check_body = first && ticket.measured;
        let verdict = match &result {
            Ok(head) => wl.judge(tag, *head, &body, check_body),
            Err(e) => Err(ErrorKey::Transport(e.kind)),
        };
        if ticket.measured {
            first = false;
            match verdict {
                Ok(()) => rec.success(done - sent, done),
                Err(key) => rec.failure(key, done),
            }
            shared.completed.fetch_add(1, Ordering::Relaxed);
        }
        if let Err(key) = verdict {
            if ticket.measured {
                shared.failed.fetch_add(1, Ordering::Relaxed);
            }
            let phase = if ticket.measured { "" } else { "(warm-up) " };
            shared.report_first_error(|| match &result {
                Ok(head) => format!("{phase}{}: {}", wl.describe(), describe_answer(key, *head, &body)),
                Err(e) => format!("{phase}{}: {key}: {}", wl.describe(), e.detail),
            });
            if result.is_err() {
                tokio::select! {
                    _ = &mut cancelled => break,
                    _ = tokio::time::sleep(TRANSPORT_BACKOFF) => {}
                }
            }
        }
    }
    (rec, conn.opened)
}

/// Where a request's latency starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Origin {
    /// Closed loop: at the send.
    Now,
    /// Open loop, the slot is in the future and the worker is free: wait for it, then count from
    /// the actual send. tokio's timer wakes up to 1 ms late; that slack is the client's own and
    /// is not charged to the server.
    Wait(Instant),
    /// Open loop, the slot is past: the request waited for a busy worker (the server's
    /// backlog), so it counts from the scheduled time. `late`: by more than [`LATE`].
    Scheduled { due: Instant, late: bool },
}

/// How far behind its timetable a request may start before it counts as late.
pub(crate) const LATE: Duration = Duration::from_millis(1);

pub(crate) fn latency_origin(due: Option<Instant>, now: Instant) -> Origin {
    match due {
        None => Origin::Now,
        Some(due) if due > now => Origin::Wait(due),
        Some(due) => Origin::Scheduled { due, late: now - due > LATE },
    }
}

/// `HTTP 403, X-M2M-RSC 4126 (rsc 4126 APP_RULE_VALIDATION_FAILED): {"m2m:dbg":"..."}`.
pub(crate) fn describe_answer(key: ErrorKey, head: Head, body: &[u8]) -> String {
    const MAX: usize = 2000;
    let rsc = head.rsc.map_or_else(|| "none".to_owned(), |r| r.to_string());
    let text = String::from_utf8_lossy(&body[..body.len().min(MAX)]);
    let more = if body.len() > MAX { format!(" ... ({} bytes)", body.len()) } else { String::new() };
    format!("HTTP {}, X-M2M-RSC {rsc} ({key}): {text}{more}", head.status)
}

/// The progress display: time or count, requests done, current rate, errors.
struct Display {
    bar: ProgressBar,
    by_count: bool,
    /// The previous update's time and completion count, for the current rate.
    last: (Instant, u64),
}

impl Display {
    fn new(plan: &Plan, bar: &ProgressBar) -> Self {
        let (len, by_count) = match plan.stop {
            Stop::Count(n) => (n, true),
            Stop::After(d) => (((plan.warmup + d).as_millis() as u64).max(1), false),
        };
        bar.set_length(len);
        bar.set_position(0);
        Self { bar: bar.clone(), by_count, last: (Instant::now(), 0) }
    }

    fn update(&mut self, shared: &Shared, start: Instant, measure_start: Instant) {
        let now = Instant::now();
        let done = shared.completed.load(Ordering::Relaxed);
        let failed = shared.failed.load(Ordering::Relaxed);
        let dt = now.saturating_duration_since(self.last.0).as_secs_f64();
        let rate = if dt > 0.0 { done.saturating_sub(self.last.1) as f64 / dt } else { 0.0 };
        self.last = (now, done);
        if self.by_count {
            self.bar.set_position(done);
        } else {
            self.bar.set_position(now.saturating_duration_since(start).as_millis() as u64);
        }
        if now < measure_start {
            self.bar.set_message("warming up");
        } else {
            self.bar.set_message(format!("{done} requests, {rate:.0}/s, {failed} errors"));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan(stop: Stop, rate: Option<f64>) -> Plan {
        Plan { concurrency: 4, warmup: Duration::from_secs(1), stop, rate, timeout: Duration::from_secs(5) }
    }

    #[test]
    fn closed_loop_count_hands_out_exactly_count_measured_tickets() {
        let t0 = Instant::now();
        let d = Dispenser::new(Timeline::new(&plan(Stop::Count(3), None), t0));
        // During the warm-up every request is unmeasured and does not use up the count.
        let warm = d.next(t0).unwrap();
        assert!(!warm.measured && warm.due.is_none());
        let later = t0 + Duration::from_secs(2);
        let got: Vec<Ticket> = std::iter::from_fn(|| d.next(later)).take(10).collect();
        assert_eq!(got.len(), 3);
        assert!(got.iter().all(|t| t.measured));
        assert_eq!(got.iter().map(|t| t.n).collect::<Vec<_>>(), vec![1, 2, 3]);
        assert!(d.next(later).is_none());
    }

    #[test]
    fn closed_loop_duration_stops_at_the_end() {
        let t0 = Instant::now();
        let d = Dispenser::new(Timeline::new(&plan(Stop::After(Duration::from_secs(5)), None), t0));
        assert!(d.next(t0 + Duration::from_secs(3)).unwrap().measured);
        assert!(d.next(t0 + Duration::from_millis(5999)).is_some());
        assert!(d.next(t0 + Duration::from_secs(6)).is_none());
    }

    #[test]
    fn open_loop_follows_a_fixed_timetable() {
        let t0 = Instant::now();
        // 100 req/s: a slot every 10 ms; 1 s of warm-up is 100 slots; then 5 measured.
        let d = Dispenser::new(Timeline::new(&plan(Stop::Count(5), Some(100.0)), t0));
        let all: Vec<Ticket> = std::iter::from_fn(|| d.next(t0)).collect();
        assert_eq!(all.len(), 105);
        assert_eq!(all.iter().filter(|t| t.measured).count(), 5);
        assert_eq!(all[0].due, Some(t0));
        assert_eq!(all[100].due, Some(t0 + Duration::from_secs(1)));
        assert_eq!(all[104].due, Some(t0 + Duration::from_millis(1040)));
        assert!(!all[99].measured && all[100].measured);
    }

    #[test]
    fn open_loop_duration_ends_with_the_timetable() {
        let t0 = Instant::now();
        let d = Dispenser::new(Timeline::new(&plan(Stop::After(Duration::from_secs(2)), Some(1000.0)), t0));
        let all: Vec<Ticket> = std::iter::from_fn(|| d.next(t0)).collect();
        // 1 s warm-up + 2 s at 1000/s.
        assert_eq!(all.len(), 3000);
        assert_eq!(all.iter().filter(|t| t.measured).count(), 2000);
        assert!(all.last().unwrap().due.unwrap() < t0 + Duration::from_secs(3));
    }

    #[test]
    fn no_warmup_measures_from_the_start() {
        let t0 = Instant::now();
        let mut p = plan(Stop::Count(2), None);
        p.warmup = Duration::ZERO;
        let d = Dispenser::new(Timeline::new(&p, t0));
        assert!(d.next(t0).unwrap().measured);
        p.rate = Some(10.0);
        let d = Dispenser::new(Timeline::new(&p, t0));
        assert!(d.next(t0).unwrap().measured);
    }

    #[test]
    fn latency_starts_at_the_send_unless_the_request_waited_for_a_worker() {
        let t0 = Instant::now();
        let ms = Duration::from_millis;
        assert_eq!(latency_origin(None, t0), Origin::Now);
        assert_eq!(latency_origin(Some(t0 + ms(5)), t0), Origin::Wait(t0 + ms(5)));
        assert_eq!(latency_origin(Some(t0), t0), Origin::Scheduled { due: t0, late: false });
        assert_eq!(latency_origin(Some(t0), t0 + ms(1)), Origin::Scheduled { due: t0, late: false });
        assert_eq!(latency_origin(Some(t0), t0 + ms(3)), Origin::Scheduled { due: t0, late: true });
    }

    #[test]
    fn answers_are_described_with_status_rsc_and_body() {
        let head = Head { status: 403, rsc: Some(4126) };
        let s = describe_answer(ErrorKey::Rsc(4126), head, br#"{"m2m:dbg":"App-ID not registered"}"#);
        assert_eq!(
            s,
            r#"HTTP 403, X-M2M-RSC 4126 (rsc 4126 APP_RULE_VALIDATION_FAILED): {"m2m:dbg":"App-ID not registered"}"#
        );
        let long = vec![b'x'; 5000];
        let s = describe_answer(ErrorKey::Status(500), Head { status: 500, rsc: None }, &long);
        assert!(s.starts_with("HTTP 500, X-M2M-RSC none (http 500): xxx"), "{s}");
        assert!(s.ends_with("... (5000 bytes)"), "{s}");
    }
}
