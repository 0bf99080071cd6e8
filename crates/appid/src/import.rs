//! Bulk imports: NDJSON, one profile per line. The registry checks each `POST /v1/import` body with
//! [`ImportCheck`], and `warden appid import` checks the whole file with it before it sends anything,
//! so both refuse the same lines for the same reasons.

use std::collections::HashSet;

use onem2m::AppId;

use crate::error::FieldError;
use crate::profile::{Draft, from_json};

/// The lines of an import body, numbered from 1, without their line ends (`\n` or `\r\n`).
pub fn lines(body: &[u8]) -> impl Iterator<Item = (usize, &[u8])> {
    body.split(|&b| b == b'\n').enumerate().map(|(i, line)| (i + 1, line.strip_suffix(b"\r").unwrap_or(line)))
}

/// Checks the lines of one import, in order: each non-blank line must be a valid profile that names
/// its App-ID (`issue` is for single creates), and no App-ID may appear twice.
#[derive(Debug, Default)]
pub struct ImportCheck {
    seen: HashSet<AppId>,
}

impl ImportCheck {
    pub fn new() -> Self {
        Self::default()
    }

    /// The next line's draft and App-ID, `None` for a blank line, or why the line is refused.
    pub fn line(&mut self, line: &[u8]) -> Result<Option<(AppId, Draft)>, FieldError> {
        if line.iter().all(u8::is_ascii_whitespace) {
            return Ok(None);
        }
        let draft: Draft = from_json(line)?;
        let Some(app_id) = draft.app_id.clone() else {
            return Err(FieldError::missing("appId", "an import line needs appId (issue is for single creates)"));
        };
        draft.validate()?;
        if !self.seen.insert(app_id.clone()) {
            return Err(FieldError::invalid("appId", format!("{app_id} appears twice in this import")));
        }
        Ok(Some((app_id, draft)))
    }

    /// How many App-IDs the lines so far named.
    pub fn count(&self) -> usize {
        self.seen.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::FieldErrorKind;

    fn line(id: &str) -> Vec<u8> {
        let mut v = crate::profile::tests::sample();
        v["appId"] = serde_json::json!(id);
        serde_json::to_vec(&v).unwrap()
    }

    #[test]
    fn lines_are_numbered_and_trimmed() {
        let body = b"a\r\n\nb\nc";
        let got: Vec<(usize, &[u8])> = lines(body).collect();
        assert_eq!(got, vec![(1, &b"a"[..]), (2, b""), (3, b"b"), (4, b"c")]);
    }

    #[test]
    fn every_rule_of_a_line() {
        let mut check = ImportCheck::new();
        assert_eq!(
            check.line(&line("Rimp.com.x.a")).unwrap().map(|(id, _)| id.to_string()).as_deref(),
            Some("Rimp.com.x.a")
        );
        assert!(check.line(b"  \t").unwrap().is_none(), "blank lines are skipped");
        let twice = check.line(&line("Rimp.com.x.a")).unwrap_err();
        assert_eq!((twice.kind, twice.field.as_deref()), (FieldErrorKind::Invalid, Some("appId")));
        let mut v = crate::profile::tests::sample();
        v.as_object_mut().unwrap().remove("appId");
        v["issue"] = serde_json::json!({"authority": "a", "reverseDns": "com.x", "name": "n"});
        let issue = check.line(&serde_json::to_vec(&v).unwrap()).unwrap_err();
        assert_eq!((issue.kind, issue.field.as_deref()), (FieldErrorKind::MissingField, Some("appId")));
        let bad = check.line(b"{\"appId\": 3}").unwrap_err();
        assert_eq!(bad.field.as_deref(), Some("appId"));
        assert_eq!(check.line(b"{broken").unwrap_err().kind, FieldErrorKind::Syntax);
        assert_eq!(check.count(), 1);
    }
}
