//! `warden registry serve` and `warden appid ...` against it: exit codes, output and messages.

use std::time::Duration;

use serde_json::{Value, json};

use crate::support::{ADMIN, DEADLINE, RegistryProcess, path, profile, run, warden};

const USAGE: i32 = 64;
const FAILURE: i32 = 1;

fn write(dir: &std::path::Path, name: &str, bytes: &[u8]) -> String {
    let file = dir.join(name);
    std::fs::write(&file, bytes).unwrap();
    path(&file).to_owned()
}

fn json_file(dir: &std::path::Path, name: &str, v: &Value) -> String {
    write(dir, name, &serde_json::to_vec(v).unwrap())
}

fn ndjson(profiles: &[Value]) -> Vec<u8> {
    profiles.iter().map(|p| serde_json::to_string(p).unwrap() + "\n").collect::<String>().into_bytes()
}

#[test]
fn add_show_and_list() {
    let tmp = tempfile::tempdir().unwrap();
    let reg = RegistryProcess::start(&tmp.path().join("data"));
    let t = Some(ADMIN);
    let app = "Racme01.com.acme.thermostat";

    let file = json_file(tmp.path(), "p.json", &profile(app));
    reg.run(t, &["appid", "add", &file]).exits(0).stdout_has(&format!("registered {app}  version 1  active"));
    reg.run(t, &["appid", "add", &file])
        .exits(FAILURE)
        .stderr_has("already registered")
        .stderr_has("(field appId)")
        .stderr_has("HTTP 409");
    // from stdin, and with --json
    let meter = serde_json::to_vec(&profile("Racme01.com.acme.meter")).unwrap();
    let added = reg.run_with_stdin(t, &["appid", "add", "-", "--json"], &meter);
    added.exits(0);
    let record: Value = serde_json::from_str(&added.stdout).unwrap();
    assert_eq!((record["appId"].as_str(), record["version"].as_u64()), (Some("Racme01.com.acme.meter"), Some(1)));
    let mut plant = profile("Racme01.com.acme.plant");
    plant["application"]["class"] = json!("industrial");
    reg.run(t, &["appid", "add", &json_file(tmp.path(), "i.json", &plant)]).exits(0);

    // bad files: unreadable (a usage error), invalid (the registry names the field), not JSON
    reg.run(t, &["appid", "add", "/no/such/file.json"]).exits(USAGE).stderr_has("cannot read /no/such/file.json");
    let mut bad = profile("Racme01.com.acme.bad");
    bad["application"]["class"] = json!("galactic");
    reg.run(t, &["appid", "add", &json_file(tmp.path(), "bad.json", &bad)])
        .exits(FAILURE)
        .stderr_has("(field application.class)")
        .stderr_has("HTTP 400");
    reg.run(t, &["appid", "add", &write(tmp.path(), "broken.json", b"{\"appId\": ")])
        .exits(FAILURE)
        .stderr_has("malformed JSON")
        .stderr_has("(field appId)");

    // show: the record with its signature checked
    reg.run(t, &["appid", "show", app])
        .exits(0)
        .stdout_has(&format!("{app}  version 1  active  consumer thermostat \"Acme Thermostat\""))
        .stdout_has("registrant  Acme Devices Ltd <security@acme.example>")
        .stdout_has("signature   valid (keyid=\"k1\"");
    let shown = reg.run(t, &["appid", "show", app, "--json"]);
    shown.exits(0);
    assert_eq!(serde_json::from_str::<Value>(&shown.stdout).unwrap()["appId"], json!(app));
    reg.run(t, &["appid", "show", "Rnobody.com.acme.x"])
        .exits(FAILURE)
        .stderr_has("Rnobody.com.acme.x is not registered");
    reg.run(t, &["appid", "show", "Xwrong"]).exits(USAGE).stderr_has("invalid App-ID");

    // list: everything, filtered, as NDJSON
    let all = reg.run(t, &["appid", "list"]);
    all.exits(0).stderr_has("3 App-IDs");
    assert_eq!(all.stdout.lines().count(), 3);
    let industrial = reg.run(t, &["appid", "list", "--class", "industrial"]);
    industrial.exits(0).stdout_has("Racme01.com.acme.plant");
    assert_eq!(industrial.stdout.lines().count(), 1, "{}", industrial.stdout);
    let lines = reg.run(t, &["appid", "list", "--json"]);
    lines.exits(0);
    let ids: Vec<String> = lines
        .stdout
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap()["appId"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(ids, ["Racme01.com.acme.meter", "Racme01.com.acme.plant", "Racme01.com.acme.thermostat"]);
    reg.run(t, &["appid", "list", "--class", "galactic"]).exits(FAILURE).stderr_has("(field class)");
    reg.run(t, &["appid", "list", "--max", "1"]).exits(0);
}

#[test]
fn status_changes() {
    let tmp = tempfile::tempdir().unwrap();
    let reg = RegistryProcess::start(&tmp.path().join("data"));
    let t = Some(ADMIN);
    let app = "Racme02.com.acme.lock";
    reg.run(t, &["appid", "add", &json_file(tmp.path(), "p.json", &profile(app))]).exits(0);

    reg.run(t, &["appid", "suspend", app, "--reason", "audit"])
        .exits(0)
        .stdout_has(&format!("{app}  version 2  suspended"));
    let suspended = reg.run(t, &["appid", "list", "--status", "suspended"]);
    suspended.exits(0).stdout_has(app);
    reg.run(t, &["appid", "list", "--status", "active"]).exits(0).stderr_has("0 App-IDs");
    reg.run(t, &["appid", "revoke", app, "--reason", "keys leaked"]).exits(0).stdout_has("version 3  revoked");
    reg.run(t, &["appid", "revoke", app, "--reason", "again"]).exits(0).stdout_has("version 3  revoked");
    reg.run(t, &["appid", "reactivate", app, "--reason", "new keys"]).exits(0).stdout_has("version 4  active");
    let rec = reg.run(t, &["appid", "show", app, "--json"]);
    assert_eq!(serde_json::from_str::<Value>(&rec.stdout).unwrap()["status"], json!("active"));

    reg.run(t, &["appid", "suspend", "Rnobody.com.acme.x", "--reason", "x"])
        .exits(FAILURE)
        .stderr_has("Rnobody.com.acme.x is not registered")
        .stderr_has("(field appId)")
        .stderr_has("HTTP 404");
    reg.run(t, &["appid", "revoke", app, "--reason", " "]).exits(FAILURE).stderr_has("(field reason)");
    reg.run(t, &["appid", "revoke", "not an id", "--reason", "x"]).exits(USAGE);
    reg.run(t, &["appid", "revoke", app]).exits(2).stderr_has("--reason");
}

#[test]
fn tokens_and_an_unreachable_registry() {
    let tmp = tempfile::tempdir().unwrap();
    let reg = RegistryProcess::start(&tmp.path().join("data"));
    let file = json_file(tmp.path(), "p.json", &profile("Racme03.com.acme.cam"));
    reg.run(None, &["appid", "add", &file])
        .exits(FAILURE)
        .stderr_has("HTTP 401 unauthorized")
        .stderr_has("(field Authorization)")
        .stderr_has("pass an admin or read token with --token or WARDEN_TOKEN");
    reg.run(Some("wrt_wrong"), &["appid", "list"]).exits(FAILURE).stderr_has("HTTP 401");
    let minted = reg.run(Some(ADMIN), &["registry", "token", "--role", "read"]);
    minted.exits(0).stderr_has("a read token; it is shown only this once");
    let read = minted.stdout.trim().to_owned();
    assert!(read.starts_with("wrt_"), "{read}");
    reg.run(Some(&read), &["appid", "add", &file])
        .exits(FAILURE)
        .stderr_has("HTTP 403 forbidden")
        .stderr_has("this needs an admin token");
    reg.run(Some(ADMIN), &["appid", "add", &file]).exits(0);
    reg.run(Some(&read), &["appid", "show", "Racme03.com.acme.cam"]).exits(0).stdout_has("signature   valid");
    // --token overrides the variable
    reg.run(Some("wrt_wrong"), &["appid", "show", "Racme03.com.acme.cam", "--token", &read]).exits(0);

    // a registry that is not there, and a URL that is not one
    let gone = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", gone.local_addr().unwrap());
    drop(gone);
    reg.run(Some(ADMIN), &["appid", "list", "--registry", &url]).exits(FAILURE).stderr_has("cannot reach the registry");
    reg.run(Some(ADMIN), &["appid", "list", "--registry", "not a url"]).exits(USAGE).stderr_has("invalid registry URL");
}

#[test]
fn import_checks_every_line_before_it_writes() {
    let tmp = tempfile::tempdir().unwrap();
    let reg = RegistryProcess::start(&tmp.path().join("data"));
    let t = Some(ADMIN);
    let mut profiles: Vec<Value> = (0..8).map(|i| profile(&format!("Rimp.com.acme.a{i}"))).collect();
    profiles[1]["application"]["class"] = json!("galactic");
    profiles[4].as_object_mut().unwrap().remove("appId");
    profiles[6] = profile("Rimp.com.acme.a0");
    let mut body = ndjson(&profiles);
    body.extend_from_slice(b"{not json\n");
    let file = write(tmp.path(), "bad.ndjson", &body);
    let ran = reg.run(t, &["appid", "import", &file]);
    ran.exits(FAILURE)
        .stderr_has("4 bad lines; nothing was imported")
        .stderr_has("line 2: application.class")
        .stderr_has("(field application.class)")
        .stderr_has("line 5: an import line needs appId")
        .stderr_has("line 7: Rimp.com.acme.a0 appears twice in this import (field appId)")
        .stderr_has("line 9: malformed JSON");
    assert!(!ran.stderr.contains("line 1:"), "{}", ran.stderr);
    reg.run(t, &["appid", "list"]).exits(0).stderr_has("0 App-IDs");
    reg.run(t, &["appid", "import", "/no/such.ndjson"]).exits(USAGE).stderr_has("cannot read /no/such.ndjson");
    // many bad lines: the first ones, and a count of the rest
    let junk = write(tmp.path(), "junk.ndjson", "x\n".repeat(30).as_bytes());
    reg.run(t, &["appid", "import", &junk])
        .exits(FAILURE)
        .stderr_has("30 bad lines")
        .stderr_has("line 20:")
        .stderr_has("and 10 more");

    // a good file in chunks, blank lines and CRLF included
    let good: Vec<Value> = (0..23).map(|i| profile(&format!("Rimp.com.acme.g{i:02}"))).collect();
    let mut body = ndjson(&good).replace_crlf_on_line(3);
    body.extend_from_slice(b"\n\n");
    let file = write(tmp.path(), "good.ndjson", &body);
    reg.run(t, &["appid", "import", &file, "--chunk", "5"]).exits(0).stdout_has("imported 23 App-IDs");
    // the same file again: nothing new, nothing changed
    let again = reg.run(t, &["appid", "import", &file, "--chunk", "5", "--json"]);
    again.exits(0);
    let summary: Value = serde_json::from_str(&again.stdout).unwrap();
    assert_eq!((summary["imported"].clone(), summary["unchanged"].clone()), (json!(0), json!(23)));
    reg.run(t, &["appid", "list"]).exits(0).stderr_has("23 App-IDs");
    reg.run(t, &["appid", "import", &file, "--chunk", "0"]).exits(2);
}

/// An import that fails half-way (a line conflicts with a record registered with other content)
/// keeps the chunks it committed; once the file is fixed, running it again converges.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_import_can_be_run_again() {
    let tmp = tempfile::tempdir().unwrap();
    let reg = RegistryProcess::start(&tmp.path().join("data"));
    let t = Some(ADMIN);
    let mut elsewhere = profile("Rrerun.com.acme.p12");
    elsewhere["application"]["name"] = json!("Registered by someone else");
    reg.run(t, &["appid", "add", &json_file(tmp.path(), "e.json", &elsewhere)]).exits(0);

    let profiles: Vec<Value> = (0..30).map(|i| profile(&format!("Rrerun.com.acme.p{i:02}"))).collect();
    let file = write(tmp.path(), "all.ndjson", &ndjson(&profiles));
    let ran = reg.run(t, &["appid", "import", &file, "--chunk", "5", "--parallel", "1"]);
    ran.exits(FAILURE)
        .stderr_has(
            "line 13: Rrerun.com.acme.p12 is already registered with other content (field appId) [HTTP 409 conflict]",
        )
        .stderr_has("after 10 of 30 records were imported")
        .stderr_has("run the same command again");
    let admin = reg.admin();
    let head = admin.changes(None, Duration::ZERO).await.unwrap().last;
    assert_eq!(head, 11, "the first two chunks are committed, the failed one and those after it are not");

    // the operator drops the line of the App-ID that belongs to someone else, and runs it again
    let fixed: Vec<Value> = profiles.iter().filter(|p| p["appId"] != json!("Rrerun.com.acme.p12")).cloned().collect();
    std::fs::write(&file, ndjson(&fixed)).unwrap();
    reg.run(t, &["appid", "import", &file, "--chunk", "5", "--parallel", "2"])
        .exits(0)
        .stdout_has("imported 19 App-IDs")
        .stdout_has("10 were registered already with identical content and are unchanged");
    let feed = admin.changes(Some(0), Duration::ZERO).await.unwrap();
    assert_eq!(feed.changes.len(), 30, "one change per record: nothing was registered twice");
    let mut ids: Vec<String> = feed.changes.iter().map(|c| c.app_id.to_string()).collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 30);
    let kept = admin.get(&onem2m::AppId::parse("Rrerun.com.acme.p12").unwrap()).await.unwrap().value;
    assert_eq!(kept.application.name, "Registered by someone else");
}

