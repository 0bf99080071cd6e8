//! A PKI made at run time for tests: the CSE's server identity, vendor roots, device certificates
//! (valid, expired, under the wrong root, without the App-ID SAN), and HTTPS clients that trust the
//! test server and present a device identity. Thin wrappers over the `pki` crate that panic on
//! failure, as test helpers may.

use std::time::Duration;

use onem2m::{AeId, AppId};
pub use pki::{DeviceSpec, Fingerprint, Identity, Root, ServerIdentity, Validity};

/// A server CA and a certificate for `localhost`, `127.0.0.1` and `::1`.
pub fn server_identity() -> ServerIdentity {
    ServerIdentity::localhost().expect("server identity")
}

/// A vendor's root of trust, `CN=<name> Device Root`.
pub fn vendor_root(name: &str) -> Root {
    Root::generate(&format!("{name} Device Root")).expect("vendor root")
}

fn app_id(app_id: &str) -> AppId {
    AppId::parse(app_id).unwrap_or_else(|e| panic!("test App-ID: {e}"))
}

/// A device certificate for `app_id`, signed by `root`, valid for a year. For the "wrong root" case,
/// pass another vendor's root.
pub fn device(root: &Root, app_id_: &str) -> Identity {
    root.issue_device(&DeviceSpec::new(app_id(app_id_))).expect("device certificate")
}

/// A device certificate that also carries the absolute AE-ID `ae_id` (`//<sp-id>/<stem>`).
pub fn device_with_ae_id(root: &Root, app_id_: &str, ae_id: &str) -> Identity {
    let ae_id = AeId::parse(ae_id).unwrap_or_else(|e| panic!("test AE-ID: {e}"));
    root.issue_device(&DeviceSpec::new(app_id(app_id_)).ae_id(ae_id)).expect("device certificate")
}

/// A device certificate that expired yesterday.
pub fn expired_device(root: &Root, app_id_: &str) -> Identity {
    root.issue_device(&DeviceSpec::new(app_id(app_id_)).validity(Validity::expired())).expect("device certificate")
}

/// A certificate signed by `root` that claims no App-ID.
pub fn device_without_app_id(root: &Root) -> Identity {
    root.issue_device(&DeviceSpec::without_app_id()).expect("device certificate")
}

/// A reqwest client builder that trusts only `server_ca` and, when given, presents `device` as its
/// client certificate. Timeouts are set so that a test fails instead of hanging.
pub fn https_client(server_ca: &Root, device: Option<&Identity>) -> reqwest::ClientBuilder {
    let ca = reqwest::Certificate::from_der(server_ca.cert_der()).expect("server CA for reqwest");
    let mut builder = reqwest::Client::builder()
        .tls_certs_only([ca])
        .connect_timeout(Duration::from_secs(5))
        .timeout(Duration::from_secs(15));
    if let Some(device) = device {
        let identity =
            reqwest::Identity::from_pem(device.pem_bundle().as_bytes()).expect("device identity for reqwest");
        builder = builder.identity(identity);
    }
    builder
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn helpers_make_what_they_say() {
        let root = vendor_root("Acme");
        assert_eq!(root.subject(), "CN=Acme Device Root");
        let dev = device_with_ae_id(&root, "Racme01.com.acme.thermostat", "//acme.example.com/Sdev1");
        let claims = dev.claims().unwrap();
        assert_eq!(claims.app_id.as_str(), "Racme01.com.acme.thermostat");
        assert_eq!(claims.ae_id_uri.as_deref(), Some("//acme.example.com/Sdev1"));
        assert!(device_without_app_id(&root).claims().is_err());
        assert!(expired_device(&root, "Nx").claims().is_ok());
        assert!(https_client(&server_identity().ca, Some(&device(&root, "Nx"))).build().is_ok());
    }
}
