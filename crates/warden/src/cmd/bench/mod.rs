//! `warden bench`: the load generator.
//!
//! `warden bench SCENARIO [options]` sets a scenario up (unmeasured), warms up, then measures
//! requests per second and latency percentiles, and counts errors by oneM2M RSC (or HTTP status,
//! or transport failure). A progress bar shows on a terminal; `--json` prints the summary as one
//! JSON object.
//!
//! # Layout
//! - [`client`]: hyper's low-level HTTP/1.1 client, one keep-alive connection per worker, TLS
//!   through rustls.
//! - [`workload`]: each scenario's measured request, pre-built, and how its answer is judged.
//! - [`setup`]: the unmeasured oneM2M setup (AE, containers, instances, children).
//! - [`registry`]: the registry preload through `POST /v1/import`.
//! - [`ceiling`]: the in-process trivial server of the `ceiling` scenario.
//! - [`driver`]: workers, closed and open loop, warm-up, progress.
//! - [`stats`]: histograms, error counts, the summary and its text and JSON forms.
//! - [`cpu`]: CPU time of the bench's own threads, for the cost per request.
//!
//! # How it measures
//! - Closed loop by default: `-c` workers, each sends its next request when the previous answer
//!   has been read. `--rate R` switches to an open loop: a fixed timetable of send times
//!   (`R` per second, `-c` bounds the requests in flight). A request that had to wait for a free
//!   worker counts its latency from its *scheduled* time, so a stalled server is charged for the
//!   queue behind the stall (no coordinated omission); `late_starts` counts those more than 1 ms
//!   late. A free worker that waits for its slot counts from the actual send: tokio's timer
//!   wakes up to 1 ms late, and that slack is the client's, not the server's.
//! - Latency is in microseconds in one `hdrhistogram` per worker (3 significant figures),
//!   merged at the end. The percentiles are those of successful requests; errors are counted
//!   separately, and throughput counts successful requests per second.
//! - Constant parts of each request (URI, header map, body) are built once; the per-request
//!   parts (`X-M2M-RI`, unique names) are written into a per-worker scratch buffer that is
//!   reused once the previous request is gone.
//! - Ctrl-C stops the run at once (requests in flight are dropped and not counted) and the
//!   summary of what was measured is still printed.
//!
//! # Runtime choice
//! The client runs on its own tokio runtime in its own thread (`bench-client`), with `--threads`
//! workers (default 1: a current-thread runtime), not on the binary's 2-worker runtime:
//! - On a 2-core machine the server under test, in another process, needs the CPU more than
//!   the client does. A 1-thread client can never take more than one core, so the server
//!   always keeps the other one.
//! - A current-thread runtime is also the cheapest per request: no cross-thread wake-ups or
//!   work stealing. Measured with the `ceiling` scenario (release build, `-c 32`, 5 rounds of
//!   3 s interleaved, medians; CPU from `/proc`, so it holds under contention):
//!
//!   | client threads | server threads | client CPU µs/req | server CPU µs/req | req/s |
//!   |---|---|---|---|---|
//!   | 1 | 1 | 11.3 | 8.0 | 33 400 |
//!   | 1 | 2 | 11.1 | 8.7 | 33 300 |
//!   | 2 | 1 | 12.0 | 7.4 | 42 300 |
//!   | 2 | 2 | 12.7 | 9.7 | 34 800 |
//!
//!   The machine was shared with three other engineers' builds (load average 5.4): the req/s
//!   column mostly shows how much CPU the scheduler gave this process, and more threads get a
//!   larger share from the other processes. The CPU columns are the stable result. In the
//!   quietest moment seen (load 2.3) the default (1, 1) did 42 300 req/s, p50 0.59 ms,
//!   p99 4.9 ms; at load 6.8, about 20 000 req/s.
//! - A real CSE spends far more than 11 µs per request (JSON, storage, admission), so one
//!   client thread, able to drive about 90 000 req/s, is not the bottleneck. `--threads 2` is
//!   there for a server on another machine.
//!
//! The `ceiling` server runs the same way on its own runtime thread(s) (`bench-ceiling`,
//! `--server-threads`, default 1), so client and server compete for the cores as two
//! processes would, and each one's CPU per request is reported.

