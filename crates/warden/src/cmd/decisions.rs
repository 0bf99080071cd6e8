//! `warden decisions`: read a CSE's admission decision log through its admin API.

use std::time::Duration;

use serde::Deserialize;

use super::util::print_json;
use crate::common::UsageError;

#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// The CSE's base URL.
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    cse: String,
    /// Only decisions about this App-ID.
    #[arg(long)]
    app_id: Option<String>,
    /// Only decisions about this AE-ID.
    #[arg(long)]
    ae_id: Option<String>,
    /// Only admitted or only rejected.
    #[arg(long, value_parser = ["admitted", "rejected"])]
    outcome: Option<String>,
    /// At most this many, newest first.
    #[arg(long, default_value_t = 50, value_parser = clap::value_parser!(u32).range(1..=1000))]
    limit: u32,
    /// The CSE's admin token.
    #[arg(long, env = "WARDEN_TOKEN", hide_env_values = true)]
    token: Option<String>,
    /// Print the JSON answer.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Deserialize)]
struct Page {
    decisions: Vec<cse::store::decisions::Decision>,
}

/// Percent-encodes a query value.
fn encode(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                char::from(b).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

pub(crate) async fn run(args: Args) -> anyhow::Result<()> {
    let token = args
        .token
        .clone()
        .ok_or_else(|| UsageError("the CSE's admin token is needed: --token or WARDEN_TOKEN".into()))?;
    let mut url = format!("{}/admin/decisions?limit={}", args.cse.trim_end_matches('/'), args.limit);
    for (k, v) in [("appId", &args.app_id), ("aeId", &args.ae_id), ("outcome", &args.outcome)] {
        if let Some(v) = v {
            url.push_str(&format!("&{k}={}", encode(v)));
        }
    }
    let http = reqwest::Client::builder().no_proxy().timeout(Duration::from_secs(30)).build()?;
    let resp = http
        .get(&url)
        .bearer_auth(token)
        .send()
        .await
        .map_err(|e| anyhow::anyhow!("cannot reach the CSE at {}: {e}", args.cse))?;
    let status = resp.status();
    let body = resp.bytes().await?;
    if !status.is_success() {
        let msg = serde_json::from_slice::<serde_json::Value>(&body)
            .ok()
            .and_then(|v| v["error"].as_str().map(str::to_owned))
            .unwrap_or_else(|| String::from_utf8_lossy(&body).into_owned());
        let hint = if status == 404 { " (is admission on, and an admin token set on the CSE?)" } else { "" };
        anyhow::bail!("the CSE answered {status}: {msg}{hint}");
    }
    let page: Page = serde_json::from_slice(&body)?;
    if args.json {
        return print_json(&page.decisions);
    }
    if page.decisions.is_empty() {
        println!("no decisions");
        return Ok(());
    }
    println!("{:<24} {:<14} {:<34} {:>3} {:<9} {:>4}  REASON", "TIME", "AE-ID", "APP-ID", "VER", "OUTCOME", "RSC");
    for d in &page.decisions {
        let version = d.profile_version.map(|v| v.to_string()).unwrap_or_else(|| "-".into());
        let rule = d.rule.as_deref().map(|r| format!(" [rule {r:?}]")).unwrap_or_default();
        // Refusals of later requests (not registrations) are marked, with how many an entry stands for.
        let stage = match (d.stage.as_str(), d.count) {
            ("request", 1) => " [request]".to_owned(),
            ("request", n) => format!(" [request, x{n}]"),
            (_, 1) => String::new(),
            (_, n) => format!(" [x{n}]"),
        };
        println!(
            "{:<24} {:<14} {:<34} {:>3} {:<9} {:>4}  {}: {}{rule}{stage}",
            d.at, d.ae_id, d.app_id, version, d.outcome, d.rsc, d.reason, d.message
        );
    }
    Ok(())
}
