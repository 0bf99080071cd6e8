//! Subscriptions and notifications over real HTTP, with a notification receiver: the verification
//! request, each event type, the notification content types, the expiration counter, the deletion
//! notice, and a target that never answers.

use std::time::Duration;

use serde_json::{Value, json};
use testkit::cse::{CseOptions, TestCse};
use testkit::eventually;
use testkit::m2m::{Req, client};
use testkit::sink::{Received, Sink};

const WAIT: Duration = Duration::from_secs(10);

pub(crate) struct Setup {
    pub(crate) cse: TestCse,
    pub(crate) http: reqwest::Client,
    pub(crate) aei: String,
}

/// A CSE with one AE (`ae`, point of access `poa`) and a container `ae/cnt`.
async fn setup(poa: &str) -> Setup {
    setup_with(CseOptions::default(), poa).await
}

/// The same, on a CSE started with `opts`.
pub(crate) async fn setup_with(opts: CseOptions, poa: &str) -> Setup {
    let cse = TestCse::start(opts).await;
    let http = client();
    let ae = json!({"m2m:ae": {"rn": "ae", "api": "Nn.app", "rr": true, "srv": ["4"], "poa": [poa]}});
    let r = Req::create("/cse-in", "C", 2, ae).send(&http, &cse.url).await;
    assert_eq!(r.rsc, 2001, "{}", r.body);
    let aei = r.str_at("/m2m:ae/aei");
    let r = Req::create("/cse-in/ae", &aei, 3, json!({"m2m:cnt": {"rn": "cnt"}})).send(&http, &cse.url).await;
    assert_eq!(r.rsc, 2001);
    Setup { cse, http, aei }
}

fn sgn(r: &Received) -> &Value {
    r.body.get("m2m:sgn").unwrap_or(&Value::Null)
}

fn net_is(n: u64) -> impl Fn(&Received) -> bool {
    move |r| sgn(r).pointer("/nev/net").and_then(Value::as_u64) == Some(n)
}

#[tokio::test]
async fn verification_and_child_creation() {
    let sink = Sink::start().await;
    let s = setup(&sink.url()).await;
    let sub = json!({"m2m:sub": {"rn": "sub", "nu": [sink.url()], "enc": {"net": [3]}}});
    let r = Req::create("/cse-in/ae/cnt", &s.aei, 23, sub).send(&s.http, &s.cse.url).await;
    assert_eq!(r.rsc, 2001, "{}", r.body);
    let ri = r.str_at("/m2m:sub/ri");
    let vrq = sink.wait_for(WAIT, |r| sgn(r)["vrq"] == json!(true)).await.expect("verification request");
    assert_eq!(sgn(&vrq)["sur"], json!(format!("/id-in/{ri}")));
    assert_eq!(sgn(&vrq)["cr"], json!(s.aei));
    assert_eq!(vrq.headers["x-m2m-origin"], "/id-in");
    assert!(vrq.headers["content-type"].to_str().unwrap().starts_with("application/json"));
    assert!(!vrq.headers["content-type"].to_str().unwrap().contains("ty="));

    let cin = json!({"m2m:cin": {"con": "21.5", "cnf": "text/plain:0"}});
    assert_eq!(Req::create("/cse-in/ae/cnt", &s.aei, 4, cin).send(&s.http, &s.cse.url).await.rsc, 2001);
    let n = sink.wait_for(WAIT, net_is(3)).await.expect("notification");
    assert_eq!(sgn(&n).pointer("/nev/rep/m2m:cin/con"), Some(&json!("21.5")), "{}", n.body);
    assert_eq!(sgn(&n)["sur"], json!(format!("/id-in/{ri}")));
}