#[test]
fn registry_serve_is_ready_healthy_and_stops_on_sigterm() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let reg = RegistryProcess::start(&data);
    assert!(reg.log().contains("registry listening on http://127.0.0.1:"), "{}", reg.log());
    assert!(!reg.log().contains(ADMIN), "the admin token is never logged");
    // /healthz through the same client the CLI uses
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    rt.block_on(async { reg.admin().healthy().await.unwrap() });

    // the address is taken: a usage error
    let taken = reg.url.trim_start_matches("http://").to_owned();
    run(warden(&["registry", "serve", "--listen", &taken, "--data", path(&tmp.path().join("other"))])
        .env("WARDEN_ADMIN_TOKEN", ADMIN))
    .exits(USAGE)
    .stderr_has("cannot listen on");
    // a bad config file: a usage error, named
    let config = write(tmp.path(), "bad.toml", b"bogus = 1\n");
    run(&mut warden(&["registry", "serve", "--config", &config])).exits(USAGE).stderr_has("bad.toml");

    // SIGTERM: a clean stop
    reg.terminate().exits(0);
}

/// Every write the API acknowledged is there after the process is killed (SIGKILL, no shutdown)
/// and started again on the same data directory.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_writes_survive_a_crash() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let reg = RegistryProcess::start(&data);
    let admin = reg.admin();
    // writers that keep going until the process dies under them
    let writers: Vec<_> = (0..4)
        .map(|w| {
            let c = admin.clone();
            tokio::spawn(async move {
                let mut acknowledged = Vec::new();
                for i in 0.. {
                    let app = onem2m::AppId::parse(&format!("Rcrash.com.w{w}.i{i}")).unwrap();
                    let body = serde_json::to_vec(&profile(app.as_str())).unwrap();
                    if c.create_json(body.into()).await.is_err() {
                        break;
                    }
                    let revoked = i % 3 == 0 && c.set_status(&app, appid::Status::Revoked, "crash test").await.is_ok();
                    acknowledged.push((app, revoked));
                }
                acknowledged
            })
        })
        .collect();
    // crash once a good number of writes were acknowledged (the change feed's long poll says when)
    let deadline = tokio::time::Instant::now() + DEADLINE;
    let mut head = 0;
    while head < 200 {
        assert!(tokio::time::Instant::now() < deadline, "the writers make no progress");
        head = admin.changes(Some(head), Duration::from_secs(1)).await.unwrap().last;
    }
    reg.crash();
    let mut acknowledged = Vec::new();
    for w in writers {
        acknowledged.extend(tokio::time::timeout(DEADLINE, w).await.expect("a writer ended in time").unwrap());
    }
    assert!(acknowledged.len() >= 100, "{} writes", acknowledged.len());

    let reg = RegistryProcess::start(&data);
    let admin = reg.admin();
    for (app, revoked) in &acknowledged {
        let rec = admin.get(app).await.unwrap_or_else(|e| panic!("{app} was acknowledged and is gone: {e}")).value;
        if *revoked {
            assert_eq!(rec.status, appid::Status::Revoked, "{app}");
        }
    }
    // the feed has every acknowledged change, without a gap
    let feed = admin.changes(Some(0), Duration::ZERO).await.unwrap();
    assert!(feed.changes.windows(2).all(|w| w[0].seq + 1 == w[1].seq));
    let revokes = acknowledged.iter().filter(|(_, r)| *r).count();
    assert!(feed.last as usize >= acknowledged.len() + revokes);
}

/// A test helper: the file's `n`th line (from 1) ends in CRLF.
trait Crlf {
    fn replace_crlf_on_line(self, n: usize) -> Vec<u8>;
}

impl Crlf for Vec<u8> {
    fn replace_crlf_on_line(self, n: usize) -> Vec<u8> {
        let text = String::from_utf8(self).unwrap();
        text.lines()
            .enumerate()
            .map(|(i, l)| if i + 1 == n { format!("{l}\r\n") } else { format!("{l}\n") })
            .collect::<String>()
            .into_bytes()
    }
}
