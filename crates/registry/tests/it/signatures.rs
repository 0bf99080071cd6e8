//! Signed answers verify with GET /v1/keys, and only those.

use appid::{KeySet, SignatureError, Signer};
use reqwest::Method;
use serde_json::json;

use crate::helpers::{ADMIN, Body, Server, call, profile};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signatures_verify_with_the_published_keys() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(dir.path()).await;
    let app = onem2m::AppId::parse("Rsig.com.bar.s").unwrap();
    let c = s.client(Some(ADMIN));
    c.create_json(serde_json::to_vec(&profile(app.as_str())).unwrap().into()).await.unwrap();
    let keys: KeySet =
        serde_json::from_slice(&call(Method::GET, &format!("{}/v1/keys", s.base), None, None, &[]).await.body).unwrap();
    assert_eq!(keys.len(), 1);
    assert_eq!(keys, s.registry.key_set());

    let got = c.get(&app).await.unwrap();
    assert_eq!(got.verify(&keys), Ok(()));
    let looked = c.lookup(&app, Some("Cdev1")).await.unwrap();
    assert_eq!(looked.verify(&keys), Ok(()));
    assert!(looked.value.registered);

    // one changed byte fails
    let mut body = looked.body.to_vec();
    let mid = body.len() / 2;
    body[mid] ^= 1;
    assert_eq!(keys.verify(&body, &looked.signature), Err(SignatureError::Invalid));
    // an unknown key id fails, even with a good signature by that unknown key
    let stranger = Signer::from_seed("k999", [7; 32]).unwrap();
    assert_eq!(keys.verify(&looked.body, &stranger.sign(&looked.body)), Err(SignatureError::UnknownKey("k999".into())));
    // another body's signature fails
    let unreg = c.lookup(&onem2m::AppId::parse("Rnone.com.bar.x").unwrap(), None).await.unwrap();
    assert_eq!(keys.verify(&unreg.body, &looked.signature), Err(SignatureError::Invalid));
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rotation_keeps_old_answers_verifiable_until_retired() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(dir.path()).await;
    let app = onem2m::AppId::parse("Rrot.com.bar.r").unwrap();
    let c = s.client(Some(ADMIN));
    c.create_json(serde_json::to_vec(&profile(app.as_str())).unwrap().into()).await.unwrap();
    let old = c.lookup(&app, None).await.unwrap();
    assert!(old.signature.starts_with("keyid=\"k1\""));

    let rotated = c.rotate_key().await.unwrap();
    assert_eq!(rotated.kid, "k2");
    let keys = c.keys().await.unwrap();
    assert_eq!(keys.kids().collect::<Vec<_>>(), vec!["k1", "k2"]);
    let new = c.lookup(&app, None).await.unwrap();
    assert!(new.signature.starts_with("keyid=\"k2\""), "the cache was dropped: {}", new.signature);
    assert_eq!(new.verify(&keys), Ok(()));
    assert_eq!(old.verify(&keys), Ok(()), "answers signed before the rotation still verify");

    // the active key cannot be retired; the old one can
    let e = c.retire_key("k2").await.unwrap_err();
    assert_eq!(e.status(), Some(400));
    assert_eq!(c.retire_key("nope").await.unwrap_err().status(), Some(404));
    let left = c.retire_key("k1").await.unwrap();
    assert_eq!(left.kids().collect::<Vec<_>>(), vec!["k2"]);
    assert_eq!(old.verify(&left), Err(SignatureError::UnknownKey("k1".into())));
    let a =
        call(Method::DELETE, &format!("{}/v1/keys/k1", s.base), Some(ADMIN), Some(Body::Json(json!({}))), &[]).await;
    a.assert_error(404, "not_found", Some("kid"));
    s.stop().await;
}
