//! `warden pki ...`: a demo PKI. `init` makes a root of trust per vendor and the CSE's HTTPS
//! identity; `device` issues a device certificate with the App-ID (and AE-ID) SANs under a vendor's
//! root. The files follow `pki::PkiDir`'s layout, which `warden up` reads.

use std::io::Write;
use std::path::{Path, PathBuf};

use onem2m::{AeId, AppId};
use pki::{DeviceSpec, PkiDir, PkiError, Validity};

use crate::common::UsageError;

const DEFAULT_DIR: &str = "./warden-data/pki";

#[derive(Debug, clap::Subcommand)]
pub(crate) enum Command {
    /// Create a root of trust per vendor and the CSE's HTTPS identity. Existing ones are kept.
    Init(InitArgs),
    /// Issue a device certificate carrying the App-ID (and AE-ID) SANs, signed by a vendor's root.
    Device(DeviceArgs),
}

#[derive(Debug, clap::Args)]
pub(crate) struct InitArgs {
    /// The PKI directory.
    #[arg(long, default_value = DEFAULT_DIR)]
    dir: PathBuf,
    /// A vendor to create a root of trust for; repeat for several.
    #[arg(long = "vendor", value_name = "NAME", default_value = "demo")]
    vendors: Vec<String>,
    /// A DNS name or IP address for the CSE's HTTPS certificate; repeat for several.
    #[arg(long = "server-name", value_name = "NAME", default_values = pki::DEFAULT_SERVER_NAMES)]
    server_names: Vec<String>,
}

#[derive(Debug, clap::Args)]
pub(crate) struct DeviceArgs {
    /// The App-ID, e.g. Racme01.com.acme.thermostat.
    #[arg(long)]
    app_id: String,
    /// The device's absolute AE-ID, //<sp-id>/<S-stem> (or //<sp-id>/<cse-id>/<C-stem>).
    #[arg(long)]
    ae_id: Option<String>,
    /// The vendor whose root signs the certificate.
    #[arg(long, default_value = "demo")]
    vendor: String,
    /// The PKI directory.
    #[arg(long, default_value = DEFAULT_DIR)]
    dir: PathBuf,
    /// Validity in days.
    #[arg(long, default_value_t = 365, value_parser = clap::value_parser!(u32).range(1..=36500))]
    days: u32,
    /// The directory under <dir>/devices/ [default: the App-ID, plus _<stem> with an AE-ID, and a
    /// -2, -3, ... suffix when taken]. An explicit name must be free.
    #[arg(long)]
    name: Option<String>,
}

pub(crate) async fn run(command: Command) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    match command {
        Command::Init(args) => init(&args, &mut out),
        Command::Device(args) => device(&args, &mut out),
    }
}

/// Mistakes in the command line (names, identifiers, unknown vendors) exit with `EX_USAGE`.
fn usage_or_failure(e: PkiError) -> anyhow::Error {
    match e {
        PkiError::InvalidInput(_) | PkiError::UnknownVendor { .. } | PkiError::Exists(_) | PkiError::San(_) => {
            UsageError(e.to_string()).into()
        }
        other => anyhow::Error::new(other),
    }
}

/// One element of a registry profile's `authentication.roots` (DESIGN.md §5), in that order.
#[derive(serde::Serialize)]
struct RootEntry<'a> {
    subject: &'a str,
    sha256: String,
    pem: &'a str,
}

fn init(args: &InitArgs, out: &mut impl Write) -> anyhow::Result<()> {
    let dir = PkiDir::new(&args.dir);
    writeln!(out, "PKI directory: {}", args.dir.display())?;
    for vendor in &args.vendors {
        let (root, created) = dir.ensure_root(vendor).map_err(usage_or_failure)?;
        let vendor_dir = dir.vendor_dir(vendor).map_err(usage_or_failure)?;
        let entry = RootEntry { subject: root.subject(), sha256: root.fingerprint().to_hex(), pem: root.cert_pem() };
        writeln!(out)?;
        writeln!(out, "vendor {vendor:?}: root of trust {}", if created { "created" } else { "already there, kept" })?;
        writeln!(out, "  certificate  {}", vendor_dir.join(pki::CERT_FILE).display())?;
        writeln!(out, "  private key  {} (mode 0600; keep it secret)", vendor_dir.join(pki::KEY_FILE).display())?;
        writeln!(out, "  subject      {}", root.subject())?;
        writeln!(out, "  sha256       {}", root.fingerprint())?;
        writeln!(out, "  entry for a registry profile's authentication.roots:")?;
        for line in serde_json::to_string_pretty(&entry)?.lines() {
            writeln!(out, "    {line}")?;
        }
    }
    let names: Vec<&str> = args.server_names.iter().map(String::as_str).collect();
    let (server, created) = dir.ensure_server(&names).map_err(usage_or_failure)?;
    writeln!(out)?;
    writeln!(out, "CSE server identity: {}", if created { "created" } else { "already there, kept" })?;
    writeln!(
        out,
        "  CA certificate      {} (HTTPS clients trust this)",
        dir.server_ca_dir().join(pki::CERT_FILE).display()
    )?;
    writeln!(out, "  server certificate  {}", dir.server_dir().join(pki::CERT_FILE).display())?;
    writeln!(out, "  server key          {} (mode 0600)", dir.server_dir().join(pki::KEY_FILE).display())?;
    writeln!(out, "  CA sha256           {}", server.ca.fingerprint())?;
    if created {
        writeln!(out, "  names               {}", names.join(", "))?;
    }
    writeln!(out)?;
    let first = args.vendors.first().map_or("demo", String::as_str);
    writeln!(out, "next: warden pki device --dir {} --vendor {first} --app-id <App-ID>", args.dir.display())?;
    Ok(())
}