#[tokio::test]
async fn verification_failures_are_5204() {
    let sink = Sink::start().await;
    let s = setup(&sink.url()).await;
    // Nothing listens on this port.
    let dead = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        format!("http://{}", l.local_addr().unwrap())
    };
    let sub = json!({"m2m:sub": {"nu": [dead], "enc": {"net": [3]}}});
    let r = Req::create("/cse-in/ae/cnt", &s.aei, 23, sub).send(&s.http, &s.cse.url).await;
    assert_eq!(r.rsc, 5204, "{}", r.body);
    // A target that refuses.
    let refusing = Sink::start().await;
    refusing.answer(4101);
    let sub = json!({"m2m:sub": {"nu": [refusing.url()]}});
    let r = Req::create("/cse-in/ae/cnt", &s.aei, 23, sub).send(&s.http, &s.cse.url).await;
    assert_eq!(r.rsc, 5204, "{}", r.body);
    // Nothing half-created.
    let r = Req::get("/cse-in/ae/cnt?fu=1&ty=23", &s.aei).send(&s.http, &s.cse.url).await;
    assert_eq!(r.body["m2m:uril"], json!([]));
    // A nu that is neither a URL nor an AE.
    let sub = json!({"m2m:sub": {"nu": ["nowhere"]}});
    assert_eq!(Req::create("/cse-in/ae/cnt", &s.aei, 23, sub).send(&s.http, &s.cse.url).await.rsc, 4000);
    let sub = json!({"m2m:sub": {"nu": ["mqtt://broker/topic"]}});
    assert_eq!(Req::create("/cse-in/ae/cnt", &s.aei, 23, sub).send(&s.http, &s.cse.url).await.rsc, 4000);
}

#[tokio::test]
async fn update_with_modified_attributes_and_resource_ids() {
    let sink = Sink::start().await;
    let s = setup(&sink.url()).await;
    // nu is the subscriber itself (an AE-ID): delivered to its poa, no verification needed.
    let sub = json!({"m2m:sub": {"rn": "s1", "nu": [s.aei], "enc": {"net": [1]}, "nct": 2}});
    assert_eq!(Req::create("/cse-in/ae/cnt", &s.aei, 23, sub).send(&s.http, &s.cse.url).await.rsc, 2001);
    let sub = json!({"m2m:sub": {"rn": "s3", "nu": [s.aei], "enc": {"net": [1]}, "nct": 3}});
    assert_eq!(Req::create("/cse-in/ae/cnt", &s.aei, 23, sub).send(&s.http, &s.cse.url).await.rsc, 2001);
    assert!(sink.received().is_empty(), "no verification for the subscriber itself");
    let r = Req::update("/cse-in/ae/cnt", &s.aei, json!({"m2m:cnt": {"lbl": ["x"]}})).send(&s.http, &s.cse.url).await;
    assert_eq!(r.rsc, 2004);
    let cnt_ri = r.str_at("/m2m:cnt/ri");
    let modified = sink.wait_for(WAIT, |r| sgn(r).pointer("/nev/rep/m2m:cnt").is_some()).await.expect("nct 2");
    let rep = &sgn(&modified)["nev"]["rep"]["m2m:cnt"];
    assert_eq!(rep["lbl"], json!(["x"]));
    assert!(rep.get("rn").is_none(), "only modified attributes: {rep}");
    let uri = sink.wait_for(WAIT, |r| sgn(r).pointer("/nev/rep/m2m:uri").is_some()).await.expect("nct 3");
    assert_eq!(sgn(&uri)["nev"]["rep"]["m2m:uri"], json!(cnt_ri));
}

/// The notifications of one subscription (by its `sur`) that a sink received, in order.
fn of_sub(sink: &Sink, sur: &str) -> Vec<Value> {
    sink.received()
        .iter()
        .map(|r| sgn(r).clone())
        .filter(|s| s["sur"] == json!(sur) && s.get("nev").is_some())
        .collect()
}

async fn make_sub(s: &Setup, on: &str, body: Value) -> String {
    let r = Req::create(on, &s.aei, 23, json!({ "m2m:sub": body })).send(&s.http, &s.cse.url).await;
    assert_eq!(r.rsc, 2001, "{}", r.body);
    format!("/id-in/{}", r.str_at("/m2m:sub/ri"))
}

