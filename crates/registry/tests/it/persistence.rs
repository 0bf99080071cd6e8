//! Data survives a restart of the server on the same data directory.

use std::time::Duration;

use appid::{Role, Status};

use crate::helpers::{ADMIN, Server, profile};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn data_survives_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let app = onem2m::AppId::parse("Rper.com.bar.p").unwrap();
    let (read_token, before, head) = {
        let s = Server::start(dir.path()).await;
        let c = s.client(Some(ADMIN));
        c.create_json(serde_json::to_vec(&profile(app.as_str())).unwrap().into()).await.unwrap();
        c.deny_device(&app, "Sgone", "lost").await.unwrap();
        c.set_status(&app, Status::Suspended, "audit").await.unwrap();
        let read = c.mint_token(Role::Read).await.unwrap().token;
        let before = c.lookup(&app, Some("Sgone")).await.unwrap();
        let head = c.changes(None, Duration::ZERO).await.unwrap().last;
        s.stop().await;
        (read, before, head)
    };
    let s = Server::start(dir.path()).await;
    let c = s.client(Some(&read_token));
    let rec = c.get(&app).await.expect("a minted read token survives too").value;
    assert_eq!((rec.version, rec.status), (3, Status::Suspended));
    assert_eq!(rec.devices.denied, vec!["Sgone"]);
    let keys = c.keys().await.unwrap();
    assert_eq!(before.verify(&keys), Ok(()), "the signing key survives");
    let after = c.lookup(&app, Some("Sgone")).await.unwrap();
    assert_eq!(after.body, before.body);
    assert_eq!(c.changes(None, Duration::ZERO).await.unwrap().last, head, "the feed continues where it was");
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_generated_admin_token_is_shown_once_and_kept() {
    let dir = tempfile::tempdir().unwrap();
    let token = {
        let s = Server::start_with(dir.path(), None, registry::Limits::default()).await;
        let token = s.registry.take_generated_admin_token().expect("generated at the first start");
        assert!(s.registry.take_generated_admin_token().is_none(), "handed out once");
        s.client(Some(&token)).mint_token(Role::Read).await.unwrap();
        s.stop().await;
        token
    };
    let s = Server::start_with(dir.path(), None, registry::Limits::default()).await;
    assert!(s.registry.take_generated_admin_token().is_none(), "not generated again");
    s.client(Some(&token)).mint_token(Role::Read).await.expect("still valid after a restart");
    for file in ["registry.db", "registry.db-wal"] {
        let bytes = std::fs::read(dir.path().join(file)).unwrap_or_default();
        assert!(!bytes.windows(token.len()).any(|w| w == token.as_bytes()), "only the hash is stored ({file})");
    }
    s.stop().await;
}
