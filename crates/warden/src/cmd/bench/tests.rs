//! Command-line parsing, and whole runs through [`execute`] (the CLI's code path) against the
//! in-process ceiling server: the only server available to this module's tests.

use std::time::Duration;

use clap::Parser;
use indicatif::ProgressBar;
use tokio_util::sync::CancellationToken;

use super::*;

#[derive(Debug, Parser)]
struct Cli {
    #[command(flatten)]
    args: Args,
}

fn parse(argv: &[&str]) -> Result<Config, String> {
    let cli = Cli::try_parse_from(std::iter::once("bench").chain(argv.iter().copied())).map_err(|e| e.to_string())?;
    Config::try_from(cli.args).map_err(|e| e.0)
}

fn parse_err(argv: &[&str]) -> String {
    match parse(argv) {
        Ok(c) => panic!("{argv:?} parsed: {c:?}"),
        Err(e) => e,
    }
}

#[test]
fn defaults() {
    let c = parse(&["cin-create"]).unwrap();
    assert_eq!(c.scenario, Scenario::CinCreate);
    assert_eq!(c.url.to_string(), "http://127.0.0.1:8080");
    assert_eq!(
        c.plan,
        Plan {
            concurrency: 32,
            warmup: Duration::from_secs(1),
            stop: Stop::After(Duration::from_secs(10)),
            rate: None,
            timeout: Duration::from_secs(30),
        }
    );
    assert_eq!((c.origin.as_str(), c.rvi), ("CAdmin", ReleaseVersion::V4));
    assert_eq!((c.cse_rn.as_str(), &c.api, c.ae_origin), ("cse-in", &AeApi::Fixed("Nbench.app".into()), AeOrigin::C));
    assert!(c.preload_registry.is_none());
    assert_eq!((c.mni, c.instances, c.payload), (None, 10, 32));
    assert_eq!((c.children, c.child_type), (1000, ChildType::Cin));
    assert_eq!((c.threads, c.server_threads), (1, 1));
    assert_eq!((c.preload, c.import_chunk, c.import_parallel), (1_000_000, 10_000, 4));
    assert!(!c.json && !c.with_ceiling && !c.ceiling_tls && !c.reads_as_ae && !c.cleanup);
    // The stem letters may be given as oneM2M writes them.
    assert_eq!(parse(&["ae-register", "--ae-origin", "S"]).unwrap().ae_origin, AeOrigin::S);
}

#[test]
fn every_option() {
    let c = parse(&[
        "discovery",
        "--target",
        "https://cse.example:8443/base",
        "-c",
        "8",
        "--count",
        "500",
        "--warmup",
        "0.5",
        "--rate",
        "250",
        "--timeout",
        "2",
        "--origin",
        "CBench",
        "--rvi",
        "3",
        "--cacert",
        "ca.pem",
        "--cert",
        "dev.pem",
        "--key",
        "dev.key",
        "--json",
        "--with-ceiling",
        "--threads",
        "2",
        "--server-threads",
        "2",
        "--cse-rn",
        "cse-mn",
        "--api",
        "Racme.com.acme.meter",
        "--ae-origin",
        "s-stem",
        "--mni",
        "100",
        "--instances",
        "5",
        "--payload",
        "64",
        "--children",
        "200",
        "--child-type",
        "cnt",
        "--reads-as-ae",
        "--cleanup",
    ])
    .unwrap();
    assert_eq!(c.scenario, Scenario::Discovery);
    assert_eq!(c.url, BaseUrl::parse("https://cse.example:8443/base").unwrap());
    assert_eq!(
        c.plan,
        Plan {
            concurrency: 8,
            warmup: Duration::from_millis(500),
            stop: Stop::Count(500),
            rate: Some(250.0),
            timeout: Duration::from_secs(2),
        }
    );
    assert_eq!((c.origin.as_str(), c.rvi), ("CBench", ReleaseVersion::V3));
    assert_eq!(c.tls.cacert.as_deref(), Some(std::path::Path::new("ca.pem")));
    assert_eq!(c.tls.key.as_deref(), Some(std::path::Path::new("dev.key")));
    assert!(c.json && c.with_ceiling && c.ceiling_tls && c.reads_as_ae && c.cleanup);
    assert_eq!((c.threads, c.server_threads), (2, 2));
    assert_eq!(
        (c.cse_rn.as_str(), &c.api, c.ae_origin),
        ("cse-mn", &AeApi::Fixed("Racme.com.acme.meter".into()), AeOrigin::SStem)
    );
    assert_eq!((c.mni, c.instances, c.payload, c.children), (Some(100), 5, 64, 200));
    assert_eq!(c.child_type, ChildType::Cnt);
}

