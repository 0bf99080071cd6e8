//! The store suite: what every [`Store`] backend must do, run by each backend's own tests with a
//! factory of empty stores (`sqlite.rs` runs it on SQLite; a PostgreSQL backend runs the same).

use std::future::Future;
use std::sync::Arc;

use appid::{AppClass, ChangeKind, Draft, Record, Role, Status};
use onem2m::{AppId, Timestamp};
use serde_json::{Value, json};

use super::{KeyState, ListQuery, Mutation, Store, StoreError, StoredKey, StoredRecord, StoredToken};

/// Runs every part of the suite, each on a new empty store from `fresh`.
pub(crate) async fn run<S, F, Fut>(mut fresh: F)
where
    S: Store,
    F: FnMut() -> Fut,
    Fut: Future<Output = S>,
{
    records_feed_tokens_and_keys(&fresh().await).await;
    imports_keep_identical_records(&fresh().await).await;
    concurrent_writers_never_skip_a_sequence_number(Arc::new(fresh().await)).await;
}

/// A valid profile.
pub(crate) fn profile(app_id: &str) -> Value {
    json!({
        "appId": app_id, "status": "active",
        "registrant": {"name": "Bar Devices", "contact": "sec@bar.example"},
        "application": {"type": "thermostat", "class": "consumer", "name": "Bar Thermostat"},
        "security": {"keyStorage": "software", "tlsVersions": ["1.3"], "firmwareSigned": true},
        "authentication": {"method": "none", "roots": [], "aeIdInCertificate": false},
        "communications": {"class": "periodic", "periodSeconds": 60, "bindings": ["http"]},
        "dataPrivacy": {"category": "personal", "sharing": "restricted", "allowedRecipients": ["Cehr*"]}
    })
}

/// The stored form of [`profile`] with `class`.
pub(crate) fn record(id: &str, class: &str) -> StoredRecord {
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

/// Records, their changes, the feed, filters and pages, tokens and signing keys.
async fn records_feed_tokens_and_keys<S: Store>(s: &S) {
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
    assert!(matches!(e, StoreError::NoSuchEntry { field: "aeId", .. }), "{e:?}");
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
    assert!(matches!(s.retire_key("k1").await.unwrap_err(), StoreError::NoSuchEntry { field: "kid", .. }));
    assert_eq!(s.keys().await.unwrap().iter().map(|k| k.kid.as_str()).collect::<Vec<_>>(), vec!["k2"]);
    assert_eq!(s.key_count().await.unwrap(), 2, "retired keys still count, so key ids are never reused");
}

/// An import registers new records, leaves identical ones, and refuses (all of it) a record that
/// is registered with other content.
async fn imports_keep_identical_records<S: Store>(s: &S) {
    let done = s.import(vec![record("Ri.com.x.a", "consumer"), record("Ri.com.x.b", "consumer")], T).await.unwrap();
    assert_eq!((done.changes.iter().map(|c| c.seq).collect::<Vec<_>>(), done.unchanged), (vec![1, 2], 0));
    // the same again, with one new record: only that one is registered
    let again =
        vec![record("Ri.com.x.a", "consumer"), record("Ri.com.x.c", "consumer"), record("Ri.com.x.b", "consumer")];
    let done = s.import(again, T).await.unwrap();
    assert_eq!(
        done.changes.iter().map(|c| (c.seq, c.app_id.to_string())).collect::<Vec<_>>(),
        vec![(3, "Ri.com.x.c".to_owned())]
    );
    assert_eq!(done.unchanged, 2);
    // other content under a registered App-ID: a conflict, and nothing of the batch is stored
    let e = s.import(vec![record("Ri.com.x.d", "consumer"), record("Ri.com.x.a", "industrial")], T).await.unwrap_err();
    assert!(matches!(e, StoreError::Conflict(ref c) if c == &id("Ri.com.x.a")), "{e:?}");
    assert!(s.get(&id("Ri.com.x.d")).await.unwrap().is_none());
    assert_eq!(s.get(&id("Ri.com.x.a")).await.unwrap().unwrap().class, AppClass::Consumer);
    assert_eq!(s.head().await.unwrap(), 3);
    // a record changed since it was imported is no longer identical to its line
    s.modify(&id("Ri.com.x.b"), Mutation::Status { status: Status::Revoked, reason: "r".into() }, T).await.unwrap();
    let e = s.import(vec![record("Ri.com.x.b", "consumer")], T).await.unwrap_err();
    assert!(matches!(e, StoreError::Conflict(_)), "{e:?}");
    // insert (a single create) never accepts an existing App-ID, identical or not
    let e = s.insert(vec![record("Ri.com.x.c", "consumer")], T).await.unwrap_err();
    assert!(matches!(e, StoreError::Conflict(_)), "{e:?}");
}

/// Writers on several tasks at once, and a reader following the feed as a long-poll does: every
/// page starts right after the last sequence number it saw and has no gap, so a follower never
/// skips a change, and in the end it has seen every change once.
async fn concurrent_writers_never_skip_a_sequence_number<S: Store>(s: Arc<S>) {
    const WRITERS: usize = 4;
    const EACH: usize = 20;
    let writers: Vec<_> = (0..WRITERS)
        .map(|w| {
            let s = Arc::clone(&s);
            tokio::spawn(async move {
                let mut seqs = Vec::new();
                for i in 0..EACH {
                    let app = format!("Rc.com.w{w}.i{i}");
                    seqs.extend(s.insert(vec![record(&app, "consumer")], T).await.unwrap().into_iter().map(|c| c.seq));
                    let m = Mutation::Status { status: Status::Suspended, reason: "r".into() };
                    seqs.extend(s.modify(&id(&app), m, T).await.unwrap().change.map(|c| c.seq));
                }
                seqs
            })
        })
        .collect();
    let follower = {
        let s = Arc::clone(&s);
        tokio::spawn(async move {
            let (mut after, mut seen) = (0u64, Vec::new());
            while seen.len() < WRITERS * EACH * 2 {
                let page = s.changes(after, 7).await.unwrap();
                for (i, c) in page.iter().enumerate() {
                    assert_eq!(c.seq, after + 1 + i as u64, "the page after {after} skips a sequence number");
                }
                if let Some(last) = page.last() {
                    after = last.seq;
                    seen.extend(page.iter().map(|c| c.seq));
                } else {
                    tokio::task::yield_now().await;
                }
            }
            seen
        })
    };
    let mut written: Vec<u64> = Vec::new();
    for w in writers {
        written.extend(w.await.unwrap());
    }
    written.sort_unstable();
    let all: Vec<u64> = (1..=(WRITERS * EACH * 2) as u64).collect();
    assert_eq!(written, all, "every change got its own sequence number");
    let seen = tokio::time::timeout(std::time::Duration::from_secs(30), follower)
        .await
        .expect("the follower catches up")
        .unwrap();
    assert_eq!(seen, all, "the follower saw every change once, in order");
    assert_eq!(s.head().await.unwrap(), (WRITERS * EACH * 2) as u64);
}
