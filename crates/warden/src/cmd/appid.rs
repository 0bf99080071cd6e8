//! `warden appid ...`: manage the App-IDs of a registry.

use std::io::{BufRead, BufReader, IsTerminal, Read};
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::Context;
use appid::{ImportCheck, ImportResponse, Record, Status};
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
    /// Register every profile in FILE (NDJSON, one profile per line). Every line is checked first
    /// and nothing is sent if one is bad; then chunks are sent, each one transaction. Records that
    /// are registered already with identical content are skipped, so after a failure the same
    /// command can simply be run again.
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

/// How many bad lines the check reports before it only counts them.
const REPORTED_LINES: usize = 20;

/// The lines of a file, read one at a time.
struct Lines {
    file: PathBuf,
    reader: BufReader<std::fs::File>,
    line: Vec<u8>,
    line_no: u64,
}

impl Lines {
    fn open(file: &Path) -> anyhow::Result<Self> {
        let f = std::fs::File::open(file).map_err(|e| UsageError(format!("cannot read {}: {e}", file.display())))?;
        Ok(Self { file: file.to_owned(), reader: BufReader::with_capacity(1 << 20, f), line: Vec::new(), line_no: 0 })
    }

    /// The next line's number (from 1), its bytes without the line end, and how many bytes were read.
    fn next_line(&mut self) -> anyhow::Result<Option<(u64, &[u8], u64)>> {
        self.line.clear();
        let n = self
            .reader
            .read_until(b'\n', &mut self.line)
            .with_context(|| format!("cannot read {}", self.file.display()))?;
        if n == 0 {
            return Ok(None);
        }
        self.line_no += 1;
        let text = self.line.strip_suffix(b"\n").unwrap_or(&self.line);
        Ok(Some((self.line_no, text.strip_suffix(b"\r").unwrap_or(text), n as u64)))
    }
}

/// Checks every line of the file as the registry will (appid's [`ImportCheck`]), before anything is
/// sent. Returns how many App-IDs the file names, or every bad line (the first
/// [`REPORTED_LINES`] of them) with its number and field.
fn check_file(file: &Path, bar: &indicatif::ProgressBar) -> anyhow::Result<usize> {
    let mut check = ImportCheck::new();
    let (mut bad, mut report) = (0u64, String::new());
    let mut lines = Lines::open(file)?;
    while let Some((line_no, line, read)) = lines.next_line()? {
        bar.inc(read);
        if let Err(e) = check.line(line) {
            bad += 1;
            if bad as usize <= REPORTED_LINES {
                let field = e.field.as_deref().map(|f| format!(" (field {f})")).unwrap_or_default();
                report.push_str(&format!("\n  line {line_no}: {}{field}", e.message));
            }
        }
    }
    if bad > 0 {
        if bad as usize > REPORTED_LINES {
            report.push_str(&format!("\n  and {} more", bad as usize - REPORTED_LINES));
        }
        anyhow::bail!("{}: {bad} bad lines; nothing was imported{report}", file.display());
    }
    Ok(check.count())
}

async fn import(c: &RegistryClient, file: &Path, chunk: u64, parallel: usize, json: bool) -> anyhow::Result<()> {
    let total = std::fs::metadata(file).map(|m| m.len()).unwrap_or(0);
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
    bar.set_message("checking");
    let count = match check_file(file, &bar) {
        Ok(n) => n,
        Err(e) => {
            bar.abandon();
            return Err(e);
        }
    };
    bar.reset();
    bar.set_message("importing");

    // Up to `parallel` chunks in flight, so that the registry parses one while it writes another.
    let mut in_flight: tokio::task::JoinSet<ChunkDone> = tokio::task::JoinSet::new();
    let mut done = Tally::default();
    let mut lines = Lines::open(file)?;
    let (mut buf, mut lines_in_buf, mut first_line) = (Vec::new(), 0u64, 1u64);
    loop {
        let next = lines.next_line()?;
        let at_end = next.is_none();
        if let Some((line_no, line, _)) = next {
            if lines_in_buf == 0 {
                first_line = line_no;
            }
            buf.extend_from_slice(line);
            buf.push(b'\n');
            lines_in_buf += 1;
        }
        if lines_in_buf == chunk || (at_end && lines_in_buf > 0) {
            while in_flight.len() >= parallel.max(1) {
                done.collect(in_flight.join_next().await, &bar);
            }
            if done.failed.is_some() {
                break;
            }
            let (body, from, c) = (Bytes::from(std::mem::take(&mut buf)), first_line, c.clone());
            in_flight.spawn(async move {
                let sent = body.len() as u64;
                (from, sent, c.import_ndjson(body).await)
            });
            lines_in_buf = 0;
        }
        if at_end {
            break;
        }
    }
    while let Some(finished) = in_flight.join_next().await {
        done.collect(Some(finished), &bar);
    }
    let Tally { imported, unchanged, failed } = done;
    if let Some(e) = failed {
        bar.abandon();
        return Err(anyhow::anyhow!(
            "{e:#}\nthe import stopped after {imported} of {count} records were imported ({unchanged} were \
             registered already). Each chunk of {chunk} lines is one transaction: the committed ones stay. Once the \
             cause is fixed, run the same command again: records registered already with identical content are \
             skipped"
        ));
    }
    bar.finish_and_clear();
    let secs = start.elapsed().as_secs_f64();
    if json {
        print_json(&serde_json::json!({
            "imported": imported,
            "unchanged": unchanged,
            "seconds": secs,
            "perSecond": imported as f64 / secs.max(1e-9),
        }))
    } else {
        println!("imported {imported} App-IDs in {secs:.1} s ({})", per_second(imported, secs));
        if unchanged > 0 {
            println!("{unchanged} were registered already with identical content and are unchanged");
        }
        Ok(())
    }
}

/// What the chunks sent so far did.
#[derive(Default)]
struct Tally {
    imported: u64,
    unchanged: u64,
    failed: Option<anyhow::Error>,
}

impl Tally {
    /// Accounts for one finished chunk.
    fn collect(&mut self, finished: Option<Result<ChunkDone, tokio::task::JoinError>>, bar: &indicatif::ProgressBar) {
        match finished {
            Some(Ok((_, sent, Ok(r)))) => {
                self.imported += r.imported;
                self.unchanged += r.unchanged;
                bar.inc(sent);
                bar.set_message(format!("{} imported", self.imported));
            }
            Some(Ok((from, _, Err(e)))) if self.failed.is_none() => self.failed = Some(relocate(e, from)),
            Some(Err(e)) if self.failed.is_none() => {
                self.failed = Some(anyhow::anyhow!("an import request failed: {e}"))
            }
            _ => {}
        }
    }
}

/// A finished chunk: its first line, its size, and what the registry answered.
type ChunkDone = (u64, u64, Result<ImportResponse, ClientError>);
