//! The OpenAPI document describes exactly the routes the server answers.

use std::collections::BTreeSet;

use reqwest::Method;
use serde_json::{Value, json};

use crate::helpers::{ADMIN, Server, call, profile};

#[test]
fn every_route_is_documented_and_every_documented_route_exists() {
    let doc: Value = serde_json::from_str(registry::openapi_json()).unwrap();
    assert!(doc["openapi"].as_str().unwrap().starts_with("3."));
    let documented: BTreeSet<(String, String)> = doc["paths"]
        .as_object()
        .unwrap()
        .iter()
        .flat_map(|(path, ops)| {
            ops.as_object()
                .unwrap()
                .keys()
                .filter(|k| *k != "parameters")
                .map(move |m| (m.to_uppercase(), path.clone()))
        })
        .collect();
    let served: BTreeSet<(String, String)> =
        registry::route_table().iter().map(|(m, p)| ((*m).to_owned(), (*p).to_owned())).collect();
    assert_eq!(served, documented);
    // every $ref resolves
    let text = registry::openapi_json();
    for part in text.split("\"$ref\": \"#/components/schemas/").skip(1) {
        let name = part.split('"').next().unwrap();
        assert!(doc["components"]["schemas"].get(name).is_some(), "unresolved $ref {name}");
    }
}

/// The document the server serves: every operation in it is answered by a handler, never by the
/// router's 404 (no such route) or 405 (no such method). Every path parameter names something that
/// exists, so that no answer is a 404 at all; and an undocumented route does get those answers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_documented_operation_is_served() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(dir.path()).await;
    let served = call(Method::GET, &format!("{}/v1/openapi.json", s.base), None, None, &[]).await;
    assert_eq!(served.status, 200);
    assert_eq!(served.header("content-type").as_deref(), Some("application/json"));
    let doc = served.json();
    // what the parameters name: a registered App-ID with a denied device, a published key
    let c = s.client(Some(ADMIN));
    let mut p = profile("Rx.y.z");
    p["devices"] = json!({"denied": ["S1"]});
    c.create_json(serde_json::to_vec(&p).unwrap().into()).await.unwrap();
    let kid = c.keys().await.unwrap().kids().next().unwrap().to_owned();
    c.rotate_key().await.unwrap();

    let mut operations = 0;
    for (path, ops) in doc["paths"].as_object().unwrap() {
        for method in ops.as_object().unwrap().keys().filter(|k| *k != "parameters") {
            let concrete = path.replace("{appId}", "Rx.y.z").replace("{aeId}", "S1").replace("{kid}", &kid);
            let m = Method::from_bytes(method.to_uppercase().as_bytes()).unwrap();
            let a = call(m, &format!("{}{concrete}", s.base), Some(ADMIN), None, &[]).await;
            assert!(![404, 405].contains(&a.status), "{method} {path} answered {}: {:?}", a.status, a.body);
            operations += 1;
        }
    }
    assert_eq!(operations, registry::route_table().len());
    // the check can fail: what the document does not list is not served
    assert_eq!(call(Method::GET, &format!("{}/v1/nothing", s.base), Some(ADMIN), None, &[]).await.status, 404);
    assert_eq!(call(Method::PATCH, &format!("{}/v1/lookup", s.base), Some(ADMIN), None, &[]).await.status, 405);
    s.stop().await;
}