async fn add_cin(s: &Setup, con: &str) {
    let cin = json!({"m2m:cin": {"con": con}});
    assert_eq!(Req::create("/cse-in/ae/cnt", &s.aei, 4, cin).send(&s.http, &s.cse.url).await.rsc, 2001);
}

#[tokio::test]
async fn expiration_counter_and_deletion_notice() {
    let sink = Sink::start().await;
    let s = setup(&sink.url()).await;
    let subscriber = Sink::start().await;
    let sur = make_sub(
        &s,
        "/cse-in/ae/cnt",
        json!({"rn": "once", "nu": [s.aei], "enc": {"net": [3]}, "exc": 2, "su": subscriber.url()}),
    )
    .await;
    for i in 0..3 {
        add_cin(&s, &format!("v{i}")).await;
    }
    let notice = subscriber.wait_for(WAIT, |r| sgn(r)["sud"] == json!(true)).await.expect("deletion notice");
    assert_eq!(sgn(&notice)["sur"], json!(sur));
    assert_eq!(Req::get("/cse-in/ae/cnt/once", &s.aei).send(&s.http, &s.cse.url).await.rsc, 4004);
    // The subscription was removed within the request that sent its second notification, so the
    // third instance notified nobody: once two have arrived, no other can.
    let two = eventually(WAIT, async || of_sub(&sink, &sur).len() >= 2).await;
    assert!(two, "two notifications");
    let got = of_sub(&sink, &sur);
    assert_eq!(
        got.iter().map(|n| n["nev"]["rep"]["m2m:cin"]["con"].clone()).collect::<Vec<_>>(),
        vec![json!("v0"), json!("v1")]
    );
}

/// The expiration counter is kept with the subscription: a restart does not start it again.
#[tokio::test]
async fn expiration_counter_survives_a_restart() {
    let sink = Sink::start().await;
    let mut s = setup(&sink.url()).await;
    let sur =
        make_sub(&s, "/cse-in/ae/cnt", json!({"rn": "three", "nu": [s.aei], "enc": {"net": [3]}, "exc": 3})).await;
    add_cin(&s, "a").await;
    add_cin(&s, "b").await;
    assert!(eventually(WAIT, async || of_sub(&sink, &sur).len() == 2).await, "two before the restart");
    s.cse = s.cse.restart().await;
    add_cin(&s, "c").await;
    assert_eq!(Req::get("/cse-in/ae/cnt/three", &s.aei).send(&s.http, &s.cse.url).await.rsc, 4004, "exc 3 was reached");
    add_cin(&s, "d").await;
    assert!(eventually(WAIT, async || of_sub(&sink, &sur).len() >= 3).await, "the third notification");
    let cons: Vec<Value> = of_sub(&sink, &sur).iter().map(|n| n["nev"]["rep"]["m2m:cin"]["con"].clone()).collect();
    assert_eq!(cons, vec![json!("a"), json!("b"), json!("c")]);
}

