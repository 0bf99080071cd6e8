//! The store conformance suite: every backend must pass it.

use onem2m::{ResourceType, Timestamp};
use serde_json::{Value, json};

use super::decisions::{Decision, DecisionFilter};
use super::{DiscoveryQuery, Store, StoreError, Tx, Write};
use crate::resource::Resource;

const T0: i64 = 1_700_000_000;

pub(crate) fn res(ty: ResourceType, ri: &str, pi: &str, srn: &str, extra: Value) -> Resource {
    let rn = srn.rsplit('/').next().unwrap_or(srn);
    let mut attrs = json!({
        "ri": ri, "pi": pi, "rn": rn, "ty": ty.num(),
        "ct": Timestamp::from_secs(T0).to_string(), "lt": Timestamp::from_secs(T0).to_string(),
        "et": Timestamp::from_secs(T0 + 3600).to_string(),
    });
    for (k, v) in extra.as_object().unwrap() {
        attrs[k] = v.clone();
    }
    Resource::new(ty, srn.to_owned(), "Cowner".into(), attrs.as_object().unwrap().clone())
}

fn cin(n: u32, con: &str) -> Resource {
    let mut r = res(
        ResourceType::ContentInstance,
        &format!("cin{n}"),
        "cnt1",
        &format!("cse-in/ae1/cnt1/i{n}"),
        json!({"con": con, "cs": con.len(), "st": 0}),
    );
    r.attrs.insert("ct".into(), json!(Timestamp::from_secs(T0 + i64::from(n)).to_string()));
    r
}

async fn create(s: &dyn Store, r: Resource) {
    s.apply(Tx::one(Write::Create(r))).await.unwrap();
}

/// A CSEBase, an AE and a container with `mni` 3.
pub(crate) async fn seed(s: &dyn Store) {
    let mut cb = res(ResourceType::CseBase, "id-in", "", "cse-in", json!({}));
    cb.attrs.remove("et");
    create(s, cb).await;
    create(s, res(ResourceType::Ae, "Cae1", "id-in", "cse-in/ae1", json!({"api": "Nx", "lbl": ["a", "b"]}))).await;
    create(
        s,
        res(ResourceType::Container, "cnt1", "Cae1", "cse-in/ae1/cnt1", json!({"mni": 3, "cni": 0, "cbs": 0, "st": 0})),
    )
    .await;
}

