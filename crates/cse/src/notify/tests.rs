//! The engine against real HTTP receivers on 127.0.0.1:0.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::response::Response;
use http::{HeaderMap, Method};
use serde_json::{Value, json};
use tokio::sync::{Semaphore, mpsc};
use tokio::time::Instant;

use super::*;

/// How long a test waits for something that should happen at once.
const WAIT: Duration = Duration::from_secs(10);

/// What the sink answers to its n-th request (counted from 0): the HTTP status and `X-M2M-RSC`.
type Reply = Box<dyn Fn(usize) -> (u16, Option<&'static str>) + Send + Sync>;

/// A request the sink received.
struct Seen {
    method: Method,
    path: String,
    headers: HeaderMap,
    body: Value,
}

struct SinkState {
    reply: Reply,
    count: AtomicUsize,
    seen: mpsc::UnboundedSender<Seen>,
    /// When set, each request waits for a permit before it is answered.
    gate: Option<Arc<Semaphore>>,
}

/// A notification receiver: records every request, then answers as told.
struct Sink {
    url: String,
    state: Arc<SinkState>,
    seen: mpsc::UnboundedReceiver<Seen>,
}

impl Sink {
    /// Answers every request at once.
    async fn answering(reply: impl Fn(usize) -> (u16, Option<&'static str>) + Send + Sync + 'static) -> Sink {
        Self::start(Box::new(reply), None).await
    }

    /// Answers 200 with RSC 2000, but only as the test releases the requests.
    async fn held() -> Sink {
        Self::start(Box::new(|_| (200, Some("2000"))), Some(Arc::new(Semaphore::new(0)))).await
    }

    async fn ok() -> Sink {
        Self::answering(|_| (200, Some("2000"))).await
    }

    async fn start(reply: Reply, gate: Option<Arc<Semaphore>>) -> Sink {
        let (tx, seen) = mpsc::unbounded_channel();
        let state = Arc::new(SinkState { reply, count: AtomicUsize::new(0), seen: tx, gate });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/notify", listener.local_addr().unwrap());
        let app = axum::Router::new().fallback(answer).with_state(Arc::clone(&state));
        tokio::spawn(async move { axum::serve(listener, app).await });
        Sink { url, state, seen }
    }

    async fn next(&mut self) -> Seen {
        tokio::time::timeout(WAIT, self.seen.recv()).await.expect("a request in time").expect("the sink runs")
    }

    /// Requests received so far.
    fn count(&self) -> usize {
        self.state.count.load(Ordering::SeqCst)
    }

    /// Lets `n` held requests be answered.
    fn release(&self, n: usize) {
        self.state.gate.as_ref().expect("a held sink").add_permits(n);
    }
}

async fn answer(State(s): State<Arc<SinkState>>, req: Request) -> Response {
    let n = s.count.fetch_add(1, Ordering::SeqCst);
    let (parts, body) = req.into_parts();
    let bytes = axum::body::to_bytes(body, 1 << 20).await.unwrap_or_default();
    let body = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    let _ = s.seen.send(Seen { method: parts.method, path: parts.uri.path().to_owned(), headers: parts.headers, body });
    if let Some(gate) = &s.gate {
        gate.acquire().await.unwrap().forget();
    }
    let (status, rsc) = (s.reply)(n);
    let mut resp = Response::builder().status(status);
    if let Some(rsc) = rsc {
        resp = resp.header("X-M2M-RSC", rsc);
    }
    if (300..400).contains(&status) {
        resp = resp.header("Location", "/elsewhere");
    }
    resp.body(Body::from(r#"{"m2m:dbg":"answer"}"#)).unwrap()
}

/// A URL nothing listens on: a port that was just free.
fn dead_url() -> String {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    format!("http://{}/notify", l.local_addr().unwrap())
}

fn cfg() -> NotifyConfig {
    NotifyConfig {
        backoff: Duration::from_millis(1),
        max_backoff: Duration::from_millis(4),
        request_timeout: Duration::from_secs(30),
        ..NotifyConfig::default()
    }
}

fn target(key: &str, urls: &[&str]) -> NotifyTarget {
    NotifyTarget { key: key.into(), urls: urls.iter().map(|u| (*u).to_owned()).collect() }
}

fn sgn(i: usize) -> Value {
    json!({"m2m:sgn": {"nev": {"net": 3, "rep": {"m2m:cin": {"con": format!("v{i}")}}}, "sur": "/id-in/sub1"}})
}

fn con(seen: &Seen) -> &str {
    seen.body["m2m:sgn"]["nev"]["rep"]["m2m:cin"]["con"].as_str().unwrap()
}

/// Polls `cond` until it holds; fails the test after [`WAIT`].
async fn until(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + WAIT;
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

fn header<'a>(seen: &'a Seen, name: &str) -> &'a str {
    seen.headers.get(name).unwrap_or_else(|| panic!("{name} missing")).to_str().unwrap()
}

#[tokio::test]
async fn delivers_a_notify_with_the_binding_headers() {
    let mut sink = Sink::ok().await;
    let engine = NotificationEngine::start(cfg()).unwrap();
    let notifier: Arc<dyn Notifier> = engine.clone();
    notifier.enqueue(target(&sink.url, &[&sink.url]), sgn(1));

    let seen = sink.next().await;
    assert_eq!(seen.method, Method::POST);
    assert_eq!(seen.path, "/notify");
    assert_eq!(seen.body, sgn(1));
    assert_eq!(header(&seen, "x-m2m-origin"), "/id-in");
    assert_eq!(header(&seen, "x-m2m-rvi"), "3");
    assert_eq!(header(&seen, "content-type"), "application/json");
    assert_eq!(header(&seen, "accept"), "application/json");
    assert!(!header(&seen, "x-m2m-ri").is_empty());
    until("delivered", || engine.stats().delivered == 1).await;
    assert_eq!(
        engine.stats(),
        NotifyStats { delivered: 1, failed: 0, dropped: 0, queued: 0, held_bytes: 0, targets: 1 }
    );
}

#[tokio::test]
async fn keeps_the_order_per_target_with_fresh_request_ids() {
    let mut sink = Sink::ok().await;
    let engine = NotificationEngine::start(cfg()).unwrap();
    for i in 0..100 {
        engine.enqueue(target("CAe1", &[&sink.url]), sgn(i));
    }
    let mut rqis = std::collections::HashSet::new();
    for i in 0..100 {
        let seen = sink.next().await;
        assert_eq!(con(&seen), format!("v{i}"));
        assert!(rqis.insert(header(&seen, "x-m2m-ri").to_owned()), "request IDs are unique");
    }
    until("all delivered", || engine.stats().delivered == 100).await;
}

#[tokio::test]
async fn falls_back_to_the_next_url() {
    let mut sink = Sink::ok().await;
    let engine = NotificationEngine::start(cfg()).unwrap();
    let dead = dead_url();
    engine.enqueue(target("CAe1", &[&dead, "mqtt://broker:1883", &sink.url]), sgn(1));
    assert_eq!(sink.next().await.body, sgn(1));
    until("delivered", || engine.stats().delivered == 1).await;
    assert_eq!(engine.stats().failed, 0);
}

#[tokio::test]
async fn retries_server_errors_with_the_same_request_id() {
    let mut sink = Sink::answering(|n| if n < 2 { (500, None) } else { (200, Some("2000")) }).await;
    let engine = NotificationEngine::start(cfg()).unwrap();
    engine.enqueue(target("CAe1", &[&sink.url]), sgn(1));
    let rqi = header(&sink.next().await, "x-m2m-ri").to_owned();
    for _ in 0..2 {
        assert_eq!(header(&sink.next().await, "x-m2m-ri"), rqi);
    }
    until("delivered", || engine.stats().delivered == 1).await;
    assert_eq!(sink.count(), 3);
    assert_eq!(engine.stats().failed, 0);
}

#[tokio::test]
async fn gives_up_after_the_retries() {
    let sink = Sink::answering(|_| (503, None)).await;
    let engine = NotificationEngine::start(NotifyConfig { retries: 2, ..cfg() }).unwrap();
    engine.enqueue(target("CAe1", &[&sink.url]), sgn(1));
    until("given up", || engine.stats().failed == 1).await;
    assert_eq!(sink.count(), 3, "the first try and two retries");
    assert_eq!(engine.stats().delivered, 0);
}

#[tokio::test]
async fn does_not_retry_a_refusal() {
    // A 4xx, a 2xx whose RSC is an error, and a redirect (not followed) are all final answers.
    for (status, rsc) in [(400, Some("4000")), (403, None), (200, Some("4101")), (307, None)] {
        let sink = Sink::answering(move |_| (status, rsc)).await;
        let engine = NotificationEngine::start(cfg()).unwrap();
        engine.enqueue(target("CAe1", &[&sink.url]), sgn(1));
        until("refused", || engine.stats().failed == 1).await;
        assert_eq!(sink.count(), 1, "{status} {rsc:?} is not retried");
        assert_eq!(engine.stats().delivered, 0);
    }
}

#[tokio::test]
async fn a_2xx_without_rsc_is_delivered() {
    let sink = Sink::answering(|_| (204, None)).await;
    let engine = NotificationEngine::start(cfg()).unwrap();
    engine.enqueue(target("CAe1", &[&sink.url]), sgn(1));
    until("delivered", || engine.stats().delivered == 1).await;
}

#[tokio::test]
async fn unusable_urls_fail_at_once() {
    let engine = NotificationEngine::start(NotifyConfig { backoff: Duration::from_secs(3600), ..cfg() }).unwrap();
    engine.enqueue(target("CAe1", &["ftp://host/x", "not a url", "http://"]), sgn(1));
    // With an hour of backoff, only a failure without retry ends in time.
    until("failed", || engine.stats().failed == 1).await;
}

#[tokio::test]
async fn send_now_returns_the_receivers_rsc() {
    let engine = NotificationEngine::start(cfg()).unwrap();
    let t = Duration::from_secs(10);
    for (status, rsc, want) in [
        (200, Some("2000"), Rsc::Ok),
        (403, Some("4101"), Rsc::SubscriptionCreatorHasNoPrivilege),
        (200, Some("5205"), Rsc::SubscriptionHostHasNoPrivilege),
        (204, None, Rsc::Ok),
        (200, Some("garbage"), Rsc::Ok),
        (404, None, Rsc::NotFound),
        (500, None, Rsc::InternalServerError),
    ] {
        let mut sink = Sink::answering(move |_| (status, rsc)).await;
        let got = engine.send_now(&target("CAe1", &[&sink.url]), sgn(1), t).await;
        assert_eq!(got, Ok(want), "{status} {rsc:?}");
        let seen = sink.next().await;
        assert_eq!(seen.body, sgn(1));
        assert_eq!(header(&seen, "x-m2m-origin"), "/id-in");
    }
    assert_eq!(engine.stats().delivered, 3);
    assert_eq!(engine.stats().failed, 4);
}

#[tokio::test]
async fn send_now_tries_the_urls_in_order() {
    let mut sink = Sink::ok().await;
    let engine = NotificationEngine::start(cfg()).unwrap();
    // Any timeout, even one past the end of time, is fine.
    let got = engine.send_now(&target("CAe1", &[&dead_url(), &sink.url]), sgn(1), Duration::MAX).await;
    assert_eq!(got, Ok(Rsc::Ok));
    assert_eq!(sink.next().await.body, sgn(1));
}

#[tokio::test]
async fn send_now_fails_when_unreachable_or_silent() {
    let engine = NotificationEngine::start(cfg()).unwrap();
    let err = engine.send_now(&target("CAe1", &[&dead_url()]), sgn(1), Duration::from_secs(10)).await.unwrap_err();
    assert_eq!(err.rsc, Rsc::TargetNotReachable);
    assert!(!err.dbg.contains("127.0.0.1"), "no URL in the reason: {}", err.dbg);

    let mut silent = Sink::held().await;
    let err = engine.send_now(&target("CAe1", &[&silent.url]), sgn(1), Duration::from_millis(200)).await.unwrap_err();
    assert_eq!(err.rsc, Rsc::TargetNotReachable);
    assert_eq!(silent.next().await.body, sgn(1), "it was sent, and not answered");
    assert_eq!(engine.stats().failed, 2);

    let err = engine.send_now(&target("CAe1", &[]), sgn(1), Duration::from_secs(1)).await.unwrap_err();
    assert_eq!(err.rsc, Rsc::TargetNotReachable);
}

#[tokio::test]
async fn a_held_target_does_not_delay_another() {
    let mut slow = Sink::held().await;
    let mut fast = Sink::ok().await;
    let engine = NotificationEngine::start(cfg()).unwrap();
    engine.enqueue(target("slow", &[&slow.url]), sgn(0));
    engine.enqueue(target("slow", &[&slow.url]), sgn(1));
    assert_eq!(con(&slow.next().await), "v0");
    for i in 0..20 {
        engine.enqueue(target("fast", &[&fast.url]), sgn(i));
    }
    for i in 0..20 {
        assert_eq!(con(&fast.next().await), format!("v{i}"));
    }
    until("the fast target served", || engine.stats().delivered == 20).await;
    // The slow one still holds its first notification; its second waits behind it.
    assert_eq!(slow.count(), 1);
    assert_eq!(engine.stats().queued, 1);

    slow.release(2);
    until("the slow target served", || engine.stats().delivered == 22).await;
    assert_eq!(con(&slow.next().await), "v1");
}

/// Delivers `n` notifications to `sink` through `key` and returns how long that took, from the first
/// enqueue to the last delivery.
async fn timed_deliveries(engine: &NotificationEngine, sink: &mut Sink, key: &str, n: usize) -> Duration {
    let before = engine.stats().delivered;
    let start = Instant::now();
    for i in 0..n {
        engine.enqueue(target(key, &[&sink.url]), sgn(i));
    }
    for i in 0..n {
        assert_eq!(con(&sink.next().await), format!("v{i}"));
    }
    until("delivered", || engine.stats().delivered == before + n as u64).await;
    start.elapsed()
}

#[tokio::test]
async fn black_holes_do_not_starve_a_live_target() {
    let mut live = Sink::ok().await;
    let holes = Sink::held().await;
    let engine =
        NotificationEngine::start(NotifyConfig { max_in_flight: 4, max_in_flight_unproven: 2, ..cfg() }).unwrap();
    // The live target answers once, which proves it; then an unloaded run is the baseline.
    timed_deliveries(&engine, &mut live, "live", 1).await;
    let unloaded = timed_deliveries(&engine, &mut live, "live", 50).await;

    // Many more black-hole targets (they accept and never answer) than there are permits at all.
    for i in 0..16 {
        engine.enqueue(target(&format!("hole{i}"), &[&holes.url]), sgn(i));
    }
    until("the black holes hold every unproven permit", || holes.count() == 2).await;
    let loaded = timed_deliveries(&engine, &mut live, "live", 50).await;

    // Starved, the live target would wait for the black holes' request timeout (30 s); the bound
    // is loose so that a busy machine does not fail it.
    assert!(
        loaded <= unloaded * 4 + Duration::from_secs(3),
        "50 deliveries took {loaded:?} with 16 black holes queued, {unloaded:?} without"
    );
    assert_eq!(holes.count(), 2, "the black holes still hold their requests, and no more");
    assert_eq!(engine.stats().failed, 0, "the other black-hole notifications wait for unproven permits");
}

#[tokio::test]
async fn a_given_up_target_fails_at_once_while_its_circuit_is_open() {
    let sink = Sink::answering(|_| (503, None)).await;
    let hour = Duration::from_secs(3600);
    let cfg = NotifyConfig { retries: 1, circuit_cooldown: hour, max_circuit_cooldown: hour, ..cfg() };
    let engine = NotificationEngine::start(cfg).unwrap();
    engine.enqueue(target("CAe1", &[&sink.url]), sgn(0));
    until("given up", || engine.stats().failed == 1).await;
    assert_eq!(sink.count(), 2);
    for i in 1..4 {
        engine.enqueue(target("CAe1", &[&sink.url]), sgn(i));
    }
    until("failed at once", || engine.stats().failed == 4).await;
    assert_eq!(sink.count(), 2, "no request while the circuit is open");
    assert_eq!(engine.stats().held_bytes, 0, "their bytes are released");
}

#[tokio::test]
async fn the_circuit_closes_when_the_target_answers_again() {
    // Unreachable at first (two requests get 503), then healthy.
    let mut sink = Sink::answering(|n| if n < 2 { (503, None) } else { (200, Some("2000")) }).await;
    let cfg = NotifyConfig { retries: 1, circuit_cooldown: Duration::from_millis(20), ..cfg() };
    let engine = NotificationEngine::start(cfg).unwrap();
    engine.enqueue(target("CAe1", &[&sink.url]), sgn(0));
    until("given up", || engine.stats().failed == 1).await;
    sink.next().await;
    sink.next().await;
    // Once the cooldown has passed, a notification is sent again (half-open) and delivered.
    until("sent after the cooldown", || {
        let s = engine.stats();
        if s.queued == 0 && s.delivered == 0 {
            engine.enqueue(target("CAe1", &[&sink.url]), sgn(9));
        }
        engine.stats().delivered == 1
    })
    .await;
    assert_eq!(con(&sink.next().await), "v9");
    // Closed again: the next one is sent and delivered.
    engine.enqueue(target("CAe1", &[&sink.url]), sgn(10));
    assert_eq!(con(&sink.next().await), "v10");
    until("delivered", || engine.stats().delivered == 2).await;
}

#[test]
fn proven_urls_are_remembered_and_bounded() {
    let mut h = Health::new(Duration::from_secs(1));
    assert!(!h.is_proven("http://a"));
    h.answered("http://a", true);
    assert!(h.is_proven("http://a"));
    h.answered("http://a", false);
    assert!(!h.is_proven("http://a"), "silent once: unproven again");
    for i in 0..(MAX_PROVEN_URLS + 3) {
        h.answered(&format!("http://u{i}"), true);
    }
    assert_eq!(h.proven.len(), MAX_PROVEN_URLS);
    assert!(h.is_proven(&format!("http://u{}", MAX_PROVEN_URLS + 2)));
    assert!(!h.is_proven("http://u0"), "the oldest is forgotten");
}

#[tokio::test]
async fn a_full_queue_drops() {
    let mut slow = Sink::held().await;
    let engine = NotificationEngine::start(NotifyConfig { queue_depth: 2, ..cfg() }).unwrap();
    engine.enqueue(target("CAe1", &[&slow.url]), sgn(0));
    assert_eq!(con(&slow.next().await), "v0");
    for i in 1..6 {
        engine.enqueue(target("CAe1", &[&slow.url]), sgn(i));
    }
    let s = engine.stats();
    assert_eq!((s.queued, s.dropped), (2, 3));

    slow.release(3);
    until("the queue delivered", || engine.stats().delivered == 3).await;
    assert_eq!(con(&slow.next().await), "v1");
    assert_eq!(con(&slow.next().await), "v2");
    assert_eq!(slow.count(), 3);
    assert_eq!(engine.stats().dropped, 3);
}

#[tokio::test]
async fn too_many_targets_drop() {
    let mut slow = Sink::held().await;
    let other = Sink::ok().await;
    let engine = NotificationEngine::start(NotifyConfig { max_targets: 1, ..cfg() }).unwrap();
    engine.enqueue(target("slow", &[&slow.url]), sgn(0));
    slow.next().await;
    engine.enqueue(target("other", &[&other.url]), sgn(1));
    let s = engine.stats();
    assert_eq!((s.targets, s.dropped), (1, 1));
    slow.release(1);
    until("delivered", || engine.stats().delivered == 1).await;
    assert_eq!(other.count(), 0);
}

#[tokio::test]
async fn the_byte_budget_drops() {
    let mut slow = Sink::held().await;
    let size = serde_json::to_vec(&sgn(0)).unwrap().len();
    let engine = NotificationEngine::start(NotifyConfig { max_queued_bytes: size + size / 2, ..cfg() }).unwrap();
    engine.enqueue(target("CAe1", &[&slow.url]), sgn(0));
    slow.next().await;
    engine.enqueue(target("CAe2", &[&slow.url]), sgn(1));
    let s = engine.stats();
    assert_eq!((s.held_bytes, s.dropped), (size, 1));
    slow.release(1);
    until("delivered and released", || engine.stats().delivered == 1).await;
    assert_eq!(engine.stats().held_bytes, 0);
    engine.enqueue(target("CAe2", &[&slow.url]), sgn(2));
    slow.release(1);
    until("the budget is free again", || engine.stats().delivered == 2).await;
}

#[tokio::test]
async fn an_idle_worker_ends_and_a_new_one_starts() {
    let mut sink = Sink::ok().await;
    let engine = NotificationEngine::start(NotifyConfig { idle_timeout: Duration::from_millis(20), ..cfg() }).unwrap();
    engine.enqueue(target("CAe1", &[&sink.url]), sgn(0));
    until("delivered", || engine.stats().delivered == 1).await;
    until("the worker ended", || engine.stats().targets == 0).await;
    engine.enqueue(target("CAe1", &[&sink.url]), sgn(1));
    until("delivered again", || engine.stats().delivered == 2).await;
    assert_eq!(con(&sink.next().await), "v0");
    assert_eq!(con(&sink.next().await), "v1");
}

#[tokio::test]
async fn shutdown_delivers_what_is_queued_then_refuses() {
    let sink = Sink::ok().await;
    let engine = NotificationEngine::start(cfg()).unwrap();
    for i in 0..10 {
        engine.enqueue(target(&format!("CAe{}", i % 3), &[&sink.url]), sgn(i));
    }
    engine.shutdown(WAIT).await;
    let s = engine.stats();
    assert_eq!((s.delivered, s.dropped, s.targets), (10, 0, 0));
    engine.enqueue(target("CAe1", &[&sink.url]), sgn(10));
    assert_eq!(engine.stats().dropped, 1);
    assert_eq!(sink.count(), 10);
}

#[tokio::test]
async fn shutdown_after_the_grace_drops_what_is_left() {
    let mut slow = Sink::held().await;
    let engine = NotificationEngine::start(cfg()).unwrap();
    for i in 0..3 {
        engine.enqueue(target("CAe1", &[&slow.url]), sgn(i));
    }
    slow.next().await;
    engine.shutdown(Duration::from_millis(50)).await;
    assert_eq!(
        engine.stats(),
        NotifyStats { delivered: 0, failed: 0, dropped: 3, queued: 0, held_bytes: 0, targets: 0 }
    );
}

#[tokio::test]
async fn dropping_the_engine_stops_its_workers() {
    let mut slow = Sink::held().await;
    let engine = NotificationEngine::start(cfg()).unwrap();
    engine.enqueue(target("CAe1", &[&slow.url]), sgn(0));
    engine.enqueue(target("CAe1", &[&slow.url]), sgn(1));
    slow.next().await;
    let shared = Arc::clone(&engine.shared);
    drop(engine);
    shared.tracker.close();
    tokio::time::timeout(WAIT, shared.tracker.wait()).await.expect("the workers end");
    assert_eq!(shared.counters.dropped.load(Ordering::Relaxed), 2);
    assert!(shared.queues.lock().map.is_empty());
}

#[test]
fn starting_needs_a_runtime_and_sane_settings() {
    assert!(matches!(NotificationEngine::start(cfg()), Err(StartError::NoRuntime)));
    for bad in [
        NotifyConfig { queue_depth: 0, ..cfg() },
        NotifyConfig { max_targets: 0, ..cfg() },
        NotifyConfig { max_in_flight: 0, ..cfg() },
        NotifyConfig { max_in_flight_unproven: 0, ..cfg() },
        NotifyConfig { circuit_cooldown: Duration::ZERO, ..cfg() },
        NotifyConfig { max_circuit_cooldown: Duration::from_millis(1), ..cfg() },
        NotifyConfig { request_timeout: Duration::ZERO, ..cfg() },
        NotifyConfig { release_version: ReleaseVersion::V1, ..cfg() },
    ] {
        assert!(matches!(NotificationEngine::start(bad), Err(StartError::Config(_))));
    }
}

#[test]
fn http_statuses_map_to_response_status_codes() {
    let rsc = |s: u16| rsc_for_status(StatusCode::from_u16(s).unwrap());
    assert_eq!(rsc(200), Some(Rsc::Ok));
    assert_eq!(rsc(204), Some(Rsc::Ok));
    assert_eq!(rsc(400), Some(Rsc::BadRequest));
    assert_eq!(rsc(403), Some(Rsc::OriginatorHasNoPrivilege));
    assert_eq!(rsc(404), Some(Rsc::NotFound));
    assert_eq!(rsc(418), Some(Rsc::BadRequest));
    assert_eq!(rsc(501), Some(Rsc::NotImplemented));
    assert_eq!(rsc(503), Some(Rsc::InternalServerError));
    assert_eq!(rsc(504), Some(Rsc::RequestTimeout));
    assert_eq!(rsc(307), None);
}

#[test]
fn answers_are_classified() {
    let http = |s: u16, rsc: Option<u16>| Answer::Http { status: StatusCode::from_u16(s).unwrap(), rsc };
    assert!(http(200, Some(2000)).is_success());
    assert!(http(201, Some(2001)).is_success());
    assert!(http(204, None).is_success());
    assert!(!http(200, Some(4101)).is_success());
    assert!(!http(404, None).is_success());
    for transient in [http(500, None), http(503, Some(5000)), http(408, None), http(429, None)] {
        assert!(transient.is_transient(), "{transient}");
    }
    assert!(Answer::Unreachable("x".into()).is_transient());
    for final_answer in [http(400, Some(4000)), http(403, None), http(301, None), Answer::Unusable("x".into())] {
        assert!(!final_answer.is_transient(), "{final_answer}");
    }
}

#[tokio::test]
async fn backoff_doubles_up_to_the_cap_with_jitter() {
    let cfg = NotifyConfig { backoff: Duration::from_millis(100), max_backoff: Duration::from_millis(500), ..cfg() };
    let engine = NotificationEngine::start(cfg).unwrap();
    let s = &engine.shared;
    for (retry, full) in [(1, 100), (2, 200), (3, 400), (4, 500), (40, 500)] {
        for _ in 0..20 {
            let d = s.backoff(retry);
            let full = Duration::from_millis(full);
            assert!(d >= full / 2 && d <= full, "retry {retry}: {d:?}");
        }
    }
}

#[test]
fn logs_do_not_show_credentials() {
    assert_eq!(redact("https://user:secret@host:8443/path?token=abc"), "https://host:8443/path");
    assert_eq!(redact("http://host/n"), "http://host/n");
    assert_eq!(redact("CAe1"), "CAe1");
}
