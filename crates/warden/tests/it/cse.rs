//! `warden cse serve` as a process: its flags and configuration file, and that every acknowledged
//! write survives a SIGKILL. Each test starts the real binary on 127.0.0.1:0 and reads the bound
//! addresses from its ready line.

use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use serde_json::json;
use testkit::m2m::{Req, client};
use tokio::sync::Notify;

use crate::support::{CseProcess, DEADLINE, path, run, warden};

/// Registers an AE with a container `cnt`; returns the AE-ID.
async fn ae_with_container(http: &reqwest::Client, base: &str) -> String {
    let ae = json!({"m2m:ae": {"rn": "crashAE", "api": "Ncrash.app", "rr": false, "srv": ["4"]}});
    let r = Req::create("/cse-in", "C", 2, ae).send(http, base).await;
    assert_eq!(r.rsc, 2001, "{}", r.body);
    let aei = r.str_at("/m2m:ae/aei");
    let r = Req::create("/cse-in/crashAE", &aei, 3, json!({"m2m:cnt": {"rn": "cnt"}})).send(http, base).await;
    assert_eq!(r.rsc, 2001, "{}", r.body);
    aei
}

#[tokio::test]
async fn every_acknowledged_write_survives_a_sigkill() {
    let data = tempfile::tempdir().unwrap();
    let args = ["--listen", "127.0.0.1:0", "--data", path(data.path())];
    let warden = CseProcess::start(&args);
    let http = client();
    let aei = ae_with_container(&http, &warden.http).await;

    // Writers create containers as fast as they can; the process is killed while they do.
    let acked = Arc::new(Mutex::new(Vec::<String>::new()));
    let count = Arc::new(AtomicUsize::new(0));
    let enough = Arc::new(Notify::new());
    let mut writers = Vec::new();
    for w in 0..4 {
        let (http, base, aei) = (http.clone(), warden.http.clone(), aei.clone());
        let (acked, count, enough) = (acked.clone(), count.clone(), enough.clone());
        writers.push(tokio::spawn(async move {
            for i in 0.. {
                let rn = format!("w{w}n{i}");
                let req = Req::create("/cse-in/crashAE/cnt", &aei, 3, json!({"m2m:cnt": {"rn": rn}}));
                match req.try_send(&http, &base).await {
                    Ok(r) if r.rsc == 2001 => {
                        acked.lock().unwrap().push(rn);
                        if count.fetch_add(1, Ordering::SeqCst) + 1 == 200 {
                            enough.notify_one();
                        }
                    }
                    Ok(r) => panic!("{rn}: {} {}", r.rsc, r.body),
                    Err(_) => return, // the process is gone
                }
            }
        }));
    }
    tokio::time::timeout(DEADLINE, enough.notified()).await.expect("200 writes acknowledged");
    warden.crash();
    for w in writers {
        tokio::time::timeout(DEADLINE, w).await.expect("a writer ended in time").expect("a writer ended");
    }
    let acked = acked.lock().unwrap().clone();
    assert!(acked.len() >= 200);

    let warden = CseProcess::start(&args);
    let mut missing = Vec::new();
    for rn in &acked {
        let r = Req::get(&format!("/cse-in/crashAE/cnt/{rn}"), &aei).send(&http, &warden.http).await;
        if r.rsc != 2000 {
            missing.push(rn.clone());
        }
    }
    assert!(
        missing.is_empty(),
        "{} of {} acknowledged writes are lost: {:?}",
        missing.len(),
        acked.len(),
        &missing[..missing.len().min(5)]
    );
}

/// A server certificate and key for `localhost` in `dir`; the CA that signed it.
fn server_files(dir: &Path) -> (String, String, testkit::pki::Root) {
    let id = testkit::pki::server_identity();
    let cert = dir.join("server.pem");
    let key = dir.join("server.key");
    std::fs::write(&cert, format!("{}{}", id.leaf.cert_pem(), id.ca.cert_pem())).unwrap();
    std::fs::write(&key, id.leaf.key_pem()).unwrap();
    (path(&cert).to_owned(), path(&key).to_owned(), id.ca)
}

