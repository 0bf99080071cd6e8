//! The registry itself, behind its HTTP API: tokens, signing keys, signed answers and their cache,
//! writes with their change-feed notifications, and the long-poll.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use appid::api::lookup_body;
use appid::pattern::denied_by;
use appid::{
    Change, ChangesPage, DeviceStatus, Draft, ImportCheck, ImportResponse, KeySet, LookupRequest, Role, Signer, Status,
    TokenResponse,
};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use bytes::{BufMut, Bytes, BytesMut};
use http::{HeaderValue, StatusCode};
use metrics_exporter_prometheus::PrometheusHandle;
use onem2m::{AppId, Timestamp};
use parking_lot::{Mutex, RwLock};
use tokio::sync::{Semaphore, watch};
use tokio_util::sync::CancellationToken;

use crate::auth::{TokenTable, generate_token, hash_token};
use crate::cache::{Kind, SignedBody, SignedCache};
use crate::config::{Limits, RegistryConfig};
use crate::failure::ApiFailure;
use crate::store::{
    KeyState, ListQuery, Modified, Mutation, SqliteStore, Store, StoreError, StoredKey, StoredRecord, StoredToken,
};
use crate::telemetry;

/// The wall clock, as a oneM2M timestamp.
pub(crate) fn now() -> Timestamp {
    let us = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_micros()).unwrap_or(0);
    Timestamp::from_micros(i64::try_from(us).unwrap_or(i64::MAX))
}

/// Why the registry could not start.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    #[error("cannot use the data directory {path}: {source}")]
    DataDir { path: String, source: std::io::Error },
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("the admin token must not be empty")]
    EmptyAdminToken,
    #[error("cannot draw random bytes: {0}")]
    Random(String),
}

/// The App-ID Registry. Cheap to clone; every clone is the same registry.
#[derive(Clone)]
pub struct Registry {
    pub(crate) inner: Arc<Inner>,
}

pub(crate) struct Inner {
    store: Arc<dyn Store>,
    tokens: Arc<TokenTable>,
    signer: RwLock<Arc<Signer>>,
    keys: RwLock<KeySet>,
    key_change: tokio::sync::Mutex<()>,
    cache: SignedCache,
    head: watch::Sender<u64>,
    pub(crate) shutdown: CancellationToken,
    long_polls: Arc<Semaphore>,
    pub(crate) limits: Limits,
    generated_admin: Mutex<Option<String>>,
    pub(crate) metrics: PrometheusHandle,
}

/// A page of `GET /v1/app-ids`, already serialised.
pub(crate) struct ListBody(pub(crate) Bytes);

/// What `If-Match` asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IfMatch {
    /// `*`: any current version.
    Any,
    Version(u64),
}

impl Registry {
    /// Opens the registry in `config.data_dir` on the embedded SQLite store.
    pub async fn open(config: RegistryConfig) -> Result<Self, OpenError> {
        let path = config.data_dir.join("registry.db");
        prepare_files(&config.data_dir, &path)?;
        let readers = config.limits.read_connections;
        let store = tokio::task::spawn_blocking(move || SqliteStore::open(&path, readers))
            .await
            .map_err(|e| OpenError::Store(StoreError::Backend(e.to_string())))??;
        Self::with_store(Arc::new(store), config).await
    }

    /// Starts the registry on any store.
    pub async fn with_store(store: Arc<dyn Store>, config: RegistryConfig) -> Result<Self, OpenError> {
        let metrics = telemetry::prometheus(); // installs the recorder before anything is recorded
        telemetry::describe();
        let tokens = Arc::new(TokenTable::default());
        let stored = store.tokens().await?;
        let has_admin = stored.iter().any(|t| t.role == Role::Admin);
        for t in &stored {
            tokens.insert(t.hash, t.role);
        }
        let mut generated = None;
        match &config.admin_token {
            Some(t) if t.trim().is_empty() => return Err(OpenError::EmptyAdminToken),
            Some(t) => {
                if t.len() < 16 {
                    tracing::warn!("the admin token is shorter than 16 characters: easy to guess");
                }
                tokens.insert(hash_token(t), Role::Admin);
            }
            None if !has_admin => {
                let token = generate_token().map_err(|e| OpenError::Random(e.to_string()))?;
                let hash = hash_token(&token);
                store
                    .add_token(StoredToken { hash, role: Role::Admin, label: "generated at first start".into() }, now())
                    .await?;
                tokens.insert(hash, Role::Admin);
                generated = Some(token);
            }
            None => {}
        }

        let mut stored_keys = store.keys().await?;
        if !stored_keys.iter().any(|k| k.state == KeyState::Active) {
            let key = new_key(store.as_ref()).await?;
            store.rotate_key(key).await?;
            stored_keys = store.keys().await?;
        }
        let (signer, keys) = signer_and_keys(&stored_keys)?;
        let head = store.head().await?;

        Ok(Self {
            inner: Arc::new(Inner {
                store,
                tokens,
                signer: RwLock::new(Arc::new(signer)),
                keys: RwLock::new(keys),
                key_change: tokio::sync::Mutex::new(()),
                cache: SignedCache::new(config.limits.cache_bytes),
                head: watch::Sender::new(head),
                shutdown: CancellationToken::new(),
                long_polls: Arc::new(Semaphore::new(config.limits.max_long_polls)),
                limits: config.limits,
                generated_admin: Mutex::new(generated),
                metrics,
            }),
        })
    }