/// `atr`, size conditions and operation monitors decide which events notify. Notifications to
/// one target arrive in order, so an event that should not have notified would show up before
/// the one that should.
#[tokio::test]
async fn criteria_select_the_events() {
    let sink = Sink::start().await;
    let s = setup(&sink.url()).await;
    let by_atr = make_sub(&s, "/cse-in/ae/cnt", json!({"nu": [s.aei], "enc": {"atr": ["lbl"]}, "nct": 2})).await;
    let by_size = make_sub(&s, "/cse-in/ae/cnt", json!({"nu": [s.aei], "enc": {"net": [3], "sza": 3}})).await;
    let by_om = make_sub(&s, "/cse-in/ae/cnt", json!({"nu": [s.aei], "enc": {"om": [{"ops": 2, "org": s.aei}]}})).await;
    let up = |body: Value| Req::update("/cse-in/ae/cnt", &s.aei, json!({ "m2m:cnt": body }));
    assert_eq!(up(json!({"mni": 9})).send(&s.http, &s.cse.url).await.rsc, 2004);
    assert_eq!(up(json!({"lbl": ["seen"]})).send(&s.http, &s.cse.url).await.rsc, 2004);
    add_cin(&s, "ab").await;
    add_cin(&s, "abcd").await;
    assert_eq!(Req::get("/cse-in/ae/cnt", "CAdmin").send(&s.http, &s.cse.url).await.rsc, 2000);
    assert_eq!(Req::get("/cse-in/ae/cnt", &s.aei).send(&s.http, &s.cse.url).await.rsc, 2000);
    let arrived = eventually(WAIT, async || {
        !of_sub(&sink, &by_atr).is_empty() && !of_sub(&sink, &by_size).is_empty() && !of_sub(&sink, &by_om).is_empty()
    })
    .await;
    assert!(arrived, "{:?}", sink.received());
    let first = |sur: &str| of_sub(&sink, sur).remove(0);
    assert_eq!(first(&by_atr)["nev"]["rep"]["m2m:cnt"], json!({"lbl": ["seen"]}), "mni was not in atr");
    assert_eq!(first(&by_size)["nev"]["rep"]["m2m:cin"]["con"], json!("abcd"), "cs 2 is below sza");
    let om = first(&by_om);
    assert_eq!(om["nev"]["om"], json!({"ops": 2, "org": s.aei}), "the admin's retrieve was not monitored");
    assert!(om["nev"].get("net").is_none(), "a retrieve is no event type");
    assert_eq!(om["nev"]["rep"]["m2m:cnt"]["rn"], json!("cnt"));
    // Criteria that are not evaluated are refused, not ignored.
    for (enc, what) in [
        (json!({"enc": {"md": {"num": 1, "dur": "PT1M"}}}), "md"),
        (json!({"enc": {"net": [5]}}), "net 5"),
        (json!({"enc": {"bogus": 1}}), "unknown member"),
        (json!({"bn": {"num": 2}}), "batchNotify"),
        (json!({"su": "nowhere"}), "su"),
    ] {
        let mut body = enc.as_object().unwrap().clone();
        body.insert("nu".into(), json!([s.aei]));
        let r = Req::create("/cse-in/ae/cnt", &s.aei, 23, json!({ "m2m:sub": body })).send(&s.http, &s.cse.url).await;
        assert_eq!(r.rsc, 4000, "{what}: {}", r.body);
    }
}

#[tokio::test]
async fn deletion_events() {
    let sink = Sink::start().await;
    let s = setup(&sink.url()).await;
    let subscriber = Sink::start().await;
    let on_cnt = json!({"m2m:sub": {"rn": "d", "nu": [s.aei], "enc": {"net": [2]}, "su": subscriber.url()}});
    assert_eq!(Req::create("/cse-in/ae/cnt", &s.aei, 23, on_cnt).send(&s.http, &s.cse.url).await.rsc, 2001);
    let on_ae = json!({"m2m:sub": {"rn": "c", "nu": [s.aei], "enc": {"net": [4]}}});
    assert_eq!(Req::create("/cse-in/ae", &s.aei, 23, on_ae).send(&s.http, &s.cse.url).await.rsc, 2001);
    assert_eq!(Req::delete("/cse-in/ae/cnt", &s.aei).send(&s.http, &s.cse.url).await.rsc, 2002);
    let deleted = sink.wait_for(WAIT, net_is(2)).await.expect("net 2");
    assert_eq!(sgn(&deleted).pointer("/nev/rep/m2m:cnt/rn"), Some(&json!("cnt")));
    let child = sink.wait_for(WAIT, net_is(4)).await.expect("net 4");
    assert_eq!(sgn(&child).pointer("/nev/rep/m2m:cnt/rn"), Some(&json!("cnt")));
    subscriber.wait_for(WAIT, |r| sgn(r)["sud"] == json!(true)).await.expect("deletion notice of the subscription");
}