#[test]
fn registry_lookup_options() {
    let c = parse(&[
        "registry-lookup",
        "--registry",
        "http://10.1.2.3:7070",
        "--token",
        "tok",
        "--preload",
        "5000",
        "--import-chunk",
        "1000",
        "--import-parallel",
        "2",
        "--duration",
        "3",
    ])
    .unwrap();
    assert_eq!(c.url.to_string(), "http://10.1.2.3:7070");
    assert_eq!(c.token.as_deref(), Some("tok"));
    assert_eq!((c.preload, c.import_chunk, c.import_parallel), (5000, 1000, 2));
    assert_eq!(c.plan.stop, Stop::After(Duration::from_secs(3)));
    if std::env::var_os("WARDEN_TOKEN").is_none() {
        assert!(parse_err(&["registry-lookup"]).contains("--token"));
    }
    assert!(parse_err(&["registry-lookup", "--token", "t", "--preload", "0"]).contains("--preload"));
}

#[test]
fn ae_register_with_preloaded_app_ids() {
    let c = parse(&[
        "ae-register",
        "--api-preloaded",
        "5000",
        "--api-start",
        "7",
        "--registry",
        "http://10.1.2.3:7070",
        "--token",
        "t",
    ])
    .unwrap();
    assert_eq!(c.api, AeApi::Preloaded { count: 5000, start: 7 });
    assert_eq!(c.preload_registry.map(|u| u.to_string()).as_deref(), Some("http://10.1.2.3:7070"));
    assert_eq!(c.url.to_string(), "http://127.0.0.1:8080", "the CSE stays the target");
    let cases: &[(&[&str], &str)] = &[
        (&["ae-register", "--api-preloaded", "10", "--api", "Nx.app", "--token", "t"], "cannot be used with"),
        (&["cin-create", "--api-preloaded", "10", "--token", "t"], "applies to ae-register"),
        (&["ae-register", "--api-preloaded", "0", "--token", "t"], "at least 1"),
        (&["ae-register", "--api-start", "5"], "--api-preloaded"),
        (&["ae-register", "--api-preloaded", "10", "--token", "t", "--registry", "https://r:7070"], "plain http"),
    ];
    for (argv, want) in cases {
        let e = parse_err(argv);
        assert!(e.contains(want), "{argv:?}: {e}");
    }
    if std::env::var_os("WARDEN_TOKEN").is_none() {
        assert!(parse_err(&["ae-register", "--api-preloaded", "10"]).contains("--token"));
    }
}

#[test]
fn bad_command_lines_are_usage_errors() {
    let cases: &[(&[&str], &str)] = &[
        (&["ceiling", "--duration", "5", "--count", "5"], "cannot be used with"),
        (&["ceiling", "-c", "0"], "--concurrency"),
        (&["ceiling", "--count", "0"], "--count"),
        (&["ceiling", "--duration=-1"], "--duration"),
        (&["ceiling", "--duration", "0"], "--duration"),
        (&["ceiling", "--warmup", "NaN"], "--warmup"),
        (&["ceiling", "--rate", "0"], "--rate"),
        (&["ceiling", "--timeout", "0"], "--timeout"),
        (&["ceiling", "--rvi", "9"], "--rvi"),
        (&["ceiling", "--origin", "a b"], "--origin"),
        (&["ae-register", "--api", "Xwrong"], "--api"),
        (&["ae-register", "--api", "racme", "--rvi", "4"], "--api"),
        (&["ae-register", "--cse-rn", "a/b"], "--cse-rn"),
        (&["ae-register", "--target", "127.0.0.1:8080"], "scheme"),
        (&["ae-register", "--target", "https://127.0.0.1:8443"], "--cacert"),
        (&["ae-register", "--cacert", "ca.pem"], "https target"),
        (&["ceiling", "--cert", "c.pem"], "--cert and --key"),
        (&["ceiling", "--threads", "0"], "--threads"),
        (&["cin-create", "--payload", "999999999"], "--payload"),
        (&["discovery", "--children", "0"], "--children"),
        (&["cin-retrieve", "--instances", "0"], "--instances"),
        (&["mqtt-flood"], "invalid value"),
        (&["ae-register", "--ae-origin", "x"], "invalid value"),
    ];
    for (argv, want) in cases {
        let e = parse_err(argv);
        assert!(e.contains(want), "{argv:?}: {e}");
    }
    // The legacy lowercase App-ID is fine with release 3.
    parse(&["ae-register", "--api", "racme", "--rvi", "3"]).unwrap();
}

