//! Identifiers the CSE makes: resource IDs, default resource names, AE-ID stems.

use onem2m::{ResourceType, Timestamp};

const ALPHABET: &[u8; 62] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

/// `n` random alphanumerics from the OS's generator (62^10 ≈ 8·10^17 values for n = 10).
pub(crate) fn random_alnum(n: usize) -> String {
    let mut bytes = vec![0u8; n];
    random_bytes(&mut bytes);
    bytes.iter().map(|b| ALPHABET[(*b as usize) % 62] as char).collect()
}

/// Random bytes kept per thread, so that making an ID is not a system call each time.
struct Pool {
    bytes: [u8; 256],
    used: usize,
}

thread_local! {
    static POOL: std::cell::RefCell<Pool> = const { std::cell::RefCell::new(Pool { bytes: [0; 256], used: 256 }) };
}

/// Fills `out` from the thread's pool, which the OS generator refills 256 bytes at a time.
fn random_bytes(out: &mut [u8]) {
    POOL.with_borrow_mut(|pool| {
        for b in out {
            if pool.used == pool.bytes.len() {
                refill(&mut pool.bytes);
                pool.used = 0;
            }
            *b = pool.bytes[pool.used];
            pool.used += 1;
        }
    });
}

/// The OS generator does not fail on the platforms we run on; if it ever did, a time-seeded mix
/// stands in rather than refusing the request (IDs need uniqueness, not secrecy, and the store
/// refuses duplicates anyway).
fn refill(bytes: &mut [u8]) {
    if getrandom::fill(bytes).is_ok() {
        return;
    }
    let mut x = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0x9e37_79b9_7f4a_7c15);
    for b in bytes {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        *b = x as u8;
    }
}

/// A new resource ID for a resource of type `ty`, created at `now`: its short name, the time in
/// microseconds as 10 base-62 digits (so that IDs, and the default names made from them, grow with
/// time: new index entries land on the last page of each index instead of a random one), and 4
/// random characters.
pub(crate) fn new_ri(ty: ResourceType, now: Timestamp) -> String {
    format!("{}{}{}", ty.short_name(), time_digits(now), random_alnum(4))
}

/// The time in microseconds as 10 base-62 digits, which sort as the times do.
fn time_digits(now: Timestamp) -> String {
    let mut t = u64::try_from(now.micros()).unwrap_or(0);
    let mut digits = [b'0'; 10];
    for d in digits.iter_mut().rev() {
        *d = ALPHABET[(t % 62) as usize];
        t /= 62;
    }
    digits.iter().map(|&b| b as char).collect()
}

/// A new AE-ID stem of the given kind (`C` or `S`), made at `now`: like a resource ID, the time
/// first (an AE's stem is its resource ID, so registrations append to the indexes) and 5 random
/// characters.
pub(crate) fn new_stem(kind: char, now: Timestamp) -> String {
    format!("{kind}{}{}", time_digits(now), random_alnum(5))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shapes() {
        let now = Timestamp::from_secs(1_800_000_000);
        let ri = new_ri(ResourceType::Container, now);
        assert!(ri.starts_with("cnt") && ri.len() == 17 && ri.chars().all(|c| c.is_ascii_alphanumeric()), "{ri}");
        // Later IDs sort after earlier ones.
        let later = new_ri(ResourceType::Container, Timestamp::from_micros(now.micros() + 1));
        assert!(later[..13] > ri[..13]);
        let stem = new_stem('C', now);
        assert!(stem.starts_with('C') && stem.len() == 16 && stem.chars().all(|c| c.is_ascii_alphanumeric()), "{stem}");
        assert!(new_stem('S', Timestamp::from_micros(now.micros() + 1))[1..11] > stem[1..11]);
        assert!(onem2m::AeIdStem::parse(&stem).is_ok(), "{stem} is a valid stem");
        assert_ne!(random_alnum(10), random_alnum(10));
    }

    /// The pool is refilled as it runs out (10,000 bytes here): no run of IDs repeats.
    #[test]
    fn random_ids_stay_random_across_refills() {
        let ids: std::collections::HashSet<String> = (0..1000).map(|_| random_alnum(10)).collect();
        assert_eq!(ids.len(), 1000);
    }
}