/// An AE named `rn` whose notifications go to `poa`, with a container `c` and a subscription to
/// it that notifies the AE; the AE-ID.
async fn notified_ae(s: &Setup, rn: &str, poa: &str) -> String {
    let ae = json!({"m2m:ae": {"rn": rn, "api": "Nn.app", "rr": true, "srv": ["4"], "poa": [poa]}});
    let aei = Req::create("/cse-in", "C", 2, ae).send(&s.http, &s.cse.url).await.str_at("/m2m:ae/aei");
    let path = format!("/cse-in/{rn}");
    let r = Req::create(&path, &aei, 3, json!({"m2m:cnt": {"rn": "c"}})).send(&s.http, &s.cse.url).await;
    assert_eq!(r.rsc, 2001, "{}", r.body);
    let sub = json!({"m2m:sub": {"nu": [aei], "enc": {"net": [3]}}});
    assert_eq!(Req::create(&format!("{path}/c"), &aei, 23, sub).send(&s.http, &s.cse.url).await.rsc, 2001);
    aei
}

/// Creates `n` instances in `/cse-in/other/c` and waits until `sink` got the notification of the
/// last; how long that took.
async fn notified_round(s: &Setup, other: &str, sink: &Sink, round: usize, n: usize) -> Duration {
    let start = std::time::Instant::now();
    for i in 0..n {
        let cin = json!({"m2m:cin": {"con": format!("r{round}v{i}")}});
        assert_eq!(Req::create("/cse-in/other/c", other, 4, cin).send(&s.http, &s.cse.url).await.rsc, 2001);
    }
    let last = json!(format!("r{round}v{}", n - 1));
    let got = sink.wait_for(WAIT, |r| sgn(r).pointer("/nev/rep/m2m:cin/con") == Some(&last)).await;
    assert!(got.is_some(), "the healthy target got round {round}");
    start.elapsed()
}

#[tokio::test]
async fn a_target_that_never_answers_delays_nothing() {
    let stuck = Sink::start_holding().await;
    // Few permits for unproven targets, so that a handful of black holes can hold them all.
    let mut opts = CseOptions::default();
    opts.cse.notify.max_in_flight_unproven = 2;
    let cse = TestCse::start(opts).await;
    let s = Setup { http: client(), cse, aei: String::new() };
    // A healthy target; its first round proves it and measures the unloaded time.
    let healthy = Sink::start().await;
    let other = notified_ae(&s, "other", &healthy.url()).await;
    notified_round(&s, &other, &healthy, 0, 1).await;
    let unloaded = notified_round(&s, &other, &healthy, 1, 20).await;

    // Black holes: targets that hold every request open, more of them than there are permits.
    let mut holes = Vec::new();
    for i in 0..6 {
        holes.push(notified_ae(&s, &format!("hole{i}"), &stuck.url()).await);
    }
    // Many requests that notify them complete while they hold their first notifications...
    for (i, aei) in holes.iter().enumerate() {
        let path = format!("/cse-in/hole{i}/c");
        for j in 0..5 {
            let cin = json!({"m2m:cin": {"con": format!("h{j}")}});
            assert_eq!(Req::create(&path, aei, 4, cin).send(&s.http, &s.cse.url).await.rsc, 2001);
        }
    }
    let holding = eventually(WAIT, async || stuck.received().len() == 2).await;
    assert!(holding, "the black holes hold every unproven permit: {}", stuck.received().len());
    // ...and the healthy target is served meanwhile, about as fast as without them.
    let loaded = notified_round(&s, &other, &healthy, 2, 20).await;
    // Starved, the healthy target would wait for the black holes' request timeout; the bound is
    // loose so that a busy machine does not fail it.
    assert!(
        loaded <= unloaded * 4 + Duration::from_secs(3),
        "20 notified requests took {loaded:?} with 6 black holes, {unloaded:?} without"
    );
    assert_eq!(stuck.received().len(), 2, "the black holes still hold their first notifications, and no more");
    stuck.release();
}