    /// The admin token generated at this start, once: the caller prints it and it is gone.
    pub fn take_generated_admin_token(&self) -> Option<String> {
        self.inner.generated_admin.lock().take()
    }

    pub fn limits(&self) -> &Limits {
        &self.inner.limits
    }

    /// The public keys that verify this registry's signatures.
    pub fn key_set(&self) -> KeySet {
        self.inner.keys.read().clone()
    }

    /// Checks the `Authorization` header for at least `need`.
    /// The registry's token table, to let another server of the same process (the CSE of `warden
    /// up`) accept the registry's admin tokens.
    pub fn token_table(&self) -> Arc<TokenTable> {
        self.inner.tokens.clone()
    }

    pub(crate) fn authorize(&self, authorization: Option<&HeaderValue>, need: Role) -> Result<Role, ApiFailure> {
        Ok(self.inner.tokens.check(authorization.map(HeaderValue::as_bytes), need)?)
    }

    /// Mints a token with `role`; the token is returned once and stored hashed.
    pub async fn mint_token(&self, role: Role) -> Result<TokenResponse, ApiFailure> {
        let token = generate_token().map_err(|e| {
            tracing::error!(error = %e, "cannot draw random bytes");
            ApiFailure::internal()
        })?;
        let hash = hash_token(&token);
        self.inner.store.add_token(StoredToken { hash, role, label: format!("minted {role:?}") }, now()).await?;
        self.inner.tokens.insert(hash, role);
        tracing::info!(role = role.as_str(), "token minted");
        Ok(TokenResponse { token, role })
    }

    /// Makes a new key the signing key; the old one stays published until retired.
    pub async fn rotate_key(&self) -> Result<String, ApiFailure> {
        let _one_at_a_time = self.inner.key_change.lock().await;
        let key = new_key(self.inner.store.as_ref()).await.map_err(|e| match e {
            OpenError::Store(s) => ApiFailure::from(s),
            other => {
                tracing::error!(error = %other, "cannot make a signing key");
                ApiFailure::internal()
            }
        })?;
        let kid = key.kid.clone();
        self.inner.store.rotate_key(key).await?;
        self.reload_keys().await?;
        tracing::info!(kid = %kid, "signing key rotated");
        Ok(kid)
    }

    /// Withdraws a published (not the active) key.
    pub async fn retire_key(&self, kid: &str) -> Result<(), ApiFailure> {
        let _one_at_a_time = self.inner.key_change.lock().await;
        self.inner.store.retire_key(kid).await?;
        self.reload_keys().await?;
        tracing::info!(kid = %kid, "signing key retired");
        Ok(())
    }

    async fn reload_keys(&self) -> Result<(), ApiFailure> {
        let stored = self.inner.store.keys().await?;
        let (signer, keys) = signer_and_keys(&stored).map_err(|e| {
            tracing::error!(error = %e, "signing keys are unusable");
            ApiFailure::internal()
        })?;
        *self.inner.keys.write() = keys;
        let changed = self.inner.signer.read().kid() != signer.kid();
        *self.inner.signer.write() = Arc::new(signer);
        if changed {
            self.inner.cache.clear();
        }
        Ok(())
    }

    fn sign(&self, body: Bytes, version: u64, label: &'static str) -> SignedBody {
        let signer = Arc::clone(&self.inner.signer.read());
        let sig = signer.sign(&body);
        // A kid and base64url are always a valid header value.
        let signature = HeaderValue::from_str(&sig).unwrap_or_else(|_| HeaderValue::from_static(""));
        SignedBody { body, signature, version, label }
    }

