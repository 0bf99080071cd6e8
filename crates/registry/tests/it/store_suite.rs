//! The store suite: what every [`Store`] backend must do. Run against SQLite here; the PostgreSQL
//! backend runs the same function.

use std::sync::Arc;

use appid::{AppClass, ChangeKind, Draft, Record, Role, Status};
use onem2m::{AppId, Timestamp};
use registry::store::{
    KeyState, ListQuery, Mutation, SqliteStore, Store, StoreError, StoredKey, StoredRecord, StoredToken,
};
use serde_json::json;

use crate::helpers::profile;

fn record(id: &str, class: &str) -> StoredRecord {
    let mut p = profile(id);
    p["application"]["class"] = json!(class);
    let d = appid::parse_draft(&serde_json::to_vec(&p).unwrap()).unwrap();
    StoredRecord::from_record(&d.into_new_record(AppId::parse(id).unwrap()))
}

fn draft(id: &str, name: &str) -> Box<Draft> {
    let mut p = profile(id);
    p["application"]["name"] = json!(name);
    Box::new(appid::parse_draft(&serde_json::to_vec(&p).unwrap()).unwrap())
}

fn id(s: &str) -> AppId {
    AppId::parse(s).unwrap()
}

const T: Timestamp = Timestamp::from_secs(1_800_000_000);