fn device(args: &DeviceArgs, out: &mut impl Write) -> anyhow::Result<()> {
    let app_id = AppId::parse(&args.app_id).map_err(|e| UsageError(format!("--app-id: {e}")))?;
    let ae_id = match &args.ae_id {
        None => None,
        Some(s) => match AeId::parse(s) {
            Ok(id @ AeId::Absolute { .. }) => Some(id),
            Ok(_) => {
                return Err(UsageError(format!(
                    "--ae-id {s:?}: a certificate carries the absolute AE-ID, //<sp-id>/<S-stem> or //<sp-id>/<cse-id>/<C-stem>"
                ))
                .into());
            }
            Err(e) => return Err(UsageError(format!("--ae-id: {e}")).into()),
        },
    };
    let dir = PkiDir::new(&args.dir);
    let root = dir.load_root(&args.vendor).map_err(usage_or_failure)?;
    let mut spec = DeviceSpec::new(app_id.clone()).validity(Validity::days(args.days));
    if let Some(ae_id) = &ae_id {
        spec = spec.ae_id(ae_id.clone());
    }
    let identity = root.issue_device(&spec).map_err(usage_or_failure)?;
    let (name, exact) = match &args.name {
        Some(name) => (name.clone(), true),
        None => (PkiDir::device_name(&app_id, ae_id.as_ref()), false),
    };
    let device_dir = dir.write_device(&name, exact, &identity).map_err(usage_or_failure)?;

    let mut sans = vec![pki::san::app_id_uri(&app_id)];
    sans.extend(ae_id.as_ref().map(ToString::to_string));
    let (cert, key) = (device_dir.join(pki::CERT_FILE), device_dir.join(pki::KEY_FILE));
    writeln!(out, "device certificate for App-ID {app_id}, signed by vendor {:?} ({})", args.vendor, root.subject())?;
    writeln!(out, "  certificate  {}", cert.display())?;
    writeln!(out, "  private key  {} (mode 0600)", key.display())?;
    writeln!(out, "  SANs         {}", sans.join(", "))?;
    writeln!(out, "  sha256       {} (the credential ID)", identity.fingerprint())?;
    writeln!(out, "  valid for    {} days", args.days)?;
    let ca = dir.server_ca_dir().join(pki::CERT_FILE);
    if ca.is_file() {
        writeln!(out, "try: {}", curl_hint(&ca, &cert, &key))?;
    }
    Ok(())
}

