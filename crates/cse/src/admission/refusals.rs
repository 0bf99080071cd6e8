//! Bounds on what refusals write to the decision log, so that it records every decision a person
//! needs to see without becoming a way to fill the CSE's disk.
//!
//! - A refused AE registration is written on its own while the registration budget lasts (a token
//!   bucket: [`REGISTRATION_BURST`] at once, [`REGISTRATION_PER_SECOND`] after that); beyond it,
//!   refusals of one App-ID for one reason are coalesced like per-request ones.
//! - A refused request of an admitted AE (or over a certificate that did not verify) is coalesced
//!   per originator and reason: the first of a [`WINDOW`] is written, the others are counted and
//!   the count is carried by the next entry of that kind (its `count`). Coalesced entries share a
//!   budget of their own ([`COALESCED_BURST`], [`COALESCED_PER_SECOND`]); at most [`MAX_KEYS`]
//!   kinds are tracked at once.
//! - What is not written is still counted in the metrics; the log itself keeps a bounded number of
//!   entries (`decision_log_max_entries`).

use std::collections::HashMap;
use std::time::Duration;

use parking_lot::Mutex;
use tokio::time::Instant;

/// One entry per originator and reason per window, at most.
pub const WINDOW: Duration = Duration::from_secs(60);
/// How many kinds of refusal are tracked at once.
pub const MAX_KEYS: usize = 4096;
pub const REGISTRATION_BURST: f64 = 1000.0;
pub const REGISTRATION_PER_SECOND: f64 = 20.0;
pub const COALESCED_BURST: f64 = 200.0;
pub const COALESCED_PER_SECOND: f64 = 5.0;

/// A token bucket: `capacity` at once, refilled at `per_second`.
#[derive(Debug)]
pub(crate) struct Bucket {
    tokens: f64,
    capacity: f64,
    per_second: f64,
    last: Instant,
}

impl Bucket {
    pub(crate) fn new(capacity: f64, per_second: f64) -> Self {
        Self { tokens: capacity, capacity, per_second, last: Instant::now() }
    }

