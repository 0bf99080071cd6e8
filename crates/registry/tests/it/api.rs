//! Every call of the API and every error it gives.

use reqwest::Method;
use serde_json::{Value, json};

use crate::helpers::{ADMIN, Answer, Body, Server, call, profile};

async fn create(s: &Server, p: Value) -> Answer {
    call(Method::POST, &format!("{}/v1/app-ids", s.base), Some(ADMIN), Some(Body::Json(p)), &[]).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn create_get_lookup() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(dir.path()).await;
    let app = "Rbar01.com.bar.thermo";

    let a = create(&s, profile(app)).await;
    assert_eq!(a.status, 201, "{:?}", a.body);
    assert_eq!(a.header("etag").as_deref(), Some("\"1\""));
    assert_eq!(a.header("location").as_deref(), Some("/v1/app-ids/Rbar01.com.bar.thermo"));
    let rec = a.json();
    assert_eq!(
        (rec["appId"].as_str(), rec["version"].as_u64(), rec["status"].as_str()),
        (Some(app), Some(1), Some("active"))
    );
    assert_eq!(rec["devices"], json!({"denied": []}));

    create(&s, profile(app)).await.assert_error(409, "conflict", Some("appId"));

    let g = call(Method::GET, &format!("{}/v1/app-ids/{app}", s.base), Some(ADMIN), None, &[]).await;
    assert_eq!(g.status, 200);
    assert_eq!(g.body, a.body, "GET serves the stored bytes");
    assert!(g.header("warden-signature").is_some());
    assert_eq!(g.header("etag").as_deref(), Some("\"1\""));
    let nm =
        call(Method::GET, &format!("{}/v1/app-ids/{app}", s.base), Some(ADMIN), None, &[("if-none-match", "\"1\"")])
            .await;
    assert_eq!(nm.status, 304);

    call(Method::GET, &format!("{}/v1/app-ids/Rnot.there.at", s.base), Some(ADMIN), None, &[]).await.assert_error(
        404,
        "not_found",
        Some("appId"),
    );
    call(Method::GET, &format!("{}/v1/app-ids/Xwrong", s.base), Some(ADMIN), None, &[]).await.assert_error(
        400,
        "invalid_field",
        Some("appId"),
    );

    let lookup_url = format!("{}/v1/lookup", s.base);
    let lk = |body: Value| call(Method::POST, &lookup_url, Some(ADMIN), Some(Body::Json(body)), &[]);
    let l = lk(json!({"appId": app, "aeId": "Cdevice1"})).await;
    assert_eq!(l.status, 200);
    let v = l.json();
    assert_eq!(
        (v["registered"].clone(), v["deviceStatus"].clone(), v["aeId"].clone()),
        (json!(true), json!("allowed"), json!("Cdevice1"))
    );
    assert_eq!(v["record"], rec);
    assert!(l.header("warden-signature").is_some());
    let again = lk(json!({"appId": app, "aeId": "Cdevice1"})).await;
    assert_eq!(
        (again.body.clone(), again.header("warden-signature")),
        (l.body.clone(), l.header("warden-signature")),
        "cached answers are identical"
    );

    let u = lk(json!({"appId": "Rnobody.org.none.x", "aeId": "C1"})).await;
    assert_eq!(u.status, 200);
    assert_eq!(
        u.json(),
        json!({"appId": "Rnobody.org.none.x", "aeId": "C1", "registered": false, "deviceStatus": "allowed"})
    );
    let n = lk(json!({"appId": "Nopen.app"})).await;
    assert_eq!(n.json()["registered"], json!(false));
    assert_eq!(n.json()["aeId"], Value::Null);

    lk(json!({"appId": "Xwrong"})).await.assert_error(400, "invalid_field", Some("appId"));
    lk(json!({"appId": app, "aeId": "not an ae"})).await.assert_error(400, "invalid_field", Some("aeId"));
    lk(json!({"appId": app, "extra": 1})).await.assert_error(400, "unknown_field", Some("extra"));
    lk(json!({})).await.assert_error(400, "missing_field", Some("appId"));
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_names_the_field() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(dir.path()).await;
    let url = format!("{}/v1/app-ids", s.base);

    call(Method::POST, &url, Some(ADMIN), Some(Body::Raw(b"{not json".to_vec(), "application/json")), &[])
        .await
        .assert_error(400, "invalid_json", Some("body"));
    let mut p = profile("Rbar.com.bar.y");
    p["bogusField"] = json!(1);
    create(&s, p).await.assert_error(400, "unknown_field", Some("bogusField"));
    create(&s, profile("Xwrong")).await.assert_error(400, "invalid_field", Some("appId"));
    let mut p = profile("Rbar.com.bar.z");
    p["application"]["class"] = json!("galactic");
    create(&s, p).await.assert_error(400, "invalid_field", Some("application.class"));
    let mut p = profile("Rbar.com.bar.z");
    p["authentication"] = json!({"method": "x509", "roots": [{"subject": "CN=x", "sha256": "ab", "pem": "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"}]});
    create(&s, p).await.assert_error(400, "invalid_field", Some("authentication.roots[0].pem"));
    let mut p = profile("Rbar.com.bar.z");
    p["authentication"] = json!({"method": "x509"});
    create(&s, p).await.assert_error(400, "invalid_field", Some("authentication.roots"));
    let mut p = profile("Rbar.com.bar.z");
    p.as_object_mut().unwrap().remove("security");
    create(&s, p).await.assert_error(400, "missing_field", Some("security"));

    // media type, size, routes, methods
    call(
        Method::POST,
        &url,
        Some(ADMIN),
        Some(Body::Raw(b"appId=x".to_vec(), "application/x-www-form-urlencoded")),
        &[],
    )
    .await
    .assert_error(415, "unsupported_media_type", Some("Content-Type"));
    let big = vec![b' '; (1 << 20) + 1];
    call(Method::POST, &url, Some(ADMIN), Some(Body::Raw(big, "application/json")), &[]).await.assert_error(
        413,
        "payload_too_large",
        Some("body"),
    );
    call(Method::GET, &format!("{}/v2/nothing", s.base), Some(ADMIN), None, &[]).await.assert_error(
        404,
        "not_found",
        None,
    );
    call(Method::PATCH, &url, Some(ADMIN), None, &[]).await.assert_error(405, "method_not_allowed", None);
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_and_roles() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(dir.path()).await;
    let app = "Rtok.com.bar.t";
    assert_eq!(create(&s, profile(app)).await.status, 201);
    let url = format!("{}/v1/app-ids", s.base);

    call(Method::POST, &url, None, Some(Body::Json(profile("Rtok.com.bar.u"))), &[]).await.assert_error(
        401,
        "unauthorized",
        Some("Authorization"),
    );
    let a = call(Method::POST, &url, Some("wrong"), Some(Body::Json(profile("Rtok.com.bar.u"))), &[]).await;
    a.assert_error(401, "unauthorized", Some("Authorization"));
    assert_eq!(a.header("www-authenticate").as_deref(), Some("Bearer"));

    let minted = call(
        Method::POST,
        &format!("{}/v1/tokens", s.base),
        Some(ADMIN),
        Some(Body::Json(json!({"role": "read"}))),
        &[],
    )
    .await;
    assert_eq!(minted.status, 201);
    assert_eq!(minted.header("cache-control").as_deref(), Some("no-store"));
    let read = minted.json()["token"].as_str().unwrap().to_owned();

    // a read token looks up, gets and follows the feed...
    let lookup =
        call(Method::POST, &format!("{}/v1/lookup", s.base), Some(&read), Some(Body::Json(json!({"appId": app}))), &[])
            .await;
    assert_eq!(lookup.status, 200);
    assert_eq!(call(Method::GET, &format!("{url}/{app}"), Some(&read), None, &[]).await.status, 200);
    assert_eq!(call(Method::GET, &format!("{}/v1/changes?after=0", s.base), Some(&read), None, &[]).await.status, 200);
    // ...but cannot write, list or mint
    call(Method::POST, &url, Some(&read), Some(Body::Json(profile("Rtok.com.bar.u"))), &[]).await.assert_error(
        403,
        "forbidden",
        Some("Authorization"),
    );
    call(Method::GET, &url, Some(&read), None, &[]).await.assert_error(403, "forbidden", Some("Authorization"));
    call(
        Method::POST,
        &format!("{url}/{app}/status"),
        Some(&read),
        Some(Body::Json(json!({"status": "revoked", "reason": "x"}))),
        &[],
    )
    .await
    .assert_error(403, "forbidden", Some("Authorization"));
    call(Method::POST, &format!("{}/v1/tokens", s.base), Some(&read), Some(Body::Json(json!({"role": "admin"}))), &[])
        .await
        .assert_error(403, "forbidden", Some("Authorization"));
    call(Method::POST, &format!("{}/v1/keys/rotate", s.base), Some(&read), None, &[]).await.assert_error(
        403,
        "forbidden",
        Some("Authorization"),
    );
    call(Method::POST, &format!("{}/v1/tokens", s.base), Some(ADMIN), Some(Body::Json(json!({"role": "root"}))), &[])
        .await
        .assert_error(400, "invalid_field", Some("role"));

    // public routes
    for path in ["/v1/keys", "/v1/openapi.json", "/healthz", "/metrics"] {
        assert_eq!(call(Method::GET, &format!("{}{path}", s.base), None, None, &[]).await.status, 200, "{path}");
    }
    let m = call(Method::GET, &format!("{}/metrics", s.base), None, None, &[]).await;
    let text = String::from_utf8_lossy(&m.body);
    for name in [
        "registry_http_requests_total",
        "registry_http_request_duration_seconds_bucket",
        "registry_lookups_total",
        "registry_change_feed_waiters",
    ] {
        assert!(text.contains(name), "{name} missing from /metrics");
    }
    assert!(text.contains("route=\"/v1/lookup\""), "requests are labelled by route");
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn versioned_updates_and_status() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(dir.path()).await;
    let app = "Rver.com.bar.v";
    let url = format!("{}/v1/app-ids/{app}", s.base);
    assert_eq!(create(&s, profile(app)).await.status, 201);
    let mut upd = profile(app);
    upd["application"]["class"] = json!("industrial");

    call(Method::PUT, &url, Some(ADMIN), Some(Body::Json(upd.clone())), &[]).await.assert_error(
        428,
        "precondition_required",
        Some("If-Match"),
    );
    let ok = call(Method::PUT, &url, Some(ADMIN), Some(Body::Json(upd.clone())), &[("if-match", "\"1\"")]).await;
    assert_eq!(ok.status, 200, "{:?}", ok.body);
    assert_eq!(ok.header("etag").as_deref(), Some("\"2\""));
    assert_eq!(ok.json()["application"]["class"], json!("industrial"));
    call(Method::PUT, &url, Some(ADMIN), Some(Body::Json(upd.clone())), &[("if-match", "\"1\"")]).await.assert_error(
        412,
        "precondition_failed",
        Some("If-Match"),
    );
    // a malformed If-Match is bad input, not a stale version
    for garbage in ["garbage", "\"\"", "W/\"2\"", "\"-1\""] {
        call(Method::PUT, &url, Some(ADMIN), Some(Body::Json(upd.clone())), &[("if-match", garbage)])
            .await
            .assert_error(400, "invalid_field", Some("If-Match"));
    }
    // the registry owns status and devices
    let mut sneaky = upd.clone();
    sneaky["status"] = json!("revoked");
    call(Method::PUT, &url, Some(ADMIN), Some(Body::Json(sneaky)), &[("if-match", "\"2\"")]).await.assert_error(
        400,
        "invalid_field",
        Some("status"),
    );
    let mut other = upd.clone();
    other["appId"] = json!("Rother.com.bar.v");
    call(Method::PUT, &url, Some(ADMIN), Some(Body::Json(other)), &[("if-match", "\"2\"")]).await.assert_error(
        400,
        "invalid_field",
        Some("appId"),
    );
    // without appId, with *
    let mut bare = upd.clone();
    bare.as_object_mut().unwrap().remove("appId");
    let star = call(Method::PUT, &url, Some(ADMIN), Some(Body::Json(bare)), &[("if-match", "*")]).await;
    assert_eq!(star.json()["version"], json!(3));
    call(
        Method::PUT,
        &format!("{}/v1/app-ids/Rno.such.app", s.base),
        Some(ADMIN),
        Some(Body::Json(profile("Rno.such.app"))),
        &[("if-match", "*")],
    )
    .await
    .assert_error(404, "not_found", Some("appId"));

    // status
    let status_url = format!("{url}/status");
    let st = |body: Value| call(Method::POST, &status_url, Some(ADMIN), Some(Body::Json(body)), &[]);
    let r = st(json!({"status": "suspended", "reason": "investigating"})).await;
    assert_eq!(
        (r.status, r.json()["status"].clone(), r.json()["version"].clone()),
        (200, json!("suspended"), json!(4))
    );
    let same = st(json!({"status": "suspended", "reason": "again"})).await;
    assert_eq!(same.json()["version"], json!(4), "setting the same status changes nothing");
    st(json!({"status": "deleted", "reason": "x"})).await.assert_error(400, "invalid_field", Some("status"));
    st(json!({"status": "revoked"})).await.assert_error(400, "missing_field", Some("reason"));
    st(json!({"status": "revoked", "reason": " "})).await.assert_error(400, "missing_field", Some("reason"));
    let back = st(json!({"status": "active", "reason": "cleared"})).await;
    assert_eq!(back.json()["status"], json!("active"));
    let rev = st(json!({"status": "revoked", "reason": "stolen keys"})).await;
    assert_eq!(rev.json()["status"], json!("revoked"));
    let l =
        call(Method::POST, &format!("{}/v1/lookup", s.base), Some(ADMIN), Some(Body::Json(json!({"appId": app}))), &[])
            .await;
    assert_eq!(l.json()["record"]["status"], json!("revoked"), "a change drops the cached lookup");
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn device_deny_list() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(dir.path()).await;
    let app = "Rdev.com.bar.d";
    assert_eq!(create(&s, profile(app)).await.status, 201);
    let dev = |m: Method, ae: &str, body: Option<Value>| {
        let url = format!("{}/v1/app-ids/{app}/devices/{ae}", s.base);
        async move { call(m, &url, Some(ADMIN), body.map(Body::Json), &[]).await }
    };
    let status_of = |ae: &'static str| {
        let url = format!("{}/v1/lookup", s.base);
        async move {
            call(Method::POST, &url, Some(ADMIN), Some(Body::Json(json!({"appId": app, "aeId": ae}))), &[]).await.json()
                ["deviceStatus"]
                .clone()
        }
    };
    assert_eq!(status_of("Sstolen1").await, json!("allowed"));
    let d = dev(Method::PUT, "Sstolen1", Some(json!({"reason": "stolen"}))).await;
    assert_eq!(d.status, 200);
    assert_eq!(d.json()["devices"]["denied"], json!(["Sstolen1"]));
    assert_eq!(status_of("Sstolen1").await, json!("denied"));
    assert_eq!(status_of("/Sstolen1").await, json!("denied"), "the stem matches in every AE-ID form");
    assert_eq!(status_of("Sother").await, json!("allowed"));
    // a pattern, and an SP-relative AE-ID percent-encoded in the path
    assert_eq!(dev(Method::PUT, "Cbatch7-*", Some(json!({"reason": "bad batch"}))).await.status, 200);
    assert_eq!(status_of("Cbatch7-0001").await, json!("denied"));
    assert_eq!(
        dev(Method::PUT, "%2Fid-in%2FCx", Some(json!({"reason": "one device"}))).await.json()["devices"]["denied"][2],
        json!("/id-in/Cx")
    );
    assert_eq!(status_of("/id-in/Cx").await, json!("denied"));

    dev(Method::PUT, "not%20an%20id", Some(json!({"reason": "x"}))).await.assert_error(
        400,
        "invalid_field",
        Some("aeId"),
    );
    dev(Method::PUT, "Sx", Some(json!({}))).await.assert_error(400, "missing_field", Some("reason"));
    let del = dev(Method::DELETE, "Sstolen1", None).await;
    assert_eq!(del.status, 200);
    assert_eq!(status_of("Sstolen1").await, json!("allowed"));
    dev(Method::DELETE, "Sstolen1", None).await.assert_error(404, "not_found", Some("aeId"));
    let gone = call(
        Method::PUT,
        &format!("{}/v1/app-ids/Rno.such.app/devices/S1", s.base),
        Some(ADMIN),
        Some(Body::Json(json!({"reason": "x"}))),
        &[],
    )
    .await;
    gone.assert_error(404, "not_found", Some("appId"));
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn list_filters_and_cursors() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(dir.path()).await;
    for i in 0..25 {
        let mut p = profile(&format!("Rlist.com.bar.a{i:02}"));
        if i % 5 == 0 {
            p["application"]["class"] = json!("industrial");
            p["application"]["type"] = json!("meter");
        }
        if i == 7 {
            p["status"] = json!("suspended");
            p["application"]["name"] = json!("Special 100%_Meter");
        }
        assert_eq!(create(&s, p).await.status, 201);
    }
    let c = s.client(Some(ADMIN));
    let mut filter = registry::client::ListFilter { limit: Some(10), ..Default::default() };
    let mut seen = Vec::new();
    loop {
        let page = c.list(&filter).await.unwrap();
        assert!(page.items.len() <= 10);
        seen.extend(page.items.iter().map(|r| r.app_id.to_string()));
        match page.next {
            Some(n) => filter.cursor = Some(n),
            None => break,
        }
    }
    let want: Vec<String> = (0..25).map(|i| format!("Rlist.com.bar.a{i:02}")).collect();
    assert_eq!(seen, want, "every record once, in order");

    let q = |f: registry::client::ListFilter| {
        let c = c.clone();
        async move { c.list(&f).await.unwrap().items.into_iter().map(|r| r.app_id.to_string()).collect::<Vec<_>>() }
    };
    use registry::client::ListFilter as F;
    assert_eq!(q(F { class: Some("industrial".into()), ..Default::default() }).await.len(), 5);
    assert_eq!(q(F { app_type: Some("meter".into()), ..Default::default() }).await.len(), 5);
    assert_eq!(q(F { status: Some("suspended".into()), ..Default::default() }).await, vec!["Rlist.com.bar.a07"]);
    assert_eq!(
        q(F { q: Some("100%_m".into()), ..Default::default() }).await,
        vec!["Rlist.com.bar.a07"],
        "q is a literal, case-insensitive substring"
    );
    assert_eq!(q(F { q: Some("a1".into()), ..Default::default() }).await.len(), 10);
    assert!(q(F { q: Some("%".into()), ..Default::default() }).await.len() == 1);

    let url = format!("{}/v1/app-ids", s.base);
    call(Method::GET, &format!("{url}?class=galactic"), Some(ADMIN), None, &[]).await.assert_error(
        400,
        "invalid_field",
        Some("class"),
    );
    call(Method::GET, &format!("{url}?cursor=%21%21"), Some(ADMIN), None, &[]).await.assert_error(
        400,
        "invalid_field",
        Some("cursor"),
    );
    call(Method::GET, &format!("{url}?limit=0"), Some(ADMIN), None, &[]).await.assert_error(
        400,
        "invalid_field",
        Some("limit"),
    );
    call(Method::GET, &format!("{url}?colour=red"), Some(ADMIN), None, &[]).await.assert_error(
        400,
        "unknown_field",
        Some("colour"),
    );
    let capped = call(Method::GET, &format!("{url}?limit=100000"), Some(ADMIN), None, &[]).await;
    assert_eq!(capped.json()["items"].as_array().unwrap().len(), 25);
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn issue_never_repeats() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(dir.path()).await;
    let issue = |authority: &str, name: &str| {
        let mut p = profile("ignored");
        p.as_object_mut().unwrap().remove("appId");
        p["issue"] = json!({"authority": authority, "reverseDns": "com.bar", "name": name});
        p
    };
    let a = create(&s, issue("bar02", "meter")).await;
    assert_eq!(a.status, 201);
    assert_eq!(a.json()["appId"], json!("Rbar02.com.bar.meter"));
    create(&s, issue("bar02", "meter")).await.assert_error(409, "conflict", Some("appId"));
    assert_eq!(create(&s, issue("bar02", "meter2")).await.json()["appId"], json!("Rbar02.com.bar.meter2"));
    // an App-ID registered directly cannot be issued again either
    assert_eq!(create(&s, profile("Rbar03.com.bar.gauge")).await.status, 201);
    create(&s, issue("bar03", "gauge")).await.assert_error(409, "conflict", Some("appId"));
    create(&s, issue("bad.authority", "x")).await.assert_error(400, "invalid_field", Some("issue"));
    // concurrent issues of one name: exactly one wins
    let tasks: Vec<_> = (0..8)
        .map(|_| {
            let (base, body) = (s.base.clone(), issue("race", "same"));
            tokio::spawn(async move {
                call(Method::POST, &format!("{base}/v1/app-ids"), Some(ADMIN), Some(Body::Json(body)), &[]).await.status
            })
        })
        .collect();
    let mut codes = Vec::new();
    for t in tasks {
        codes.push(t.await.unwrap());
    }
    codes.sort();
    assert_eq!(codes, vec![201, 409, 409, 409, 409, 409, 409, 409]);
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn racing_puts_one_wins() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(dir.path()).await;
    let app = "Rrace.com.bar.r";
    assert_eq!(create(&s, profile(app)).await.status, 201);
    for round in 1..=5u64 {
        let tasks: Vec<_> = (0..2)
            .map(|i| {
                let mut p = profile(app);
                p["application"]["name"] = json!(format!("writer {i} round {round}"));
                let url = format!("{}/v1/app-ids/{app}", s.base);
                let etag = format!("\"{round}\"");
                tokio::spawn(async move {
                    call(Method::PUT, &url, Some(ADMIN), Some(Body::Json(p)), &[("if-match", &etag)]).await.status
                })
            })
            .collect();
        let mut codes = Vec::new();
        for t in tasks {
            codes.push(t.await.unwrap());
        }
        codes.sort();
        assert_eq!(codes, vec![200, 412], "round {round}");
    }
    let g = call(Method::GET, &format!("{}/v1/app-ids/{app}", s.base), Some(ADMIN), None, &[]).await;
    assert_eq!(g.json()["version"], json!(6));
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn import_is_all_or_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let limits = registry::Limits { import_bytes: 64 * 1024, ..Default::default() };
    let s = Server::start_with(dir.path(), Some(ADMIN), limits).await;
    let url = format!("{}/v1/import", s.base);
    let lines = |ids: &[&str]| -> Vec<u8> {
        ids.iter().map(|id| serde_json::to_string(&profile(id)).unwrap() + "\n").collect::<String>().into_bytes()
    };
    let imp = |body: Vec<u8>| call(Method::POST, &url, Some(ADMIN), Some(Body::Raw(body, "application/x-ndjson")), &[]);

    let ok = imp(lines(&["Rimp.com.bar.a1", "Rimp.com.bar.a2", "Rimp.com.bar.a3"])).await;
    assert_eq!((ok.status, ok.json()), (200, json!({"imported": 3, "unchanged": 0})));
    // blank lines and CRLF are fine
    let mut crlf = b"\r\n".to_vec();
    crlf.extend(String::from_utf8(lines(&["Rimp.com.bar.b1"])).unwrap().replace('\n', "\r\n").into_bytes());
    assert_eq!(imp(crlf).await.json(), json!({"imported": 1, "unchanged": 0}));

    // a bad third line: 400 naming line and field, and nothing of the request is registered
    let mut body = lines(&["Rimp.com.bar.c1", "Rimp.com.bar.c2"]);
    let mut bad = profile("Rimp.com.bar.c3");
    bad["application"]["class"] = json!("galactic");
    body.extend(serde_json::to_vec(&bad).unwrap());
    let a = imp(body).await;
    a.assert_error(400, "invalid_field", Some("application.class"));
    assert!(a.json()["message"].as_str().unwrap().starts_with("line 3:"), "{}", a.json());
    let c1 = call(Method::GET, &format!("{}/v1/app-ids/Rimp.com.bar.c1", s.base), Some(ADMIN), None, &[]).await;
    assert_eq!(c1.status, 404, "a failed import registers nothing");

    // an App-ID registered with other content rolls back the whole request, naming the line
    let mut changed = profile("Rimp.com.bar.a2");
    changed["application"]["name"] = json!("Another name");
    let mut body = lines(&["Rimp.com.bar.d1"]);
    body.extend(serde_json::to_vec(&changed).unwrap());
    let a = imp(body).await;
    a.assert_error(409, "conflict", Some("appId"));
    assert!(a.json()["message"].as_str().unwrap().starts_with("line 2:"), "{}", a.json());
    assert_eq!(
        call(Method::GET, &format!("{}/v1/app-ids/Rimp.com.bar.d1", s.base), Some(ADMIN), None, &[]).await.status,
        404
    );
    // the same lines again (a rerun after an interruption): identical records are left alone
    let again = imp(lines(&["Rimp.com.bar.a1", "Rimp.com.bar.d1", "Rimp.com.bar.a2", "Rimp.com.bar.a3"])).await;
    assert_eq!((again.status, again.json()), (200, json!({"imported": 1, "unchanged": 3})));
    // duplicates within the request, a line without appId, malformed JSON
    let a = imp(lines(&["Rimp.com.bar.e1", "Rimp.com.bar.e1"])).await;
    a.assert_error(400, "invalid_field", Some("appId"));
    let mut no_id = profile("x");
    no_id.as_object_mut().unwrap().remove("appId");
    imp(serde_json::to_vec(&no_id).unwrap()).await.assert_error(400, "missing_field", Some("appId"));
    imp(b"{\"appId\": \n".to_vec()).await.assert_error(400, "invalid_json", Some("appId"));
    imp(b"{\"appId\" 1}\n".to_vec()).await.assert_error(400, "invalid_json", Some("body"));
    // the import route has its own body limit
    let many: Vec<String> = (0..300).map(|i| format!("Rimp.com.bar.big{i}")).collect();
    let refs: Vec<&str> = many.iter().map(String::as_str).collect();
    imp(lines(&refs)).await.assert_error(413, "payload_too_large", Some("body"));

    let feed =
        call(Method::GET, &format!("{}/v1/changes?after=0&limit=1000", s.base), Some(ADMIN), None, &[]).await.json();
    assert_eq!(feed["changes"].as_array().unwrap().len(), 5, "one created change per imported record");
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_headers_are_cut_off() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let dir = tempfile::tempdir().unwrap();
    let limits = registry::Limits { header_read_timeout: std::time::Duration::from_millis(300), ..Default::default() };
    let s = Server::start_with(dir.path(), Some(ADMIN), limits).await;
    let addr = s.base.trim_start_matches("http://").to_owned();
    let mut slow = tokio::net::TcpStream::connect(&addr).await.unwrap();
    slow.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n").await.unwrap(); // never finishes its headers
    // other clients are served meanwhile
    assert_eq!(call(Method::GET, &format!("{}/healthz", s.base), None, None, &[]).await.status, 200);
    let mut buf = Vec::new();
    let closed = tokio::time::timeout(std::time::Duration::from_secs(5), slow.read_to_end(&mut buf)).await;
    assert!(closed.is_ok(), "the server closes a connection whose headers do not arrive");
    s.stop().await;
}
