//! Tests of the core on the real store, with a notifier that records what it was given.

use std::sync::Arc;
use std::time::Duration;

use futures_util::future::BoxFuture;
use onem2m::{Error, Operation, Request, ResourceType, Rsc};
use parking_lot::Mutex;
use serde_json::{Value, json};

use super::subscription::PARSED;
use super::{Binding, Cse, Ctx, Notifier, NotifyTarget, SecurityAssociation, SystemClock, Unverified};
use crate::config::CseConfig;
use crate::store::SqliteStore;

/// Answers every verification request with 2000 and keeps every queued notification.
#[derive(Default)]
struct Recorder {
    queued: Mutex<Vec<Value>>,
}

impl Notifier for Recorder {
    fn send_now<'a>(&'a self, _: &'a NotifyTarget, _: Value, _: Duration) -> BoxFuture<'a, Result<Rsc, Error>> {
        Box::pin(async { Ok(Rsc::Ok) })
    }

    fn enqueue(&self, _: NotifyTarget, pc: Value) {
        self.queued.lock().push(pc);
    }
}

struct Harness {
    cse: Arc<Cse>,
    notes: Arc<Recorder>,
    _dir: tempfile::TempDir,
}

impl Harness {
    async fn start() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(SqliteStore::open(dir.path(), Default::default()).unwrap());
        let notes = Arc::new(Recorder::default());
        let cse = Cse::start(CseConfig::default(), store, notes.clone(), Arc::new(SystemClock), None).await.unwrap();
        Self { cse, notes, _dir: dir }
    }

    /// A CREATE by the admin.
    async fn create(&self, to: &str, ty: ResourceType, pc: Value) {
        let mut r = Request::new(Operation::Create, to, Some("CAdmin".into()), "rqi");
        r.rvi = Some("4".into());
        r.ty = Some(ty);
        r.pc = Some(pc);
        let resp = self.cse.handle(r, &Ctx::plain(Binding::Http)).await;
        assert_eq!(resp.rsc, Rsc::Created, "{:?}", resp.pc);
    }
}

/// A subscription's criteria are parsed when its resource's subscriptions are loaded, not again
/// for every event.
#[tokio::test]
async fn criteria_are_parsed_once_not_per_event() {
    let h = Harness::start().await;
    h.create("cse-in", ResourceType::Container, json!({"m2m:cnt": {"rn": "cnt"}})).await;
    let sub = json!({"m2m:sub": {"rn": "sub", "nu": ["http://127.0.0.1:9/n"], "enc": {"net": [3], "chty": [4]}}});
    h.create("cse-in/cnt", ResourceType::Subscription, sub).await;
    let before = PARSED.with(|n| n.get());
    for i in 0..10 {
        h.create("cse-in/cnt", ResourceType::ContentInstance, json!({"m2m:cin": {"con": format!("{i}")}})).await;
    }
    let parsed = PARSED.with(|n| n.get()) - before;
    assert_eq!(h.notes.queued.lock().len(), 10, "every instance notifies");
    assert!(parsed <= 1, "the criteria were parsed {parsed} times for 10 events");
}

#[test]
fn only_a_verified_certificate_or_the_admin_token_authenticates() {
    let sa = |unverified: Option<Unverified>| SecurityAssociation {
        credential_id: "ab".into(),
        app_id: Some("Ra.b.c".into()),
        ae_id: None,
        root_sha256: None,
        unverified,
    };
    let mut ctx = Ctx::plain(Binding::Http);
    assert!(!ctx.authenticated());
    ctx.sa = Some(sa(None));
    assert!(ctx.authenticated());
    let failed = Unverified { reason: "wrong_root", message: "m".into(), chain: Arc::from(Vec::new()) };
    ctx.sa = Some(sa(Some(failed)));
    assert!(!ctx.authenticated(), "a certificate that did not verify proves nothing");
    ctx.admin_authenticated = true;
    assert!(ctx.authenticated());
}

/// A request's processing holds no operation's state: each operation's future is boxed on its own,
/// so that starting one copies that operation's state only (a future is copied whole when it moves).
/// Were one of them inline, the processing's future would be larger than it.
#[tokio::test]
async fn a_requests_future_holds_no_operations_state() {
    let h = Harness::start().await;
    let ctx = Ctx::plain(Binding::Http);
    let r = Request::new(Operation::Create, "cse-in", Some("CAdmin".into()), "rqi");
    let orig = h.cse.originator(&r, &ctx).unwrap();
    let now = h.cse.now();
    let dl = super::Deadline::of(now, None, None);
    let process = size_of_val(&h.cse.process(r.clone(), &ctx));
    let operations = [
        ("create", size_of_val(&h.cse.create(&r, onem2m::ReleaseVersion::V4, &orig, &ctx, now, dl))),
        ("update", size_of_val(&h.cse.update(&r, &orig, &ctx, now, dl))),
        ("delete", size_of_val(&h.cse.delete(&r, &orig, &ctx, dl))),
        ("retrieve (with its deadline)", size_of_val(&h.cse.within(dl, h.cse.retrieve(&r, &orig, &ctx, dl)))),
    ];
    for (name, size) in operations {
        assert!(process < size, "the processing's future ({process} bytes) holds a {name}'s ({size} bytes)");
    }
}
