//! The TS-0019 Upper Tester interface: commands a conformance test system sends in `X-M2M-UTCMD`,
//! answered in `X-M2M-UTRSP`.

use std::time::Duration;

use onem2m::{Error, Rsc};

use super::Cse;

/// The answer to an Upper Tester command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UtReply {
    pub rsc: Rsc,
    /// The `X-M2M-UTRSP` value, if the command has one.
    pub utrsp: Option<String>,
}

impl UtReply {
    fn ok(utrsp: Option<String>) -> Self {
        Self { rsc: Rsc::Ok, utrsp }
    }
}

fn seconds(arg: Option<&str>) -> Result<Duration, Error> {
    match arg.map(str::parse::<u64>) {
        Some(Ok(n)) if n > 0 => Ok(Duration::from_secs(n)),
        _ => Err(Error::bad_request("the command needs a positive number of seconds")),
    }
}

impl Cse {
    /// Runs one Upper Tester command. Command names are matched without regard to case.
    pub async fn upper_tester(&self, cmd: &str) -> Result<UtReply, Error> {
        let mut words = cmd.split_whitespace();
        let name = words.next().unwrap_or_default().to_ascii_lowercase();
        let arg = words.next();
        match name.as_str() {
            "status" => Ok(UtReply::ok(Some("RUNNING".into()))),
            "reset" => {
                self.store.clear().await.map_err(super::store_error)?;
                self.cache.clear();
                // Reset restores the configured behaviour too: the short expirations go.
                *self.tunables.write() = super::Tunables::of(&self.cfg);
                self.bootstrap().await?;
                Ok(UtReply::ok(None))
            }
            "enableshortresourceexpiration" => {
                let d = seconds(arg)?;
                let mut t = self.tunables.write();
                let before = t.default_expiration;
                t.default_expiration = d;
                t.expiration_check = d.min(Duration::from_secs(1));
                Ok(UtReply::ok(Some(before.as_secs().to_string())))
            }
            "disableshortresourceexpiration" => {
                let defaults = super::Tunables::of(&self.cfg);
                let mut t = self.tunables.write();
                t.default_expiration = defaults.default_expiration;
                t.expiration_check = defaults.expiration_check;
                Ok(UtReply::ok(None))
            }
            "enableshortrequestexpiration" => {
                let d = seconds(arg)?;
                let before = self.tunables.write().request_expiration.replace(d);
                Ok(UtReply::ok(Some(before.map(|b| b.as_secs()).unwrap_or(0).to_string())))
            }
            "disableshortrequestexpiration" => {
                self.tunables.write().request_expiration = None;
                Ok(UtReply::ok(None))
            }
            "getconfig" => match arg {
                Some("cse.type") => Ok(UtReply::ok(Some(
                    match self.cfg.cse_type {
                        onem2m::CseType::In => "IN",
                        onem2m::CseType::Mn => "MN",
                        onem2m::CseType::Asn => "ASN",
                    }
                    .into(),
                ))),
                Some("cse.cseID") | Some("cse.csi") => Ok(UtReply::ok(Some(self.cfg.cse_id.to_string()))),
                Some("cse.resourceName") => Ok(UtReply::ok(Some(self.cfg.cse_name.to_string()))),
                Some("cse.spID") => Ok(UtReply::ok(Some(self.cfg.sp_id.to_string()))),
                Some(other) => Err(Error::bad_request(format!("unknown configuration {other}"))),
                None => Err(Error::bad_request("GetConfig needs a configuration name")),
            },
            "" => Err(Error::bad_request("X-M2M-UTCMD is empty")),
            other => Err(Error::new(Rsc::NotImplemented, format!("unknown Upper Tester command {other}"))),
        }
    }
}