fn curl_hint(ca: &Path, cert: &Path, key: &Path) -> String {
    format!(
        "curl --cacert {} --cert {} --key {} -H 'X-M2M-Origin: C' -H 'X-M2M-RI: 1' -H 'X-M2M-RVI: 4' https://127.0.0.1:8443/cse-in",
        ca.display(),
        cert.display(),
        key.display()
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use anyhow::Context;

    fn load_device(dir: &Path) -> anyhow::Result<pki::Identity> {
        let (cert, key) = pki::read_pem_pair(dir)?.context("no device files")?;
        Ok(pki::Identity::from_pem(&cert, &key)?)
    }

    fn init_args(dir: &Path, vendors: &[&str]) -> InitArgs {
        InitArgs {
            dir: dir.to_owned(),
            vendors: vendors.iter().map(|v| (*v).to_owned()).collect(),
            server_names: pki::DEFAULT_SERVER_NAMES.iter().map(|n| (*n).to_owned()).collect(),
        }
    }

    fn device_args(dir: &Path, app_id: &str, ae_id: Option<&str>, vendor: &str) -> DeviceArgs {
        DeviceArgs {
            app_id: app_id.to_owned(),
            ae_id: ae_id.map(str::to_owned),
            vendor: vendor.to_owned(),
            dir: dir.to_owned(),
            days: 30,
            name: None,
        }
    }

    fn text(out: Vec<u8>) -> String {
        String::from_utf8(out).unwrap()
    }

    fn is_usage(e: &anyhow::Error) -> bool {
        e.downcast_ref::<UsageError>().is_some()
    }

    #[test]
    fn init_prints_a_ready_roots_entry_and_is_idempotent() {
        let tmp = tempfile::tempdir().unwrap();
        let mut out = Vec::new();
        init(&init_args(tmp.path(), &["acme", "beta"]), &mut out).unwrap();
        let printed = text(out);
        let dir = PkiDir::new(tmp.path());
        for vendor in ["acme", "beta"] {
            let root = dir.load_root(vendor).unwrap();
            assert!(printed.contains(&format!("sha256       {}", root.fingerprint())), "{printed}");
            assert!(printed.contains(&format!("subject      CN={vendor} device root")), "{printed}");
        }
        // The JSON entry after "authentication.roots:" parses and matches the root on disk.
        let json_start = printed.find("    {").unwrap();
        let json_end = json_start + printed[json_start..].find("\n    }").unwrap() + 6;
        let entry: serde_json::Value = serde_json::from_str(&printed[json_start..json_end]).unwrap();
        let acme = dir.load_root("acme").unwrap();
        assert_eq!(entry["sha256"], acme.fingerprint().to_hex());
        assert_eq!(entry["subject"], "CN=acme device root");
        assert_eq!(entry["pem"], acme.cert_pem());
        assert!(!printed.contains("PRIVATE KEY"), "no key is ever printed");
        assert!(dir.load_server().is_ok());

        let mut again = Vec::new();
        init(&init_args(tmp.path(), &["acme"]), &mut again).unwrap();
        let again = text(again);
        assert!(again.contains("already there, kept"), "{again}");
        assert_eq!(dir.load_root("acme").unwrap().fingerprint(), acme.fingerprint());
    }

    #[test]
    fn device_carries_the_sans_and_chains_to_the_vendor() {
        let tmp = tempfile::tempdir().unwrap();
        init(&init_args(tmp.path(), &["demo"]), &mut Vec::new()).unwrap();
        let mut out = Vec::new();
        let args = device_args(tmp.path(), "Racme01.com.acme.thermostat", Some("//acme.example.com/Sdev1"), "demo");
        device(&args, &mut out).unwrap();
        let printed = text(out);
        let dev_dir = tmp.path().join("devices").join("Racme01.com.acme.thermostat_Sdev1");
        let dev = load_device(&dev_dir).unwrap();
        let claims = dev.claims().unwrap();
        assert_eq!(claims.app_id.as_str(), "Racme01.com.acme.thermostat");
        assert_eq!(claims.ae_id_uri.as_deref(), Some("//acme.example.com/Sdev1"));
        assert!(printed.contains(&dev.fingerprint().to_hex()), "{printed}");
        assert!(printed.contains("urn:onem2m:app-id:Racme01.com.acme.thermostat, //acme.example.com/Sdev1"));
        assert!(printed.contains("curl --cacert"), "{printed}");

        // A second one gets its own directory; an explicit name that is taken is refused.
        device(&args, &mut Vec::new()).unwrap();
        assert!(tmp.path().join("devices").join("Racme01.com.acme.thermostat_Sdev1-2").is_dir());
        let named = DeviceArgs { name: Some("Racme01.com.acme.thermostat_Sdev1".into()), ..args };
        assert!(is_usage(&device(&named, &mut Vec::new()).unwrap_err()));
    }

    #[test]
    fn bad_input_is_a_usage_error() {
        let tmp = tempfile::tempdir().unwrap();
        init(&init_args(tmp.path(), &["demo"]), &mut Vec::new()).unwrap();
        let cases = [
            device_args(tmp.path(), "Xnot-an-app-id", None, "demo"),
            device_args(tmp.path(), "Rtoo.short", None, "demo"),
            device_args(tmp.path(), "Nok", Some("Sdev1"), "demo"),
            device_args(tmp.path(), "Nok", Some("//bad_sp/Sdev1"), "demo"),
            device_args(tmp.path(), "Nok", None, "nobody"),
            device_args(tmp.path(), "Nok", None, "../demo"),
        ];
        for args in cases {
            let err = device(&args, &mut Vec::new()).unwrap_err();
            assert!(is_usage(&err), "{args:?}: {err:#}");
        }
        let err = device(&device_args(tmp.path(), "Nok", None, "nobody"), &mut Vec::new()).unwrap_err();
        assert!(err.to_string().contains("known vendors: demo"), "{err}");
        assert!(is_usage(&init(&init_args(tmp.path(), &["bad/name"]), &mut Vec::new()).unwrap_err()));
        let bad_server = InitArgs { server_names: vec!["not a name".into()], ..init_args(&tmp.path().join("x"), &[]) };
        assert!(is_usage(&init(&bad_server, &mut Vec::new()).unwrap_err()));
        assert!(!tmp.path().join("devices").exists(), "nothing was written for bad input");
    }
}
