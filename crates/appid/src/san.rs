//! The certificate SAN convention of DESIGN.md §8: a device certificate carries its App-ID as the URI
//! `urn:onem2m:app-id:<App-ID>`.

use onem2m::AppId;

/// The prefix of the App-ID SAN URI.
pub const APP_ID_URI_PREFIX: &str = "urn:onem2m:app-id:";

/// The SAN URI that carries `app_id`.
pub fn app_id_uri(app_id: &AppId) -> String {
    format!("{APP_ID_URI_PREFIX}{app_id}")
}

/// The App-ID in a SAN URI, if it is one (prefix matched exactly, App-ID valid in the current release).
pub fn parse_app_id_uri(uri: &str) -> Option<AppId> {
    AppId::parse(uri.strip_prefix(APP_ID_URI_PREFIX)?).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let id = AppId::parse("Racme01.com.acme.thermostat").unwrap();
        let uri = app_id_uri(&id);
        assert_eq!(uri, "urn:onem2m:app-id:Racme01.com.acme.thermostat");
        assert_eq!(parse_app_id_uri(&uri), Some(id));
        assert_eq!(parse_app_id_uri("urn:onem2m:app-id:Nfree"), Some(AppId::parse("Nfree").unwrap()));
        for bad in ["urn:onem2m:app-id:", "urn:onem2m:app-id:Xbad", "URN:ONEM2M:APP-ID:Ra.b.c", "Ra.b.c", "//sp/S1"] {
            assert_eq!(parse_app_id_uri(bad), None, "{bad}");
        }
    }
}