mod ceiling;
mod client;
mod cpu;
mod driver;
mod registry;
mod setup;
mod stats;
mod workload;

use std::io::IsTerminal as _;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use onem2m::{AppId, Originator, ReleaseVersion, ResourceName};
use tokio_util::sync::CancellationToken;

use crate::common::{RegistryClientArgs, UsageError};
use client::{BaseUrl, Endpoint, TlsFiles};
use driver::{Plan, Stop};
use setup::{ChildType, Setup};
use stats::{Recorder, Report, Summary};
use workload::{AeApi, AeOrigin, M2m};

/// The scenarios.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum Scenario {
    /// A trivial in-process HTTP server: what this machine and client can do at all.
    Ceiling,
    /// Each request registers a new AE.
    AeRegister,
    /// Each request creates a contentInstance in the bench AE's container.
    CinCreate,
    /// Each request retrieves the latest contentInstance (`.../cnt/la`).
    CinRetrieve,
    /// Each request discovers the children of a container (`?fu=1&ty=4` or `ty=3`).
    Discovery,
    /// Each request looks up a random preloaded App-ID in the registry.
    RegistryLookup,
}

impl Scenario {
    fn name(self) -> &'static str {
        match self {
            Scenario::Ceiling => "ceiling",
            Scenario::AeRegister => "ae-register",
            Scenario::CinCreate => "cin-create",
            Scenario::CinRetrieve => "cin-retrieve",
            Scenario::Discovery => "discovery",
            Scenario::RegistryLookup => "registry-lookup",
        }
    }
}

/// Load scenarios against a CSE or a registry, with throughput, latency percentiles and errors
/// by RSC. Prints a progress bar on a terminal, then a summary (`--json`: one JSON object).
#[derive(Debug, Clone, clap::Args)]
pub(crate) struct Args {
    /// Boxed: the options are many, and `Args` sits in the binary's command enum.
    #[command(flatten)]
    options: Box<Options>,
}

/// The options of `warden bench`.
#[derive(Debug, Clone, clap::Args)]
pub(crate) struct Options {
    /// What to measure.
    #[arg(value_enum)]
    scenario: Scenario,

    /// The CSE's base URL (http:// or https://).
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    target: String,
    /// Workers, each with its own keep-alive connection (open loop: most requests in flight).
    #[arg(short = 'c', long, default_value_t = 32)]
    concurrency: usize,
    /// Measure for this many seconds (default 10 when --count is not given).
    #[arg(long, conflicts_with = "count")]
    duration: Option<f64>,
    /// Measure this many requests instead of a duration.
    #[arg(long)]
    count: Option<u64>,
    /// Seconds of load before measuring starts (not counted).
    #[arg(long, default_value_t = 1.0)]
    warmup: f64,
    /// Open loop: send this many requests per second on a fixed timetable.
    #[arg(long)]
    rate: Option<f64>,
    /// Seconds a request may take before it counts as a timeout.
    #[arg(long, default_value_t = 30.0)]
    timeout: f64,
    /// Originator of the requests that do not act as the bench AE: the ceiling's, and the reads
    /// of cin-retrieve and discovery (see --reads-as-ae).
    #[arg(long, default_value = "CAdmin")]
    origin: String,
    /// Release version indicator (X-M2M-RVI).
    #[arg(long, default_value = "4")]
    rvi: String,
    /// CA certificate (PEM) that verifies an https target.
    #[arg(long)]
    cacert: Option<PathBuf>,
    /// Client certificate chain (PEM) to present to an https target.
    #[arg(long)]
    cert: Option<PathBuf>,
    /// The client certificate's private key (PEM).
    #[arg(long)]
    key: Option<PathBuf>,
    /// Print the summary as one JSON object on stdout.
    #[arg(long)]
    json: bool,
    /// Run the ceiling first with the same options, and report this run as a ratio of it.
    #[arg(long)]
    with_ceiling: bool,
    /// Client runtime threads. 1 (default) leaves the other core to a local server.
    #[arg(long, default_value_t = 1)]
    threads: usize,
    /// Runtime threads of the in-process ceiling server.
    #[arg(long, default_value_t = 1)]
    server_threads: usize,
    /// Serve the ceiling over TLS (automatic for --with-ceiling with an https target).
    #[arg(long)]
    tls: bool,