/// Every backend must pass this, on an empty store.
pub(crate) async fn store_suite<S: Store>(s: S) {
    // empty
    assert_eq!(s.head().await.unwrap(), 0);
    assert!(s.get(&id("Ra.b.c")).await.unwrap().is_none());
    assert!(s.changes(0, 100).await.unwrap().is_empty());

    // insert: each record with its change, in order
    let changes =
        s.insert(vec![record("Rs.com.x.a", "consumer"), record("Rs.com.x.b", "industrial")], T).await.unwrap();
    assert_eq!(
        changes.iter().map(|c| (c.seq, c.kind)).collect::<Vec<_>>(),
        vec![(1, ChangeKind::Created), (2, ChangeKind::Created)]
    );
    assert_eq!(s.head().await.unwrap(), 2);
    let a = s.get(&id("Rs.com.x.a")).await.unwrap().unwrap();
    assert_eq!(a, record("Rs.com.x.a", "consumer"), "what is stored is what is read");
    let parsed: Record = a.record().unwrap();
    assert_eq!(parsed.app_id, id("Rs.com.x.a"));

    // all or nothing: a conflict anywhere stores nothing of the batch and appends no change
    let e = s.insert(vec![record("Rs.com.x.c", "consumer"), record("Rs.com.x.a", "consumer")], T).await.unwrap_err();
    assert!(matches!(e, StoreError::Conflict(ref c) if c == &id("Rs.com.x.a")), "{e:?}");
    assert!(s.get(&id("Rs.com.x.c")).await.unwrap().is_none());
    assert_eq!(s.head().await.unwrap(), 2);

    // modify: replace with and without a version, stale versions refused
    let m = s
        .modify(&id("Rs.com.x.a"), Mutation::Replace { draft: draft("Rs.com.x.a", "two"), if_version: Some(1) }, T)
        .await
        .unwrap();
    assert_eq!(m.record.version, 2);
    assert_eq!(m.record.name, "two");
    assert_eq!(m.change.as_ref().map(|c| (c.seq, c.kind)), Some((3, ChangeKind::Updated)));
    let e = s
        .modify(&id("Rs.com.x.a"), Mutation::Replace { draft: draft("Rs.com.x.a", "x"), if_version: Some(1) }, T)
        .await
        .unwrap_err();
    assert!(matches!(e, StoreError::VersionMismatch { current: 2 }), "{e:?}");
    let m = s
        .modify(&id("Rs.com.x.a"), Mutation::Replace { draft: draft("Rs.com.x.a", "three"), if_version: None }, T)
        .await
        .unwrap();
    assert_eq!(m.record.version, 3);
    let e = s
        .modify(&id("Rs.com.x.zz"), Mutation::Status { status: Status::Revoked, reason: "r".into() }, T)
        .await
        .unwrap_err();
    assert!(matches!(e, StoreError::NotFound), "{e:?}");

    // status: a change, then a no-op
    let m =
        s.modify(&id("Rs.com.x.b"), Mutation::Status { status: Status::Revoked, reason: "r".into() }, T).await.unwrap();
    assert_eq!((m.record.status, m.record.version), (Status::Revoked, 2));
    assert_eq!(m.change.as_ref().map(|c| (c.kind, c.status)), Some((ChangeKind::Status, Status::Revoked)));
    let m = s
        .modify(&id("Rs.com.x.b"), Mutation::Status { status: Status::Revoked, reason: "again".into() }, T)
        .await
        .unwrap();
    assert!(m.change.is_none());
    assert_eq!(m.record.version, 2);

    // deny list
    let m = s.modify(&id("Rs.com.x.b"), Mutation::Deny { pattern: "S1*".into(), reason: "r".into() }, T).await.unwrap();
    assert_eq!(m.record.denied, vec!["S1*"]);
    assert_eq!(s.get(&id("Rs.com.x.b")).await.unwrap().unwrap().denied, vec!["S1*"]);
    let m = s.modify(&id("Rs.com.x.b"), Mutation::Deny { pattern: "S1*".into(), reason: "r".into() }, T).await.unwrap();
    assert!(m.change.is_none(), "already denied");
    let e = s.modify(&id("Rs.com.x.b"), Mutation::Allow { pattern: "S2".into(), reason: None }, T).await.unwrap_err();
    assert!(matches!(e, StoreError::NoSuchEntry(_)), "{e:?}");
    let m = s.modify(&id("Rs.com.x.b"), Mutation::Allow { pattern: "S1*".into(), reason: None }, T).await.unwrap();
    assert!(m.record.denied.is_empty());
    assert_eq!(m.record.version, 4);

    // the feed: every change once, in order, with the time it was made
    let feed = s.changes(0, 100).await.unwrap();
    assert_eq!(feed.len(), 7);
    assert!(feed.windows(2).all(|w| w[0].seq + 1 == w[1].seq));
    assert!(feed.iter().all(|c| c.at == T));
    assert_eq!(s.changes(5, 1).await.unwrap().iter().map(|c| c.seq).collect::<Vec<_>>(), vec![6]);
    assert_eq!(s.head().await.unwrap(), 7);

    // list: filters, order, pagination, literal substring search
    let many: Vec<_> = (0..30)
        .map(|i| record(&format!("Rs.com.y.n{i:02}"), if i % 3 == 0 { "industrial" } else { "consumer" }))
        .collect();
    s.insert(many, T).await.unwrap();
    let q = |query: ListQuery| s.list(query);
    let all = q(ListQuery { limit: 1000, ..Default::default() }).await.unwrap();
    assert_eq!(all.len(), 32);
    assert!(all.windows(2).all(|w| w[0].app_id < w[1].app_id));
    let page = q(ListQuery { limit: 5, after: Some("Rs.com.y.n09".into()), ..Default::default() }).await.unwrap();
    assert_eq!(
        page.iter().map(|r| r.app_id.to_string()).collect::<Vec<_>>(),
        (10..15).map(|i| format!("Rs.com.y.n{i:02}")).collect::<Vec<_>>()
    );
    assert_eq!(
        q(ListQuery { class: Some(AppClass::Industrial), limit: 100, ..Default::default() }).await.unwrap().len(),
        11
    );
    assert_eq!(
        q(ListQuery { status: Some(Status::Revoked), limit: 100, ..Default::default() }).await.unwrap().len(),
        1
    );
    assert_eq!(
        q(ListQuery { app_type: Some("thermostat".into()), limit: 100, ..Default::default() }).await.unwrap().len(),
        32
    );
    assert_eq!(q(ListQuery { q: Some("Y.N1".into()), limit: 100, ..Default::default() }).await.unwrap().len(), 10);
    assert_eq!(
        q(ListQuery { q: Some("_".into()), limit: 100, ..Default::default() }).await.unwrap().len(),
        0,
        "_ is literal"
    );
    assert_eq!(
        q(ListQuery {
            class: Some(AppClass::Consumer),
            status: Some(Status::Active),
            q: Some("n0".into()),
            limit: 100,
            ..Default::default()
        })
        .await
        .unwrap()
        .len(),
        6
    );

    // tokens
    s.add_token(StoredToken { hash: [1; 32], role: Role::Read, label: "r".into() }, T).await.unwrap();
    s.add_token(StoredToken { hash: [2; 32], role: Role::Admin, label: "a".into() }, T).await.unwrap();
    let mut tokens = s.tokens().await.unwrap();
    tokens.sort_by_key(|t| t.hash);
    assert_eq!(tokens.iter().map(|t| (t.hash[0], t.role)).collect::<Vec<_>>(), vec![(1, Role::Read), (2, Role::Admin)]);

    // keys: one active at a time; rotation publishes the old; retiring erases
    assert_eq!(s.key_count().await.unwrap(), 0);
    let key = |kid: &str, n: u8| StoredKey { kid: kid.into(), seed: [n; 32], state: KeyState::Active, created_at: T };
    s.rotate_key(key("k1", 1)).await.unwrap();
    s.rotate_key(key("k2", 2)).await.unwrap();
    let keys = s.keys().await.unwrap();
    assert_eq!(
        keys.iter().map(|k| (k.kid.as_str(), k.state, k.seed[0])).collect::<Vec<_>>(),
        vec![("k1", KeyState::Published, 1), ("k2", KeyState::Active, 2)]
    );
    assert!(matches!(s.retire_key("k2").await.unwrap_err(), StoreError::Invalid(_)));
    s.retire_key("k1").await.unwrap();
    assert!(matches!(s.retire_key("k1").await.unwrap_err(), StoreError::NoSuchEntry(_)));
    assert_eq!(s.keys().await.unwrap().iter().map(|k| k.kid.as_str()).collect::<Vec<_>>(), vec!["k2"]);
    assert_eq!(s.key_count().await.unwrap(), 2, "retired keys still count, so key ids are never reused");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_passes_the_store_suite() {
    let dir = tempfile::tempdir().unwrap();
    store_suite(SqliteStore::open(&dir.path().join("suite.db"), 2).unwrap()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_concurrent_writers_serialise() {
    let dir = tempfile::tempdir().unwrap();
    let s = Arc::new(SqliteStore::open(&dir.path().join("c.db"), 2).unwrap());
    let tasks: Vec<_> = (0..50)
        .map(|i| {
            let s = Arc::clone(&s);
            tokio::spawn(async move { s.insert(vec![record(&format!("Rc.com.x.i{i}"), "consumer")], T).await.unwrap() })
        })
        .collect();
    let mut seqs = Vec::new();
    for t in tasks {
        seqs.extend(t.await.unwrap().into_iter().map(|c| c.seq));
    }
    seqs.sort();
    assert_eq!(seqs, (1..=50).collect::<Vec<_>>(), "every change got its own sequence number");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_reopens_and_refuses_a_newer_schema() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("v.db");
    {
        let s = SqliteStore::open(&path, 1).unwrap();
        s.insert(vec![record("Rv.com.x.a", "consumer")], T).await.unwrap();
    }
    let s = SqliteStore::open(&path, 1).unwrap();
    assert!(s.get(&id("Rv.com.x.a")).await.unwrap().is_some());
    drop(s);
    let conn = rusqlite::Connection::open(&path).unwrap();
    conn.execute("INSERT INTO schema_version (version) VALUES (999)", []).unwrap();
    drop(conn);
    assert!(matches!(SqliteStore::open(&path, 1), Err(StoreError::Backend(m)) if m.contains("999")));
}