    /// `POST /v1/lookup`: the signed answer about an App-ID and a device.
    pub async fn lookup(&self, req: &LookupRequest) -> Result<SignedBody, ApiFailure> {
        let ae = req.ae_id.as_deref();
        let key = req.app_id.as_str();
        let ticket = match self.inner.cache.get(key, Kind::Lookup(ae)) {
            Ok(hit) => {
                metrics::counter!(telemetry::LOOKUP_CACHE, "result" => "hit").increment(1);
                metrics::counter!(telemetry::LOOKUPS, "result" => hit.label).increment(1);
                return Ok(hit);
            }
            Err(ticket) => ticket,
        };
        metrics::counter!(telemetry::LOOKUP_CACHE, "result" => "miss").increment(1);
        let record = self.inner.store.get(&req.app_id).await?;
        let signed = match &record {
            Some(r) => {
                let denied = ae.is_some_and(|ae| denied_by(&r.denied, ae).is_some());
                let status = if denied { DeviceStatus::Denied } else { DeviceStatus::Allowed };
                let body = lookup_body(&req.app_id, ae, status, Some(&r.json));
                self.sign(Bytes::from(body), r.version, if denied { "denied" } else { "registered" })
            }
            None => {
                let body = lookup_body(&req.app_id, ae, DeviceStatus::Allowed, None);
                self.sign(Bytes::from(body), 0, "unregistered")
            }
        };
        metrics::counter!(telemetry::LOOKUPS, "result" => signed.label).increment(1);
        self.inner.cache.insert(key, Kind::Lookup(ae), &signed, ticket);
        Ok(signed)
    }

    /// `GET /v1/app-ids/{appId}`: the signed record.
    pub async fn get(&self, app_id: &AppId) -> Result<SignedBody, ApiFailure> {
        let key = app_id.as_str();
        let ticket = match self.inner.cache.get(key, Kind::Get) {
            Ok(hit) => return Ok(hit),
            Err(ticket) => ticket,
        };
        let record = self.inner.store.get(app_id).await?.ok_or_else(|| not_found(app_id))?;
        let signed = self.sign(record.json, record.version, "record");
        self.inner.cache.insert(key, Kind::Get, &signed, ticket);
        Ok(signed)
    }

    /// `GET /v1/app-ids`: a page of records and the cursor of the next one.
    pub(crate) async fn list(&self, mut query: ListQuery) -> Result<ListBody, ApiFailure> {
        query.limit = query.limit.clamp(1, self.inner.limits.list_page);
        let limit = query.limit as usize;
        let page = self.inner.store.list(query).await?;
        let mut out = BytesMut::with_capacity(32 + page.iter().map(|r| r.json.len() + 1).sum::<usize>());
        out.put_slice(b"{\"items\":[");
        for (i, r) in page.iter().enumerate() {
            if i > 0 {
                out.put_u8(b',');
            }
            out.put_slice(&r.json);
        }
        out.put_slice(b"],\"next\":");
        match page.last() {
            Some(last) if page.len() == limit => {
                out.put_u8(b'"');
                out.put_slice(encode_cursor(&last.app_id).as_bytes());
                out.put_u8(b'"');
            }
            _ => out.put_slice(b"null"),
        }
        out.put_u8(b'}');
        Ok(ListBody(out.freeze()))
    }

    /// `POST /v1/app-ids`: registers a validated draft (issuing its App-ID if asked).
    pub async fn create(&self, draft: Draft) -> Result<StoredRecord, ApiFailure> {
        let app_id = draft.target_app_id()?;
        let record = StoredRecord::from_record(&draft.into_new_record(app_id));
        let changes = self.inner.store.insert(vec![record.clone()], now()).await?;
        self.changed(&changes);
        tracing::info!(app_id = %record.app_id, "App-ID registered");
        Ok(record)
    }

    /// `PUT /v1/app-ids/{appId}`: a new version of the profile.
    pub async fn replace(&self, app_id: &AppId, draft: Draft, if_match: IfMatch) -> Result<StoredRecord, ApiFailure> {
        let if_version = match if_match {
            IfMatch::Any => None,
            IfMatch::Version(v) => Some(v),
        };
        self.modify(app_id, Mutation::Replace { draft: Box::new(draft), if_version }).await
    }

    /// `POST /v1/app-ids/{appId}/status`.
    pub async fn set_status(&self, app_id: &AppId, status: Status, reason: String) -> Result<StoredRecord, ApiFailure> {
        appid::api::check_reason(&reason)?;
        let r = self.modify(app_id, Mutation::Status { status, reason }).await?;
        tracing::info!(app_id = %app_id, status = status.as_str(), "App-ID status set");
        Ok(r)
    }

