//! `warden appid ...`: manage the App-IDs of a registry.

use std::io::{BufRead, BufReader, IsTerminal, Read};
use std::path::PathBuf;
use std::time::Instant;

use anyhow::Context;
use appid::{Record, Status};
use bytes::Bytes;
use onem2m::AppId;
use registry::ClientError;
use registry::client::{ListFilter, RegistryClient};

use super::util::{client, explain, per_second, print_json};
use crate::common::{RegistryClientArgs, UsageError};

#[derive(Debug, clap::Subcommand)]
pub(crate) enum Command {
    /// Register the profile in FILE (JSON; `-` reads stdin).
    Add {
        file: PathBuf,
        #[command(flatten)]
        out: Output,
    },
    /// Show one App-ID's record and check its signature; fails for an unknown App-ID.
    Show {
        id: String,
        #[command(flatten)]
        out: Output,
    },
    /// List App-IDs (all pages), optionally filtered.
    List {
        /// consumer, industrial or critical-infrastructure.
        #[arg(long)]
        class: Option<String>,
        /// active, suspended or revoked.
        #[arg(long)]
        status: Option<String>,
        /// application.type, exactly.
        #[arg(long = "type")]
        app_type: Option<String>,
        /// A substring of the App-ID, the name or the type.
        #[arg(long, short)]
        q: Option<String>,
        /// Stop after this many records.
        #[arg(long)]
        max: Option<u64>,
        /// One JSON record per line (NDJSON) instead of a table.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        registry: RegistryClientArgs,
    },
    /// Suspend an App-ID: its AEs are refused until it is reactivated.
    Suspend(StatusArgs),
    /// Revoke an App-ID: its AEs are refused and blocked.
    Revoke(StatusArgs),
    /// Make a suspended or revoked App-ID active again.
    Reactivate(StatusArgs),
    /// Deny one device (an AE-ID) or a pattern of devices (with *).
    Deny {
        id: String,
        ae_id: String,
        #[arg(long)]
        reason: String,
        #[command(flatten)]
        out: Output,
    },
    /// Remove a device deny entry.
    Allow {
        id: String,
        ae_id: String,
        #[arg(long)]
        reason: Option<String>,
        #[command(flatten)]
        out: Output,
    },
    /// Register every profile in FILE (NDJSON, one profile per line), in chunks; each chunk is
    /// one transaction.
    Import {
        file: PathBuf,
        /// Lines per request.
        #[arg(long, default_value_t = 10_000, value_parser = clap::value_parser!(u64).range(1..=100_000))]
        chunk: u64,
        /// Chunks in flight at once.
        #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u64).range(1..=16))]
        parallel: u64,
        /// Print the summary as JSON.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        registry: RegistryClientArgs,
    },
}

#[derive(Debug, clap::Args)]
pub(crate) struct Output {
    /// Print the registry's JSON instead of a summary.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    registry: RegistryClientArgs,
}

#[derive(Debug, clap::Args)]
pub(crate) struct StatusArgs {
    id: String,
    /// Why (kept in the registry's audit trail).
    #[arg(long)]
    reason: String,
    #[command(flatten)]
    out: Output,
}

fn parse_id(id: &str) -> anyhow::Result<AppId> {
    AppId::parse(id).map_err(|e| UsageError(e.to_string()).into())
}

fn summary(r: &Record) -> String {
    format!(
        "{}  version {}  {}  {} {} \"{}\"  auth {}  denied devices {}",
        r.app_id,
        r.version,
        r.status.as_str(),
        r.application.class.as_str(),
        r.application.app_type,
        r.application.name,
        serde_json::to_value(r.authentication.method)
            .ok()
            .and_then(|v| v.as_str().map(str::to_owned))
            .unwrap_or_default(),
        r.devices.denied.len(),
    )
}

fn print_record(r: &Record, json: bool) -> anyhow::Result<()> {
    if json {
        print_json(r)
    } else {
        println!("{}", summary(r));
        Ok(())
    }
}