/// A request expiration ends a request that waits for something slow before its write — here a
/// subscription's verification request to a target that never answers — and nothing is written.
#[tokio::test]
async fn request_expiration_stops_before_the_write() {
    let stuck = Sink::start_holding().await;
    let s = setup(&stuck.url()).await;
    let absent = |name: &'static str| {
        let (http, url, aei) = (s.http.clone(), s.cse.url.clone(), s.aei.clone());
        async move { Req::get(&format!("/cse-in/ae/cnt/{name}"), &aei).send(&http, &url).await.rsc == 4004 }
    };
    // rqet, relative: 800 ms from now.
    let sub = json!({"m2m:sub": {"rn": "byRqet", "nu": [stuck.url()]}});
    let started = std::time::Instant::now();
    let r = Req::create("/cse-in/ae/cnt", &s.aei, 23, sub).header("X-M2M-RET", "800").send(&s.http, &s.cse.url).await;
    assert_eq!(r.rsc, 4008, "{}", r.body);
    assert!(started.elapsed() < Duration::from_secs(4), "the verification timeout (5 s) answered, not rqet");
    assert!(absent("byRqet").await, "an expired request left a subscription behind");
    // rqet, absolute.
    let soon = onem2m::Timestamp::from_micros(s.cse.service.cse.now().micros() + 800_000).to_string();
    let sub = json!({"m2m:sub": {"rn": "byTime", "nu": [stuck.url()]}});
    let r = Req::create("/cse-in/ae/cnt", &s.aei, 23, sub).header("X-M2M-RET", &soon).send(&s.http, &s.cse.url).await;
    assert_eq!(r.rsc, 4008, "{}", r.body);
    assert!(absent("byTime").await);
    // The Upper Tester's short request expiration.
    assert_eq!(crate::lifecycle::ut(&s.http, &s.cse.url, "enableShortRequestExpiration 1").await.0, 2000);
    let sub = json!({"m2m:sub": {"rn": "byUt", "nu": [stuck.url()]}});
    let r = Req::create("/cse-in/ae/cnt", &s.aei, 23, sub).send(&s.http, &s.cse.url).await;
    assert_eq!(r.rsc, 4008, "{}", r.body);
    assert!(absent("byUt").await);
    // A request that finishes in time is carried out, with its notification.
    stuck.release();
    let sub = json!({"m2m:sub": {"rn": "inTime", "nu": [stuck.url()], "enc": {"net": [3]}}});
    let r = Req::create("/cse-in/ae/cnt", &s.aei, 23, sub).header("X-M2M-RET", "20000").send(&s.http, &s.cse.url).await;
    assert_eq!(r.rsc, 2001, "{}", r.body);
    let cin = json!({"m2m:cin": {"con": "on time"}});
    assert_eq!(Req::create("/cse-in/ae/cnt", &s.aei, 4, cin).send(&s.http, &s.cse.url).await.rsc, 2001);
    let got = stuck.wait_for(WAIT, |r| sgn(r).pointer("/nev/rep/m2m:cin/con") == Some(&json!("on time"))).await;
    assert!(got.is_some(), "the notification of a request answered in time");
}