    /// `PUT /v1/app-ids/{appId}/devices/{aeId}`.
    pub async fn deny_device(
        &self,
        app_id: &AppId,
        pattern: String,
        reason: String,
    ) -> Result<StoredRecord, ApiFailure> {
        appid::pattern::check_device_pattern(&pattern).map_err(|why| ApiFailure::bad_request("aeId", why))?;
        appid::api::check_reason(&reason)?;
        self.modify(app_id, Mutation::Deny { pattern, reason }).await
    }

    /// `DELETE /v1/app-ids/{appId}/devices/{aeId}`.
    pub async fn allow_device(
        &self,
        app_id: &AppId,
        pattern: String,
        reason: Option<String>,
    ) -> Result<StoredRecord, ApiFailure> {
        if let Some(r) = &reason {
            appid::api::check_reason(r)?;
        }
        self.modify(app_id, Mutation::Allow { pattern, reason }).await
    }

    async fn modify(&self, app_id: &AppId, mutation: Mutation) -> Result<StoredRecord, ApiFailure> {
        let Modified { record, change } =
            self.inner.store.modify(app_id, mutation, now()).await.map_err(|e| match e {
                StoreError::NotFound => not_found(app_id),
                other => other.into(),
            })?;
        if let Some(c) = change {
            self.changed(std::slice::from_ref(&c));
        }
        Ok(record)
    }

    /// After a commit: drop cached answers, then wake the long-polls.
    fn changed(&self, changes: &[Change]) {
        for c in changes {
            self.inner.cache.invalidate(c.app_id.as_str());
            metrics::counter!(telemetry::CHANGES, "kind" => c.kind.as_str()).increment(1);
        }
        if let Some(last) = changes.iter().map(|c| c.seq).max() {
            self.inner.head.send_if_modified(|head| {
                let newer = last > *head;
                if newer {
                    *head = last;
                }
                newer
            });
        }
    }

    /// `GET /v1/changes`: changes after `after`, waiting up to `wait` for one when there are none.
    /// Without `after`, answers at once with no changes and the feed's head as `last`.
    pub async fn changes(&self, after: Option<u64>, wait: Duration, limit: u32) -> Result<ChangesPage, ApiFailure> {
        let limit = limit.clamp(1, self.inner.limits.changes_page);
        let mut rx = self.inner.head.subscribe();
        let Some(after) = after else {
            return Ok(ChangesPage { changes: Vec::new(), last: *rx.borrow() });
        };
        let deadline = tokio::time::Instant::now() + wait.min(self.inner.limits.max_wait);
        let mut waiting: Option<(tokio::sync::OwnedSemaphorePermit, WaiterGauge)> = None;
        loop {
            let head = *rx.borrow_and_update();
            if head > after {
                let changes = self.inner.store.changes(after, limit).await?;
                if let Some(last) = changes.last().map(|c| c.seq) {
                    return Ok(ChangesPage { changes, last });
                }
            }
            if head < after || tokio::time::Instant::now() >= deadline || self.inner.shutdown.is_cancelled() {
                return Ok(ChangesPage { changes: Vec::new(), last: head });
            }
            if waiting.is_none() {
                let permit = Arc::clone(&self.inner.long_polls).try_acquire_owned().map_err(|_| {
                    ApiFailure::new(
                        StatusCode::SERVICE_UNAVAILABLE,
                        "busy",
                        "too many change-feed long-polls are waiting; retry shortly",
                    )
                })?;
                waiting = Some((permit, WaiterGauge::new()));
            }
            tokio::select! {
                changed = rx.changed() => {
                    if changed.is_err() {
                        return Ok(ChangesPage { changes: Vec::new(), last: head });
                    }
                }
                () = tokio::time::sleep_until(deadline) => {}
                () = self.inner.shutdown.cancelled() => {}
            }
        }
    }

    /// `POST /v1/import`: one profile per line, all or nothing. Lines whose App-ID is registered
    /// already with exactly the record they describe are left as they are (so rerunning an
    /// interrupted import converges); one registered with other content is a 409 naming its line.
    pub async fn import(&self, body: Bytes) -> Result<ImportResponse, ApiFailure> {
        let records =
            tokio::task::spawn_blocking(move || parse_import(&body)).await.map_err(|_| ApiFailure::internal())??;
        if records.is_empty() {
            return Ok(ImportResponse { imported: 0, unchanged: 0 });
        }
        let (records, lines): (Vec<_>, Vec<_>) = records.into_iter().unzip();
        let done = self.inner.store.import(records, now()).await.map_err(|e| match e {
            StoreError::Conflict(id) => {
                let line = lines.iter().find(|(_, a)| a == &id).map_or(0, |(l, _)| *l);
                ApiFailure::new(
                    StatusCode::CONFLICT,
                    "conflict",
                    format!("line {line}: {id} is already registered with other content"),
                )
                .with_field("appId")
            }
            other => other.into(),
        })?;
        self.changed(&done.changes);
        let imported = done.changes.len() as u64;
        metrics::counter!(telemetry::IMPORTED).increment(imported);
        tracing::info!(records = imported, unchanged = done.unchanged, "bulk import committed");
        Ok(ImportResponse { imported, unchanged: done.unchanged })
    }