    pub(crate) fn take(&mut self, now: Instant) -> bool {
        let refill = now.saturating_duration_since(self.last).as_secs_f64() * self.per_second;
        self.tokens = (self.tokens + refill).min(self.capacity);
        self.last = now;
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

#[derive(Debug, Default)]
struct Slot {
    written: Option<Instant>,
    suppressed: u64,
}

/// Decides which refusals are written to the decision log.
#[derive(Debug)]
pub(crate) struct RefusalLog {
    registrations: Mutex<Bucket>,
    coalesced: Mutex<Bucket>,
    slots: Mutex<Slots>,
}

/// The kinds tracked, and when the table was last swept of kinds whose window is over.
#[derive(Debug, Default)]
struct Slots {
    map: HashMap<(String, String), Slot>,
    swept: Option<Instant>,
}

/// A full table is swept at most this often: a flood of new kinds costs a sweep per interval, not
/// one per refusal.
const SWEEP_EVERY: Duration = Duration::from_secs(1);
/// The longest originator or App-ID a key keeps, in characters.
const MAX_KEY_CHARS: usize = 256;

impl Default for RefusalLog {
    fn default() -> Self {
        Self {
            registrations: Mutex::new(Bucket::new(REGISTRATION_BURST, REGISTRATION_PER_SECOND)),
            coalesced: Mutex::new(Bucket::new(COALESCED_BURST, COALESCED_PER_SECOND)),
            slots: Mutex::new(Slots::default()),
        }
    }
}

impl RefusalLog {
    /// A refused registration of `app_id` for `reason`: `Some(count)` to write an entry standing for
    /// `count` refusals, `None` to only count it.
    pub(crate) fn registration(&self, app_id: &str, reason: &str) -> Option<u64> {
        let now = Instant::now();
        if self.registrations.lock().take(now) {
            return Some(1);
        }
        self.coalesce(format!("registration {app_id}"), reason, now)
    }

    /// A refused request of `originator` for `reason` (see [`RefusalLog::registration`]).
    pub(crate) fn request(&self, originator: &str, reason: &str) -> Option<u64> {
        self.coalesce(format!("request {originator}"), reason, Instant::now())
    }

    fn coalesce(&self, mut who: String, reason: &str, now: Instant) -> Option<u64> {
        crate::store::decisions::cut(&mut who, MAX_KEY_CHARS);
        let mut slots = self.slots.lock();
        let Slots { map, swept } = &mut *slots;
        let key = (who, reason.to_owned());
        if !map.contains_key(&key) && map.len() >= MAX_KEYS {
            if swept.is_none_or(|t| now.saturating_duration_since(t) >= SWEEP_EVERY) {
                map.retain(|_, s| s.written.is_some_and(|t| now.saturating_duration_since(t) < WINDOW));
                *swept = Some(now);
            }
            if map.len() >= MAX_KEYS {
                metrics::counter!("warden_admission_log_dropped_total").increment(1);
                return None;
            }
        }
        let slot = map.entry(key).or_default();
        let due = slot.written.is_none_or(|t| now.saturating_duration_since(t) >= WINDOW);
        if due && self.coalesced.lock().take(now) {
            let count = 1 + slot.suppressed;
            *slot = Slot { written: Some(now), suppressed: 0 };
            Some(count)
        } else {
            slot.suppressed += 1;
            metrics::counter!("warden_admission_log_coalesced_total").increment(1);
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(flavor = "current_thread", start_paused = true)]
    async fn one_entry_per_kind_per_window_carrying_the_count() {
        let log = RefusalLog::default();
        assert_eq!(log.request("Cx", "rate_limited"), Some(1));
        for _ in 0..9 {
            assert_eq!(log.request("Cx", "rate_limited"), None);
        }
        // Other kinds are independent.
        assert_eq!(log.request("Cx", "payload_too_large"), Some(1));
        assert_eq!(log.request("Cy", "rate_limited"), Some(1));
        tokio::time::advance(WINDOW).await;
        assert_eq!(log.request("Cx", "rate_limited"), Some(10), "the next entry counts the nine suppressed");
        assert_eq!(log.request("Cx", "rate_limited"), None);
    }

    #[tokio::test(flavor = "current_thread", start_paused = true)]
    async fn registrations_are_written_one_by_one_within_the_budget() {
        let log = RefusalLog::default();
        for _ in 0..REGISTRATION_BURST as usize {
            assert_eq!(log.registration("Ra.b.c", "unknown_app_id"), Some(1));
        }
        // Over the budget: coalesced per App-ID and reason.
        assert_eq!(log.registration("Ra.b.c", "unknown_app_id"), Some(1));
        assert_eq!(log.registration("Ra.b.c", "unknown_app_id"), None);
        tokio::time::advance(Duration::from_secs(1)).await;
        assert_eq!(log.registration("Ra.b.c", "unknown_app_id"), Some(1), "the budget refills");
    }

    #[tokio::test(flavor = "current_thread", start_paused = true)]
    async fn the_coalesced_budget_and_the_key_table_are_bounded() {
        let log = RefusalLog::default();
        let written = (0..MAX_KEYS + 10).filter(|i| log.request(&format!("C{i}"), "credential_mismatch").is_some());
        assert_eq!(written.count(), COALESCED_BURST as usize, "at most the budget is written at once");
        assert!(log.slots.lock().map.len() <= MAX_KEYS);
        tokio::time::advance(WINDOW).await;
        // Expired kinds make room again.
        assert!(log.request("Cnew", "credential_mismatch").is_some());
        // A full table is swept once per interval, not for every new kind.
        let full = RefusalLog::default();
        for i in 0..MAX_KEYS {
            let live = Slot { written: Some(Instant::now()), suppressed: 0 };
            full.slots.lock().map.insert((format!("request C{i}"), "x".into()), live);
        }
        assert!(full.request("Cfirst", "x").is_none(), "every kind is within its window: no room");
        let swept = full.slots.lock().swept;
        assert!(swept.is_some());
        for i in 0..MAX_KEYS {
            full.request(&format!("Cagain{i}"), "x");
        }
        assert_eq!(full.slots.lock().swept, swept, "no second sweep within the interval");
    }

    #[test]
    fn keys_are_bounded() {
        let log = RefusalLog::default();
        log.request(&"C".repeat(100_000), "rate_limited");
        let slots = log.slots.lock();
        assert!(slots.map.keys().all(|(who, _)| who.chars().count() <= MAX_KEY_CHARS));
    }
}
