//! What happens over time: restarts keep everything acknowledged, resources expire, the Upper
//! Tester drives the CSE.

use std::time::Duration;

use serde_json::json;
use testkit::cse::{CseOptions, TestCse};
use testkit::eventually;
use testkit::m2m::{Req, client};

#[tokio::test]
async fn data_survives_a_restart() {
    let cse = TestCse::start(CseOptions::default()).await;
    let http = client();
    let ae = json!({"m2m:ae": {"rn": "keep", "api": "Nk", "rr": false, "srv": ["4"]}});
    let aei = Req::create("/cse-in", "C", 2, ae).send(&http, &cse.url).await.str_at("/m2m:ae/aei");
    for i in 0..20 {
        let r = Req::create("/cse-in/keep", &aei, 3, json!({"m2m:cnt": {"rn": format!("c{i}")}}))
            .send(&http, &cse.url)
            .await;
        assert_eq!(r.rsc, 2001);
    }
    let cse = cse.restart().await;
    for i in 0..20 {
        assert_eq!(Req::get(&format!("/cse-in/keep/c{i}"), &aei).send(&http, &cse.url).await.rsc, 2000);
    }
    // The CSEBase was not created twice, and still answers.
    assert_eq!(Req::get("/cse-in", "CAdmin").send(&http, &cse.url).await.rsc, 2000);
}

#[tokio::test]
async fn resources_expire() {
    let cse = TestCse::start(CseOptions::default()).await;
    let http = client();
    let ae = json!({"m2m:ae": {"rn": "exp", "api": "Nk", "rr": false, "srv": ["4"]}});
    let aei = Req::create("/cse-in", "C", 2, ae).send(&http, &cse.url).await.str_at("/m2m:ae/aei");
    let soon = onem2m::Timestamp::from_micros(cse.service.cse.now().micros() + 1_500_000).to_string();
    let r = Req::create("/cse-in/exp", &aei, 3, json!({"m2m:cnt": {"rn": "brief", "et": soon}}))
        .send(&http, &cse.url)
        .await;
    assert_eq!(r.rsc, 2001, "{}", r.body);
    let r =
        Req::create("/cse-in/exp", &aei, 3, json!({"m2m:cnt": {"rn": "aging", "mia": 1}})).send(&http, &cse.url).await;
    assert_eq!(r.rsc, 2001);
    let r = Req::create("/cse-in/exp/aging", &aei, 4, json!({"m2m:cin": {"con": "old"}})).send(&http, &cse.url).await;
    assert_eq!(r.rsc, 2001);
    let gone = eventually(Duration::from_secs(10), async || {
        Req::get("/cse-in/exp/brief", &aei).send(&http, &cse.url).await.rsc == 4004
    })
    .await;
    assert!(gone, "the container did not expire");
    let aged = eventually(Duration::from_secs(10), async || {
        Req::get("/cse-in/exp/aging", &aei).send(&http, &cse.url).await.body["m2m:cnt"]["cni"] == json!(0)
    })
    .await;
    assert!(aged, "the instance older than mia was not removed");
}

/// Sends an Upper Tester command: the RSC and `X-M2M-UTRSP`.
pub(crate) async fn ut(http: &reqwest::Client, url: &str, cmd: &str) -> (u16, Option<String>) {
    let r =
        http.post(format!("{url}/__ut__")).header("X-M2M-UTCMD", cmd).header("X-M2M-RI", "ut").send().await.unwrap();
    let rsc = r.headers()["x-m2m-rsc"].to_str().unwrap().parse().unwrap();
    (rsc, r.headers().get("x-m2m-utrsp").map(|v| v.to_str().unwrap().to_owned()))
}

#[tokio::test]
async fn upper_tester() {
    let cse = TestCse::start(CseOptions::default()).await;
    let http = client();
    assert_eq!(ut(&http, &cse.url, "Status").await, (2000, Some("RUNNING".into())));
    assert_eq!(ut(&http, &cse.url, "GetConfig cse.type").await, (2000, Some("IN".into())));
    assert_eq!(ut(&http, &cse.url, "fly").await.0, 5001);
    assert_eq!(ut(&http, &cse.url, "enableShortResourceExpiration x").await.0, 4000);
    assert_eq!(ut(&http, &cse.url, "enableShortResourceExpiration 1").await.0, 2000);
    let ae = json!({"m2m:ae": {"rn": "brief", "api": "Nk", "rr": false, "srv": ["4"]}});
    assert_eq!(Req::create("/cse-in", "C", 2, ae).send(&http, &cse.url).await.rsc, 2001);
    let gone = eventually(Duration::from_secs(10), async || {
        Req::get("/cse-in/brief", "CAdmin").send(&http, &cse.url).await.rsc == 4004
    })
    .await;
    assert!(gone, "with short resource expiration the AE should expire");
    assert_eq!(ut(&http, &cse.url, "disableShortResourceExpiration").await.0, 2000);
    assert_eq!(ut(&http, &cse.url, "enableShortRequestExpiration 5").await.0, 2000);
    assert_eq!(ut(&http, &cse.url, "disableShortRequestExpiration").await.0, 2000);

    let before = Req::get("/cse-in", "CAdmin").send(&http, &cse.url).await.str_at("/m2m:cb/ct");
    let ae = json!({"m2m:ae": {"rn": "wiped", "api": "Nk", "rr": false, "srv": ["4"]}});
    assert_eq!(Req::create("/cse-in", "C", 2, ae).send(&http, &cse.url).await.rsc, 2001);
    assert_eq!(ut(&http, &cse.url, "Reset").await.0, 2000);
    assert_eq!(Req::get("/cse-in/wiped", "CAdmin").send(&http, &cse.url).await.rsc, 4004);
    let after = Req::get("/cse-in", "CAdmin").send(&http, &cse.url).await.str_at("/m2m:cb/ct");
    assert!(after > before, "Reset recreates the CSEBase");
}