/// A write committed after the request's deadline is answered as done, and notifies: the deadline
/// is never applied after a commit.
#[tokio::test]
async fn a_committed_write_is_answered_as_done() {
    use cse::core::{Binding, Ctx};
    use onem2m::{Operation, Request, ResourceType};
    let sink = Sink::start().await;
    let dir = tempfile::tempdir().unwrap();
    let store = std::sync::Arc::new(crate::store::TestStore::open(dir.path()));
    let cfg = cse::config::CseConfig::default();
    let engine = cse::notify::NotificationEngine::start(cse::notify::NotifyConfig::new(cfg.cse_id.clone())).unwrap();
    let core = cse::core::Cse::start(cfg, store.clone(), engine, std::sync::Arc::new(cse::core::SystemClock), None)
        .await
        .unwrap();
    let ctx = Ctx::plain(Binding::Http);
    let request = |op, to: &str, from: &str, ty: Option<ResourceType>, pc: Value| {
        let mut r = Request::new(op, to, Some(from.to_owned()), "rqi");
        r.rvi = Some("4".into());
        r.ty = ty;
        r.pc = Some(pc);
        r
    };
    let ae = json!({"m2m:ae": {"rn": "ae", "api": "Nn.app", "rr": true, "srv": ["4"], "poa": [sink.url()]}});
    let r = core.handle(request(Operation::Create, "cse-in", "C", Some(ResourceType::Ae), ae), &ctx).await;
    assert_eq!(r.rsc, onem2m::Rsc::Created, "{:?}", r.pc);
    let aei = r.pc.as_ref().unwrap()["m2m:ae"]["aei"].as_str().unwrap().to_owned();
    let cnt = json!({"m2m:cnt": {"rn": "cnt"}});
    let r = core.handle(request(Operation::Create, "cse-in/ae", &aei, Some(ResourceType::Container), cnt), &ctx).await;
    assert_eq!(r.rsc, onem2m::Rsc::Created);
    let sub = json!({"m2m:sub": {"nu": [aei], "enc": {"net": [3]}}});
    let r = core
        .handle(request(Operation::Create, "cse-in/ae/cnt", &aei, Some(ResourceType::Subscription), sub), &ctx)
        .await;
    assert_eq!(r.rsc, onem2m::Rsc::Created, "{:?}", r.pc);

    assert_eq!(core.upper_tester("enableShortRequestExpiration 1").await.unwrap().rsc, onem2m::Rsc::Ok);
    store.slow_acks.store(true, std::sync::atomic::Ordering::SeqCst);
    let cin = json!({"m2m:cin": {"rn": "late", "con": "committed"}});
    let r = core
        .handle(request(Operation::Create, "cse-in/ae/cnt", &aei, Some(ResourceType::ContentInstance), cin), &ctx)
        .await;
    assert_eq!(r.rsc, onem2m::Rsc::Created, "a committed write was answered {:?}: {:?}", r.rsc, r.pc);
    store.slow_acks.store(false, std::sync::atomic::Ordering::SeqCst);
    let mut get = Request::new(Operation::Retrieve, "cse-in/ae/cnt/late", Some(aei.clone()), "rqi2");
    get.rvi = Some("4".into());
    assert_eq!(core.handle(get, &ctx).await.rsc, onem2m::Rsc::Ok);
    let n = sink.wait_for(WAIT, |r| sgn(r).pointer("/nev/rep/m2m:cin/con") == Some(&json!("committed"))).await;
    assert!(n.is_some(), "the committed write's notification was not sent");
}

/// `GET /healthz` reads the CSEBase but is no oneM2M request: an operation monitor on the CSEBase
/// is not told of it. Notifications to one target arrive in order, so a notification of the health
/// check would arrive before the one of the retrieve that follows it.
#[tokio::test]
async fn health_checks_notify_no_operation_monitor() {
    let sink = Sink::start().await;
    let s = setup(&sink.url()).await;
    let sub = json!({"m2m:sub": {"nu": [sink.url()], "enc": {"om": [{"ops": 2}]}}});
    let r = Req::create("/cse-in", "CAdmin", 23, sub).send(&s.http, &s.cse.url).await;
    assert_eq!(r.rsc, 2001, "{}", r.body);
    let sur = format!("/id-in/{}", r.str_at("/m2m:sub/ri"));
    for _ in 0..3 {
        let health = s.http.get(format!("{}/healthz", s.cse.url)).send().await.unwrap();
        assert_eq!(health.status(), 200);
    }
    assert_eq!(Req::get("/cse-in", "CAdmin").send(&s.http, &s.cse.url).await.rsc, 2000);
    assert!(eventually(WAIT, async || !of_sub(&sink, &sur).is_empty()).await, "{:?}", sink.received());
    let first = of_sub(&sink, &sur).remove(0);
    assert_eq!(first["nev"]["om"], json!({"ops": 2, "org": "CAdmin"}), "a health check was monitored: {first}");
}