    /// Resource name of the CSEBase.
    #[arg(long, default_value = "cse-in")]
    cse_rn: String,
    /// App-ID (`api`) of the AEs the bench registers.
    #[arg(long, default_value = "Nbench.app")]
    api: String,
    /// ae-register: give AE number n the preloaded App-ID `Rbench.org.warden.a{n mod N}` instead
    /// of --api, so that every AE (while n < N) is a miss of the CSE's profile cache. The N
    /// App-IDs are imported into --registry first (admin --token) unless already there.
    #[arg(long, value_name = "N", conflicts_with = "api")]
    api_preloaded: Option<u64>,
    /// ae-register --api-preloaded: the App-ID number of the first AE (successive runs can take
    /// App-IDs that no earlier run made the CSE cache).
    #[arg(long, value_name = "S", default_value_t = 0, requires = "api_preloaded")]
    api_start: u64,
    /// Originator of AE registrations: C or S (the CSE assigns the stem), c-stem or s-stem (a
    /// new stem per AE chosen by the client), none (no X-M2M-Origin).
    #[arg(long, value_enum, ignore_case = true, default_value = "c")]
    ae_origin: AeOrigin,
    /// cin-create, cin-retrieve: the container's maxNrOfInstances (default: none, instances
    /// accumulate).
    #[arg(long)]
    mni: Option<u64>,
    /// cin-retrieve: instances created in the container before measuring.
    #[arg(long, default_value_t = 10)]
    instances: u64,
    /// Bytes of content in each contentInstance.
    #[arg(long, default_value_t = 32)]
    payload: usize,
    /// discovery: children of the parent container.
    #[arg(long, default_value_t = 1000)]
    children: u64,
    /// discovery: the kind of children, contentInstances (ty=4) or containers (ty=3).
    #[arg(long, value_enum, default_value = "cin")]
    child_type: ChildType,
    /// cin-retrieve, discovery: read as the bench AE instead of --origin (needed when the CSE
    /// binds the originator to a client certificate).
    #[arg(long)]
    reads_as_ae: bool,
    /// Delete the bench AE (and everything under it) after the run.
    #[arg(long)]
    cleanup: bool,

    #[command(flatten)]
    registry: RegistryClientArgs,
    /// registry-lookup: App-IDs to have in the registry (imported unless the last one exists).
    #[arg(long, default_value_t = 1_000_000)]
    preload: u64,
    /// registry-lookup: records per import request.
    #[arg(long, default_value_t = 10_000)]
    import_chunk: u64,
    /// registry-lookup: import requests in flight.
    #[arg(long, default_value_t = 4)]
    import_parallel: usize,
}

/// The options, checked.
#[derive(Debug, Clone)]
pub(crate) struct Config {
    scenario: Scenario,
    /// The server the scenario talks to (the registry for registry-lookup).
    url: BaseUrl,
    plan: Plan,
    origin: String,
    rvi: ReleaseVersion,
    tls: TlsFiles,
    json: bool,
    with_ceiling: bool,
    threads: usize,
    server_threads: usize,
    ceiling_tls: bool,
    cse_rn: String,
    api: AeApi,
    /// ae-register with --api-preloaded: the registry to preload.
    preload_registry: Option<BaseUrl>,
    ae_origin: AeOrigin,
    mni: Option<u64>,
    instances: u64,
    payload: usize,
    children: u64,
    child_type: ChildType,
    reads_as_ae: bool,
    cleanup: bool,
    token: Option<String>,
    preload: u64,
    import_chunk: u64,
    import_parallel: usize,
}

/// The largest contentInstance payload the bench sends.
const MAX_PAYLOAD: usize = 16 * 1024 * 1024;

fn seconds(name: &str, v: f64, zero_ok: bool) -> Result<Duration, UsageError> {
    if !v.is_finite() || v < 0.0 || (v == 0.0 && !zero_ok) || v > 1e7 {
        return Err(UsageError(format!("--{name} must be a positive number of seconds, not {v}")));
    }
    Ok(Duration::from_secs_f64(v))
}

