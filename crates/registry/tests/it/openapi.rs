//! The OpenAPI document describes exactly the routes the router serves.

use std::collections::BTreeSet;

use reqwest::Method;
use serde_json::Value;

use crate::helpers::{ADMIN, Server, call};

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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_route_in_the_table_is_routed() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(dir.path()).await;
    for (method, path) in registry::route_table() {
        let path = path.replace("{appId}", "Rx.y.z").replace("{aeId}", "S1").replace("{kid}", "k9");
        let m = Method::from_bytes(method.as_bytes()).unwrap();
        let a = call(m, &format!("{}{path}", s.base), Some(ADMIN), None, &[]).await;
        let body: Value = serde_json::from_slice(&a.body).unwrap_or(Value::Null);
        assert_ne!(body["error"], "method_not_allowed", "{method} {path}");
        assert!(
            !(a.status == 404 && body["message"].as_str().is_some_and(|m| m.contains("no such route"))),
            "{method} {path}"
        );
    }
    s.stop().await;
}
