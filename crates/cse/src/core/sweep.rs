//! Expiry: resources past their `et`, and contentInstances older than their container's `mia`, are
//! removed like a DELETE would remove them, with the same notifications.

use onem2m::Error;

use super::{Cse, store_error};

/// How many resources one sweep removes at most; the next sweep continues.
const BATCH: usize = 1000;

impl Cse {
    /// Removes what has expired by now. Returns how many resources were removed (subtrees count
    /// once).
    pub async fn sweep(&self) -> Result<usize, Error> {
        let now = self.clock.now();
        let mut ris = self.store.expired(now, BATCH).await.map_err(store_error)?;
        ris.extend(self.store.aged_instances(now, BATCH).await.map_err(store_error)?);
        let mut removed = 0;
        for ri in ris {
            // A resource may be gone already, removed with an expired ancestor.
            let Some(res) = self.store.get(&ri).await.map_err(store_error)? else { continue };
            if res.ty == onem2m::ResourceType::CseBase {
                continue;
            }
            match self.remove(&res, None).await {
                Ok(()) => removed += 1,
                Err(e) if e.rsc == onem2m::Rsc::NotFound => {}
                Err(e) => return Err(e),
            }
        }
        Ok(removed)
    }
}