pub(crate) async fn run(command: Command) -> anyhow::Result<()> {
    match command {
        Command::Add { file, out } => {
            let body = read_input(&file)?;
            let r = client(&out.registry)?.create_json(Bytes::from(body)).await.map_err(explain)?;
            if !out.json {
                print!("registered ");
            }
            print_record(&r, out.json)
        }
        Command::Show { id, out } => show(&parse_id(&id)?, &out).await,
        Command::List { class, status, app_type, q, max, json, registry } => {
            let c = client(&registry)?;
            list(&c, ListFilter { class, app_type, status, q, cursor: None, limit: Some(1000) }, max, json).await
        }
        Command::Suspend(a) => set_status(a, Status::Suspended).await,
        Command::Revoke(a) => set_status(a, Status::Revoked).await,
        Command::Reactivate(a) => set_status(a, Status::Active).await,
        Command::Deny { id, ae_id, reason, out } => {
            let r = client(&out.registry)?.deny_device(&parse_id(&id)?, &ae_id, &reason).await.map_err(explain)?;
            print_record(&r, out.json)
        }
        Command::Allow { id, ae_id, reason, out } => {
            let c = client(&out.registry)?;
            let r = c.allow_device(&parse_id(&id)?, &ae_id, reason.as_deref()).await.map_err(explain)?;
            print_record(&r, out.json)
        }
        Command::Import { file, chunk, parallel, json, registry } => {
            import(&client(&registry)?, &file, chunk, usize::try_from(parallel).unwrap_or(2), json).await
        }
    }
}

fn read_input(file: &PathBuf) -> anyhow::Result<Vec<u8>> {
    let mut body = Vec::new();
    if file.as_os_str() == "-" {
        std::io::stdin().read_to_end(&mut body).context("cannot read stdin")?;
    } else {
        body = std::fs::read(file).map_err(|e| UsageError(format!("cannot read {}: {e}", file.display())))?;
    }
    Ok(body)
}

async fn show(id: &AppId, out: &Output) -> anyhow::Result<()> {
    let c = client(&out.registry)?;
    let signed = c.get(id).await.map_err(|e| match e {
        ClientError::Api { status: 404, .. } => anyhow::anyhow!("{id} is not registered"),
        other => explain(other),
    })?;
    let keys = c.keys().await.map_err(explain)?;
    signed.verify(&keys).map_err(|e| anyhow::anyhow!("the registry's answer does not verify: {e}"))?;
    if out.json {
        println!("{}", String::from_utf8_lossy(&signed.body));
    } else {
        let r = &signed.value;
        println!("{}", summary(r));
        println!(
            "  registrant  {}{}",
            r.registrant.name,
            r.registrant.contact.as_deref().map(|c| format!(" <{c}>")).unwrap_or_default()
        );
        println!("  signature   valid ({})", signed.signature.split(',').next().unwrap_or_default());
        if !r.devices.denied.is_empty() {
            println!("  denied      {}", r.devices.denied.join(", "));
        }
    }
    Ok(())
}

async fn list(c: &RegistryClient, mut filter: ListFilter, max: Option<u64>, json: bool) -> anyhow::Result<()> {
    let mut shown = 0u64;
    loop {
        let page = c.list(&filter).await.map_err(explain)?;
        for r in &page.items {
            if max.is_some_and(|m| shown >= m) {
                return Ok(());
            }
            if json {
                println!("{}", serde_json::to_string(r)?);
            } else {
                println!("{}", summary(r));
            }
            shown += 1;
        }
        match page.next {
            Some(next) => filter.cursor = Some(next),
            None => break,
        }
    }
    if !json {
        eprintln!("{shown} App-IDs");
    }
    Ok(())
}

async fn set_status(a: StatusArgs, status: Status) -> anyhow::Result<()> {
    let r = client(&a.out.registry)?.set_status(&parse_id(&a.id)?, status, &a.reason).await.map_err(explain)?;
    print_record(&r, a.out.json)
}

/// Rewrites the registry's `line N:` (within a chunk) to the line of the file.
fn relocate(e: ClientError, first_line: u64) -> anyhow::Error {
    match e {
        ClientError::Api { status, mut error } => {
            if let Some(rest) = error.message.strip_prefix("line ")
                && let Some((n, tail)) = rest.split_once(':')
                && let Ok(n) = n.parse::<u64>()
            {
                error.message = format!("line {}:{tail}", first_line + n - 1);
            }
            explain(ClientError::Api { status, error })
        }
        other => explain(other),
    }
}