pub(crate) async fn run(s: &dyn Store) {
    seed(s).await;
    let cb = s.get("id-in").await.unwrap().unwrap();
    assert_eq!(cb.ty, ResourceType::CseBase);
    assert_eq!(cb.et(), Timestamp::MAX);
    let ae = s.get_by_srn("cse-in/ae1").await.unwrap().unwrap();
    assert_eq!(ae.ri(), "Cae1");
    assert_eq!(ae.creator, "Cowner");
    assert_eq!(ae.meta, None);
    let mut with_meta = ae.clone();
    with_meta.meta = Some(json!({"appId": "Nx", "credential": "ab12"}));
    s.apply(Tx::one(Write::Update(with_meta))).await.unwrap();
    assert_eq!(s.get("Cae1").await.unwrap().unwrap().meta, Some(json!({"appId": "Nx", "credential": "ab12"})));
    assert_eq!(ae.str_list("lbl"), vec!["a", "b"]);

    // Duplicates are refused and nothing is half-written.
    let dup = s.apply(Tx::one(Write::Create(res(ResourceType::Ae, "Cae1", "id-in", "cse-in/other", json!({}))))).await;
    assert_eq!(dup.unwrap_err(), StoreError::DuplicateRi("Cae1".into()));
    let dup = s.apply(Tx::one(Write::Create(res(ResourceType::Ae, "Cae2", "id-in", "cse-in/ae1", json!({}))))).await;
    assert!(matches!(dup.unwrap_err(), StoreError::DuplicateName(_)));
    let orphan =
        s.apply(Tx::one(Write::Create(res(ResourceType::Container, "x", "nope", "cse-in/nope/x", json!({}))))).await;
    assert!(matches!(orphan.unwrap_err(), StoreError::NotFound(_)));
    let half = Tx {
        writes: vec![
            Write::Create(res(ResourceType::Container, "cntA", "Cae1", "cse-in/ae1/A", json!({}))),
            Write::Create(res(ResourceType::Container, "cntB", "Cae1", "cse-in/ae1/A", json!({}))),
        ],
    };
    assert!(s.apply(half).await.is_err());
    assert!(s.get("cntA").await.unwrap().is_none(), "a failed transaction left a write behind");

    // Instances: counters always right, oldest go first beyond mni.
    for n in 1..=5 {
        s.apply(Tx::one(Write::CreateInstance(cin(n, &format!("v{n}"))))).await.unwrap();
    }
    let cnt = s.get("cnt1").await.unwrap().unwrap();
    assert_eq!(cnt.get_u64("cni"), Some(3));
    assert_eq!(cnt.get_u64("cbs"), Some(6));
    assert_eq!(cnt.get_u64("st"), Some(5));
    let la = s.newest_or_oldest("cnt1", ResourceType::ContentInstance, true).await.unwrap().unwrap();
    let ol = s.newest_or_oldest("cnt1", ResourceType::ContentInstance, false).await.unwrap().unwrap();
    assert_eq!((la.ri(), ol.ri()), ("cin5", "cin3"));
    assert_eq!(s.children("cnt1", Some(ResourceType::ContentInstance), 10).await.unwrap().len(), 3);
    assert_eq!(s.children("cnt1", None, 2).await.unwrap().len(), 2);

    // Lowering mni trims at once; deleting an instance updates the counters.
    let mut c = s.get("cnt1").await.unwrap().unwrap();
    c.attrs.insert("mni".into(), json!(2));
    s.apply(Tx::one(Write::Update(c))).await.unwrap();
    let c = s.get("cnt1").await.unwrap().unwrap();
    assert_eq!((c.get_u64("cni"), c.get_u64("cbs"), c.get_u64("st")), (Some(2), Some(4), Some(6)));
    s.apply(Tx::one(Write::Delete("cin5".into()))).await.unwrap();
    let c = s.get("cnt1").await.unwrap().unwrap();
    assert_eq!((c.get_u64("cni"), c.get_u64("cbs")), (Some(1), Some(2)));

    // Discovery below a resource: levels, types, creation order.
    create(s, res(ResourceType::Subscription, "sub1", "cnt1", "cse-in/ae1/cnt1/sub1", json!({"nu": ["http://x"]})))
        .await;
    let q = |lvl, types: Vec<u16>| DiscoveryQuery {
        root_srn: "cse-in".into(),
        max_level: lvl,
        types,
        limit: 100,
        ..Default::default()
    };
    let ris = |p: &super::DiscoveryPage| p.resources.iter().map(|r| r.ri().to_owned()).collect::<Vec<_>>();
    let all = s.discover(&q(None, vec![])).await.unwrap();
    assert_eq!(ris(&all), vec!["Cae1", "cnt1", "cin4", "sub1"]);
    assert_eq!(all.next, None, "a page that is not full ends the scan");
    assert_eq!(s.discover(&q(Some(1), vec![])).await.unwrap().resources.len(), 1);
    assert_eq!(s.discover(&q(Some(2), vec![])).await.unwrap().resources.len(), 2);
    assert_eq!(s.discover(&q(None, vec![4, 23])).await.unwrap().resources.len(), 2);
    let mut narrow = q(None, vec![]);
    narrow.created_after = Some(Timestamp::from_secs(T0 + 1));
    assert_eq!(s.discover(&narrow).await.unwrap().resources.len(), 1);
    // Pages: a full page says where the next one starts.
    let mut paged = q(None, vec![]);
    paged.limit = 2;
    let first = s.discover(&paged).await.unwrap();
    assert_eq!(ris(&first), vec!["Cae1", "cnt1"]);
    paged.after = first.next;
    let second = s.discover(&paged).await.unwrap();
    assert_eq!(ris(&second), vec!["cin4", "sub1"]);
    paged.after = second.next;
    let third = s.discover(&paged).await.unwrap();
    assert!(third.resources.is_empty() && third.next.is_none());
    // An offset skips candidates that meet the conditions.
    let mut offset = q(None, vec![3, 4, 23]);
    offset.offset = 1;
    offset.limit = 1;
    assert_eq!(ris(&s.discover(&offset).await.unwrap()), vec!["cin4"]);
    // A scan limit bounds what a page examines, whatever matches: a page cut by it says where to
    // continue, even when nothing in it matched.
    let mut rare = q(None, vec![23]);
    rare.scan_limit = Some(2);
    let first = s.discover(&rare).await.unwrap();
    assert!(first.resources.is_empty() && first.positions.is_empty());
    assert_eq!(first.examined, 2);
    assert!(first.next.is_some(), "the scan limit cut the page");
    rare.after = first.next;
    let second = s.discover(&rare).await.unwrap();
    assert_eq!((ris(&second), second.examined, second.positions.len()), (vec!["sub1".to_owned()], 2, 1));
    rare.after = second.next;
    let third = s.discover(&rare).await.unwrap();
    assert_eq!((third.resources.len(), third.examined, third.next), (0, 0, None));
    // An offset that the scan limit comes before: how many it skipped.
    let mut skip = q(None, vec![3, 4, 23]);
    (skip.offset, skip.scan_limit) = (5, Some(4));
    let page = s.discover(&skip).await.unwrap();
    assert_eq!((page.resources.len(), page.skipped, page.examined), (0, 3, 4));
    skip.offset = 1;
    let page = s.discover(&skip).await.unwrap();
    assert_eq!((ris(&page), page.skipped), (vec!["cin4".to_owned(), "sub1".to_owned()], 1));
    // Children of several parents at once, the oldest first, at most so many each.
    let kids = s.children_of(&["cnt1".into(), "Cae1".into(), "nope".into()], 10).await.unwrap();
    assert_eq!(kids.iter().map(|r| r.ri()).collect::<Vec<_>>(), vec!["cin4", "sub1", "cnt1"]);
    assert_eq!(s.children_of(&["cnt1".into()], 1).await.unwrap().len(), 1);

    // Expiration counters: counted in the transaction, never past the limit.
    let count = |limit| Write::CountNotification { sub: "sub1".into(), limit };
    let out = s.apply(Tx { writes: vec![count(2), count(2), count(2)] }).await.unwrap();
    assert_eq!(out.counted, vec![("sub1".into(), Some(1)), ("sub1".into(), Some(2)), ("sub1".into(), None)]);
    let gone = s.apply(Tx::one(Write::CountNotification { sub: "nope".into(), limit: 5 })).await.unwrap();
    assert_eq!(gone.counted, vec![("nope".into(), None)]);
    let failed = Tx {
        writes: vec![
            count(5),
            Write::Create(res(ResourceType::Container, "cnt1", "Cae1", "cse-in/ae1/dup", json!({}))),
        ],
    };
    assert!(s.apply(failed).await.is_err());
    let out = s.apply(Tx::one(count(5))).await.unwrap();
    assert_eq!(out.counted, vec![("sub1".into(), Some(3))], "a failed transaction counted nothing");

    // Expiry and maxInstanceAge.
    let later = Timestamp::from_secs(T0 + 7200);
    let expired = s.expired(later, 100).await.unwrap();
    assert_eq!(expired.len(), 4);
    assert!(s.expired(Timestamp::from_secs(T0), 100).await.unwrap().is_empty());
    let mut c = s.get("cnt1").await.unwrap().unwrap();
    c.attrs.insert("mia".into(), json!(2));
    s.apply(Tx::one(Write::Update(c))).await.unwrap();
    // cin4 was created at T0 + 4: older than 2 s from T0 + 7 on.
    assert_eq!(s.aged_instances(Timestamp::from_secs(T0 + 7), 10).await.unwrap(), vec!["cin4".to_owned()]);
    assert!(s.aged_instances(Timestamp::from_secs(T0 + 6), 10).await.unwrap().is_empty());
    // An instance created in a container that has a `mia` ages from its own creation time; a new
    // `mia` moves it, and without one it never ages.
    let mut c5 = cin(5, "v5");
    c5.attrs.insert("ri".into(), json!("cin5"));
    s.apply(Tx::one(Write::CreateInstance(c5))).await.unwrap();
    let aged = |secs| async move { s.aged_instances(Timestamp::from_secs(T0 + secs), 10).await.unwrap() };
    assert_eq!(aged(8).await, vec!["cin4".to_owned(), "cin5".to_owned()], "oldest first");
    assert_eq!(aged(7).await, vec!["cin4".to_owned()]);
    let mut c = s.get("cnt1").await.unwrap().unwrap();
    c.attrs.insert("mia".into(), json!(10));
    s.apply(Tx::one(Write::Update(c.clone()))).await.unwrap();
    assert!(aged(13).await.is_empty());
    assert_eq!(aged(16).await, vec!["cin4".to_owned(), "cin5".to_owned()]);
    c.attrs.remove("mia");
    s.apply(Tx::one(Write::Update(c.clone()))).await.unwrap();
    assert!(aged(1_000_000).await.is_empty(), "no mia, no ageing");
    c.attrs.insert("mia".into(), json!(2));
    s.apply(Tx::one(Write::Update(c))).await.unwrap();
    assert_eq!(aged(7).await, vec!["cin4".to_owned()]);

    // Deleting a subtree removes everything below and reports subscriptions and AEs.
    let out = s.apply(Tx::one(Write::Delete("Cae1".into()))).await.unwrap();
    assert_eq!(out.removed, 5, "with cin5 since");
    assert_eq!(out.removed_subscriptions.len(), 1);
    assert_eq!(out.removed_aes, vec!["Cae1".to_owned()]);
    assert!(s.get("cin4").await.unwrap().is_none());
    assert!(s.get_by_srn("cse-in/ae1/cnt1").await.unwrap().is_none());
    assert_eq!(s.apply(Tx::one(Write::Delete("Cae1".into()))).await.unwrap_err(), StoreError::NotFound("Cae1".into()));

    // Many concurrent writers: all acknowledged, all there.
    create(s, res(ResourceType::Ae, "Cae2", "id-in", "cse-in/ae2", json!({}))).await;
    create(s, res(ResourceType::Container, "cnt2", "Cae2", "cse-in/ae2/cnt2", json!({"cni": 0, "cbs": 0, "st": 0})))
        .await;
    let writes = (0..200u32).map(|n| {
        let mut r = cin(n, "xy");
        r.attrs.insert("ri".into(), json!(format!("c2-{n}")));
        r.attrs.insert("pi".into(), json!("cnt2"));
        r.srn = format!("cse-in/ae2/cnt2/c{n}");
        s.apply(Tx::one(Write::CreateInstance(r)))
    });
    for r in futures_util::future::join_all(writes).await {
        r.unwrap();
    }
    let c = s.get("cnt2").await.unwrap().unwrap();
    assert_eq!((c.get_u64("cni"), c.get_u64("cbs")), (Some(200), Some(400)));
    assert_eq!(s.get_many(&["c2-0".into(), "c2-199".into(), "nope".into()]).await.unwrap().len(), 2);

    // Failing transactions among concurrent ones, which the writer may commit together: each fails
    // alone and leaves nothing behind (not even its writes before the one that failed); the others
    // all land.
    let instance = |ri: String, name: String| {
        let mut r = cin(0, "xy");
        r.attrs.insert("ri".into(), json!(ri));
        r.attrs.insert("pi".into(), json!("cnt2"));
        r.srn = format!("cse-in/ae2/cnt2/{name}");
        r
    };
    let writes = (0..100u32).map(|n| {
        let mut tx = Tx::one(Write::CreateInstance(instance(format!("c3-{n}"), format!("d{n}"))));
        if n % 4 == 1 {
            tx.writes.push(Write::CreateInstance(instance(format!("c3-{n}-dup"), "c0".into())));
        }
        s.apply(tx)
    });
    for (n, r) in futures_util::future::join_all(writes).await.into_iter().enumerate() {
        if n % 4 == 1 {
            assert!(matches!(r, Err(StoreError::DuplicateName(_))), "#{n}: {r:?}");
            assert!(s.get(&format!("c3-{n}")).await.unwrap().is_none(), "#{n} undone");
        } else {
            r.unwrap();
        }
    }
    let c = s.get("cnt2").await.unwrap().unwrap();
    assert_eq!((c.get_u64("cni"), c.get_u64("cbs")), (Some(275), Some(550)));

    admission_records(s).await;

    s.clear().await.unwrap();
    assert!(s.get("id-in").await.unwrap().is_none());
    // The decision log, the kept answers and the named values outlive a Reset.
    let all = DecisionFilter { limit: 100, ..Default::default() };
    assert_eq!(s.decisions(&all).await.unwrap().len(), 1);
    assert!(s.answer("k1").await.unwrap().is_some());
    assert_eq!(s.state("feed_seq").await.unwrap(), Some(9));
}

