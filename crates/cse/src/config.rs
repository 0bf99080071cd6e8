//! The CSE's configuration: identity, limits and behaviour. Defaults match the common oneM2M test
//! setups (ACME's): CSE-ID `/id-in`, CSEBase `cse-in`, SP-ID `//acme.example.com`, an IN-CSE,
//! admin originator `CAdmin`.

use std::time::Duration;

use onem2m::{CseId, CseType, ResourceName, SpId};

use crate::notify::NotifyConfig;

/// What the request-processing core needs to know, and how the CSE's notification engine delivers.
/// Built once; the Upper Tester's runtime switches live in [`crate::core::Tunables`].
#[derive(Debug, Clone)]
pub struct CseConfig {
    pub cse_id: CseId,
    pub cse_name: ResourceName,
    pub sp_id: SpId,
    pub cse_type: CseType,
    /// The originator with full access to everything.
    pub admin: String,
    /// Points of access advertised in the CSEBase (`poa`).
    pub poa: Vec<String>,
    /// Expiration given to resources created without `et`.
    pub default_expiration: Duration,
    /// The latest `et` a client may ask for, counted from now; later ones are lowered to it.
    pub max_expiration: Duration,
    /// Discovery returns at most this many resources, whatever `lim` says.
    pub max_discovery_results: usize,
    /// The number of resources a retrieve with child resources (`rcn` 4, 5, 6, 8) returns at most.
    pub max_children: usize,
    /// The resources one discovery, or one retrieve with child resources, examines at most (the
    /// candidates, and the children that `c.` filters read): when they run out, the answer is
    /// what was found so far, partial (`cnst` 1), with the `cnot` to continue from.
    pub max_discovery_scan: usize,
    /// How long the CSE waits for a subscription's verification request to be answered.
    pub verification_timeout: Duration,
    /// Serve the TS-0019 Upper Tester interface `POST /__ut__`.
    pub upper_tester: bool,
    /// How notifications are delivered. Its `originator` is replaced by `cse_id` when the service
    /// starts the engine.
    pub notify: NotifyConfig,
}

impl Default for CseConfig {
    fn default() -> Self {
        Self {
            cse_id: CseId::parse("/id-in").expect("valid"),
            cse_name: ResourceName::parse("cse-in").expect("valid"),
            sp_id: SpId::parse("//acme.example.com").expect("valid"),
            cse_type: CseType::In,
            admin: "CAdmin".into(),
            poa: Vec::new(),
            default_expiration: Duration::from_secs(5 * 365 * 24 * 3600),
            max_expiration: Duration::from_secs(100 * 365 * 24 * 3600),
            max_discovery_results: 100_000,
            max_children: 10_000,
            max_discovery_scan: 100_000,
            verification_timeout: Duration::from_secs(5),
            upper_tester: false,
            notify: NotifyConfig::default(),
        }
    }
}

impl CseConfig {
    /// The CSEBase's resource ID: the CSE-ID without its slash (`id-in`).
    pub fn cse_ri(&self) -> &str {
        self.cse_id.name()
    }

    /// Checks the limits that the types do not: every duration and count usable, and the
    /// expirations in order. The message names the setting.
    pub fn validate(&self) -> Result<(), String> {
        if self.default_expiration.is_zero() {
            return Err("default_expiration must be longer than zero".into());
        }
        if self.max_expiration < self.default_expiration {
            return Err("max_expiration must not be shorter than default_expiration".into());
        }
        if self.max_discovery_results == 0 || self.max_children == 0 || self.max_discovery_scan == 0 {
            return Err("max_discovery_results, max_children and max_discovery_scan must be at least 1".into());
        }
        if self.verification_timeout.is_zero() {
            return Err("verification_timeout must be longer than zero".into());
        }
        self.notify.validate().map_err(|e| format!("notify: {e}"))
    }

    /// The notification engine's settings, sending as this CSE.
    pub fn notify_config(&self) -> NotifyConfig {
        NotifyConfig { originator: self.cse_id.clone(), ..self.notify.clone() }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_defaults_are_valid_and_bad_values_are_named() {
        let ok = CseConfig::default();
        assert_eq!(ok.validate(), Ok(()));
        assert_eq!(ok.notify_config().originator, ok.cse_id);
        let bad = |f: fn(&mut CseConfig)| {
            let mut c = CseConfig::default();
            f(&mut c);
            c.validate().unwrap_err()
        };
        assert!(bad(|c| c.default_expiration = Duration::ZERO).contains("default_expiration"));
        assert!(bad(|c| c.max_expiration = Duration::from_secs(1)).contains("max_expiration"));
        assert!(bad(|c| c.max_children = 0).contains("max_children"));
        assert!(bad(|c| c.max_discovery_scan = 0).contains("max_discovery_scan"));
        assert!(bad(|c| c.verification_timeout = Duration::ZERO).contains("verification_timeout"));
        assert!(bad(|c| c.notify.queue_depth = 0).contains("notify: queue_depth"));
    }
}
