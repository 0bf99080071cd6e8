//! Printing and error helpers shared by the client subcommands.

use registry::ClientError;
use registry::client::RegistryClient;

use crate::common::{RegistryClientArgs, UsageError};

/// A registry client from the common flags.
pub(crate) fn client(args: &RegistryClientArgs) -> anyhow::Result<RegistryClient> {
    RegistryClient::new(&args.registry, args.token.clone()).map_err(|e| UsageError(e.to_string()).into())
}

/// A client error as a person should read it: the API's message and field first.
pub(crate) fn explain(e: ClientError) -> anyhow::Error {
    match e {
        ClientError::Api { status, error } => {
            let field = error.field.as_deref().map(|f| format!(" (field {f})")).unwrap_or_default();
            let hint = match status {
                401 => " — pass an admin or read token with --token or WARDEN_TOKEN",
                403 => " — this needs an admin token",
                _ => "",
            };
            anyhow::anyhow!("{}{field} [HTTP {status} {}]{hint}", error.message, error.error)
        }
        other => anyhow::anyhow!(other),
    }
}

/// Prints `value` as pretty JSON.
pub(crate) fn print_json<T: serde::Serialize>(value: &T) -> anyhow::Result<()> {
    println!("{}", serde_json::to_string_pretty(value)?);
    Ok(())
}

/// A rate, readable.
pub(crate) fn per_second(n: u64, secs: f64) -> String {
    if secs <= 0.0 {
        return "-".into();
    }
    format!("{:.0}/s", n as f64 / secs)
}
