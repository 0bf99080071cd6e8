//! The CSE's configuration: identity, limits and behaviour. Defaults match the common oneM2M test
//! setups (ACME's): CSE-ID `/id-in`, CSEBase `cse-in`, SP-ID `//acme.example.com`, an IN-CSE,
//! admin originator `CAdmin`.

use std::time::Duration;

use onem2m::{CseId, CseType, ResourceName, SpId};

/// What the request-processing core needs to know. Built once; the Upper Tester's runtime switches
/// live in [`crate::core::Tunables`].
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
    /// How long the CSE waits for a subscription's verification request to be answered.
    pub verification_timeout: Duration,
    /// Serve the TS-0019 Upper Tester interface `POST /__ut__`.
    pub upper_tester: bool,
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
            verification_timeout: Duration::from_secs(5),
            upper_tester: false,
        }
    }
}

impl CseConfig {
    /// The CSEBase's resource ID: the CSE-ID without its slash (`id-in`).
    pub fn cse_ri(&self) -> &str {
        self.cse_id.name()
    }
}