impl TryFrom<Args> for Config {
    type Error = UsageError;

    fn try_from(args: Args) -> Result<Self, UsageError> {
        let a = *args.options;
        let usage = |msg: String| UsageError(msg);
        if a.concurrency == 0 || a.concurrency > 100_000 {
            return Err(usage(format!("-c/--concurrency must be between 1 and 100000, not {}", a.concurrency)));
        }
        let stop = match (a.duration, a.count) {
            (_, Some(0)) => return Err(usage("--count must be at least 1".into())),
            (_, Some(n)) => Stop::Count(n),
            (Some(d), None) => Stop::After(seconds("duration", d, false)?),
            (None, None) => Stop::After(Duration::from_secs(10)),
        };
        let rate = match a.rate {
            Some(r) if !(r.is_finite() && r > 0.0 && r <= 1e7) => {
                return Err(usage(format!("--rate must be a positive number of requests per second, not {r}")));
            }
            r => r,
        };
        let plan = Plan {
            concurrency: a.concurrency,
            warmup: seconds("warmup", a.warmup, true)?,
            stop,
            rate,
            timeout: seconds("timeout", a.timeout, false)?,
        };
        let rvi = ReleaseVersion::parse(&a.rvi)
            .ok_or_else(|| usage(format!("--rvi {}: not a release version (2a, 3, 4, 5)", a.rvi)))?;
        Originator::parse(&a.origin).map_err(|e| usage(format!("--origin: {e}")))?;
        AppId::parse_for_release(&a.api, rvi).map_err(|e| usage(format!("--api: {e}")))?;
        ResourceName::parse(&a.cse_rn).map_err(|e| usage(format!("--cse-rn: {e}")))?;
        if a.threads == 0 || a.threads > 256 || a.server_threads == 0 || a.server_threads > 256 {
            return Err(usage("--threads and --server-threads must be between 1 and 256".into()));
        }
        if a.payload > MAX_PAYLOAD {
            return Err(usage(format!("--payload must be at most {MAX_PAYLOAD} bytes")));
        }
        let target = match a.scenario {
            Scenario::RegistryLookup => &a.registry.registry,
            _ => &a.target,
        };
        let url = BaseUrl::parse(target).map_err(|e| usage(format!("target: {e}")))?;
        let tls = TlsFiles { cacert: a.cacert, cert: a.cert, key: a.key };
        let drives_url = a.scenario != Scenario::Ceiling;
        if drives_url && !url.https && (tls.cacert.is_some() || tls.cert.is_some() || tls.key.is_some()) {
            return Err(usage(format!("--cacert/--cert/--key apply to an https target; {url} is http")));
        }
        if drives_url && url.https && tls.cacert.is_none() {
            return Err(usage(format!("{url}: an https target needs --cacert FILE")));
        }
        if tls.cert.is_some() != tls.key.is_some() {
            return Err(usage("--cert and --key go together".into()));
        }
        if a.scenario == Scenario::Discovery && a.children == 0 {
            return Err(usage("--children must be at least 1".into()));
        }
        if a.scenario == Scenario::CinRetrieve && a.instances == 0 {
            return Err(usage("--instances must be at least 1 (cin-retrieve reads the latest)".into()));
        }
        let token = a.registry.token.filter(|t| !t.is_empty());
        let (api, preload_registry) = match a.api_preloaded {
            None => (AeApi::Fixed(a.api), None),
            Some(_) if a.scenario != Scenario::AeRegister => {
                return Err(usage("--api-preloaded applies to ae-register".into()));
            }
            Some(0) => return Err(usage("--api-preloaded must be at least 1".into())),
            Some(_) if token.is_none() => {
                return Err(usage("--api-preloaded needs --token (or WARDEN_TOKEN): a registry admin token".into()));
            }
            Some(n) => {
                let registry = BaseUrl::parse(&a.registry.registry).map_err(|e| usage(format!("--registry: {e}")))?;
                if registry.https {
                    return Err(usage("--api-preloaded: the registry preload speaks plain http".into()));
                }
                (AeApi::Preloaded { count: n, start: a.api_start }, Some(registry))
            }
        };
        if a.scenario == Scenario::RegistryLookup {
            if token.is_none() {
                return Err(usage("registry-lookup needs --token (or WARDEN_TOKEN): an admin token".into()));
            }
            if a.preload == 0 || a.import_chunk == 0 || a.import_parallel == 0 {
                return Err(usage("--preload, --import-chunk and --import-parallel must be at least 1".into()));
            }
        }
        Ok(Config {
            scenario: a.scenario,
            ceiling_tls: a.tls || (a.with_ceiling && url.https),
            url,
            plan,
            origin: a.origin,
            rvi,
            tls,
            json: a.json,
            with_ceiling: a.with_ceiling && a.scenario != Scenario::Ceiling,
            threads: a.threads,
            server_threads: a.server_threads,
            cse_rn: a.cse_rn,
            api,
            preload_registry,
            ae_origin: a.ae_origin,
            mni: a.mni,
            instances: a.instances,
            payload: a.payload,
            children: a.children,
            child_type: a.child_type,
            reads_as_ae: a.reads_as_ae,
            cleanup: a.cleanup,
            token,
            preload: a.preload,
            import_chunk: a.import_chunk,
            import_parallel: a.import_parallel,
        })
    }
}

