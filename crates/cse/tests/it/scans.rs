//! Discovery and retrieves of child resources are bounded by the scan budget
//! (`max_discovery_scan`): a request that finds few matches among many resources answers what it
//! found within the budget, partial (`cnst` 1), with the `cnot` to continue from, and following
//! `cnot` reaches every match, each request within the budget.

use std::sync::Arc;

use cse::config::CseConfig;
use cse::core::{Binding, Cse, Ctx, SystemClock};
use cse::notify::{NotificationEngine, NotifyConfig};
use onem2m::{FilterCriteria, Operation, Request, ResourceType, Response, ResultContent, Rsc};
use serde_json::{Value, json};

use crate::store::TestStore;

/// The budget of these tests.
const BUDGET: usize = 100;
/// Instances in the container; every `EVERY`th one is a match.
const INSTANCES: usize = 600;
const EVERY: usize = 50;

struct Tree {
    core: Arc<Cse>,
    store: Arc<TestStore>,
    _dir: tempfile::TempDir,
}

fn request(op: Operation, to: &str) -> Request {
    let mut r = Request::new(op, to, Some("CAdmin".into()), "rqi");
    r.rvi = Some("4".into());
    r
}

/// A container `cse-in/cnt` with [`INSTANCES`] instances `i0`…, of which every [`EVERY`]th has the
/// label `hit` and the content `hit`, and after them two containers `k1`, `k2`.
async fn tree() -> Tree {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(TestStore::open(dir.path()));
    let cfg = CseConfig { max_discovery_scan: BUDGET, ..Default::default() };
    let engine = NotificationEngine::start(NotifyConfig::new(cfg.cse_id.clone())).unwrap();
    let core = Cse::start(cfg, store.clone(), engine, Arc::new(SystemClock), None).await.unwrap();
    let t = Tree { core, store, _dir: dir };
    t.create("cse-in", ResourceType::Container, json!({"m2m:cnt": {"rn": "cnt", "mni": 100_000}})).await;
    // One after the other: creation order is the order of the names.
    for n in 0..INSTANCES {
        let hit = if n % EVERY == EVERY - 1 { "hit" } else { "miss" };
        let cin = json!({"m2m:cin": {"rn": format!("i{n}"), "con": hit, "lbl": [hit]}});
        t.create("cse-in/cnt", ResourceType::ContentInstance, cin).await;
    }
    for k in ["k1", "k2"] {
        t.create("cse-in/cnt", ResourceType::Container, json!({"m2m:cnt": {"rn": k}})).await;
    }
    t
}

impl Tree {
    async fn create(&self, to: &str, ty: ResourceType, pc: Value) {
        let mut r = request(Operation::Create, to);
        r.ty = Some(ty);
        r.pc = Some(pc);
        let resp = self.core.handle(r, &Ctx::plain(Binding::Http)).await;
        assert_eq!(resp.rsc, Rsc::Created, "{:?}", resp.pc);
    }

    /// Sends `req` with `fc`, then again from each `cnot`, until the answer is complete; the
    /// results of every answer, by `results`. Each request examines at most the budget.
    async fn follow(&self, mut req: Request, fc: Value, results: impl Fn(&Value) -> Vec<String>) -> Vec<String> {
        let mut fc: FilterCriteria = serde_json::from_value(fc).unwrap();
        let mut all = Vec::new();
        for round in 0.. {
            assert!(round <= INSTANCES / BUDGET + 2, "no progress: {all:?}");
            req.fc = Some(fc.clone());
            self.store.take_examined();
            let resp: Response = self.core.handle(req.clone(), &Ctx::plain(Binding::Http)).await;
            let examined = self.store.take_examined();
            assert_eq!(resp.rsc, Rsc::Ok, "{:?}", resp.pc);
            assert!(examined <= BUDGET, "round {round} examined {examined} resources");
            all.extend(results(resp.pc.as_ref().unwrap()));
            match (resp.cnst, resp.cnot) {
                (None, None) => return all,
                (Some(1), Some(next)) => fc.ofst = Some(next),
                other => panic!("content status and offset {other:?}"),
            }
        }
        unreachable!()
    }
}

fn hits() -> Vec<String> {
    (0..INSTANCES).filter(|n| n % EVERY == EVERY - 1).map(|n| format!("i{n}")).collect()
}

/// The names in a list of addresses, of references (`nm`) or of resources (`rn`).
fn names(list: Option<&Value>) -> Vec<String> {
    let name = |v: &Value| {
        let s = v.as_str().or_else(|| v["nm"].as_str()).or_else(|| v["rn"].as_str());
        s.and_then(|s| s.rsplit('/').next()).unwrap_or_else(|| panic!("no name in {v}")).to_owned()
    };
    list.and_then(Value::as_array).into_iter().flatten().map(name).collect()
}

/// A retrieve of the container with its instances (`rcn` 4) and a condition on them that few
/// meet reads at most the budget per request, not every instance.
#[tokio::test]
async fn a_conditional_retrieve_of_children_is_bounded() {
    let t = tree().await;
    let mut req = request(Operation::Retrieve, "cse-in/cnt");
    req.rcn = Some(ResultContent::AttributesAndChildResources);
    let fc = json!({"atr": [{"nm": "con", "val": "hit"}]});
    let got = t.follow(req, fc, |pc| names(pc.pointer("/m2m:cnt/m2m:cin"))).await;
    assert_eq!(got, hits());
}

/// The same without conditions: at most `max_children`, never more than the budget at once.
#[tokio::test]
async fn children_are_read_a_budget_at_a_time() {
    let t = tree().await;
    let mut req = request(Operation::Retrieve, "cse-in/cnt");
    req.rcn = Some(ResultContent::ChildResourceReferences);
    let got = t.follow(req, json!({}), |pc| names(pc.pointer("/m2m:rrl/rrf"))).await;
    let mut all: Vec<String> = (0..INSTANCES).map(|n| format!("i{n}")).collect();
    all.extend(["k1".into(), "k2".into()]);
    assert_eq!(got, all);
}

/// A discovery whose condition the CSE evaluates (labels) and one whose condition the store
/// evaluates (types) both stop at the budget and continue where they stopped.
#[tokio::test]
async fn discovery_is_bounded_and_continues() {
    let t = tree().await;
    let uris = |pc: &Value| names(pc.get("m2m:uril"));
    let by_label = t.follow(request(Operation::Retrieve, "cse-in"), json!({"fu": 1, "lbl": ["hit"]}), uris).await;
    assert_eq!(by_label, hits());
    let by_type = t.follow(request(Operation::Retrieve, "cse-in/cnt"), json!({"fu": 1, "ty": [3]}), uris).await;
    assert_eq!(by_type, ["k1", "k2"]);
    // With a limit, each page continues after the last.
    let paged = t.follow(request(Operation::Retrieve, "cse-in"), json!({"fu": 1, "lbl": ["hit"], "lim": 5}), uris);
    assert_eq!(paged.await, hits());
}
