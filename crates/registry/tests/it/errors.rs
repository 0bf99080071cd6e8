//! Every refusal of the API, in one table: who may call what (401, 403), oversized and malformed
//! bodies (413, 400), unknown App-IDs (404), and the public routes. Each error body names its field.

use reqwest::Method;
use serde_json::{Value, json};

use crate::helpers::{ADMIN, Body, Server, call, profile};

const LIMIT: usize = 4096;
const APP: &str = "Rerr.com.bar.e";
const UNKNOWN: &str = "Rno.such.app";

/// The token a case sends.
#[derive(Debug, Clone, Copy)]
enum Token {
    None,
    Unknown,
    Read,
    Admin,
}

/// The body a case sends.
#[derive(Debug, Clone)]
enum Send {
    Nothing,
    Json(Value),
    Raw(&'static [u8]),
    /// One byte more than the limit.
    TooLarge,
}

struct Case {
    method: Method,
    path: String,
    token: Token,
    send: Send,
    headers: &'static [(&'static str, &'static str)],
    /// The status and, for an error, its code and field.
    want: (u16, Option<(&'static str, &'static str)>),
}

fn case(
    method: Method,
    path: &str,
    token: Token,
    send: Send,
    want: (u16, Option<(&'static str, &'static str)>),
) -> Case {
    Case { method, path: path.to_owned(), token, send, headers: &[], want }
}

/// The routes anybody may call.
const PUBLIC: &[&str] = &["/v1/keys", "/v1/openapi.json", "/healthz", "/metrics"];
/// The calls a read token may make (everything else needs an admin token).
const READ: &[(&str, &str)] = &[("POST", "/v1/lookup"), ("GET", "/v1/app-ids/{appId}"), ("GET", "/v1/changes")];

fn concrete(path: &str) -> String {
    path.replace("{appId}", APP).replace("{aeId}", "S1").replace("{kid}", "k1")
}

fn table() -> Vec<Case> {
    use Method as M;
    let mut t = Vec::new();
    // 401 for a missing or unknown token on every protected call, 403 for a read token on every
    // admin call: generated from the route table, so a new route is covered.
    for (method, path) in registry::route_table() {
        if PUBLIC.contains(path) {
            continue;
        }
        let m = M::from_bytes(method.as_bytes()).unwrap();
        for token in [Token::None, Token::Unknown] {
            t.push(case(
                m.clone(),
                &concrete(path),
                token,
                Send::Nothing,
                (401, Some(("unauthorized", "Authorization"))),
            ));
        }
        if !READ.contains(&(*method, *path)) {
            t.push(case(m, &concrete(path), Token::Read, Send::Nothing, (403, Some(("forbidden", "Authorization")))));
        }
    }
    let app = format!("/v1/app-ids/{APP}");
    let status = format!("{app}/status");
    let too_large = (413, Some(("payload_too_large", "body")));
    // bodies over the limit
    t.push(case(M::POST, "/v1/lookup", Token::Read, Send::TooLarge, too_large));
    t.push(case(M::POST, "/v1/app-ids", Token::Admin, Send::TooLarge, too_large));
    t.push(Case { headers: &[("if-match", "*")], ..case(M::PUT, &app, Token::Admin, Send::TooLarge, too_large) });
    t.push(case(M::POST, &status, Token::Admin, Send::TooLarge, too_large));
    t.push(case(M::PUT, &format!("{app}/devices/S1"), Token::Admin, Send::TooLarge, too_large));
    t.push(case(M::POST, "/v1/tokens", Token::Admin, Send::TooLarge, too_large));
    // malformed JSON: the field where it broke, or the body
    let broken = |field| (400, Some(("invalid_json", field)));
    t.push(case(M::POST, "/v1/lookup", Token::Read, Send::Raw(b"{not json"), broken("body")));
    t.push(case(M::POST, "/v1/lookup", Token::Read, Send::Raw(b"{\"appId\": \"Ra.b.c\", \"aeId\": "), broken("aeId")));
    t.push(case(M::POST, "/v1/app-ids", Token::Admin, Send::Raw(b"{\"appId\" \"x\"}"), broken("body")));
    t.push(Case {
        headers: &[("if-match", "\"1\"")],
        ..case(M::PUT, &app, Token::Admin, Send::Raw(b"{"), broken("body"))
    });
    t.push(case(M::POST, &status, Token::Admin, Send::Raw(b"{\"status\": "), broken("status")));
    t.push(case(M::POST, &status, Token::Admin, Send::Raw(b""), broken("body")));
    t.push(case(
        M::POST,
        "/v1/lookup",
        Token::Read,
        Send::Raw(b"[\"Ra.b.c\"]"),
        (400, Some(("invalid_field", "body"))),
    ));
    t.push(case(M::POST, "/v1/tokens", Token::Admin, Send::Raw(b"{\"role\": admin}"), broken("role")));
    // unknown App-IDs
    let not_found = (404, Some(("not_found", "appId")));
    let reason = || Send::Json(json!({"reason": "x"}));
    let gone = format!("/v1/app-ids/{UNKNOWN}");
    t.push(case(M::GET, &gone, Token::Read, Send::Nothing, not_found));
    t.push(Case {
        headers: &[("if-match", "*")],
        ..case(M::PUT, &gone, Token::Admin, Send::Json(profile(UNKNOWN)), not_found)
    });
    t.push(case(
        M::POST,
        &format!("{gone}/status"),
        Token::Admin,
        Send::Json(json!({"status": "revoked", "reason": "x"})),
        not_found,
    ));
    t.push(case(M::PUT, &format!("{gone}/devices/S1"), Token::Admin, reason(), not_found));
    t.push(case(M::DELETE, &format!("{gone}/devices/S1"), Token::Admin, Send::Nothing, not_found));
    t.push(case(
        M::DELETE,
        &format!("{app}/devices/S404"),
        Token::Admin,
        Send::Nothing,
        (404, Some(("not_found", "aeId"))),
    ));
    t.push(case(M::DELETE, "/v1/keys/k404", Token::Admin, Send::Nothing, (404, Some(("not_found", "kid")))));
    // the public routes answer without a token
    for path in PUBLIC {
        t.push(case(M::GET, path, Token::None, Send::Nothing, (200, None)));
    }
    t
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_refusal_names_its_field() {
    let dir = tempfile::tempdir().unwrap();
    let limits = registry::Limits { body_bytes: LIMIT, import_bytes: LIMIT, ..Default::default() };
    let s = Server::start_with(dir.path(), Some(ADMIN), limits).await;
    let admin = s.client(Some(ADMIN));
    admin.create_json(serde_json::to_vec(&profile(APP)).unwrap().into()).await.unwrap();
    let read = admin.mint_token(appid::Role::Read).await.unwrap().token;

    let cases = table();
    for c in &cases {
        let token = match c.token {
            Token::None => None,
            Token::Unknown => Some("wrt_not-a-token-of-this-registry"),
            Token::Read => Some(read.as_str()),
            Token::Admin => Some(ADMIN),
        };
        let body = match &c.send {
            Send::Nothing => None,
            Send::Json(v) => Some(Body::Json(v.clone())),
            Send::Raw(b) => Some(Body::Raw(b.to_vec(), "application/json")),
            Send::TooLarge => Some(Body::Raw(vec![b' '; LIMIT + 1], "application/json")),
        };
        let a = call(c.method.clone(), &format!("{}{}", s.base, c.path), token, body, c.headers).await;
        let what = format!("{} {} with {:?} and {:?}", c.method, c.path, c.token, c.send);
        match c.want {
            (status, Some((code, field))) => {
                assert_eq!(a.status, status, "{what}: {:?}", a.body);
                let body = a.json();
                assert_eq!(
                    (body["error"].as_str(), body["field"].as_str()),
                    (Some(code), Some(field)),
                    "{what}: {body}"
                );
                assert!(body["message"].as_str().is_some_and(|m| !m.is_empty()), "{what}: {body}");
                assert_eq!(a.header("content-type").as_deref(), Some("application/json"), "{what}");
                assert_eq!(a.header("www-authenticate").is_some(), status == 401, "{what}");
            }
            (status, None) => assert_eq!(a.status, status, "{what}: {:?}", a.body),
        }
    }
    assert!(cases.len() > 50, "{} cases", cases.len());
    // nothing above changed the record
    assert_eq!(admin.get(&onem2m::AppId::parse(APP).unwrap()).await.unwrap().value.version, 1);
    let health = call(Method::GET, &format!("{}/healthz", s.base), None, None, &[]).await;
    assert_eq!(health.json(), json!({"status": "ok"}));
    s.stop().await;
}