    /// Health: the store answers.
    pub async fn healthy(&self) -> bool {
        self.inner.store.head().await.is_ok()
    }

    /// How many change-feed long-polls are waiting now.
    pub fn change_feed_waiters(&self) -> usize {
        self.inner.limits.max_long_polls - self.inner.long_polls.available_permits()
    }

    /// Wakes every long-poll and makes new ones answer at once; used when the server stops.
    pub fn begin_shutdown(&self) {
        self.inner.shutdown.cancel();
    }
}

/// Counts a waiting long-poll in the gauge for as long as it lives.
struct WaiterGauge;

impl WaiterGauge {
    fn new() -> Self {
        metrics::gauge!(telemetry::WAITERS).increment(1.0);
        WaiterGauge
    }
}

impl Drop for WaiterGauge {
    fn drop(&mut self) {
        metrics::gauge!(telemetry::WAITERS).decrement(1.0);
    }
}

fn not_found(app_id: &AppId) -> ApiFailure {
    ApiFailure::not_found(format!("{app_id} is not registered")).with_field("appId")
}

/// Parses an import body with [`ImportCheck`]. Returns each record with its line number and
/// App-ID, or the first bad line as a 400 that names it.
#[allow(clippy::type_complexity)]
fn parse_import(body: &[u8]) -> Result<Vec<(StoredRecord, (usize, AppId))>, ApiFailure> {
    let mut out = Vec::new();
    let mut check = ImportCheck::new();
    for (line_no, line) in appid::import::lines(body) {
        let checked = check.line(line).map_err(|e| {
            let mut f = ApiFailure::from(e);
            f.message = format!("line {line_no}: {}", f.message);
            f
        })?;
        if let Some((app_id, draft)) = checked {
            let record = StoredRecord::from_record(&draft.into_new_record(app_id.clone()));
            out.push((record, (line_no, app_id)));
        }
    }
    Ok(out)
}

fn encode_cursor(app_id: &AppId) -> String {
    URL_SAFE_NO_PAD.encode(app_id.as_str())
}

/// The App-ID a cursor continues after.
pub(crate) fn decode_cursor(cursor: &str) -> Result<String, ApiFailure> {
    let bad = || ApiFailure::bad_request("cursor", "not a cursor this registry gave out");
    let raw = URL_SAFE_NO_PAD.decode(cursor).map_err(|_| bad())?;
    let s = String::from_utf8(raw).map_err(|_| bad())?;
    AppId::parse(&s).map_err(|_| bad())?;
    Ok(s)
}

async fn new_key(store: &dyn Store) -> Result<StoredKey, OpenError> {
    let n = store.key_count().await?;
    let mut seed = [0u8; 32];
    getrandom::fill(&mut seed).map_err(|e| OpenError::Random(e.to_string()))?;
    Ok(StoredKey { kid: format!("k{}", n + 1), seed, state: KeyState::Active, created_at: now() })
}

fn signer_and_keys(stored: &[StoredKey]) -> Result<(Signer, KeySet), OpenError> {
    let bad = |why: &str| OpenError::Store(StoreError::Backend(why.to_owned()));
    let mut keys = KeySet::new();
    let mut signer = None;
    for k in stored {
        let s = Signer::from_seed(&k.kid, k.seed).map_err(bad)?;
        keys.insert(&k.kid, s.verifying_key()).map_err(bad)?;
        if k.state == KeyState::Active {
            signer = Some(s);
        }
    }
    Ok((signer.ok_or_else(|| bad("no active signing key"))?, keys))
}

/// Creates the data directory (owner-only when we create it) and the database file (owner-only:
/// it holds the signing keys; SQLite gives its -wal and -shm files the same mode).
fn prepare_files(dir: &Path, db: &Path) -> Result<(), OpenError> {
    let err = |source| OpenError::DataDir { path: dir.display().to_string(), source };
    if !dir.exists() {
        std::fs::create_dir_all(dir).map_err(err)?;
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700)).map_err(err)?;
        }
    }
    let mut options = std::fs::OpenOptions::new();
    options.create(true).append(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    options.open(db).map_err(err)?;
    Ok(())
}