pub(crate) async fn run(args: Args) -> anyhow::Result<()> {
    let config = Config::try_from(args)?;
    let json = config.json;
    let cancel = CancellationToken::new();
    let on_signal = tokio::spawn({
        let (cancel, signal) = (cancel.clone(), crate::common::shutdown_signal());
        async move {
            signal.await;
            cancel.cancel();
        }
    });
    let report = execute(config, cancel, progress_bar()).await;
    on_signal.abort();
    let report = report?;
    if json {
        println!("{}", serde_json::to_string(&report)?);
    } else {
        print!("{}", report.to_text());
    }
    let s = &report.summary;
    if s.errors > 0 {
        anyhow::bail!("{} of {} requests failed", s.errors, s.requests);
    }
    Ok(())
}

/// A progress bar on stderr when it is a terminal, else a hidden one.
fn progress_bar() -> ProgressBar {
    if !std::io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let style = ProgressStyle::with_template("{prefix} [{elapsed_precise}] {wide_bar} {msg}")
        .unwrap_or_else(|_| ProgressStyle::default_bar());
    ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr()).with_style(style)
}

/// A runtime with `threads` workers named `name`: a current-thread runtime for 1 (it runs on
/// the thread that calls `block_on`, which the caller names `name`).
pub(crate) fn runtime(threads: usize, name: &str) -> std::io::Result<tokio::runtime::Runtime> {
    if threads <= 1 {
        tokio::runtime::Builder::new_current_thread().enable_all().build()
    } else {
        tokio::runtime::Builder::new_multi_thread().worker_threads(threads).thread_name(name).enable_all().build()
    }
}

/// Runs the whole bench on its own runtime thread (see the module doc) and returns its report.
/// This is what the CLI runs; tests call it with a parsed command line.
pub(crate) async fn execute(
    config: Config,
    cancel: CancellationToken,
    progress: ProgressBar,
) -> anyhow::Result<Report> {
    let rt = runtime(config.threads, cpu::CLIENT_THREADS)?;
    let (tx, rx) = tokio::sync::oneshot::channel();
    let thread = std::thread::Builder::new().name(cpu::CLIENT_THREADS.into()).spawn(move || {
        let result = rt.block_on(bench(&config, &cancel, &progress));
        progress.finish_and_clear();
        let _ = tx.send(result);
    })?;
    let result = rx.await.map_err(|_| anyhow::anyhow!("the bench thread stopped without a result"));
    let _ = tokio::task::spawn_blocking(move || thread.join()).await;
    result?
}

