//! The HTTP binding over real HTTP: content negotiation, the headers both ways, `oet` and `rset`,
//! body limits (also chunked, and slow bodies), the X-M2M-RI/RVI echo on every route, the Upper
//! Tester's request expiration, `/healthz` against a failing store, and `/metrics` for requests made
//! before the first scrape.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use cse::core::SystemClock;
use cse::http::HttpConfig;
use cse::notify::NotificationEngine;
use cse::server::{Service, ServiceConfig};
use onem2m::{Serialization, Timestamp};
use reqwest::Method;
use serde_json::{Value, json};
use testkit::cse::{CseOptions, TestCse};
use testkit::m2m::{Req, client};
use testkit::sink::Sink;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tower::ServiceExt;

use crate::notifications::{Setup, setup_with};
use crate::store::TestStore;

const WAIT: Duration = Duration::from_secs(10);

/// A CSE started with `opts`, with an AE `ae` (point of access `poa`) and a container `ae/cnt`.
async fn setup(opts: CseOptions, poa: &str) -> (TestCse, reqwest::Client, String) {
    let Setup { cse, http, aei } = setup_with(opts, poa).await;
    (cse, http, aei)
}

#[tokio::test]
async fn the_answer_is_in_the_negotiated_serialisation() {
    let (cse, http, aei) = setup(CseOptions::default(), "http://127.0.0.1:9").await;
    let cin = Serialization::Cbor.encode(&json!({"m2m:cin": {"con": "c1"}}));
    // CBOR in, no Accept: CBOR out.
    let r = http
        .post(format!("{}/cse-in/ae/cnt", cse.url))
        .header("X-M2M-Origin", &aei)
        .header("X-M2M-RI", "n1")
        .header("X-M2M-RVI", "4")
        .header("Content-Type", "application/cbor;ty=4")
        .body(cin.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(r.headers()["x-m2m-rsc"], "2001");
    assert_eq!(r.headers()["content-type"], "application/cbor");
    let body: Value = Serialization::Cbor.decode(&r.bytes().await.unwrap()).unwrap();
    assert_eq!(body["m2m:cin"]["con"], "c1");
    // Accept with q-values over the request's serialisation, and the oneM2M vendor types.
    for (accept, want) in [
        ("application/json;q=0.4, application/cbor;q=0.9", "application/cbor"),
        ("application/cbor;q=0.1, */*;q=0.5", "application/json"),
        ("application/vnd.onem2m-res+json", "application/vnd.onem2m-res+json"),
        ("application/vnd.onem2m-res+cbor", "application/vnd.onem2m-res+cbor"),
    ] {
        let r = Req::get("/cse-in/ae/cnt/la", &aei).header("Accept", accept).send(&http, &cse.url).await;
        assert_eq!((r.rsc, r.header("content-type")), (2000, Some(want)), "Accept: {accept}");
    }
    // A vendor request type is read.
    let r = Req::create("/cse-in/ae/cnt", &aei, 4, json!(null))
        .raw("application/vnd.onem2m-res+json; ty=4", br#"{"m2m:cin":{"con":"v"}}"#.to_vec())
        .send(&http, &cse.url)
        .await;
    assert_eq!(r.rsc, 2001, "{}", r.body);
    // Nothing acceptable: 5207 / 406, the reason in the request's serialisation.
    let r = Req::get("/cse-in/ae/cnt", &aei).header("Accept", "application/xml").send(&http, &cse.url).await;
    assert_eq!((r.rsc, r.status), (5207, 406));
    assert!(r.body["m2m:dbg"].as_str().unwrap().contains("application/xml"), "{}", r.body);
}

#[tokio::test]
async fn headers_are_echoed_and_oet_and_rset_are_honoured() {
    let (cse, http, aei) = setup(CseOptions::default(), "http://127.0.0.1:9").await;
    let r = Req::get("/cse-in/ae/cnt", &aei).header("X-M2M-VSI", "vendor-7").send(&http, &cse.url).await;
    assert_eq!(r.rsc, 2000);
    assert_eq!(r.header("x-m2m-vsi"), Some("vendor-7"));
    assert_eq!(r.header("x-m2m-rvi"), Some("4"));
    assert!(Timestamp::parse(r.header("x-m2m-ot").unwrap()).is_ok());
    // Not executed before its operation execution time.
    let start = Instant::now();
    let r = Req::get("/cse-in/ae/cnt", &aei).header("X-M2M-OET", "300").send(&http, &cse.url).await;
    assert_eq!(r.rsc, 2000);
    assert!(start.elapsed() >= Duration::from_millis(300), "answered after {:?}", start.elapsed());
    // A result that expired, or would expire before the operation runs, is not produced.
    let r = Req::get("/cse-in/ae/cnt", &aei).header("X-M2M-RST", "20000101T000000").send(&http, &cse.url).await;
    assert_eq!((r.rsc, r.status), (4008, 504));
    let r = Req::get("/cse-in/ae/cnt", &aei)
        .header("X-M2M-OET", "5000")
        .header("X-M2M-RST", "1000")
        .send(&http, &cse.url)
        .await;
    assert_eq!(r.rsc, 4008);
    let r = Req::get("/cse-in/ae/cnt", &aei).header("X-M2M-OET", "999999999").send(&http, &cse.url).await;
    assert_eq!(r.rsc, 4000, "an oet too far ahead is refused at once");
}

/// Sends a raw HTTP/1.1 request head, then `body` (written by a task, errors ignored: the server may
/// close first); returns everything the server sends until it closes the connection.
async fn raw_exchange(addr: &str, head: String, body: Vec<Vec<u8>>) -> String {
    let stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let (mut rd, mut wr) = stream.into_split();
    wr.write_all(head.as_bytes()).await.unwrap();
    let writer = tokio::spawn(async move {
        for chunk in body {
            if wr.write_all(&chunk).await.is_err() {
                return;
            }
        }
        // Keep the write side open: only the server may end the exchange.
        std::future::pending::<()>().await;
    });
    let mut out = Vec::new();
    let read = tokio::time::timeout(WAIT, rd.read_to_end(&mut out)).await;
    writer.abort();
    assert!(read.is_ok(), "the server did not close the connection; got {:?}", String::from_utf8_lossy(&out));
    String::from_utf8_lossy(&out).into_owned()
}

fn head(aei: &str, extra: &str) -> String {
    format!(
        "POST /cse-in/ae/cnt HTTP/1.1\r\nHost: x\r\nX-M2M-Origin: {aei}\r\nX-M2M-RI: big1\r\nX-M2M-RVI: 4\r\n\
         Content-Type: application/json;ty=4\r\n{extra}\r\n"
    )
}

#[tokio::test]
async fn oversized_and_slow_bodies_are_refused_and_the_connection_closed() {
    let http = HttpConfig { max_body: 64 * 1024, body_timeout: Duration::from_millis(300), ..HttpConfig::default() };
    let opts = CseOptions { http, ..CseOptions::default() };
    let (cse, _http, aei) = setup(opts, "http://127.0.0.1:9").await;
    let addr = cse.url.trim_start_matches("http://").to_owned();
    // Chunked, without Content-Length: counted as it arrives.
    let chunk = format!("{:x}\r\n{}\r\n", 16 * 1024, "x".repeat(16 * 1024)).into_bytes();
    let answer = raw_exchange(&addr, head(&aei, "Transfer-Encoding: chunked\r\n"), vec![chunk; 64]).await;
    let lower = answer.to_ascii_lowercase();
    assert!(answer.starts_with("HTTP/1.1 400"), "{answer}");
    assert!(lower.contains("x-m2m-rsc: 4000") && lower.contains("x-m2m-ri: big1"), "{answer}");
    assert!(lower.contains("connection: close"), "{answer}");
    assert!(answer.contains("65536 bytes"), "the reason names the limit: {answer}");
    // A Content-Length over the limit: refused before the body is read.
    let answer = raw_exchange(&addr, head(&aei, "Content-Length: 10000000\r\n"), vec![]).await;
    assert!(answer.starts_with("HTTP/1.1 400") && answer.contains("65536 bytes"), "{answer}");
    // A body that stops arriving: 4008 once the body timeout has passed.
    let answer = raw_exchange(&addr, head(&aei, "Content-Length: 100\r\n"), vec![b"{\"m2m".to_vec()]).await;
    assert!(answer.starts_with("HTTP/1.1 504"), "{answer}");
    assert!(answer.to_ascii_lowercase().contains("x-m2m-rsc: 4008"), "{answer}");
    // The CSE serves on.
    assert_eq!(Req::get("/cse-in", "CAdmin").send(&client(), &cse.url).await.rsc, 2000);
}

#[tokio::test]
async fn every_route_echoes_the_request_id_and_version() {
    let cse = TestCse::start(CseOptions::default()).await;
    let http = client();
    let send = |method: Method, path: &str, cmd: Option<&str>| {
        let mut rb =
            http.request(method, format!("{}{path}", cse.url)).header("X-M2M-RI", "echo-1").header("X-M2M-RVI", "3");
        if let Some(cmd) = cmd {
            rb = rb.header("X-M2M-UTCMD", cmd);
        }
        rb.send()
    };
    for (method, path, cmd, rsc) in [
        (Method::POST, "/__ut__", Some("Status"), Some("2000")),
        (Method::POST, "/__ut__", Some("fly"), Some("5001")),
        (Method::POST, "/__ut__", Some("enableShortRequestExpiration x"), Some("4000")),
        (Method::GET, "/__ut__", None, Some("4005")),
        (Method::DELETE, "/healthz", None, Some("4005")),
        (Method::PATCH, "/cse-in", None, Some("4005")),
        (Method::GET, "/nothing-here", None, Some("4000")), // no X-M2M-Origin
        (Method::GET, "/healthz", None, None),
        (Method::GET, "/metrics", None, None),
    ] {
        let r = send(method.clone(), path, cmd).await.unwrap();
        let h = r.headers().clone();
        let what = format!("{method} {path} {cmd:?}");
        assert_eq!(h.get("x-m2m-ri").map(|v| v.to_str().unwrap()), Some("echo-1"), "{what}");
        assert_eq!(h.get("x-m2m-rvi").map(|v| v.to_str().unwrap()), Some("3"), "{what}");
        assert_eq!(h.get("x-m2m-rsc").map(|v| v.to_str().unwrap()), rsc, "{what}");
        if rsc.is_some_and(|c| c != "2000") {
            let body: Value = r.json().await.unwrap();
            assert!(body["m2m:dbg"].is_string(), "{what}: {body}");
        }
    }
}

#[tokio::test]
async fn short_request_expiration_cuts_off_a_slow_request() {
    let held = Sink::start_holding().await;
    let (cse, http, aei) = setup(CseOptions::default(), "http://127.0.0.1:9").await;
    let ut = |cmd: &'static str| {
        http.post(format!("{}/__ut__", cse.url)).header("X-M2M-UTCMD", cmd).header("X-M2M-RI", "ut").send()
    };
    assert_eq!(ut("enableShortRequestExpiration 1").await.unwrap().headers()["x-m2m-rsc"], "2000");
    // The subscription's verification request goes to a receiver that never answers: without the
    // switch it would take the verification timeout (5 s) and fail with 5204.
    let sub = json!({"m2m:sub": {"rn": "s", "nu": [held.url()], "enc": {"net": [3]}}});
    let start = Instant::now();
    let r = Req::create("/cse-in/ae/cnt", &aei, 23, sub).send(&http, &cse.url).await;
    assert_eq!((r.rsc, r.status), (4008, 504), "{}", r.body);
    assert!(start.elapsed() < Duration::from_secs(4), "cut off after {:?}", start.elapsed());
    assert!(held.wait_for(WAIT, |r| r.body["m2m:sgn"]["vrq"] == json!(true)).await.is_some());
    assert_eq!(ut("disableShortRequestExpiration").await.unwrap().headers()["x-m2m-rsc"], "2000");
    held.release();
    let sub = json!({"m2m:sub": {"rn": "s2", "nu": [held.url()], "enc": {"net": [3]}}});
    assert_eq!(Req::create("/cse-in/ae/cnt", &aei, 23, sub).send(&http, &cse.url).await.rsc, 2001);
}

/// The value of the first sample of `name` whose labels include all of `labels`.
fn sample(text: &str, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    text.lines().filter(|l| !l.starts_with('#')).find_map(|l| {
        let (series, value) = l.rsplit_once(' ')?;
        let rest = series.strip_prefix(name)?;
        if !(rest.is_empty() || rest.starts_with('{')) {
            return None;
        }
        labels.iter().all(|(k, v)| rest.contains(&format!("{k}=\"{v}\""))).then(|| value.parse().ok())?
    })
}

#[tokio::test]
async fn metrics_show_what_came_before_the_first_scrape() {
    let held = Sink::start_holding().await;
    let (cse, http, aei) = setup(CseOptions::default(), &held.url()).await;
    let sub = json!({"m2m:sub": {"rn": "s", "nu": [aei.clone()], "enc": {"net": [3]}}});
    assert_eq!(Req::create("/cse-in/ae/cnt", &aei, 23, sub).send(&http, &cse.url).await.rsc, 2001);
    for i in 0..4 {
        let cin = json!({"m2m:cin": {"con": format!("v{i}")}});
        assert_eq!(Req::create("/cse-in/ae/cnt", &aei, 4, cin).send(&http, &cse.url).await.rsc, 2001);
    }
    // The first notification is held by the receiver; the other three wait in its queue.
    assert!(held.wait_for(WAIT, |r| r.body["m2m:sgn"]["nev"].is_object()).await.is_some());
    assert_eq!(Req::get("/cse-in/ae/cnt", &aei).send(&http, &cse.url).await.rsc, 2000);
    assert_eq!(Req::get("/cse-in/ae/cnt/la", &aei).send(&http, &cse.url).await.rsc, 2000);
    let lbl = json!({"m2m:cnt": {"lbl": ["x"]}});
    assert_eq!(Req::update("/cse-in/ae/cnt", &aei, lbl).send(&http, &cse.url).await.rsc, 2004);
    assert_eq!(Req::get("/cse-in/nothing", &aei).send(&http, &cse.url).await.rsc, 4004);
    assert_eq!(Req::new(Method::PATCH, "/cse-in", Some(&aei)).send(&http, &cse.url).await.rsc, 4005);
    let r = Req::get("/cse-in/ae", &aei).header("Accept", "text/html").send(&http, &cse.url).await;
    assert_eq!(r.rsc, 5207);
    assert_eq!(Req::delete("/cse-in/ae/cnt/s", &aei).send(&http, &cse.url).await.rsc, 2002);

    let text = http.get(format!("{}/metrics", cse.url)).send().await.unwrap().text().await.unwrap();
    let count = |labels: &[(&str, &str)]| sample(&text, "cse_requests_total", labels).unwrap_or(0.0);
    assert_eq!(count(&[("op", "create"), ("ty", "ae"), ("rsc", "2001")]), 1.0, "{text}");
    assert_eq!(count(&[("op", "create"), ("ty", "cin"), ("rsc", "2001")]), 4.0, "{text}");
    assert_eq!(count(&[("op", "create"), ("ty", "sub"), ("rsc", "2001")]), 1.0, "{text}");
    assert_eq!(count(&[("op", "retrieve"), ("ty", "cnt"), ("rsc", "2000")]), 1.0, "{text}");
    assert_eq!(count(&[("op", "retrieve"), ("ty", "cin"), ("rsc", "2000")]), 1.0, "la is a cin: {text}");
    assert_eq!(count(&[("op", "update"), ("ty", "cnt"), ("rsc", "2004")]), 1.0, "{text}");
    assert_eq!(count(&[("op", "delete"), ("ty", "sub"), ("rsc", "2002")]), 1.0, "{text}");
    assert_eq!(count(&[("op", "retrieve"), ("ty", ""), ("rsc", "4004")]), 1.0, "{text}");
    assert_eq!(count(&[("op", "other"), ("rsc", "4005")]), 1.0, "{text}");
    assert_eq!(count(&[("op", "retrieve"), ("rsc", "5207")]), 1.0, "negotiation failures keep their op: {text}");
    let le = |ty| sample(&text, "cse_request_duration_seconds_count", &[("op", "create"), ("ty", ty)]);
    assert_eq!(le("cin"), Some(4.0), "{text}");
    assert!(sample(&text, "cse_request_duration_seconds_bucket", &[("op", "retrieve"), ("le", "+Inf")]).is_some());
    assert_eq!(sample(&text, "cse_notification_queue_depth", &[]), Some(3.0), "{text}");
    held.release();
}

#[tokio::test]
async fn healthz_reads_the_store() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(TestStore::open(dir.path()));
    let cfg = ServiceConfig {
        cse: Default::default(),
        http: HttpConfig::default(),
        data_dir: dir.path().to_path_buf(),
        durability: Default::default(),
        admission: None,
    };
    let engine = NotificationEngine::start(cfg.cse.notify_config()).unwrap();
    let service = Service::start_with(cfg, store.clone(), engine, Arc::new(SystemClock)).await.unwrap();
    let health = || async {
        let req = http::Request::get("/healthz").body(axum::body::Body::empty()).unwrap();
        let resp = service.router().oneshot(req).await.unwrap();
        let status = resp.status().as_u16();
        let body = axum::body::to_bytes(resp.into_body(), 4096).await.unwrap();
        (status, String::from_utf8_lossy(&body).into_owned())
    };
    assert_eq!(health().await, (200, "ok\n".to_owned()));
    store.broken_reads.store(true, Ordering::SeqCst);
    let (status, text) = health().await;
    assert_eq!(status, 503, "{text}");
    assert!(text.starts_with("unavailable: "), "{text}");
    store.broken_reads.store(false, Ordering::SeqCst);
    assert_eq!(health().await.0, 200);
    service.shutdown().await;
}