#[tokio::test]
async fn tls_flags_serve_https_with_the_client_certificate_mode() {
    let dir = tempfile::tempdir().unwrap();
    let (cert, key, ca) = server_files(dir.path());
    let http = client();
    let https = testkit::pki::https_client(&ca, None).build().unwrap();
    for (mode, anonymous_ok) in [("optional", true), ("required", false)] {
        let data = dir.path().join(mode);
        let warden = CseProcess::start(&[
            "--listen",
            "127.0.0.1:0",
            "--data",
            path(&data),
            "--listen-tls",
            "127.0.0.1:0",
            "--tls-cert",
            &cert,
            "--tls-key",
            &key,
            "--client-auth",
            mode,
        ]);
        let tls_url = warden.https.clone().expect("an HTTPS URL in the ready line");
        let port = tls_url.rsplit(':').next().unwrap();
        let base = format!("https://localhost:{port}");
        let got = Req::get("/cse-in", "CAdmin").try_send(&https, &base).await;
        match (anonymous_ok, got) {
            (true, Ok(r)) => {
                assert_eq!(r.rsc, 2000, "{}", r.body);
                // The CSEBase advertises both bound addresses, never a port 0.
                let poa = r.at("/m2m:cb/poa").clone();
                assert_eq!(poa, json!([warden.http, tls_url]), "{mode}");
            }
            (false, Err(_)) => {}
            (ok, got) => panic!("client-auth {mode}: anonymous client accepted = {}, expected {ok}", got.is_ok()),
        }
        // The plain listener serves beside it.
        assert_eq!(Req::get("/cse-in", "CAdmin").send(&http, &warden.http).await.rsc, 2000);
    }
}

#[tokio::test]
async fn the_upper_tester_is_served_only_when_asked() {
    let dir = tempfile::tempdir().unwrap();
    let http = client();
    let ut = |base: &str| {
        http.post(format!("{base}/__ut__")).header("X-M2M-UTCMD", "Status").header("X-M2M-RI", "ut1").send()
    };
    let on = CseProcess::start(&["--listen", "127.0.0.1:0", "--data", path(&dir.path().join("on")), "--upper-tester"]);
    let r = ut(&on.http).await.unwrap();
    assert_eq!(r.headers()["x-m2m-rsc"], "2000");
    assert_eq!(r.headers()["x-m2m-utrsp"], "RUNNING");
    assert_eq!(r.headers()["x-m2m-ri"], "ut1");
    let off = CseProcess::start(&["--listen", "127.0.0.1:0", "--data", path(&dir.path().join("off"))]);
    let r = ut(&off.http).await.unwrap();
    assert_ne!(r.headers()["x-m2m-rsc"], "2000", "no Upper Tester without --upper-tester");
    assert!(r.headers().get("x-m2m-utrsp").is_none());
    assert_eq!(r.headers()["x-m2m-ri"], "ut1");
}

#[tokio::test]
async fn the_config_file_is_read_and_flags_win_over_it() {
    let dir = tempfile::tempdir().unwrap();
    let file_data = dir.path().join("file-data");
    let flag_data = dir.path().join("flag-data");
    let config = dir.path().join("warden.toml");
    std::fs::write(
        &config,
        format!(
            r#"
            listen = "127.0.0.1:1"
            data = "{}"
            [cse]
            id = "/id-test"
            name = "cse-test"
            public_url = "http://cse.example.net:8080"
            upper_tester = true
            "#,
            path(&file_data)
        ),
    )
    .unwrap();
    let warden = CseProcess::start(&["--config", path(&config), "--listen", "127.0.0.1:0", "--data", path(&flag_data)]);
    let http = client();
    let r = Req::get("/cse-test", "CAdmin").send(&http, &warden.http).await;
    assert_eq!(r.rsc, 2000, "{}", r.body);
    assert_eq!(r.at("/m2m:cb/csi"), &json!("/id-test"));
    assert_eq!(r.at("/m2m:cb/poa"), &json!(["http://cse.example.net:8080"]));
    assert!(flag_data.exists(), "--data wins over the file");
    assert!(!file_data.exists());
    let ut = http.post(format!("{}/__ut__", warden.http)).header("X-M2M-UTCMD", "Status").send().await.unwrap();
    assert_eq!(ut.headers()["x-m2m-utrsp"], "RUNNING", "upper_tester from the file");
}

#[test]
fn bad_flags_and_files_exit_with_a_usage_error() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let serve = |args: &[&str]| run(warden(&["cse", "serve"]).args(args));
    serve(&["--listen", "127.0.0.1:0", "--data", path(&data), "--listen-tls", "127.0.0.1:0"])
        .exits(64)
        .stderr_has("--tls-cert");
    let bad = dir.path().join("bad.toml");
    std::fs::write(&bad, "[notify]\nqueue_depth = 0\n").unwrap();
    serve(&["--config", path(&bad), "--data", path(&data)]).exits(64).stderr_has("queue_depth");
    serve(&["--client-auth", "sometimes"]).exits(2); // clap refuses it
}