async fn bench(cfg: &Config, cancel: &CancellationToken, progress: &ProgressBar) -> anyhow::Result<Report> {
    let ceiling = if cfg.scenario == Scenario::Ceiling || cfg.with_ceiling {
        Some(run_ceiling(cfg, cancel, progress).await?)
    } else {
        None
    };
    let mut report = match cfg.scenario {
        Scenario::Ceiling => {
            let (summary, url) = ceiling.clone().expect("the ceiling ran");
            return Ok(new_report(cfg, url.to_string(), summary));
        }
        Scenario::RegistryLookup => run_registry_lookup(cfg, cancel, progress).await?,
        _ => run_cse_scenario(cfg, cancel, progress).await?,
    };
    if let Some((summary, _)) = ceiling {
        report.set_ceiling(summary);
    }
    Ok(report)
}

fn new_report(cfg: &Config, target: String, summary: Summary) -> Report {
    Report {
        scenario: cfg.scenario.name(),
        target,
        mode: if cfg.plan.rate.is_some() { "open" } else { "closed" },
        concurrency: cfg.plan.concurrency,
        rate: cfg.plan.rate,
        client_threads: cfg.threads,
        warmup_s: cfg.plan.warmup.as_secs_f64(),
        summary,
        ceiling: None,
        ratio_to_ceiling: None,
        import: None,
    }
}

fn m2m(cfg: &Config, endpoint: &Endpoint) -> M2m {
    let run = format!("{:08x}", getrandom::u32().unwrap_or_else(|_| std::process::id()));
    M2m { host: endpoint.host().clone(), rvi: cfg.rvi.as_str().to_owned(), run }
}

async fn run_ceiling(
    cfg: &Config,
    cancel: &CancellationToken,
    progress: &ProgressBar,
) -> anyhow::Result<(Summary, BaseUrl)> {
    let server = ceiling::CeilingServer::start(cfg.server_threads, cfg.ceiling_tls).await?;
    let url = server.url();
    let endpoint = Endpoint::new(url.clone(), server.client_tls()?).await?;
    let workload = m2m(cfg, &endpoint).ceiling(&endpoint.path(&format!("/{}", cfg.cse_rn)), &cfg.origin)?;
    progress.set_prefix("ceiling");
    let summary = driver::run_load(&endpoint, Arc::new(workload), &cfg.plan, cancel, progress).await?;
    drop(server);
    Ok((summary, url))
}

async fn endpoint(cfg: &Config) -> anyhow::Result<Arc<Endpoint>> {
    let tls = if cfg.url.https { Some(client::client_tls_config(&cfg.tls)?) } else { None };
    Endpoint::new(cfg.url.clone(), tls).await
}

async fn run_cse_scenario(cfg: &Config, cancel: &CancellationToken, progress: &ProgressBar) -> anyhow::Result<Report> {
    let endpoint = endpoint(cfg).await?;
    let m2m = m2m(cfg, &endpoint);
    let cse_path = endpoint.path(&format!("/{}", cfg.cse_rn));
    let parallel = cfg.plan.concurrency.min(8);
    let setup = Setup::new(endpoint.clone(), m2m.clone(), cfg.plan.timeout, parallel, cancel.clone());
    progress.set_prefix(cfg.scenario.name());

    let mut bench_ae = None;
    let workload = if cfg.scenario == Scenario::AeRegister {
        if let (AeApi::Preloaded { count, .. }, Some(registry)) = (&cfg.api, &cfg.preload_registry) {
            preload_app_ids(cfg, registry, *count, cancel, progress).await?;
            progress.set_prefix(cfg.scenario.name());
        }
        m2m.ae_register(&cse_path, &cfg.api, cfg.ae_origin)?
    } else {
        let AeApi::Fixed(api) = &cfg.api else {
            unreachable!("--api-preloaded is refused for {}", cfg.scenario.name())
        };
        let mut conn = setup.connect().await?;
        let ae = setup.register_ae(&mut conn, &cse_path, api, cfg.ae_origin).await?;
        progress.suspend(|| eprintln!("setup: AE {} registered, AE-ID {}", ae.path, ae.aei));
        bench_ae = Some(ae.clone());
        let reader = if cfg.reads_as_ae { ae.aei.as_str() } else { cfg.origin.as_str() };
        let prepared = async {
            match cfg.scenario {
                Scenario::CinCreate => {
                    let cnt = setup.create_container(&mut conn, &ae, &ae.path, "cnt", cfg.mni).await?;
                    m2m.cin_create(&cnt, &ae.aei, cfg.payload)
                }
                Scenario::CinRetrieve => {
                    let cnt = setup.create_container(&mut conn, &ae, &ae.path, "cnt", cfg.mni).await?;
                    setup.create_children(&ae, &cnt, ChildType::Cin, cfg.instances, cfg.payload, progress).await?;
                    m2m.cin_retrieve(&cnt, reader)
                }
                Scenario::Discovery => {
                    let parent = setup.create_container(&mut conn, &ae, &ae.path, "parent", None).await?;
                    let (n, kind) = (cfg.children, cfg.child_type);
                    setup.create_children(&ae, &parent, kind, n, cfg.payload, progress).await?;
                    m2m.discovery(&parent, kind.ty(), n as usize, reader)
                }
                Scenario::Ceiling | Scenario::AeRegister | Scenario::RegistryLookup => {
                    unreachable!("not a scenario with a bench AE")
                }
            }
        }
        .await;
        match prepared {
            Ok(w) => w,
            Err(e) => {
                if cfg.cleanup {
                    cleanup(&setup, &ae).await;
                }
                return Err(e);
            }
        }
    };
    let result = driver::run_load(&endpoint, Arc::new(workload), &cfg.plan, cancel, progress).await;
    if let (true, Some(ae)) = (cfg.cleanup, &bench_ae) {
        cleanup(&setup, ae).await;
    }
    Ok(new_report(cfg, cfg.url.to_string(), result?))
}

