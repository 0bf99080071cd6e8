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

#[tokio::test]
async fn expiration_counter_and_deletion_notice() {
    let sink = Sink::start().await;
    let s = setup(&sink.url()).await;
    let subscriber = Sink::start().await;
    let sub = json!({"m2m:sub": {"rn": "once", "nu": [s.aei], "enc": {"net": [3]}, "exc": 2, "su": subscriber.url()}});
    assert_eq!(Req::create("/cse-in/ae/cnt", &s.aei, 23, sub).send(&s.http, &s.cse.url).await.rsc, 2001);
    for i in 0..3 {
        let cin = json!({"m2m:cin": {"con": format!("v{i}")}});
        assert_eq!(Req::create("/cse-in/ae/cnt", &s.aei, 4, cin).send(&s.http, &s.cse.url).await.rsc, 2001);
    }
    let notice = subscriber.wait_for(WAIT, |r| sgn(r)["sud"] == json!(true)).await.expect("deletion notice");
    assert!(sgn(&notice)["sur"].as_str().unwrap().starts_with("/id-in/sub"));
    assert_eq!(Req::get("/cse-in/ae/cnt/once", &s.aei).send(&s.http, &s.cse.url).await.rsc, 4004);
    // Exactly two notifications reached the target.
    let count = sink.received().iter().filter(|r| net_is(3)(r)).count();
    assert_eq!(count, 2);
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
    assert!(
        loaded <= unloaded * 4 + Duration::from_millis(500),
        "20 notified requests took {loaded:?} with 6 black holes, {unloaded:?} without"
    );
    assert_eq!(stuck.received().len(), 2, "the black holes still hold their first notifications, and no more");
    stuck.release();
}