#[tokio::test]
async fn reset_restores_the_expiration_settings() {
    let cse = TestCse::start(CseOptions::default()).await;
    let http = client();
    let default_secs = cse::config::CseConfig::default().default_expiration.as_secs().to_string();
    // Each enable command answers the value it replaced.
    assert_eq!(ut(&http, &cse.url, "enableShortResourceExpiration 2").await, (2000, Some(default_secs.clone())));
    assert_eq!(ut(&http, &cse.url, "enableShortRequestExpiration 3").await, (2000, Some("0".into())));
    assert_eq!(ut(&http, &cse.url, "Reset").await.0, 2000);
    // A resource made after Reset gets the configured expiration, not the short one.
    let ae = json!({"m2m:ae": {"rn": "after", "api": "Nk", "rr": false, "srv": ["4"]}});
    let r = Req::create("/cse-in", "C", 2, ae).send(&http, &cse.url).await;
    assert_eq!(r.rsc, 2001, "{}", r.body);
    let et = onem2m::Timestamp::parse(&r.str_at("/m2m:ae/et")).unwrap();
    let in_a_day = onem2m::Timestamp::from_micros(cse.service.cse.now().micros() + 86_400_000_000);
    assert!(et > in_a_day, "et {et} is the short expiration");
    assert_eq!(cse.service.cse.tunables().request_expiration, None);
    assert_eq!(ut(&http, &cse.url, "enableShortRequestExpiration 4").await, (2000, Some("0".into())));
    assert_eq!(ut(&http, &cse.url, "enableShortResourceExpiration 5").await, (2000, Some(default_secs)));
}

#[tokio::test]
async fn upper_tester_is_off_by_default() {
    let defaults = cse::config::CseConfig::default();
    assert!(!defaults.upper_tester);
    let cse = TestCse::start(CseOptions { cse: defaults, ..CseOptions::default() }).await;
    let r = Req::new(reqwest::Method::POST, "/__ut__", Some("CAdmin"))
        .header("X-M2M-UTCMD", "Status")
        .send(&client(), &cse.url)
        .await;
    // Without the Upper Tester, /__ut__ is an ordinary oneM2M target that does not exist.
    assert_eq!(r.rsc, 4004, "{}", r.body);
    assert!(r.header("x-m2m-utrsp").is_none());
}

/// `la` reads its container from the parent cache: a container deleted and made again under the
/// same name, or given other policies, is what `la` sees at once.
#[tokio::test]
async fn latest_follows_its_container_through_changes() {
    let cse = TestCse::start(CseOptions::default()).await;
    let http = client();
    let ae = |rn: &str| json!({"m2m:ae": {"rn": rn, "api": "Nk", "rr": false, "srv": ["4"]}});
    let owner = Req::create("/cse-in", "C", 2, ae("own")).send(&http, &cse.url).await.str_at("/m2m:ae/aei");
    let reader = Req::create("/cse-in", "C", 2, ae("rdr")).send(&http, &cse.url).await.str_at("/m2m:ae/aei");
    let put = async |con: &str| {
        let cin = json!({"m2m:cin": {"con": con}});
        assert_eq!(Req::create("/cse-in/own/c", &owner, 4, cin).send(&http, &cse.url).await.rsc, 2001);
    };
    let latest = async |who: &str| Req::get("/cse-in/own/c/la", who).send(&http, &cse.url).await;
    let make =
        async || Req::create("/cse-in/own", &owner, 3, json!({"m2m:cnt": {"rn": "c"}})).send(&http, &cse.url).await;
    assert_eq!(make().await.rsc, 2001);
    put("one").await;
    assert_eq!(latest(&owner).await.body["m2m:cin"]["con"], "one");
    assert_eq!(latest(&reader).await.rsc, 4103, "creator only");

    // Other policies: the reader may read now.
    let acp = json!({"m2m:acp": {"rn": "open", "pv": {"acr": [{"acor": [reader.as_str(), owner.as_str()], "acop": 63}]},
        "pvs": {"acr": [{"acor": [owner.as_str()], "acop": 63}]}}});
    let r = Req::create("/cse-in/own", &owner, 1, acp).send(&http, &cse.url).await;
    assert_eq!(r.rsc, 2001, "{}", r.body);
    let acp_ri = r.str_at("/m2m:acp/ri");
    let upd = Req::update("/cse-in/own/c", &owner, json!({"m2m:cnt": {"acpi": [acp_ri]}}));
    assert_eq!(upd.send(&http, &cse.url).await.rsc, 2004);
    assert_eq!(latest(&reader).await.body["m2m:cin"]["con"], "one");

    // Deleted, then made again under the same name.
    assert_eq!(Req::delete("/cse-in/own/c", &owner).send(&http, &cse.url).await.rsc, 2002);
    assert_eq!(latest(&owner).await.rsc, 4004);
    assert_eq!(make().await.rsc, 2001);
    put("two").await;
    assert_eq!(latest(&owner).await.body["m2m:cin"]["con"], "two");
    assert_eq!(latest(&reader).await.rsc, 4103, "the new container has no policies yet");
}