fn config(argv: &[&str]) -> Config {
    parse(argv).unwrap()
}

async fn run_cli(argv: &[&str]) -> anyhow::Result<Report> {
    execute(config(argv), CancellationToken::new(), ProgressBar::hidden()).await
}

#[tokio::test]
async fn a_short_ceiling_run_completes_every_request() {
    let r = run_cli(&["ceiling", "--count", "200", "-c", "4"]).await.unwrap();
    let s = &r.summary;
    assert_eq!((s.requests, s.ok, s.errors), (200, 200, 0), "{s:?}");
    assert!(s.errors_by_kind.is_empty() && s.first_error.is_none(), "{s:?}");
    assert_eq!(s.connections, 4);
    assert!(s.duration_s > 0.0 && s.throughput_rps > 0.0, "{s:?}");
    let l = s.latency_us.as_ref().unwrap();
    assert!(l.min >= 1 && l.min <= l.p50 && l.p50 <= l.p99 && l.p99 <= l.max, "{l:?}");
    assert_eq!((r.scenario, r.mode, r.concurrency), ("ceiling", "closed", 4));
    assert!(r.target.starts_with("http://127.0.0.1:"), "{}", r.target);
    assert!(!s.interrupted);
    assert_eq!(s.late_starts, None, "closed loop has no timetable");
    if std::path::Path::new("/proc/self/task").exists() {
        assert!(s.client_cpu_us_per_request.unwrap() > 0.0, "{s:?}");
        assert!(s.server_cpu_us_per_request.unwrap() > 0.0, "{s:?}");
    }
}

#[tokio::test]
async fn an_open_loop_ceiling_run_keeps_its_timetable() {
    let r = run_cli(&["ceiling", "--count", "200", "-c", "4", "--rate", "2000", "--warmup", "0.05"]).await.unwrap();
    let s = &r.summary;
    assert_eq!((s.ok, s.errors), (200, 0), "{s:?}");
    assert_eq!((r.mode, r.rate), ("open", Some(2000.0)));
    assert!(s.late_starts.is_some());
    // 200 requests at 2000/s are spread over 0.1 s at least.
    assert!(s.duration_s >= 0.09, "{s:?}");
}

#[tokio::test]
async fn the_ceiling_over_tls() {
    let r =
        run_cli(&["ceiling", "--count", "100", "-c", "2", "--warmup", "0", "--tls", "--threads", "2"]).await.unwrap();
    assert_eq!((r.summary.ok, r.summary.errors), (100, 0), "{:?}", r.summary);
    assert!(r.target.starts_with("https://127.0.0.1:"), "{}", r.target);
    assert_eq!(r.client_threads, 2);
}

#[tokio::test]
async fn wrong_answers_are_counted_by_rsc_with_the_first_one_in_full() {
    // The ceiling server answers 2000 where an AE CREATE must get 2001.
    let server = ceiling::CeilingServer::start(1, false).await.unwrap();
    let url = server.url().to_string();
    let r = run_cli(&["ae-register", "--target", &url, "--count", "50", "-c", "2", "--warmup", "0"]).await.unwrap();
    let s = &r.summary;
    assert_eq!((s.requests, s.ok, s.errors), (50, 0, 50), "{s:?}");
    assert_eq!(s.errors_by_kind.get("rsc 2000 OK"), Some(&50), "{s:?}");
    assert!(s.latency_us.is_none());
    let first = s.first_error.as_deref().unwrap();
    assert!(first.starts_with("POST /cse-in: HTTP 200, X-M2M-RSC 2000 (rsc 2000 OK): {\"m2m:cb\""), "{first}");
    assert!(r.to_text().contains("errors       rsc 2000 OK: 50"), "{}", r.to_text());
}

