//! The long-poll change feed.

use std::time::{Duration, Instant};

use appid::{ChangeKind, Status};
use reqwest::Method;
use serde_json::json;

use crate::helpers::{ADMIN, Body, Server, call, eventually, profile};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revoke_wakes_a_waiting_poll_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(dir.path()).await;
    let c = s.client(Some(ADMIN));
    let app = onem2m::AppId::parse("Rfeed.com.bar.f").unwrap();
    c.create_json(serde_json::to_vec(&profile(app.as_str())).unwrap().into()).await.unwrap();
    let head = c.changes(None, Duration::ZERO).await.unwrap();
    assert!(head.changes.is_empty());
    assert_eq!(head.last, 1);

    // A poll that may wait 30 s; the revoke is sent only once the registry counts it as waiting.
    let poller = s.client(Some(ADMIN));
    let poll = tokio::spawn(async move {
        let page = poller.changes(Some(1), Duration::from_secs(30)).await;
        (page, Instant::now())
    });
    let reg = s.registry.clone();
    assert!(eventually(Duration::from_secs(10), || reg.change_feed_waiters() == 1).await, "the poll is waiting");
    let revoked = Instant::now();
    c.set_status(&app, Status::Revoked, "compromised").await.unwrap();
    let (page, answered) =
        tokio::time::timeout(Duration::from_secs(30), poll).await.expect("the poll answers within its wait").unwrap();
    let page = page.unwrap();
    let latency = answered.duration_since(revoked);
    assert!(latency < Duration::from_secs(2), "woken {latency:?} after the revoke, not at once");
    assert_eq!(page.changes.len(), 1);
    let ch = &page.changes[0];
    assert_eq!((ch.seq, &ch.app_id, ch.kind, ch.status), (2, &app, ChangeKind::Status, Status::Revoked));
    assert_eq!(page.last, 2);
    assert_eq!(s.registry.change_feed_waiters(), 0);
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn answers_at_once_or_after_wait() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(dir.path()).await;
    let c = s.client(Some(ADMIN));
    for i in 0..3 {
        c.create_json(serde_json::to_vec(&profile(&format!("Rfeed.com.bar.n{i}"))).unwrap().into()).await.unwrap();
    }
    // changes exist: at once, even with a long wait
    let t = Instant::now();
    let page = c.changes(Some(0), Duration::from_secs(30)).await.unwrap();
    assert!(t.elapsed() < Duration::from_secs(2));
    assert_eq!(page.changes.iter().map(|c| c.seq).collect::<Vec<_>>(), vec![1, 2, 3]);
    assert_eq!(page.last, 3);
    let url = format!("{}/v1/changes?after=1&limit=1", s.base);
    let one = call(Method::GET, &url, Some(ADMIN), None, &[]).await.json();
    assert_eq!((one["changes"].as_array().unwrap().len(), one["last"].clone()), (1, json!(2)));
    // none: an empty page after `wait`
    let t = Instant::now();
    let page = c.changes(Some(3), Duration::from_secs(1)).await.unwrap();
    let took = t.elapsed();
    assert!(page.changes.is_empty() && page.last == 3);
    assert!(took >= Duration::from_millis(900) && took < Duration::from_secs(5), "{took:?}");
    // a client ahead of the feed (the registry was reset) learns the head at once
    let t = Instant::now();
    let page = c.changes(Some(99), Duration::from_secs(30)).await.unwrap();
    assert!(t.elapsed() < Duration::from_secs(2));
    assert_eq!(page.last, 3);
    // bad parameters
    call(Method::GET, &format!("{}/v1/changes?after=-1", s.base), Some(ADMIN), None, &[]).await.assert_error(
        400,
        "invalid_field",
        Some("after"),
    );
    call(Method::GET, &format!("{}/v1/changes?wait=soon", s.base), Some(ADMIN), None, &[]).await.assert_error(
        400,
        "invalid_field",
        Some("wait"),
    );
    call(Method::GET, &format!("{}/v1/changes?after=0", s.base), None, None, &[]).await.assert_error(
        401,
        "unauthorized",
        Some("Authorization"),
    );
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn long_polls_are_capped_and_released_at_shutdown() {
    let dir = tempfile::tempdir().unwrap();
    let limits = registry::Limits { max_long_polls: 1, ..Default::default() };
    let s = Server::start_with(dir.path(), Some(ADMIN), limits).await;
    let poller = s.client(Some(ADMIN));
    let first = tokio::spawn(async move { poller.changes(Some(0), Duration::from_secs(60)).await });
    let reg = s.registry.clone();
    assert!(eventually(Duration::from_secs(5), || reg.change_feed_waiters() == 1).await);
    call(Method::GET, &format!("{}/v1/changes?after=0&wait=10", s.base), Some(ADMIN), None, &[])
        .await
        .assert_error(503, "busy", None);
    // wait=0 needs no slot
    assert_eq!(call(Method::GET, &format!("{}/v1/changes?after=0", s.base), Some(ADMIN), None, &[]).await.status, 200);
    let t = Instant::now();
    s.stop().await;
    let page = tokio::time::timeout(Duration::from_secs(5), first).await.unwrap().unwrap().unwrap();
    assert!(page.changes.is_empty());
    assert!(t.elapsed() < Duration::from_secs(5), "a shutdown does not wait for long-polls");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_write_is_in_the_feed() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(dir.path()).await;
    let c = s.client(Some(ADMIN));
    let app = onem2m::AppId::parse("Rfeed.com.bar.all").unwrap();
    let rec = c.create_json(serde_json::to_vec(&profile(app.as_str())).unwrap().into()).await.unwrap();
    c.replace_json(&app, serde_json::to_vec(&profile(app.as_str())).unwrap().into(), &rec_etag(rec.version))
        .await
        .unwrap();
    c.deny_device(&app, "S9", "lost").await.unwrap();
    c.allow_device(&app, "S9", None).await.unwrap();
    c.set_status(&app, Status::Suspended, "audit").await.unwrap();
    c.set_status(&app, Status::Suspended, "audit again").await.unwrap(); // no change, no entry
    let _ = call(
        Method::POST,
        &format!("{}/v1/app-ids/{app}/status", s.base),
        Some(ADMIN),
        Some(Body::Json(json!({"status": "active", "reason": "ok"}))),
        &[],
    )
    .await;
    let page = c.changes(Some(0), Duration::ZERO).await.unwrap();
    let kinds: Vec<_> = page.changes.iter().map(|c| (c.seq, c.kind, c.status)).collect();
    assert_eq!(
        kinds,
        vec![
            (1, ChangeKind::Created, Status::Active),
            (2, ChangeKind::Updated, Status::Active),
            (3, ChangeKind::DeviceDenied, Status::Active),
            (4, ChangeKind::DeviceAllowed, Status::Active),
            (5, ChangeKind::Status, Status::Suspended),
            (6, ChangeKind::Status, Status::Active),
        ]
    );
    let rec = c.get(&app).await.unwrap().value;
    assert_eq!(rec.version, 6, "each change is one version");
    s.stop().await;
}

fn rec_etag(v: u64) -> String {
    format!("\"{v}\"")
}