/// Deletes the bench AE, even after Ctrl-C; a failure is reported but does not fail the run.
async fn cleanup(setup: &Setup, ae: &setup::BenchAe) {
    let setup = setup.detached();
    let result = async {
        let mut conn = setup.connect().await?;
        setup.delete_ae(&mut conn, ae).await
    }
    .await;
    match result {
        Ok(()) => eprintln!("cleanup: AE {} deleted", ae.path),
        Err(e) => eprintln!("warning: cleanup failed: {e:#}"),
    }
}

/// The preload of `ae-register --api-preloaded`: the same profiles as registry-lookup's.
async fn preload_app_ids(
    cfg: &Config,
    registry: &BaseUrl,
    count: u64,
    cancel: &CancellationToken,
    progress: &ProgressBar,
) -> anyhow::Result<()> {
    let endpoint = Endpoint::new(registry.clone(), None).await?;
    let token = cfg.token.as_deref().expect("checked when parsing");
    progress.set_prefix("import");
    let import =
        registry::preload(&endpoint, token, count, cfg.import_chunk, cfg.import_parallel, cancel, progress).await?;
    if !import.already_present {
        progress.suspend(|| eprintln!("setup: {} App-IDs imported into {registry}", import.records));
    }
    Ok(())
}

async fn run_registry_lookup(
    cfg: &Config,
    cancel: &CancellationToken,
    progress: &ProgressBar,
) -> anyhow::Result<Report> {
    let endpoint = endpoint(cfg).await?;
    let token = cfg.token.as_deref().expect("checked when parsing");
    progress.set_prefix("import");
    let import =
        registry::preload(&endpoint, token, cfg.preload, cfg.import_chunk, cfg.import_parallel, cancel, progress)
            .await?;
    if !cfg.json && !import.already_present {
        progress.suspend(|| {
            eprintln!(
                "import: {} records in {:.2} s ({:.0} records/s)",
                import.records, import.seconds, import.records_per_s
            )
        });
    }
    let summary = if cancel.is_cancelled() {
        let mut nothing = Recorder::new().summarize(Duration::ZERO);
        nothing.late_starts = None;
        nothing
    } else {
        progress.set_prefix("registry-lookup");
        let workload = workload::registry_lookup(endpoint.host(), &endpoint.path("/v1/lookup"), token, cfg.preload)?;
        driver::run_load(&endpoint, Arc::new(workload), &cfg.plan, cancel, progress).await?
    };
    let mut report = new_report(cfg, cfg.url.to_string(), summary);
    report.summary.interrupted = cancel.is_cancelled();
    report.import = Some(import);
    Ok(report)
}

#[cfg(test)]
mod tests;