pub(crate) fn decision(ae: &str, outcome: &str) -> Decision {
    Decision {
        seq: 0,
        at: "20260101T000000,000000".into(),
        ae_id: ae.into(),
        app_id: "Ra.b.c".into(),
        profile_version: Some(1),
        outcome: outcome.into(),
        rsc: 2001,
        reason: "admitted".into(),
        rule: None,
        message: "m".into(),
        mode: "enforce".into(),
        stage: "registration".into(),
        count: 1,
    }
}

/// Decisions, kept answers and named values: written in the transactions of resources, all or
/// nothing.
async fn admission_records(s: &dyn Store) {
    let answer =
        |body: &str| Write::Answer { key: "k1".into(), body: body.as_bytes().to_vec(), signature: "sig".into() };
    let ae3 = res(ResourceType::Ae, "Cae3", "id-in", "cse-in/ae3", json!({}));
    let out = s
        .apply(Tx { writes: vec![Write::Create(ae3), Write::Decision(decision("Cae3", "admitted")), answer("first")] })
        .await
        .unwrap();
    assert_eq!(out.decisions.len(), 1);
    let first = out.decisions[0];
    // A transaction that fails keeps neither its decision nor its answer.
    let dup = res(ResourceType::Ae, "Cae3", "id-in", "cse-in/ae3b", json!({}));
    let k2 = Write::Answer { key: "k2".into(), body: b"x".to_vec(), signature: "s".into() };
    let failed = s.apply(Tx { writes: vec![Write::Decision(decision("Cae3", "admitted")), k2, Write::Create(dup)] });
    assert_eq!(failed.await.unwrap_err(), StoreError::DuplicateRi("Cae3".into()));
    assert!(s.answer("k2").await.unwrap().is_none());
    // An answer is kept once: the first body stays.
    let out =
        s.apply(Tx { writes: vec![Write::Decision(decision("Cae4", "rejected")), answer("second")] }).await.unwrap();
    assert!(out.decisions[0] > first, "numbered in order");
    assert_eq!(s.answer("k1").await.unwrap(), Some((b"first".to_vec(), "sig".into())));
    let all = DecisionFilter { limit: 100, ..Default::default() };
    let got = s.decisions(&all).await.unwrap();
    assert_eq!(got.iter().map(|d| d.ae_id.as_str()).collect::<Vec<_>>(), ["Cae4", "Cae3"], "newest first");
    assert_eq!(got[1], Decision { seq: first, ..decision("Cae3", "admitted") });
    let rejected = DecisionFilter { outcome: Some("rejected".into()), limit: 100, ..Default::default() };
    assert_eq!(s.decisions(&rejected).await.unwrap().len(), 1);
    let before = DecisionFilter { before: Some(out.decisions[0]), limit: 100, ..Default::default() };
    assert_eq!(s.decisions(&before).await.unwrap()[0].seq, first);
    // Trimming removes the oldest entries.
    s.apply(Tx::one(Write::Decision(decision("Cae5", "rejected")))).await.unwrap();
    s.apply(Tx::one(Write::TrimDecisions(first))).await.unwrap();
    assert_eq!(s.decisions(&all).await.unwrap().iter().map(|d| d.ae_id.as_str()).collect::<Vec<_>>(), ["Cae5", "Cae4"]);
    s.apply(Tx::one(Write::TrimDecisions(first + 1))).await.unwrap();
    // Named values.
    assert_eq!(s.state("feed_seq").await.unwrap(), None);
    for v in [3, 9] {
        s.apply(Tx::one(Write::SetState { key: "feed_seq".into(), value: v })).await.unwrap();
    }
    assert_eq!(s.state("feed_seq").await.unwrap(), Some(9));
}