#[tokio::test]
async fn with_ceiling_reports_both_runs_and_the_ratio() {
    let server = ceiling::CeilingServer::start(1, false).await.unwrap();
    let url = server.url().to_string();
    let r = run_cli(&["ae-register", "--target", &url, "--count", "20", "-c", "2", "--warmup", "0", "--with-ceiling"])
        .await
        .unwrap();
    let ceiling = r.ceiling.as_ref().unwrap();
    assert_eq!((ceiling.ok, ceiling.errors), (20, 0));
    // No AE CREATE succeeded against the ceiling server, so the ratio is 0.
    assert_eq!(r.ratio_to_ceiling, Some(0.0));
    let v = serde_json::to_value(&r).unwrap();
    assert_eq!(v["ceiling"]["ok"], 20);
    assert_eq!(v["scenario"], "ae-register");
}

#[tokio::test]
async fn a_failing_setup_stops_the_run_with_the_answer() {
    let server = ceiling::CeilingServer::start(1, false).await.unwrap();
    let url = server.url().to_string();
    let e = run_cli(&["cin-create", "--target", &url, "--count", "10", "--warmup", "0"]).await.unwrap_err();
    let e = format!("{e:#}");
    assert!(
        e.starts_with("setup: register the bench AE: POST /cse-in answered HTTP 200, X-M2M-RSC 2000 (expected 2001)"),
        "{e}"
    );
}

#[tokio::test]
async fn registry_lookup_checks_every_answer() {
    // The ceiling server answers the preload check with 200 (so nothing is imported) and every
    // lookup with a body that is not a lookup answer.
    let server = ceiling::CeilingServer::start(1, false).await.unwrap();
    let url = server.url().to_string();
    let argv = ["registry-lookup", "--registry", &url, "--token", "t", "--preload", "10", "--count", "30", "-c", "2"];
    let r = run_cli(&[&argv[..], &["--warmup", "0"]].concat()).await.unwrap();
    let import = r.import.as_ref().unwrap();
    assert!(import.already_present && import.records == 0);
    let s = &r.summary;
    assert_eq!((s.ok, s.errors), (0, 30), "{s:?}");
    assert_eq!(s.errors_by_kind.get("check: the lookup answer is not the expected JSON"), Some(&30), "{s:?}");
    assert!(s.first_error.as_deref().unwrap().starts_with("POST /v1/lookup: HTTP 200"), "{s:?}");
}

#[tokio::test]
async fn a_refused_connection_fails_before_measuring() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    drop(listener);
    let e = run_cli(&["ae-register", "--target", &url, "--count", "10"]).await.unwrap_err().to_string();
    assert!(e.starts_with(&format!("cannot connect to {url}: connect to")), "{e}");
}

#[tokio::test]
async fn ctrl_c_stops_the_run_and_keeps_what_was_measured() {
    let cancel = CancellationToken::new();
    let cfg = config(&["ceiling", "--count", "1000000000", "-c", "2", "--warmup", "0"]);
    let progress = ProgressBar::hidden();
    let run = tokio::spawn(execute(cfg, cancel.clone(), progress.clone()));
    // Interrupt once some requests have completed (the bar counts them even when hidden).
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while progress.position() < 50 && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    cancel.cancel();
    let r = tokio::time::timeout(Duration::from_secs(30), run).await.unwrap().unwrap().unwrap();
    assert!(r.summary.interrupted);
    assert!(r.summary.ok >= 50, "{:?}", r.summary);
    assert!(r.summary.requests < 1_000_000_000, "{:?}", r.summary);
    assert_eq!(r.summary.errors, 0, "{:?}", r.summary);
}