async fn import(c: &RegistryClient, file: &PathBuf, chunk: u64, parallel: usize, json: bool) -> anyhow::Result<()> {
    let f = std::fs::File::open(file).map_err(|e| UsageError(format!("cannot read {}: {e}", file.display())))?;
    let total = f.metadata().map(|m| m.len()).unwrap_or(0);
    let mut reader = BufReader::with_capacity(1 << 20, f);
    let bar = if std::io::stdout().is_terminal() {
        let bar = indicatif::ProgressBar::with_draw_target(Some(total), indicatif::ProgressDrawTarget::stdout());
        if let Ok(style) = indicatif::ProgressStyle::with_template(
            "{bar:40} {bytes}/{total_bytes} {msg} ({elapsed}, about {eta} left)",
        ) {
            bar.set_style(style);
        }
        bar
    } else {
        indicatif::ProgressBar::hidden()
    };
    let start = Instant::now();
    // Up to `parallel` chunks in flight, so that the registry parses one while it writes another.
    let mut in_flight: tokio::task::JoinSet<ChunkDone> = tokio::task::JoinSet::new();
    let (mut imported, mut line_no, mut buf, mut line) = (0u64, 0u64, Vec::new(), Vec::new());
    let (mut lines_in_buf, mut first_line) = (0u64, 1u64);
    let mut failed: Option<anyhow::Error> = None;
    loop {
        line.clear();
        let n = reader.read_until(b'\n', &mut line).with_context(|| format!("cannot read {}", file.display()))?;
        if n > 0 {
            line_no += 1;
            buf.extend_from_slice(&line);
            if !line.ends_with(b"\n") {
                buf.push(b'\n');
            }
            lines_in_buf += 1;
        }
        if (n == 0 && !buf.is_empty()) || lines_in_buf == chunk {
            while in_flight.len() >= parallel.max(1) {
                collect(in_flight.join_next().await, &bar, &mut imported, &mut failed);
            }
            if failed.is_some() {
                break;
            }
            let (body, from, c) = (Bytes::from(std::mem::take(&mut buf)), first_line, c.clone());
            in_flight.spawn(async move {
                let sent = body.len() as u64;
                (from, sent, c.import_ndjson(body).await.map(|r| r.imported))
            });
            lines_in_buf = 0;
            first_line = line_no + 1;
        }
        if n == 0 {
            break;
        }
    }
    while let Some(done) = in_flight.join_next().await {
        collect(Some(done), &bar, &mut imported, &mut failed);
    }
    if let Some(e) = failed {
        bar.abandon();
        return Err(e.context(format!(
            "{imported} records were imported (each chunk of {chunk} lines is one transaction; the failed chunk registered nothing)"
        )));
    }
    bar.finish_and_clear();
    let secs = start.elapsed().as_secs_f64();
    if json {
        print_json(
            &serde_json::json!({"imported": imported, "seconds": secs, "perSecond": imported as f64 / secs.max(1e-9)}),
        )
    } else {
        println!("imported {imported} App-IDs in {secs:.1} s ({})", per_second(imported, secs));
        Ok(())
    }
}

/// A finished chunk: its first line, its size, and how many records it registered.
type ChunkDone = (u64, u64, Result<u64, ClientError>);

/// Accounts for one finished chunk.
fn collect(
    done: Option<Result<ChunkDone, tokio::task::JoinError>>,
    bar: &indicatif::ProgressBar,
    imported: &mut u64,
    failed: &mut Option<anyhow::Error>,
) {
    match done {
        Some(Ok((_, sent, Ok(n)))) => {
            *imported += n;
            bar.inc(sent);
            bar.set_message(format!("{imported} imported"));
        }
        Some(Ok((from, _, Err(e)))) if failed.is_none() => *failed = Some(relocate(e, from)),
        Some(Err(e)) if failed.is_none() => *failed = Some(anyhow::anyhow!("an import request failed: {e}")),
        _ => {}
    }
}
