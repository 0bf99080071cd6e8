//! The oneM2M timestamp: ISO 8601 basic format in UTC, `YYYYMMDDTHHMMSS` with an optional
//! `,ffffff` fraction (TS-0004 §8.4.2). This module reads no clock: callers pass `now`.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Microseconds since the Unix epoch, UTC.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct Timestamp(i64);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid timestamp {0:?}: expected YYYYMMDDTHHMMSS[,ffffff]")]
pub struct TimestampError(String);

impl Timestamp {
    pub const fn from_micros(us: i64) -> Self {
        Self(us)
    }

    pub const fn from_secs(s: i64) -> Self {
        Self(s * 1_000_000)
    }

    pub const fn micros(self) -> i64 {
        self.0
    }

    pub const fn secs(self) -> i64 {
        self.0.div_euclid(1_000_000)
    }

    pub fn millis(self) -> i64 {
        self.0.div_euclid(1_000)
    }

    /// The far future, for "never expires".
    pub const MAX: Timestamp = Timestamp(253_402_300_799_000_000); // 9999-12-31T23:59:59

    pub fn saturating_add(self, d: Duration) -> Self {
        let us = i64::try_from(d.as_micros()).unwrap_or(i64::MAX);
        Self(self.0.saturating_add(us).min(Self::MAX.0))
    }

    pub fn saturating_sub(self, d: Duration) -> Self {
        let us = i64::try_from(d.as_micros()).unwrap_or(i64::MAX);
        Self(self.0.saturating_sub(us))
    }

    /// `self - earlier`, or zero if `earlier` is later.
    pub fn since(self, earlier: Timestamp) -> Duration {
        Duration::from_micros(u64::try_from(self.0 - earlier.0).unwrap_or(0))
    }

    /// Parses the basic format, with or without a fraction of 1 to 6 digits.
    pub fn parse(s: &str) -> Result<Self, TimestampError> {
        let bad = || TimestampError(s.chars().take(40).collect());
        let (main, frac) = match s.split_once([',', '.']) {
            Some((m, f)) => (m, Some(f)),
            None => (s, None),
        };
        let b = main.as_bytes();
        if b.len() != 15 || b[8] != b'T' {
            return Err(bad());
        }
        let num = |r: std::ops::Range<usize>| -> Result<i64, TimestampError> {
            let part = &main[r];
            if !part.bytes().all(|c| c.is_ascii_digit()) {
                return Err(bad());
            }
            part.parse().map_err(|_| bad())
        };
        let (y, mo, d) = (num(0..4)?, num(4..6)?, num(6..8)?);
        let (h, mi, se) = (num(9..11)?, num(11..13)?, num(13..15)?);
        if !(1..=12).contains(&mo) || d < 1 || d > days_in_month(y, mo) || h > 23 || mi > 59 || se > 59 {
            return Err(bad());
        }
        let mut micros = 0;
        if let Some(f) = frac {
            if f.is_empty() || f.len() > 6 || !f.bytes().all(|c| c.is_ascii_digit()) {
                return Err(bad());
            }
            micros = f.parse::<i64>().map_err(|_| bad())? * 10_i64.pow(6 - f.len() as u32);
        }
        let days = days_from_civil(y, mo, d);
        Ok(Self((days * 86_400 + h * 3_600 + mi * 60 + se) * 1_000_000 + micros))
    }
}

fn is_leap(y: i64) -> bool {
    (y % 4 == 0 && y % 100 != 0) || y % 400 == 0
}

fn days_in_month(y: i64, m: i64) -> i64 {
    match m {
        2 if is_leap(y) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

impl fmt::Display for Timestamp {
    /// `YYYYMMDDTHHMMSS,ffffff`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let secs = self.0.div_euclid(1_000_000);
        let us = self.0.rem_euclid(1_000_000);
        let (y, mo, d) = civil_from_days(secs.div_euclid(86_400));
        let sod = secs.rem_euclid(86_400);
        write!(f, "{y:04}{mo:02}{d:02}T{:02}{:02}{:02},{us:06}", sod / 3600, sod / 60 % 60, sod % 60)
    }
}

impl FromStr for Timestamp {
    type Err = TimestampError;
    fn from_str(s: &str) -> Result<Self, TimestampError> {
        Self::parse(s)
    }
}

impl Serialize for Timestamp {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Timestamp {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Self::parse(&s).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn known_values() {
        let t = Timestamp::parse("20141003T112032").unwrap();
        assert_eq!(t.secs(), 1_412_335_232);
        assert_eq!(t.to_string(), "20141003T112032,000000");
        assert_eq!(Timestamp::parse("19700101T000000").unwrap(), Timestamp::default());
        assert_eq!(Timestamp::parse("20000229T235959,5").unwrap().micros() % 1_000_000, 500_000);
        assert_eq!(Timestamp::MAX.to_string(), "99991231T235959,000000");
        for bad in [
            "",
            "2014-10-03T11:20:32",
            "20141003112032",
            "20230229T000000",
            "20141003T246000",
            "20141003T112032,",
            "20141003T112032,1234567",
        ] {
            assert!(Timestamp::parse(bad).is_err(), "{bad}");
        }
    }

    proptest! {
        #[test]
        fn display_parse(us in 0i64..Timestamp::MAX.micros()) {
            let t = Timestamp::from_micros(us);
            prop_assert_eq!(Timestamp::parse(&t.to_string()).unwrap(), t);
        }
    }
}
