//! Admission end to end (DESIGN.md §5, §7, §8): a real registry with profiles made through its admin
//! API, a real CSE that asks it over HTTP (directly or through a fault-injecting proxy), devices
//! that connect over real mutual TLS with certificates made at run time. Every refusal is checked
//! twice: the response status code the device gets, and the entry the decision log keeps.

use std::sync::Arc;
use std::time::{Duration, Instant};

use appid::{Role, Status};
use bytes::Bytes;
use cse::admission::Admission;
use cse::http::HttpConfig;
use cse::server::AdmissionConfig;
use cse::store::decisions::{Decision, DecisionFilter};
use cse::tls::ClientAuth;
use onem2m::AppId;
use registry::RegistryClient;
use serde_json::{Value, json};
use testkit::cse::{CseOptions, TestCse};
use testkit::eventually;
use testkit::m2m::{Reply, Req, client};
use testkit::pki::{
    Identity, Root, ServerIdentity, device, device_with_ae_id, expired_device, https_client, server_identity,
    vendor_root,
};
use testkit::proxy::{Fault, Proxy};
use testkit::registry::TestRegistry;

/// Long enough for any step on a loaded machine; reached only when a test fails.
const DEADLINE: Duration = Duration::from_secs(20);
/// The bound the issue sets on blocking the AEs of a revoked App-ID.
const REVOCATION_BOUND: Duration = Duration::from_secs(5);
const ADMIN: &str = "CAdmin";
const ADMIN_TOKEN: &str = "test-cse-admin-token-0123456789";

/// A request of the admin originator, with the admin token it needs when admission is enforced.
fn as_admin(r: Req) -> Req {
    r.header("Authorization", &format!("Bearer {ADMIN_TOKEN}"))
}

/// Enforce, reject what cannot be verified, and one rule.
const ENFORCE: &str = r#"
[admission]
mode = "enforce"
unregistered = "reject"
registry_unreachable = "reject"

[[admission.rule]]
name = "critical infrastructure needs a TPM"
when = { class = "critical-infrastructure" }
require = { keyStorage = ["tpm"] }
"#;

// --- profiles ---

/// An active consumer profile: method `none`, HTTP, generous limits, restricted sharing.
fn profile(app_id: &str) -> Value {
    json!({
        "appId": app_id,
        "registrant": {"name": "Test Devices Ltd", "contact": "security@test.example"},
        "application": {"type": "thermostat", "class": "consumer", "name": "Test Thermostat"},
        "security": {"keyStorage": "software", "tlsVersions": ["1.2", "1.3"], "firmwareSigned": true},
        "authentication": {"method": "none", "roots": [], "aeIdInCertificate": false},
        "communications": {"class": "periodic", "periodSeconds": 60, "maxRequestsPerMinute": 6000,
                           "maxPayloadBytes": 65536, "bindings": ["http"]},
        "dataModel": {"containers": []},
        "dataPrivacy": {"category": "personal", "sharing": "restricted", "allowedRecipients": [],
                        "retentionDays": 7, "dataMining": false, "resale": false},
    })
}

/// `p` with the member at `pointer` set to `v` (the member is added if absent).
fn with(mut p: Value, pointer: &str, v: Value) -> Value {
    let (parent, key) = pointer.rsplit_once('/').unwrap();
    let obj = p.pointer_mut(parent).and_then(Value::as_object_mut).unwrap_or_else(|| panic!("no object at {parent}"));
    obj.insert(key.to_owned(), v);
    p
}

/// A profile whose devices authenticate with certificates under `roots`.
fn x509(app_id: &str, roots: &[&Root]) -> Value {
    let roots: Vec<Value> = roots
        .iter()
        .map(|r| json!({"subject": r.subject(), "sha256": r.fingerprint().to_hex(), "pem": r.cert_pem()}))
        .collect();
    with(with(profile(app_id), "/authentication/method", json!("x509")), "/authentication/roots", json!(roots))
}

// --- requests ---

fn ae(rn: &str, api: &str) -> Value {
    json!({"m2m:ae": {"rn": rn, "api": api, "rr": false, "srv": ["3", "4"]}})
}

fn register(from: &str, rn: &str, api: &str) -> Req {
    Req::create("/cse-in", from, 2, ae(rn, api))
}

fn cin(cnf: &str, con: &str) -> Value {
    json!({"m2m:cin": {"cnf": cnf, "con": con}})
}

// --- the set-up ---

/// How to start an [`Env`].
struct Setup {
    policy: String,
    /// Profiles created before the CSE starts: the CSE has never looked them up, and the change feed
    /// it follows starts after them.
    pre: Vec<Value>,
    /// Put a fault-injecting proxy between the CSE and the registry.
    proxy: bool,
    /// Give the CSE a token the registry does not know.
    bad_token: bool,
}

impl Setup {
    fn new(policy: &str) -> Self {
        Self { policy: policy.to_owned(), pre: Vec::new(), proxy: false, bad_token: false }
    }

    fn pre(mut self, profiles: Vec<Value>) -> Self {
        self.pre = profiles;
        self
    }

    fn proxy(mut self) -> Self {
        self.proxy = true;
        self
    }

    fn bad_token(mut self) -> Self {
        self.bad_token = true;
        self
    }
}

/// A registry, a CSE that admits against it (HTTP and HTTPS with optional client certificates),
/// and clients.
struct Env {
    registry: TestRegistry,
    admin: RegistryClient,
    proxy: Option<Proxy>,
    cse: TestCse,
    server: Arc<ServerIdentity>,
    http: reqwest::Client,
}

impl Env {
    async fn start(policy: &str) -> Self {
        Self::with(Setup::new(policy)).await
    }

    async fn with(setup: Setup) -> Self {
        let registry = TestRegistry::start().await;
        let admin = registry.admin();
        for p in &setup.pre {
            admin.create_json(Bytes::from(p.to_string())).await.unwrap();
        }
        let token = if setup.bad_token {
            "not-a-token-of-this-registry".to_owned()
        } else {
            admin.mint_token(Role::Read).await.unwrap().token
        };
        let proxy = if setup.proxy { Some(Proxy::start(&registry.url).await) } else { None };
        let url = proxy.as_ref().map_or_else(|| registry.url.clone(), Proxy::url);
        // The CSE follows the feed from here: later changes reach it, earlier ones are not replayed.
        let head = registry.registry.changes(None, Duration::ZERO, 1).await.unwrap().last;
        let admission = AdmissionConfig {
            policy: cse::admission::policy::Policy::parse(&setup.policy).unwrap(),
            registry: RegistryClient::new(&url, Some(token)).unwrap(),
            keys: registry.registry.key_set(),
            feed_from: Some(head),
        };
        let server = Arc::new(server_identity());
        let opts = CseOptions {
            http: HttpConfig::default().with_admin_token(ADMIN_TOKEN),
            admission: Some(admission),
            tls: Some((server.clone(), ClientAuth::Optional)),
            ..CseOptions::default()
        };
        let cse = TestCse::start(opts).await;
        Self { registry, admin, proxy, cse, server, http: client() }
    }

    /// Stops the CSE and starts it again on the same data (new ports); the registry keeps running.
    async fn restart(self) -> Self {
        let Env { registry, admin, proxy, cse, server, http } = self;
        let cse = cse.restart().await;
        Env { registry, admin, proxy, cse, server, http }
    }

    /// Stops the CSE, revokes `app_id` at the registry while it is down, and starts it again.
    async fn restart_revoking(self, app_id: &AppId) -> Self {
        let Env { registry, admin, proxy, cse, server, http } = self;
        let cse = cse
            .restart_after(async {
                admin.set_status(app_id, Status::Revoked, "while down").await.unwrap();
            })
            .await;
        Env { registry, admin, proxy, cse, server, http }
    }

    fn admission(&self) -> &Arc<Admission> {
        self.cse.service.cse.admission().expect("admission is on")
    }

    fn proxy(&self) -> &Proxy {
        self.proxy.as_ref().expect("started with a proxy")
    }

    fn https(&self) -> &str {
        self.cse.https_url.as_deref().expect("HTTPS")
    }

    /// Registers a profile at the registry. Nothing waits for the CSE to hear of it: an App-ID it
    /// does not know yet is looked up (and its roots learned) at its first registration.
    async fn create(&self, profile: Value) -> AppId {
        self.admin.create_json(Bytes::from(profile.to_string())).await.unwrap().app_id
    }

    async fn plain(&self, req: &Req) -> Reply {
        req.send(&self.http, &self.cse.url).await
    }

    /// An HTTPS client presenting `dev` (none: TLS without a client certificate).
    fn tls_client(&self, dev: Option<&Identity>) -> reqwest::Client {
        https_client(&self.server.ca, dev).build().unwrap()
    }

    /// Sends over a new TLS connection; an error when the handshake is refused.
    async fn tls(&self, req: &Req, dev: Option<&Identity>) -> Result<Reply, reqwest::Error> {
        req.try_send(&self.tls_client(dev), self.https()).await
    }

    /// Every decision, newest first.
    async fn decisions(&self) -> Vec<Decision> {
        self.admission().decisions().query(DecisionFilter { limit: 1000, ..Default::default() }).await.unwrap()
    }

    /// The newest decision's sequence number (0 when there is none).
    async fn last_seq(&self) -> u64 {
        self.decisions().await.first().map_or(0, |d| d.seq)
    }

    /// The decisions recorded after `seq`, oldest first.
    async fn decisions_since(&self, seq: u64) -> Vec<Decision> {
        let mut new: Vec<Decision> = self.decisions().await.into_iter().filter(|d| d.seq > seq).collect();
        new.reverse();
        new
    }

    /// Checks that exactly one decision was recorded after `seq`, with these properties.
    async fn one_decision(&self, seq: u64, want: &Want) -> Decision {
        let new = self.decisions_since(seq).await;
        assert_eq!(new.len(), 1, "one decision expected, like {want:?}: {new:#?}");
        let d = new.into_iter().next().unwrap();
        want.check(&d);
        d
    }

    /// A metric's value on the CSE's `/metrics` (summed over the series with these labels).
    async fn metric(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        let text = self.http.get(format!("{}/metrics", self.cse.url)).send().await.unwrap().text().await.unwrap();
        text.lines()
            .filter(|l| l.strip_prefix(name).is_some_and(|rest| rest.starts_with('{') || rest.starts_with(' ')))
            .filter(|l| labels.iter().all(|(k, v)| l.contains(&format!("{k}=\"{v}\""))))
            .filter_map(|l| l.rsplit(' ').next().and_then(|v| v.parse::<f64>().ok()))
            .sum()
    }
}

/// What a decision-log entry must say.
#[derive(Debug, Clone)]
struct Want {
    outcome: &'static str,
    reason: &'static str,
    rsc: u16,
    rule: Option<&'static str>,
    mode: &'static str,
    app_id: Option<String>,
}

fn admitted(reason: &'static str) -> Want {
    Want { outcome: "admitted", reason, rsc: 2001, rule: None, mode: "enforce", app_id: None }
}

fn rejected(rsc: u16, reason: &'static str) -> Want {
    Want { outcome: "rejected", reason, rsc, rule: None, mode: "enforce", app_id: None }
}

impl Want {
    fn rule(mut self, rule: &'static str) -> Self {
        self.rule = Some(rule);
        self
    }

    fn audit(mut self) -> Self {
        self.mode = "audit";
        self
    }

    fn app(mut self, app_id: &str) -> Self {
        self.app_id = Some(app_id.to_owned());
        self
    }

    fn check(&self, d: &Decision) {
        let got = (d.outcome.as_str(), d.reason.as_str(), d.rsc, d.rule.as_deref(), d.mode.as_str());
        assert_eq!(got, (self.outcome, self.reason, self.rsc, self.rule, self.mode), "decision {d:#?}");
        if let Some(a) = &self.app_id {
            assert_eq!(&d.app_id, a, "decision {d:#?}");
        }
    }
}

// --- 1. the decision matrix: one test per reason ---

const X509_APP: &str = "Racme01.com.acme.thermostat";
const NONE_APP: &str = "Racme02.com.acme.plug";
const SUSP_APP: &str = "Racme03.com.acme.susp";
const GONE_APP: &str = "Racme04.com.acme.gone";
const DENY_APP: &str = "Racme05.com.acme.deny";
const MQTT_APP: &str = "Racme06.com.acme.mqtt";
const GRID_APP: &str = "Racme07.com.acme.grid";
const PSK_APP: &str = "Racme08.com.acme.psk";
const UNKNOWN_APP: &str = "Rnobody01.org.none.app";

/// The device a row presents over mutual TLS.
#[derive(Debug, Clone, Copy)]
enum Dev {
    /// Acme's device for the x509 App-ID.
    Good,
    /// Signed by Beta's root.
    WrongRoot,
    Expired,
    /// Carries this absolute AE-ID.
    AeId(&'static str),
    /// Claims an App-ID that is not registered, under a root nobody knows.
    UnknownApp,
    /// Claims no App-ID at all.
    NoAppId,
}

/// How a row's registration travels.
#[derive(Debug, Clone, Copy)]
enum Via {
    Plain,
    Tls(Dev),
}

/// The environment of the matrix: every profile a row may need, registered after the CSE started
/// (the CSE has not looked any of them up; its trust map knows none of their roots).
struct Matrix {
    env: Env,
    acme: Root,
    beta: Root,
}

async fn matrix() -> Matrix {
    let env = Env::start(ENFORCE).await;
    let (acme, beta) = (vendor_root("Acme"), vendor_root("Beta"));
    env.create(x509(X509_APP, &[&acme])).await;
    env.create(profile(NONE_APP)).await;
    env.create(with(profile(SUSP_APP), "/status", json!("suspended"))).await;
    env.create(with(profile(GONE_APP), "/status", json!("revoked"))).await;
    let denied = json!({"denied": ["Cdenied0001", "S-stolen-*", "/id-in/Cdenied0002"]});
    env.create(with(profile(DENY_APP), "/devices", denied)).await;
    env.create(with(profile(MQTT_APP), "/communications/bindings", json!(["mqtt"]))).await;
    env.create(with(profile(GRID_APP), "/application/class", json!("critical-infrastructure"))).await;
    env.create(with(profile(PSK_APP), "/authentication/method", json!("psk"))).await;
    Matrix { env, acme, beta }
}

impl Matrix {
    fn identity(&self, dev: Dev) -> Identity {
        match dev {
            Dev::Good => device(&self.acme, X509_APP),
            Dev::WrongRoot => device(&self.beta, X509_APP),
            Dev::Expired => expired_device(&self.acme, X509_APP),
            Dev::AeId(ae) => device_with_ae_id(&self.acme, X509_APP, ae),
            Dev::UnknownApp => device(&vendor_root("Nobody"), UNKNOWN_APP),
            Dev::NoAppId => testkit::pki::device_without_app_id(&self.acme),
        }
    }

    /// Sends the registration; checks the RSC, the reason in `m2m:dbg` or the new AE, and the one
    /// decision-log entry it made. Returns the reply.
    async fn row(&self, via: Via, from: &str, rn: &str, api: &str, want: Want) -> Reply {
        self.row_req(via, &register(from, rn, api), want).await
    }

    /// [`Matrix::row`] for any AE CREATE request.
    async fn row_req(&self, via: Via, req: &Req, want: Want) -> Reply {
        let env = &self.env;
        let seq = env.last_seq().await;
        let reply = match via {
            Via::Plain => env.plain(req).await,
            Via::Tls(dev) => env.tls(req, Some(&self.identity(dev))).await.expect("a oneM2M answer, not a TLS refusal"),
        };
        assert_eq!(reply.rsc, want.rsc, "{}", reply.body);
        let d = env.one_decision(seq, &want).await;
        if want.outcome == "admitted" {
            assert_eq!(d.ae_id, reply.str_at("/m2m:ae/aei"));
        } else {
            assert!(!reply.str_at("/m2m:dbg").is_empty(), "the device learns why: {}", reply.body);
            assert_eq!(d.message, reply.str_at("/m2m:dbg"), "the log says what the device was told");
        }
        reply
    }
}

/// One test per row of the matrix: `decision!(name, via, from, api, want)`.
macro_rules! decision {
    ($name:ident, $via:expr, $from:expr, $api:expr, $want:expr) => {
        #[tokio::test]
        async fn $name() {
            let m = matrix().await;
            m.row($via, $from, "m", $api, $want.app($api)).await;
        }
    };
}

decision!(matrix_x509_over_mutual_tls, Via::Tls(Dev::Good), "C", X509_APP, admitted("admitted"));
decision!(matrix_method_none_over_plain_http, Via::Plain, "C", NONE_APP, admitted("admitted"));
decision!(matrix_non_registered_app_id, Via::Plain, "C", "Nsome.app", rejected(4126, "unregistered"));
decision!(matrix_unknown_app_id, Via::Plain, "C", UNKNOWN_APP, rejected(4126, "unknown_app_id"));
decision!(matrix_suspended_app_id, Via::Plain, "C", SUSP_APP, rejected(4126, "suspended"));
decision!(matrix_revoked_app_id, Via::Plain, "C", GONE_APP, rejected(4126, "revoked"));
decision!(matrix_denied_ae_id, Via::Plain, "Cdenied0001", DENY_APP, rejected(4126, "device_denied"));
decision!(matrix_denied_pattern, Via::Plain, "S-stolen-7", DENY_APP, rejected(4126, "device_denied"));
decision!(matrix_denied_sp_relative_ae_id, Via::Plain, "Cdenied0002", DENY_APP, rejected(4126, "device_denied"));
decision!(matrix_device_not_on_the_deny_list, Via::Plain, "Cfine0001", DENY_APP, admitted("admitted"));
decision!(matrix_x509_without_a_security_association, Via::Plain, "C", X509_APP, rejected(4107, "sa_required"));
decision!(matrix_certificate_under_another_root, Via::Tls(Dev::WrongRoot), "C", X509_APP, rejected(4106, "wrong_root"));
decision!(matrix_expired_certificate, Via::Tls(Dev::Expired), "C", X509_APP, rejected(4106, "expired"));
decision!(matrix_certificate_without_app_id, Via::Tls(Dev::NoAppId), "C", NONE_APP, rejected(4106, "no_app_id"));
decision!(
    matrix_certificate_of_an_unregistered_app_id,
    Via::Tls(Dev::UnknownApp),
    "C",
    UNKNOWN_APP,
    rejected(4126, "unknown_app_id")
);
decision!(
    matrix_certificate_for_a_method_none_app_id,
    Via::Tls(Dev::Good),
    "C",
    NONE_APP,
    rejected(4106, "claim_mismatch")
);
decision!(
    matrix_certificate_ae_id_is_not_from,
    Via::Tls(Dev::AeId("//acme.example.com/Sdev0001")),
    "Sdev0009",
    X509_APP,
    rejected(4106, "claim_mismatch")
);
decision!(
    matrix_certificate_ae_id_is_a_c_stem,
    Via::Tls(Dev::AeId("//acme.example.com/id-in/Cdev0002")),
    "S",
    X509_APP,
    rejected(4106, "claim_mismatch")
);
decision!(
    matrix_certificate_ae_id_of_another_sp,
    Via::Tls(Dev::AeId("//other.example.com/Sdev0003")),
    "C",
    X509_APP,
    rejected(4106, "claim_mismatch")
);
decision!(matrix_binding_not_listed, Via::Plain, "C", MQTT_APP, rejected(4126, "binding_not_allowed"));
decision!(
    matrix_policy_rule,
    Via::Plain,
    "C",
    GRID_APP,
    rejected(4126, "rule").rule("critical infrastructure needs a TPM")
);
decision!(matrix_unsupported_method, Via::Plain, "C", PSK_APP, rejected(4126, "method_unsupported"));
decision!(matrix_api_not_an_app_id, Via::Plain, "C", "not an app id", rejected(4000, "bad_api"));
decision!(matrix_cse_id_originator, Via::Plain, "/id-other", NONE_APP, rejected(4107, "cse_originator"));
decision!(
    matrix_ae_id_of_another_cse,
    Via::Plain,
    "//other.example.com/id-x/Cforeign1",
    NONE_APP,
    rejected(4107, "foreign_ae_id")
);

#[tokio::test]
async fn matrix_certificate_ae_id_gives_the_stem() {
    let m = matrix().await;
    let want = admitted("admitted").app(X509_APP);
    let r = m.row(Via::Tls(Dev::AeId("//acme.example.com/Sdev0001")), "S", "m", X509_APP, want).await;
    assert_eq!(r.str_at("/m2m:ae/aei"), "Sdev0001");
}

#[tokio::test]
async fn matrix_an_ae_id_registered_already_even_from_another_credential() {
    let m = matrix().await;
    let r = m.row(Via::Tls(Dev::Good), "C", "first", X509_APP, admitted("admitted").app(X509_APP)).await;
    let aei = r.str_at("/m2m:ae/aei");
    // The same AE-ID again: over plain HTTP, and with another device's certificate.
    let want = rejected(4117, "already_registered").app(NONE_APP);
    m.row(Via::Plain, &aei, "again", NONE_APP, want).await;
    let want = rejected(4117, "already_registered").app(X509_APP);
    m.row(Via::Tls(Dev::Good), &aei, "again2", X509_APP, want).await;
}

#[tokio::test]
async fn matrix_invalid_attributes() {
    let m = matrix().await;
    let seq = m.env.last_seq().await;
    let bad =
        Req::create("/cse-in", "C", 2, json!({"m2m:ae": {"rn": "b", "api": NONE_APP, "rr": false, "srv": ["99"]}}));
    assert_eq!(m.env.plain(&bad).await.rsc, 4000);
    m.env.one_decision(seq, &rejected(4000, "bad_request").app(NONE_APP)).await;
}

// The refusals of the CSE's own rules are decisions too, each with its reason.

#[tokio::test]
async fn matrix_an_unknown_attribute() {
    let m = matrix().await;
    let body = json!({"m2m:ae": {"rn": "u", "api": NONE_APP, "rr": false, "srv": ["4"], "bogus": 1}});
    let r =
        m.row_req(Via::Plain, &Req::create("/cse-in", "C", 2, body), rejected(4000, "bad_request").app(NONE_APP)).await;
    assert!(r.str_at("/m2m:dbg").contains("bogus"), "{}", r.body);
    // An attribute the client may not set, and one of the wrong type, likewise.
    let body = json!({"m2m:ae": {"api": NONE_APP, "rr": false, "srv": ["4"], "aei": "Cmine"}});
    m.row_req(Via::Plain, &Req::create("/cse-in", "C", 2, body), rejected(4000, "bad_request").app(NONE_APP)).await;
    let body = json!({"m2m:ae": {"api": NONE_APP, "rr": "no", "srv": ["4"]}});
    m.row_req(Via::Plain, &Req::create("/cse-in", "C", 2, body), rejected(4000, "bad_request").app(NONE_APP)).await;
}

#[tokio::test]
async fn matrix_a_resource_name_taken() {
    let m = matrix().await;
    m.row(Via::Plain, "C", "taken", NONE_APP, admitted("admitted").app(NONE_APP)).await;
    let d = m.row(Via::Plain, "C", "taken", NONE_APP, rejected(4105, "name_taken").app(NONE_APP)).await;
    assert!(d.str_at("/m2m:dbg").contains("taken"), "{}", d.body);
}

#[tokio::test]
async fn matrix_an_ae_under_an_ae() {
    let m = matrix().await;
    m.row(Via::Plain, "Cparent01", "parent", NONE_APP, admitted("admitted").app(NONE_APP)).await;
    let req = Req::create("/cse-in/parent", "C", 2, ae("child", NONE_APP));
    m.row_req(Via::Plain, &req, rejected(4108, "invalid_parent").app(NONE_APP)).await;
    let req = Req::create("/cse-in/nowhere", "C", 2, ae("child", NONE_APP));
    m.row_req(Via::Plain, &req, rejected(4004, "invalid_parent").app(NONE_APP)).await;
}

#[tokio::test]
async fn matrix_the_admin_originator_without_its_token() {
    let m = matrix().await;
    m.row(Via::Plain, ADMIN, "adm", NONE_APP, rejected(4106, "admin_token_required").app(NONE_APP)).await;
}

/// Registrations of one AE-ID that all pass the check for an existing AE (they wait together for
/// the registry's answer, held by the proxy), so that all but one are refused by the store: 4117,
/// each a decision.
#[tokio::test]
async fn racing_registrations_of_one_ae_id_are_refused_by_the_store_and_logged() {
    const N: usize = 6;
    let policy = ENFORCE
        .replace("registry_unreachable = \"reject\"", "registry_unreachable = \"reject\"\nlookup_timeout_ms = 60000");
    let env = Env::with(Setup::new(&policy).pre(vec![profile(NONE_APP)]).proxy()).await;
    let profiles = env.admission().profiles().clone();
    let j0 = profiles.joined();
    let seq = env.last_seq().await;
    env.proxy().set(Fault::Hold);
    let regs: Vec<_> = (0..N)
        .map(|i| {
            let (req, http, url) =
                (register("Crace0001", &format!("race{i}"), NONE_APP), env.http.clone(), env.cse.url.clone());
            tokio::spawn(async move { req.send(&http, &url).await })
        })
        .collect();
    assert!(env.proxy().wait_held(DEADLINE).await, "the lookup reaches the registry");
    assert!(
        eventually(DEADLINE, async || profiles.joined() - j0 == (N - 1) as u64).await,
        "every registration passed the check for an existing AE and waits for the registry"
    );
    env.proxy().set(Fault::None);
    env.proxy().release();
    let mut rscs: Vec<u16> = Vec::new();
    for r in futures_util::future::join_all(regs).await {
        let r = r.unwrap();
        if r.rsc == 4117 {
            assert_eq!(r.str_at("/m2m:dbg"), "the AE Crace0001 is registered already", "{}", r.body);
        }
        rscs.push(r.rsc);
    }
    rscs.sort_unstable();
    assert_eq!(rscs, [vec![2001], vec![4117; N - 1]].concat());
    let new = env.decisions_since(seq).await;
    assert_eq!(new.len(), N, "one decision per registration: {new:#?}");
    assert_eq!(new.iter().filter(|d| d.outcome == "admitted").count(), 1);
    for d in new.iter().filter(|d| d.outcome != "admitted") {
        rejected(4117, "already_registered").app(NONE_APP).check(d);
        assert_eq!(d.ae_id, "Crace0001");
    }
}

#[tokio::test]
async fn a_device_certificate_may_serve_another_ae_of_its_app_id() {
    let m = matrix().await;
    let dev = m.identity(Dev::Good);
    let client = m.env.tls_client(Some(&dev));
    for rn in ["one", "two"] {
        let r = register("C", rn, X509_APP).send(&client, m.env.https()).await;
        assert_eq!(r.rsc, 2001, "{}", r.body);
    }
}

#[tokio::test]
async fn the_decision_log_through_the_admin_api_is_filtered_and_needs_the_token() {
    let m = matrix().await;
    m.row(Via::Plain, "C", "a", X509_APP, rejected(4107, "sa_required").app(X509_APP)).await;
    m.row(Via::Tls(Dev::WrongRoot), "C", "b", X509_APP, rejected(4106, "wrong_root").app(X509_APP)).await;
    m.row(Via::Plain, "C", "c", NONE_APP, admitted("admitted").app(NONE_APP)).await;
    let env = &m.env;
    let url = format!("{}/admin/decisions?outcome=rejected&appId={X509_APP}", env.cse.url);
    let listed: Value = env.http.get(&url).bearer_auth(ADMIN_TOKEN).send().await.unwrap().json().await.unwrap();
    let reasons: Vec<&str> =
        listed["decisions"].as_array().unwrap().iter().map(|d| d["reason"].as_str().unwrap()).collect();
    assert_eq!(reasons, ["wrong_root", "sa_required"]);
    assert_eq!(env.http.get(&url).send().await.unwrap().status(), 401);
    assert_eq!(env.http.get(&url).bearer_auth("wrong").send().await.unwrap().status(), 401);
    let counted = env.metric("warden_admission_decisions_total", &[("reason", "wrong_root")]).await;
    assert!(counted >= 1.0, "{counted}");
}

#[tokio::test]
async fn the_first_mutual_tls_registration_of_an_app_id_never_seen_succeeds_at_once() {
    // Registered before the CSE starts: the feed it follows starts after it, and nothing has
    // taught the trust map its roots.
    let acme = vendor_root("Acme");
    let env = Env::with(Setup::new(ENFORCE).pre(vec![x509(X509_APP, &[&acme])])).await;
    assert!(!env.cse.service.trust.contains(&AppId::parse(X509_APP).unwrap()));
    let client = env.tls_client(Some(&device(&acme, X509_APP)));
    let r = register("C", "first", X509_APP).send(&client, env.https()).await;
    assert_eq!(r.rsc, 2001, "resolved from the signed profile: {}", r.body);
    let aei = r.str_at("/m2m:ae/aei");
    // The same connection now carries the identity: the AE's requests pass, and it is bound.
    let c = Req::create("/cse-in/first", &aei, 3, json!({"m2m:cnt": {"rn": "c"}})).send(&client, env.https()).await;
    assert_eq!(c.rsc, 2001, "{}", c.body);
    assert_eq!(env.plain(&Req::get("/cse-in/first", &aei)).await.rsc, 4106, "bound to its certificate");
}

#[tokio::test]
async fn requests_over_a_certificate_that_does_not_verify_are_refused_and_logged() {
    let m = matrix().await;
    let r = m.row(Via::Plain, "C", "p", NONE_APP, admitted("admitted").app(NONE_APP)).await;
    let aei = r.str_at("/m2m:ae/aei");
    let seq = m.env.last_seq().await;
    let bad = m.identity(Dev::Expired);
    let r = m.env.tls(&Req::get("/cse-in/p", &aei), Some(&bad)).await.unwrap();
    assert_eq!(r.rsc, 4106, "{}", r.body);
    assert!(r.str_at("/m2m:dbg").contains("does not verify"), "{}", r.body);
    let d = m.env.one_decision(seq, &rejected(4106, "expired")).await;
    assert_eq!((d.stage.as_str(), d.ae_id.as_str()), ("request", aei.as_str()));
}

#[tokio::test]
async fn non_registered_app_ids_are_admitted_when_the_policy_says_so() {
    let env = Env::start("[admission]\nunregistered = \"admit\"").await;
    let seq = env.last_seq().await;
    let r = env.plain(&register("C", "free", "Nfree.app")).await;
    assert_eq!(r.rsc, 2001, "{}", r.body);
    let d = env.one_decision(seq, &admitted("unregistered_admitted").app("Nfree.app")).await;
    assert_eq!((d.ae_id, d.profile_version), (r.str_at("/m2m:ae/aei"), None));
    // Without a profile there is nothing to enforce: its requests pass.
    let aei = r.str_at("/m2m:ae/aei");
    assert_eq!(env.plain(&Req::get("/cse-in/free", &aei)).await.rsc, 2000);
}

// --- 2. after admission ---

#[tokio::test]
async fn a_bound_credential_speaks_only_for_its_ae() {
    let env = Env::start(ENFORCE).await;
    let acme = vendor_root("Acme");
    env.create(x509(X509_APP, &[&acme])).await;
    let (dev_x, dev_y) = (device(&acme, X509_APP), device(&acme, X509_APP));
    let (cx, cy) = (env.tls_client(Some(&dev_x)), env.tls_client(Some(&dev_y)));
    let x = register("C", "x", X509_APP).send(&cx, env.https()).await;
    assert_eq!(x.rsc, 2001, "{}", x.body);
    let y = register("C", "y", X509_APP).send(&cy, env.https()).await;
    assert_eq!(y.rsc, 2001, "{}", y.body);
    let (x, y) = (x.str_at("/m2m:ae/aei"), y.str_at("/m2m:ae/aei"));

    let get_x = Req::get("/cse-in/x", &x);
    assert_eq!(get_x.send(&cx, env.https()).await.rsc, 2000, "the right certificate");
    let r = env.plain(&get_x).await;
    assert_eq!(r.rsc, 4106, "no TLS: {}", r.body);
    assert!(r.str_at("/m2m:dbg").contains("bound to a client certificate"), "{}", r.body);
    assert_eq!(env.tls(&get_x, None).await.unwrap().rsc, 4106, "TLS without a client certificate");
    let other = device(&acme, X509_APP);
    assert_eq!(env.tls(&get_x, Some(&other)).await.unwrap().rsc, 4106, "another valid certificate of the App-ID");
    assert_eq!(get_x.send(&cy, env.https()).await.rsc, 4106, "Y's certificate speaking as X");
    let r = Req::get("/cse-in/y", &y).send(&cx, env.https()).await;
    assert_eq!(r.rsc, 4106, "X's certificate speaking as Y: {}", r.body);
    // Writes are refused alike, and nothing was changed by the refusals.
    let cnt = Req::create("/cse-in/x", &x, 3, json!({"m2m:cnt": {"rn": "c"}}));
    assert_eq!(env.plain(&cnt).await.rsc, 4106);
    assert_eq!(cnt.send(&cy, env.https()).await.rsc, 4106);
    assert_eq!(cnt.send(&cx, env.https()).await.rsc, 2001);
    assert_eq!(Req::get("/cse-in/y", &y).send(&cy, env.https()).await.rsc, 2000);
}

#[tokio::test]
async fn the_privacy_policy_follows_data_privacy() {
    let env = Env::start("[admission]\nunregistered = \"admit\"").await;
    let shared = with(profile("Racme01.com.acme.ehr"), "/dataPrivacy/allowedRecipients", json!(["Cehr*"]));
    env.create(shared).await;
    let private = with(profile("Racme02.com.acme.diary"), "/dataPrivacy/sharing", json!("none"));
    env.create(with(private, "/dataPrivacy/allowedRecipients", json!(["Cehr*"]))).await;

    let mut owners = Vec::new();
    for (rn, api) in [("shared", "Racme01.com.acme.ehr"), ("private", "Racme02.com.acme.diary")] {
        let r = env.plain(&register("C", rn, api)).await;
        assert_eq!(r.rsc, 2001, "{}", r.body);
        let aei = r.str_at("/m2m:ae/aei");
        let c = env.plain(&Req::create(&format!("/cse-in/{rn}"), &aei, 3, json!({"m2m:cnt": {"rn": "data"}}))).await;
        assert_eq!(c.rsc, 2001, "{}", c.body);
        // The container carries the AE's privacy policy.
        let acp = env.plain(&as_admin(Req::get(&format!("/cse-in/{rn}/acpPrivacy"), ADMIN))).await;
        assert_eq!(acp.rsc, 2000, "{}", acp.body);
        assert_eq!(c.at("/m2m:cnt/acpi"), &json!([acp.str_at("/m2m:acp/ri")]));
        let w = env.plain(&Req::create(&format!("/cse-in/{rn}/data"), &aei, 4, cin("text/plain:0", "72 bpm"))).await;
        assert_eq!(w.rsc, 2001, "{}", w.body);
        owners.push(aei);
    }
    let reader = env.plain(&register("Cehr0001", "reader", "Nehr.viewer")).await;
    assert_eq!(reader.rsc, 2001, "{}", reader.body);
    let stranger = env.plain(&register("Cstranger01", "stranger", "Nsome.app")).await;
    assert_eq!(stranger.rsc, 2001, "{}", stranger.body);

    let read = |rn: &str, who: &str| Req::get(&format!("/cse-in/{rn}/data/la"), who);
    // Restricted: the AE, the admin and the allowed recipients read; nobody else.
    assert_eq!(env.plain(&read("shared", &owners[0])).await.rsc, 2000);
    assert_eq!(env.plain(&as_admin(read("shared", ADMIN))).await.rsc, 2000);
    let r = env.plain(&read("shared", "Cehr0001")).await;
    assert_eq!((r.rsc, r.str_at("/m2m:cin/con")), (2000, "72 bpm".into()));
    assert_eq!(env.plain(&read("shared", "Cstranger01")).await.rsc, 4103);
    // Recipients read; they do not write.
    let w = Req::create("/cse-in/shared/data", "Cehr0001", 4, cin("text/plain:0", "forged"));
    assert_eq!(env.plain(&w).await.rsc, 4103);
    // None: only the AE and the admin, whatever the recipients list says.
    assert_eq!(env.plain(&read("private", &owners[1])).await.rsc, 2000);
    assert_eq!(env.plain(&as_admin(read("private", ADMIN))).await.rsc, 2000);
    assert_eq!(env.plain(&read("private", "Cehr0001")).await.rsc, 4103);
    assert_eq!(env.plain(&read("private", "Cstranger01")).await.rsc, 4103);
    // One owner cannot read the other's data either.
    assert_eq!(env.plain(&read("private", &owners[0])).await.rsc, 4103);
}

#[tokio::test]
async fn containers_get_the_class_quotas_and_the_retention() {
    let policy = "[admission]\n[quotas.consumer]\nmni = 2\nmbs = 10000\n";
    let env = Env::start(policy).await;
    env.create(with(profile(NONE_APP), "/dataPrivacy/retentionDays", json!(30))).await;
    env.create(with(profile("Racme09.com.acme.robot"), "/application/class", json!("industrial"))).await;
    let r = env.plain(&register("C", "q", NONE_APP)).await;
    assert_eq!(r.rsc, 2001, "{}", r.body);
    let aei = r.str_at("/m2m:ae/aei");
    let mk = |body: Value| Req::create("/cse-in/q", &aei, 3, json!({ "m2m:cnt": body }));

    let c = env.plain(&mk(json!({"rn": "plain"}))).await;
    assert_eq!(c.rsc, 2001, "{}", c.body);
    let limits = |r: &Reply| (r.at("/m2m:cnt/mni").clone(), r.at("/m2m:cnt/mbs").clone(), r.at("/m2m:cnt/mia").clone());
    assert_eq!(limits(&c), (json!(2), json!(10000), json!(30 * 86_400)));
    let c = env.plain(&mk(json!({"rn": "greedy", "mni": 10, "mbs": 1_000_000, "mia": 999_999_999}))).await;
    assert_eq!(limits(&c), (json!(2), json!(10000), json!(30 * 86_400)), "lowered to the quota");
    let c = env.plain(&mk(json!({"rn": "modest", "mni": 1, "mia": 60}))).await;
    assert_eq!(limits(&c), (json!(1), json!(10000), json!(60)), "lower values are kept");
    // An update cannot raise them either.
    let u = env.plain(&Req::update("/cse-in/q/plain", &aei, json!({"m2m:cnt": {"mni": 50}}))).await;
    assert_eq!((u.rsc, u.at("/m2m:cnt/mni")), (2004, &json!(2)), "{}", u.body);
    // And the quota holds: a third instance pushes out the oldest.
    for i in 0..3 {
        let w = env.plain(&Req::create("/cse-in/q/plain", &aei, 4, cin("text/plain:0", &format!("v{i}")))).await;
        assert_eq!(w.rsc, 2001, "{}", w.body);
    }
    let c = env.plain(&Req::get("/cse-in/q/plain", &aei)).await;
    assert_eq!(c.at("/m2m:cnt/cni"), &json!(2));
    assert_eq!(env.plain(&Req::get("/cse-in/q/plain/ol", &aei)).await.str_at("/m2m:cin/con"), "v1");

    // A class without quotas gets no mni or mbs, but still the retention.
    let r = env.plain(&register("C", "robot", "Racme09.com.acme.robot")).await;
    let aei = r.str_at("/m2m:ae/aei");
    let c = env.plain(&Req::create("/cse-in/robot", &aei, 3, json!({"m2m:cnt": {"rn": "c"}}))).await;
    assert_eq!(limits(&c), (Value::Null, Value::Null, json!(7 * 86_400)), "{}", c.body);
}

#[tokio::test]
async fn the_rate_limit_refuses_the_fourth_request_in_a_row() {
    let env = Env::start(ENFORCE).await;
    env.create(with(profile(NONE_APP), "/communications/maxRequestsPerMinute", json!(3))).await;
    let r = env.plain(&register("C", "chatty", NONE_APP)).await;
    assert_eq!(r.rsc, 2001, "{}", r.body);
    let aei = r.str_at("/m2m:ae/aei");
    let get = Req::get("/cse-in/chatty", &aei);
    for i in 0..3 {
        assert_eq!(env.plain(&get).await.rsc, 2000, "request {i}");
    }
    let labels = [("reason", "rate_limited"), ("outcome", "refused")];
    let before = env.metric("warden_admission_request_refusals_total", &labels).await;
    let r = env.plain(&get).await;
    assert_eq!(r.rsc, 4126, "{}", r.body);
    assert!(r.str_at("/m2m:dbg").contains("rate limit of 3 requests per minute"), "{}", r.body);
    let after = env.metric("warden_admission_request_refusals_total", &labels).await;
    assert!(after >= before + 1.0, "the refusal is counted: {before} -> {after}");
    // The limit is the AE's own: another AE of the App-ID is not affected, nor the admin.
    let r = env.plain(&register("C", "quiet", NONE_APP)).await;
    assert_eq!(env.plain(&Req::get("/cse-in/quiet", &r.str_at("/m2m:ae/aei"))).await.rsc, 2000);
    assert_eq!(env.plain(&as_admin(Req::get("/cse-in/chatty", ADMIN))).await.rsc, 2000);
    // With admission enforced, the admin originator alone proves nothing.
    assert_eq!(env.plain(&Req::get("/cse-in/chatty", ADMIN)).await.rsc, 4106);
    let wrong = Req::get("/cse-in/chatty", ADMIN).header("Authorization", "Bearer not-the-token");
    assert_eq!(env.plain(&wrong).await.rsc, 4106);
}

#[tokio::test]
async fn a_body_over_the_payload_limit_is_refused() {
    let env = Env::start(ENFORCE).await;
    env.create(with(profile(NONE_APP), "/communications/maxPayloadBytes", json!(300))).await;
    let r = env.plain(&register("C", "small", NONE_APP)).await;
    let aei = r.str_at("/m2m:ae/aei");
    let c = env.plain(&Req::create("/cse-in/small", &aei, 3, json!({"m2m:cnt": {"rn": "c"}}))).await;
    assert_eq!(c.rsc, 2001, "{}", c.body);
    let ok = env.plain(&Req::create("/cse-in/small/c", &aei, 4, cin("text/plain:0", &"a".repeat(100)))).await;
    assert_eq!(ok.rsc, 2001, "{}", ok.body);
    let big = env.plain(&Req::create("/cse-in/small/c", &aei, 4, cin("text/plain:0", &"a".repeat(400)))).await;
    assert_eq!(big.rsc, 4126, "{}", big.body);
    assert!(big.str_at("/m2m:dbg").contains("maxPayloadBytes (300)"), "{}", big.body);
    let c = env.plain(&Req::get("/cse-in/small/c", &aei)).await;
    assert_eq!(c.at("/m2m:cnt/cni"), &json!(1), "the refused instance was not stored");
}

#[tokio::test]
async fn content_instances_must_match_the_data_model() {
    let env = Env::start(ENFORCE).await;
    let schema = json!({"type": "object", "required": ["celsius"], "properties": {"celsius": {"type": "number"}}});
    let model = json!({"containers": [{"name": "temperature", "contentInfo": "application/json:0", "schema": schema}]});
    env.create(with(profile(NONE_APP), "/dataModel", model)).await;
    let r = env.plain(&register("C", "thermo", NONE_APP)).await;
    let aei = r.str_at("/m2m:ae/aei");
    for rn in ["temperature", "notes"] {
        let c = env.plain(&Req::create("/cse-in/thermo", &aei, 3, json!({"m2m:cnt": {"rn": rn}}))).await;
        assert_eq!(c.rsc, 2001, "{}", c.body);
    }
    let write = |cnt: &str, cnf: &str, con: &str| Req::create(&format!("/cse-in/thermo/{cnt}"), &aei, 4, cin(cnf, con));
    let cases = [
        ("the wrong cnf", write("temperature", "text/plain:0", r#"{"celsius": 21.5}"#), 4102),
        ("no JSON at all", write("temperature", "application/json:0", "warm"), 4102),
        ("JSON not matching the schema", write("temperature", "application/json:0", r#"{"celsius": "hot"}"#), 4102),
        ("a missing required member", write("temperature", "application/json:0", r#"{"kelvin": 290}"#), 4102),
        ("matching", write("temperature", "application/json:0", r#"{"celsius": 21.5}"#), 2001),
        ("a container not in the data model", write("notes", "text/plain:0", "anything goes"), 2001),
    ];
    for (name, req, want) in cases {
        let r = env.plain(&req).await;
        assert_eq!(r.rsc, want, "{name}: {}", r.body);
    }
    let c = env.plain(&Req::get("/cse-in/thermo/temperature", &aei)).await;
    assert_eq!(c.at("/m2m:cnt/cni"), &json!(1), "only the matching instance was stored");
}

#[tokio::test]
async fn admissions_survive_a_restart() {
    let env = Env::start(ENFORCE).await;
    let acme = vendor_root("Acme");
    env.create(x509(X509_APP, &[&acme])).await;
    env.create(with(profile(NONE_APP), "/communications/maxPayloadBytes", json!(300))).await;
    let dev = device(&acme, X509_APP);
    let r = register("C", "x", X509_APP).send(&env.tls_client(Some(&dev)), env.https()).await;
    assert_eq!(r.rsc, 2001, "{}", r.body);
    let x = r.str_at("/m2m:ae/aei");
    let p = env.plain(&register("C", "p", NONE_APP)).await.str_at("/m2m:ae/aei");
    let c = env.plain(&Req::create("/cse-in/p", &p, 3, json!({"m2m:cnt": {"rn": "c"}}))).await;
    assert_eq!(c.rsc, 2001, "{}", c.body);

    let env = env.restart().await;
    // The binding and the trust in the App-ID's roots come back from the stored, signed profile.
    let get_x = Req::get("/cse-in/x", &x);
    assert_eq!(env.plain(&get_x).await.rsc, 4106, "still bound to its certificate");
    assert_eq!(env.tls(&get_x, Some(&dev)).await.unwrap().rsc, 2000, "its certificate is trusted at once");
    assert_eq!(env.tls(&get_x, Some(&device(&acme, X509_APP))).await.unwrap().rsc, 4106);
    // So do the limits.
    let big = Req::create("/cse-in/p/c", &p, 4, cin("text/plain:0", &"a".repeat(400)));
    assert_eq!(env.plain(&big).await.rsc, 4126);
    let small = Req::create("/cse-in/p/c", &p, 4, cin("text/plain:0", "a"));
    assert_eq!(env.plain(&small).await.rsc, 2001);
    // The device's certificate may register another AE of its App-ID; it then speaks for both.
    let r = register("C", "again", X509_APP).send(&env.tls_client(Some(&dev)), env.https()).await;
    assert_eq!(r.rsc, 2001, "{}", r.body);
    let again = r.str_at("/m2m:ae/aei");
    assert_eq!(env.tls(&Req::get("/cse-in/again", &again), Some(&dev)).await.unwrap().rsc, 2000);
    assert_eq!(env.tls(&get_x, Some(&dev)).await.unwrap().rsc, 2000);
    assert_eq!(env.tls(&Req::get("/cse-in/p", &p), Some(&dev)).await.unwrap().rsc, 4106, "but not for others");
}

// --- 3. revocation ---

#[tokio::test]
async fn a_revoked_app_id_is_blocked_within_seconds_and_reactivation_lets_it_back() {
    let env = Env::start(ENFORCE).await;
    let acme = vendor_root("Acme");
    let plain_app = env.create(profile(NONE_APP)).await;
    let tls_app = env.create(x509(X509_APP, &[&acme])).await;
    let dev = device(&acme, X509_APP);
    let tls = env.tls_client(Some(&dev));
    let a = env.plain(&register("C", "a", NONE_APP)).await.str_at("/m2m:ae/aei");
    let b = register("C", "b", X509_APP).send(&tls, env.https()).await.str_at("/m2m:ae/aei");
    let get_a = Req::get("/cse-in/a", &a);
    let get_b = Req::get("/cse-in/b", &b);
    assert_eq!(env.plain(&get_a).await.rsc, 2000);
    assert_eq!(get_b.send(&tls, env.https()).await.rsc, 2000);

    for (app_id, status) in [(&plain_app, Status::Revoked), (&tls_app, Status::Suspended)] {
        env.admin.set_status(app_id, status, "test").await.unwrap();
    }
    let t0 = Instant::now();
    let mut last = (0, 0);
    while t0.elapsed() <= REVOCATION_BOUND {
        last = (env.plain(&get_a).await.rsc, get_b.send(&tls, env.https()).await.rsc);
        if last == (4126, 4126) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let took = t0.elapsed();
    assert_eq!(last, (4126, 4126), "both AEs are blocked within {REVOCATION_BOUND:?} (took {took:?})");
    assert!(took <= REVOCATION_BOUND, "{took:?}");
    let r = env.plain(&get_a).await;
    assert!(r.str_at("/m2m:dbg").contains("revoked"), "{}", r.body);
    let r = get_b.send(&tls, env.https()).await;
    assert!(r.str_at("/m2m:dbg").contains("suspended"), "{}", r.body);
    // New registrations are refused too.
    let seq = env.last_seq().await;
    assert_eq!(env.plain(&register("C", "a2", NONE_APP)).await.rsc, 4126);
    env.one_decision(seq, &rejected(4126, "revoked")).await;

    for app_id in [&plain_app, &tls_app] {
        env.admin.set_status(app_id, Status::Active, "cleared").await.unwrap();
    }
    let back = eventually(DEADLINE, async || {
        env.plain(&get_a).await.rsc == 2000 && get_b.send(&tls, env.https()).await.rsc == 2000
    })
    .await;
    assert!(back, "reactivated App-IDs work again");
    assert_eq!(env.plain(&register("C", "a3", NONE_APP)).await.rsc, 2001);
}

#[tokio::test]
async fn on_revoke_delete_removes_the_aes() {
    let env = Env::start("[admission]\non_revoke = \"delete\"").await;
    let gone = env.create(profile(NONE_APP)).await;
    let kept = env.create(profile("Racme09.com.acme.other")).await;
    let a = env.plain(&register("C", "doomed", NONE_APP)).await.str_at("/m2m:ae/aei");
    let cnt = Req::create("/cse-in/doomed", &a, 3, json!({"m2m:cnt": {"rn": "c"}}));
    assert_eq!(env.plain(&cnt).await.rsc, 2001);
    let k = env.plain(&register("C", "keeper", "Racme09.com.acme.other")).await.str_at("/m2m:ae/aei");

    env.admin.set_status(&gone, Status::Revoked, "recalled").await.unwrap();
    let t0 = Instant::now();
    let deleted = eventually(REVOCATION_BOUND, async || {
        env.plain(&as_admin(Req::get("/cse-in/doomed", ADMIN))).await.rsc == 4004
            && env.plain(&as_admin(Req::get("/cse-in/doomed/c", ADMIN))).await.rsc == 4004
    })
    .await;
    let took = t0.elapsed();
    assert!(deleted && took <= REVOCATION_BOUND, "deleted within {REVOCATION_BOUND:?} (took {took:?})");
    assert!(env.admission().aes_of(&gone).is_empty());
    // The other App-ID's AE is untouched.
    assert_eq!(env.plain(&Req::get("/cse-in/keeper", &k)).await.rsc, 2000);
    assert_eq!(env.admission().aes_of(&kept), vec![k]);
}

// --- 4. audit mode ---

#[tokio::test]
async fn audit_mode_records_the_rejection_and_admits_without_enforcing() {
    let env = Env::start(&ENFORCE.replace("mode = \"enforce\"", "mode = \"audit\"")).await;
    env.create(with(profile("Racme03.com.acme.susp"), "/status", json!("suspended"))).await;
    let limited = with(profile(NONE_APP), "/communications/maxRequestsPerMinute", json!(1));
    let limited = with(limited, "/communications/maxPayloadBytes", json!(200));
    let model =
        json!({"containers": [{"name": "t", "contentInfo": "application/json:0", "schema": {"type": "number"}}]});
    env.create(with(limited, "/dataModel", model)).await;

    let seq = env.last_seq().await;
    let r = env.plain(&register("C", "susp", "Racme03.com.acme.susp")).await;
    assert_eq!(r.rsc, 2001, "admitted although suspended: {}", r.body);
    let d = env.decisions_since(seq).await;
    assert_eq!(d.len(), 2, "{d:#?}");
    rejected(4126, "suspended").audit().check(&d[0]);
    admitted("audit_admitted").audit().check(&d[1]);
    assert_eq!(d[1].ae_id, r.str_at("/m2m:ae/aei"));
    assert!(d[1].message.contains("enforcing would reject"), "{}", d[1].message);

    // Per-request limits are noted, not enforced.
    let r = env.plain(&register("C", "loose", NONE_APP)).await;
    assert_eq!(r.rsc, 2001);
    let aei = r.str_at("/m2m:ae/aei");
    let audited = [("reason", "rate_limited"), ("outcome", "audited")];
    let before = env.metric("warden_admission_request_refusals_total", &audited).await;
    let c = env.plain(&Req::create("/cse-in/loose", &aei, 3, json!({"m2m:cnt": {"rn": "t"}}))).await;
    assert_eq!(c.rsc, 2001, "{}", c.body);
    assert_eq!(c.at("/m2m:cnt/acpi"), &Value::Null, "no privacy policy is imposed in audit mode");
    for i in 0..5 {
        assert_eq!(env.plain(&Req::get("/cse-in/loose", &aei)).await.rsc, 2000, "request {i} over the rate");
    }
    let big = Req::create("/cse-in/loose/t", &aei, 4, cin("application/json:0", &"1".repeat(400)));
    assert_eq!(env.plain(&big).await.rsc, 2001, "over the payload limit");
    let off_model = Req::create("/cse-in/loose/t", &aei, 4, cin("text/plain:0", "not a number"));
    assert_eq!(env.plain(&off_model).await.rsc, 2001, "outside the data model");
    let after = env.metric("warden_admission_request_refusals_total", &audited).await;
    assert!(after >= before + 5.0, "what enforcing would refuse is counted: {before} -> {after}");
    // Every check is made and counted, not only the first that fails.
    for reason in ["payload_too_large", "data_model"] {
        let n =
            env.metric("warden_admission_request_refusals_total", &[("reason", reason), ("outcome", "audited")]).await;
        assert!(n >= 1.0, "{reason} is counted in audit mode: {n}");
    }
    let logged = env.decisions_since(d[1].seq).await;
    for reason in ["rate_limited", "payload_too_large", "data_model"] {
        assert!(
            logged.iter().any(|d| d.reason == reason && d.stage == "request" && d.mode == "audit"),
            "{reason} is in the log: {logged:#?}"
        );
    }

    // The credential binding is audited too: a certificate bound to one AE used for another, or
    // the AE without its certificate, is noted and let through.
    let acme = vendor_root("Acme");
    env.create(x509(X509_APP, &[&acme])).await;
    let dev = device(&acme, X509_APP);
    let bound = env.tls_client(Some(&dev));
    let r = register("C", "bound", X509_APP).send(&bound, env.https()).await;
    assert_eq!(r.rsc, 2001, "{}", r.body);
    let x = r.str_at("/m2m:ae/aei");
    let audited = [("reason", "credential_mismatch"), ("outcome", "audited")];
    let before = env.metric("warden_admission_request_refusals_total", &audited).await;
    let r = Req::get("/cse-in/susp", &d[1].ae_id).send(&bound, env.https()).await;
    assert_eq!(r.rsc, 2000, "X's certificate speaking for another AE: {}", r.body);
    assert_eq!(env.plain(&Req::get("/cse-in/bound", &x)).await.rsc, 2000, "X without its certificate");
    let after = env.metric("warden_admission_request_refusals_total", &audited).await;
    assert!(after >= before + 2.0, "both are counted: {before} -> {after}");
}

// --- 5. the profile cache ---

#[tokio::test]
async fn concurrent_registrations_of_a_new_app_id_share_one_registry_query() {
    const N: usize = 20;
    let policy = ENFORCE
        .replace("registry_unreachable = \"reject\"", "registry_unreachable = \"reject\"\nlookup_timeout_ms = 60000");
    let env = Env::with(Setup::new(&policy).pre(vec![profile(NONE_APP)]).proxy()).await;
    let profiles = env.admission().profiles().clone();
    let (q0, j0, l0) = (profiles.queries(), profiles.joined(), env.proxy().lookups());
    // The registry's answer is held until every registration waits for it.
    env.proxy().set(Fault::Hold);
    let regs: Vec<_> = (0..N)
        .map(|i| {
            let (req, http, url) =
                (register("C", &format!("crowd{i}"), NONE_APP), env.http.clone(), env.cse.url.clone());
            tokio::spawn(async move { req.send(&http, &url).await })
        })
        .collect();
    assert!(env.proxy().wait_held(DEADLINE).await, "the lookup reaches the registry");
    assert!(
        eventually(DEADLINE, async || profiles.joined() - j0 == (N - 1) as u64).await,
        "all the other registrations wait for the one lookup in flight"
    );
    assert_eq!((env.proxy().holding(), profiles.queries() - q0), (1, 1));
    env.proxy().set(Fault::None);
    env.proxy().release();
    for (i, r) in futures_util::future::join_all(regs).await.into_iter().enumerate() {
        let r = r.unwrap();
        assert_eq!(r.rsc, 2001, "registration {i}: {}", r.body);
    }
    assert_eq!(profiles.queries() - q0, 1, "one query for {N} registrations");
    assert_eq!(env.proxy().lookups() - l0, 1, "one lookup reached the registry");
    // Within the TTL, the next registration asks nobody.
    assert_eq!(env.plain(&register("C", "late", NONE_APP)).await.rsc, 2001);
    assert_eq!(env.proxy().lookups() - l0, 1);
    let admitted = env.decisions().await.iter().filter(|d| d.outcome == "admitted").count();
    assert_eq!(admitted, N + 1);
}

// --- 6. faults ---

/// An environment whose registry already answered for `NONE_APP`, with an admitted bystander AE.
/// Returns the bystander's AE-ID.
async fn with_bystander(env: &Env) -> String {
    let r = env.plain(&register("C", "bystander", NONE_APP)).await;
    assert_eq!(r.rsc, 2001, "{}", r.body);
    r.str_at("/m2m:ae/aei")
}

/// The bystander still works, and the CSEBase still answers.
async fn unaffected(env: &Env, bystander: &str) {
    assert_eq!(env.plain(&Req::get("/cse-in/bystander", bystander)).await.rsc, 2000);
    let w = Req::create("/cse-in/bystander", bystander, 3, json!({"m2m:cnt": {}}));
    assert_eq!(env.plain(&w).await.rsc, 2001);
    assert_eq!(env.plain(&as_admin(Req::get("/cse-in", ADMIN))).await.rsc, 2000);
}

/// Stops the registry and waits until it no longer answers.
async fn stop_registry(env: &Env) {
    env.registry.stop();
    assert!(eventually(DEADLINE, async || env.admin.healthy().await.is_err()).await, "the registry stops");
}

const NEW_APP: &str = "Racme10.com.acme.newcomer";

#[tokio::test]
async fn registry_down_with_reject_refuses_5107() {
    let env = Env::with(Setup::new(ENFORCE).pre(vec![profile(NONE_APP), profile(NEW_APP)])).await;
    let bystander = with_bystander(&env).await;
    stop_registry(&env).await;
    let seq = env.last_seq().await;
    let r = env.plain(&register("C", "late", NEW_APP)).await;
    assert_eq!(r.rsc, 5107, "{}", r.body);
    env.one_decision(seq, &rejected(5107, "registry_unreachable").app(NEW_APP)).await;
    unaffected(&env, &bystander).await;
}

#[tokio::test]
async fn registry_down_with_admit_admits_unverified() {
    let policy = ENFORCE.replace("registry_unreachable = \"reject\"", "registry_unreachable = \"admit\"");
    let env = Env::with(Setup::new(&policy).pre(vec![profile(NONE_APP), profile(NEW_APP)])).await;
    let bystander = with_bystander(&env).await;
    stop_registry(&env).await;
    let seq = env.last_seq().await;
    let r = env.plain(&register("C", "late", NEW_APP)).await;
    assert_eq!(r.rsc, 2001, "{}", r.body);
    let d = env.one_decision(seq, &admitted("admitted_unverified").app(NEW_APP)).await;
    assert_eq!(d.profile_version, None, "no profile was seen");
    unaffected(&env, &bystander).await;
}

#[tokio::test]
async fn registry_down_with_cached_uses_a_stale_signed_record_or_refuses() {
    // TTL 0: every cached record is stale, so each registration asks the registry first.
    let policy = "[admission]\nregistry_unreachable = \"cached\"\ncache_ttl_seconds = 0\n";
    let env = Env::with(Setup::new(policy).pre(vec![profile(NONE_APP), profile(NEW_APP)])).await;
    let bystander = with_bystander(&env).await;
    let q0 = env.admission().profiles().queries();
    assert_eq!(env.plain(&register("C", "fresh", NONE_APP)).await.rsc, 2001);
    assert_eq!(env.admission().profiles().queries(), q0 + 1, "a stale entry is looked up again");
    stop_registry(&env).await;

    let seq = env.last_seq().await;
    let r = env.plain(&register("C", "cached", NONE_APP)).await;
    assert_eq!(r.rsc, 2001, "{}", r.body);
    let d = env.one_decision(seq, &admitted("admitted_cached").app(NONE_APP)).await;
    assert_eq!(d.profile_version, Some(1), "decided on the cached, signed record");
    let seq = env.last_seq().await;
    let r = env.plain(&register("C", "never", NEW_APP)).await;
    assert_eq!(r.rsc, 5107, "never looked up: {}", r.body);
    env.one_decision(seq, &rejected(5107, "registry_unreachable").app(NEW_APP)).await;
    unaffected(&env, &bystander).await;
}

/// Starts an environment behind the proxy, with the policy `registry_unreachable = <unreachable>`,
/// a TTL of 0 (so that every registration asks the registry) and an admitted bystander.
async fn behind_proxy(unreachable: &str, timeout_ms: u64) -> (Env, String) {
    let policy = format!(
        "[admission]\nregistry_unreachable = \"{unreachable}\"\n\
         cache_ttl_seconds = 0\nlookup_timeout_ms = {timeout_ms}\n"
    );
    let env = Env::with(Setup::new(&policy).pre(vec![profile(NONE_APP), profile(NEW_APP)]).proxy()).await;
    let bystander = with_bystander(&env).await;
    (env, bystander)
}

#[tokio::test]
async fn a_forged_answer_is_never_admitted() {
    for unreachable in ["admit", "reject", "cached"] {
        let (env, bystander) = behind_proxy(unreachable, 5000).await;
        env.proxy().set(Fault::FlipByte);
        // Never looked up: refused whatever the policy.
        let seq = env.last_seq().await;
        let r = env.plain(&register("C", "forged", NEW_APP)).await;
        assert_eq!(r.rsc, 5107, "{unreachable}: {}", r.body);
        assert!(r.str_at("/m2m:dbg").contains("untrustworthy"), "{}", r.body);
        env.one_decision(seq, &rejected(5107, "bad_signature").app(NEW_APP)).await;
        // Looked up before (a stale, valid record is cached): only "cached" may decide on that
        // record; the forged answer itself is never used.
        let seq = env.last_seq().await;
        let r = env.plain(&register("C", "forged2", NONE_APP)).await;
        if unreachable == "cached" {
            assert_eq!(r.rsc, 2001, "{unreachable}: {}", r.body);
            env.one_decision(seq, &admitted("admitted_cached").app(NONE_APP)).await;
        } else {
            assert_eq!(r.rsc, 5107, "{unreachable}: {}", r.body);
            env.one_decision(seq, &rejected(5107, "bad_signature").app(NONE_APP)).await;
        }
        unaffected(&env, &bystander).await;
        // Honest answers are accepted again.
        env.proxy().set(Fault::None);
        assert_eq!(env.plain(&register("C", "honest", NEW_APP)).await.rsc, 2001, "{unreachable}");
    }
}

#[tokio::test]
async fn a_truncated_answer_is_never_admitted() {
    let (env, bystander) = behind_proxy("admit", 5000).await;
    env.proxy().set(Fault::Truncate);
    let seq = env.last_seq().await;
    let r = env.plain(&register("C", "truncated", NEW_APP)).await;
    assert_eq!(r.rsc, 5107, "{}", r.body);
    env.one_decision(seq, &rejected(5107, "bad_signature").app(NEW_APP)).await;
    unaffected(&env, &bystander).await;
}

#[tokio::test]
async fn a_connection_cut_mid_answer_counts_as_unreachable() {
    // The body never arrives whole: the registry could not be heard, as if it were down.
    let (env, bystander) = behind_proxy("reject", 5000).await;
    env.proxy().set(Fault::CutConnection);
    let seq = env.last_seq().await;
    let r = env.plain(&register("C", "cut", NEW_APP)).await;
    assert_eq!(r.rsc, 5107, "{}", r.body);
    env.one_decision(seq, &rejected(5107, "registry_unreachable").app(NEW_APP)).await;
    unaffected(&env, &bystander).await;
}

#[tokio::test]
async fn a_slow_registry_is_handled_per_policy() {
    for (unreachable, want) in
        [("reject", rejected(5107, "registry_unreachable")), ("admit", admitted("admitted_unverified"))]
    {
        let (env, bystander) = behind_proxy(unreachable, 300).await;
        env.proxy().set(Fault::Hold);
        let seq = env.last_seq().await;
        let r = env.plain(&register("C", "slow", NEW_APP)).await;
        assert_eq!(r.rsc, want.rsc, "{unreachable}: {}", r.body);
        let d = env.one_decision(seq, &want.clone().app(NEW_APP)).await;
        if want.outcome == "rejected" {
            assert!(d.message.contains("did not answer in time"), "{}", d.message);
        }
        unaffected(&env, &bystander).await;
        env.proxy().release();
    }
}

#[tokio::test]
async fn a_pending_lookup_delays_nobody_else() {
    let (env, bystander) = behind_proxy("reject", 60_000).await;
    env.proxy().set(Fault::Hold);
    let slow = {
        let req = register("C", "slow", NEW_APP);
        let (http, url) = (env.http.clone(), env.cse.url.clone());
        tokio::spawn(async move { req.send(&http, &url).await })
    };
    assert!(env.proxy().wait_held(DEADLINE).await, "the lookup reaches the registry");
    // While it is pending: the CSEBase, an admitted AE's requests.
    assert_eq!(env.plain(&as_admin(Req::get("/cse-in", ADMIN))).await.rsc, 2000);
    unaffected(&env, &bystander).await;
    assert!(!slow.is_finished(), "the registration still waits for its lookup");
    assert_eq!(env.proxy().holding(), 1);
    env.proxy().set(Fault::None);
    env.proxy().release();
    let r = tokio::time::timeout(DEADLINE, slow).await.unwrap().unwrap();
    assert_eq!(r.rsc, 2001, "{}", r.body);
}

#[tokio::test]
async fn a_slow_registry_with_cached_uses_the_stale_record_or_refuses() {
    let (env, bystander) = behind_proxy("cached", 300).await;
    env.proxy().set(Fault::Hold);
    let seq = env.last_seq().await;
    let r = env.plain(&register("C", "slow-new", NEW_APP)).await;
    assert_eq!(r.rsc, 5107, "never looked up: {}", r.body);
    let d = env.one_decision(seq, &rejected(5107, "registry_unreachable").app(NEW_APP)).await;
    assert!(d.message.contains("did not answer in time"), "{}", d.message);
    let seq = env.last_seq().await;
    let r = env.plain(&register("C", "slow-known", NONE_APP)).await;
    assert_eq!(r.rsc, 2001, "looked up before: {}", r.body);
    env.one_decision(seq, &admitted("admitted_cached").app(NONE_APP)).await;
    unaffected(&env, &bystander).await;
    env.proxy().release();
}

#[tokio::test]
async fn a_refused_token_is_a_configuration_error_not_an_untrusted_answer() {
    let env = Env::with(Setup::new(ENFORCE).pre(vec![profile(NONE_APP)]).bad_token()).await;
    for rn in ["one", "two"] {
        let seq = env.last_seq().await;
        let r = env.plain(&register("C", rn, NONE_APP)).await;
        assert_eq!(r.rsc, 5107, "{}", r.body);
        let dbg = r.str_at("/m2m:dbg");
        assert!(!dbg.contains("127.0.0.1") && !dbg.contains("http"), "no registry internals: {dbg}");
        let d = env.one_decision(seq, &rejected(5107, "registry_auth").app(NONE_APP)).await;
        assert!(d.message.contains("token"), "{}", d.message);
    }
}

#[tokio::test]
async fn a_revocation_while_the_cse_is_down_is_applied_before_it_serves() {
    let env = Env::start(ENFORCE).await;
    let app = env.create(profile(NONE_APP)).await;
    let kept = env.create(profile("Racme09.com.acme.other")).await;
    let a = env.plain(&register("C", "a", NONE_APP)).await.str_at("/m2m:ae/aei");
    let k = env.plain(&register("C", "k", kept.as_str())).await.str_at("/m2m:ae/aei");
    assert_eq!(env.plain(&Req::get("/cse-in/a", &a)).await.rsc, 2000);
    let env = env.restart_revoking(&app).await;
    // The very first request after the restart is refused.
    let r = env.plain(&Req::get("/cse-in/a", &a)).await;
    assert_eq!(r.rsc, 4126, "{}", r.body);
    assert!(r.str_at("/m2m:dbg").contains("revoked"), "{}", r.body);
    assert_eq!(env.plain(&Req::get("/cse-in/k", &k)).await.rsc, 2000, "the other App-ID's AE is served");
    // Both were restored; the feed's position was kept.
    assert!(env.admission().profiles().caught_up());
}

/// The feed position stored at the restart is past the revocation: the restored App-IDs are
/// looked up again, so that the revocation holds after the restart too.
#[tokio::test]
async fn a_revocation_applied_before_a_restart_still_holds_after_it() {
    let env = Env::start(ENFORCE).await;
    let app = env.create(profile(NONE_APP)).await;
    let a = env.plain(&register("C", "a", NONE_APP)).await.str_at("/m2m:ae/aei");
    env.admin.set_status(&app, Status::Revoked, "stolen keys").await.unwrap();
    let get = Req::get("/cse-in/a", &a);
    assert!(eventually(DEADLINE, async || env.plain(&get).await.rsc == 4126).await, "blocked while running");
    let profiles = env.admission().profiles().clone();
    let head = env.admin.changes(None, Duration::ZERO).await.unwrap().last;
    assert!(eventually(DEADLINE, async || profiles.feed_seq() >= head).await, "the revocation's position is stored");
    let env = env.restart().await;
    let r = env.plain(&get).await;
    assert_eq!(r.rsc, 4126, "{}", r.body);
    assert!(r.str_at("/m2m:dbg").contains("revoked"), "{}", r.body);
    assert!(env.admission().profiles().caught_up());
}

#[tokio::test]
async fn an_ae_cannot_widen_who_reads_its_data() {
    let env = Env::start("[admission]\nunregistered = \"admit\"").await;
    env.create(with(profile(NONE_APP), "/dataPrivacy/allowedRecipients", json!(["Cehr*"]))).await;
    let r = env.plain(&register("C", "owner", NONE_APP)).await;
    let aei = r.str_at("/m2m:ae/aei");
    // The AE makes a policy that lets everyone do everything, and puts it everywhere it can.
    let open = json!({"m2m:acp": {"rn": "open", "pv": {"acr": [{"acor": ["all"], "acop": 63}]},
                                  "pvs": {"acr": [{"acor": [aei], "acop": 63}]}}});
    let acp = env.plain(&Req::create("/cse-in/owner", &aei, 1, open)).await;
    assert_eq!(acp.rsc, 2001, "{}", acp.body);
    let open_ri = acp.str_at("/m2m:acp/ri");
    let c =
        env.plain(&Req::create("/cse-in/owner", &aei, 3, json!({"m2m:cnt": {"rn": "data", "acpi": [open_ri]}}))).await;
    assert_eq!(c.rsc, 2001, "{}", c.body);
    let w = env.plain(&Req::create("/cse-in/owner/data", &aei, 4, cin("text/plain:0", "secret"))).await;
    assert_eq!(w.rsc, 2001, "{}", w.body);
    let u = env.plain(&Req::update("/cse-in/owner", &aei, json!({"m2m:ae": {"acpi": [open_ri]}}))).await;
    assert_eq!(u.rsc, 2004, "{}", u.body);
    let stranger = env.plain(&register("Cstranger01", "stranger", "Nsome.app")).await;
    assert_eq!(stranger.rsc, 2001);
    let reader = env.plain(&register("Cehr0001", "reader", "Nehr.viewer")).await;
    assert_eq!(reader.rsc, 2001);
    for path in ["/cse-in/owner", "/cse-in/owner/data", "/cse-in/owner/data/la"] {
        let r = env.plain(&Req::get(path, "Cstranger01")).await;
        assert_eq!(r.rsc, 4103, "a stranger reads {path}: {}", r.body);
        assert_eq!(env.plain(&Req::get(path, "Cehr0001")).await.rsc, 2000, "an allowed recipient reads {path}");
        assert_eq!(env.plain(&Req::get(path, &aei)).await.rsc, 2000, "the AE reads {path}");
    }
    // Discovery hides them from the stranger too, and a subscription needs the read privilege.
    let found = env.plain(&Req::get("/cse-in/owner?fu=1&rcn=4", "Cstranger01")).await;
    assert!(found.at("/m2m:uril").as_array().is_none_or(|l| l.is_empty()), "{}", found.body);
    let sub = json!({"m2m:sub": {"rn": "spy", "nu": ["http://127.0.0.1:9/x"], "nct": 1}});
    let s = env.plain(&Req::create("/cse-in/owner/data", "Cstranger01", 23, sub)).await;
    assert_ne!(s.rsc, 2001, "{}", s.body);
    // The AE may still restrict: a container whose policy names only itself is closed to the reader.
    let mine = json!({"m2m:acp": {"rn": "mine", "pv": {"acr": [{"acor": [aei], "acop": 63}]},
                                  "pvs": {"acr": [{"acor": [aei], "acop": 63}]}}});
    let mine = env.plain(&Req::create("/cse-in/owner", &aei, 1, mine)).await.str_at("/m2m:acp/ri");
    let c =
        env.plain(&Req::create("/cse-in/owner", &aei, 3, json!({"m2m:cnt": {"rn": "diary", "acpi": [mine]}}))).await;
    assert_eq!(c.rsc, 2001, "{}", c.body);
    assert_eq!(env.plain(&Req::get("/cse-in/owner/diary", "Cehr0001")).await.rsc, 4103);
}

#[tokio::test]
async fn aes_admitted_while_the_registry_was_unreachable_are_checked_when_it_answers() {
    let policy = "[admission]\nregistry_unreachable = \"admit\"\nlookup_timeout_ms = 300\nreverify_seconds = 1\n\
                  [[admission.rule]]\nname = \"critical infrastructure needs a TPM\"\n\
                  when = { class = \"critical-infrastructure\" }\nrequire = { keyStorage = [\"tpm\"] }\n";
    let small = with(profile(NONE_APP), "/communications/maxPayloadBytes", json!(300));
    let grid = with(profile(GRID_APP), "/application/class", json!("critical-infrastructure"));
    let env = Env::with(Setup::new(policy).pre(vec![small, grid]).proxy()).await;
    env.proxy().set(Fault::Hold);
    let mut aes = Vec::new();
    for (rn, api) in [("small", NONE_APP), ("grid", GRID_APP)] {
        let seq = env.last_seq().await;
        let r = env.plain(&register("C", rn, api)).await;
        assert_eq!(r.rsc, 2001, "{}", r.body);
        env.one_decision(seq, &admitted("admitted_unverified").app(api)).await;
        aes.push(r.str_at("/m2m:ae/aei"));
    }
    let big = Req::create("/cse-in/small", &aes[0], 3, json!({"m2m:cnt": {"rn": "c", "lbl": ["x".repeat(400)]}}));
    assert_eq!(env.plain(&big).await.rsc, 2001, "no profile, no limits yet");
    // The registry answers again.
    env.proxy().set(Fault::None);
    env.proxy().release();
    let grid_get = Req::get("/cse-in/grid", &aes[1]);
    assert!(eventually(DEADLINE, async || env.plain(&grid_get).await.rsc == 4126).await, "the grid AE is refused now");
    let r = env.plain(&grid_get).await;
    assert!(r.str_at("/m2m:dbg").contains("critical infrastructure needs a TPM"), "{}", r.body);
    let big = Req::create("/cse-in/small", &aes[0], 3, json!({"m2m:cnt": {"rn": "c2", "lbl": ["x".repeat(400)]}}));
    let r = env.plain(&big).await;
    assert_eq!(r.rsc, 4126, "the payload limit of its profile applies: {}", r.body);
    let decisions = env.decisions().await;
    assert!(decisions.iter().any(|d| d.ae_id == aes[0] && d.reason == "verified_later"), "{decisions:#?}");
    assert!(decisions.iter().any(|d| d.ae_id == aes[1] && d.reason == "rule" && d.outcome == "rejected"));
}

/// What the request alone decides (a bad expiration time, an expired request) is answered before
/// the registry is asked: such requests cost no lookup.
#[tokio::test]
async fn bad_or_expired_registrations_cost_no_registry_lookup() {
    let env = Env::start(ENFORCE).await;
    let q0 = env.admission().profiles().queries();
    let past = Req::create(
        "/cse-in",
        "C",
        2,
        json!({"m2m:ae": {"rn": "past", "api": NEW_APP, "rr": false,
        "srv": ["3"], "et": "19990101T000000"}}),
    );
    let r = env.plain(&past).await;
    assert_eq!(r.rsc, 4000, "{}", r.body);
    assert!(r.str_at("/m2m:dbg").contains("past"), "{}", r.body);
    let expired = register("C", "late", NEW_APP).header("X-M2M-RET", "20000101T000000");
    let r = env.plain(&expired).await;
    assert_eq!(r.rsc, 4008, "{}", r.body);
    assert_eq!(env.admission().profiles().queries(), q0, "the registry was not asked");
}

/// An AE refused when it was checked again (it was admitted while the registry was unreachable)
/// is refused at once after a restart too: the check is made again before the CSE serves.
#[tokio::test]
async fn an_ae_refused_by_its_later_check_stays_refused_after_a_restart() {
    let policy = "[admission]\nregistry_unreachable = \"admit\"\nlookup_timeout_ms = 300\nreverify_seconds = 3600\n\
                  [[admission.rule]]\nname = \"critical infrastructure needs a TPM\"\n\
                  when = { class = \"critical-infrastructure\" }\nrequire = { keyStorage = [\"tpm\"] }\n";
    let grid = with(profile(GRID_APP), "/application/class", json!("critical-infrastructure"));
    let env = Env::with(Setup::new(policy).pre(vec![grid]).proxy()).await;
    env.proxy().set(Fault::Hold);
    let r = env.plain(&register("C", "grid", GRID_APP)).await;
    assert_eq!(r.rsc, 2001, "admitted unverified: {}", r.body);
    let aei = r.str_at("/m2m:ae/aei");
    env.proxy().set(Fault::None);
    env.proxy().release();
    env.admission().reverify_once().await;
    let get = Req::get("/cse-in/grid", &aei);
    assert_eq!(env.plain(&get).await.rsc, 4126, "refused by the check");
    let env = env.restart().await;
    let r = env.plain(&get).await;
    assert_eq!(r.rsc, 4126, "refused at once after the restart: {}", r.body);
}

/// The later check judges what the transport showed at the registration: a device denied by its
/// SP-relative AE-ID, which registered with its bare stem while the registry was unreachable, is
/// refused when the profile arrives.
#[tokio::test]
async fn the_later_check_judges_the_ae_ids_the_registration_showed() {
    let policy = "[admission]\nregistry_unreachable = \"admit\"\nlookup_timeout_ms = 300\nreverify_seconds = 3600\n";
    let denied = with(profile(GRID_APP), "/devices", json!({"denied": ["/id-in/Cdenied0003"]}));
    let env = Env::with(Setup::new(policy).pre(vec![denied]).proxy()).await;
    env.proxy().set(Fault::Hold);
    let r = env.plain(&register("Cdenied0003", "denied", GRID_APP)).await;
    assert_eq!(r.rsc, 2001, "admitted unverified: {}", r.body);
    env.proxy().set(Fault::None);
    env.proxy().release();
    env.admission().reverify_once().await;
    let r = env.plain(&Req::get("/cse-in/denied", "Cdenied0003")).await;
    assert_eq!(r.rsc, 4126, "refused by the check: {}", r.body);
    let decisions = env.decisions().await;
    let later = decisions.iter().find(|d| d.ae_id == "Cdenied0003" && d.outcome == "rejected");
    assert_eq!(later.map(|d| d.reason.as_str()), Some("device_denied"), "{decisions:#?}");
}

/// An AE deleted while it waited to be checked again stays deleted: the check does not bring its
/// admission back.
#[tokio::test]
async fn a_deleted_unverified_ae_is_not_brought_back_by_the_later_check() {
    let policy = "[admission]\nregistry_unreachable = \"admit\"\nlookup_timeout_ms = 300\nreverify_seconds = 3600\n";
    let env = Env::with(Setup::new(policy).pre(vec![profile(NONE_APP)]).proxy()).await;
    env.proxy().set(Fault::Hold);
    let aei = env.plain(&register("C", "gone", NONE_APP)).await.str_at("/m2m:ae/aei");
    let app = AppId::parse(NONE_APP).unwrap();
    assert_eq!(env.admission().aes_of(&app), vec![aei.clone()]);
    assert_eq!(env.plain(&Req::delete("/cse-in/gone", &aei)).await.rsc, 2002);
    assert!(env.admission().aes_of(&app).is_empty());
    env.proxy().set(Fault::None);
    env.proxy().release();
    assert_eq!(env.admission().reverify_once().await, 0);
    assert!(env.admission().aes_of(&app).is_empty(), "the deleted AE was not admitted again");
    assert_eq!(env.plain(&Req::get("/cse-in/gone", &aei)).await.rsc, 4004);
}

#[tokio::test]
async fn per_request_refusals_are_logged_and_coalesced() {
    let env = Env::start(ENFORCE).await;
    env.create(with(profile(NONE_APP), "/communications/maxRequestsPerMinute", json!(2))).await;
    let aei = env.plain(&register("C", "chatty", NONE_APP)).await.str_at("/m2m:ae/aei");
    let get = Req::get("/cse-in/chatty", &aei);
    for _ in 0..2 {
        assert_eq!(env.plain(&get).await.rsc, 2000);
    }
    let seq = env.last_seq().await;
    for _ in 0..20 {
        assert_eq!(env.plain(&get).await.rsc, 4126);
    }
    // Twenty refusals, one entry: the others are counted in the metrics and carried by the next.
    let d = env.one_decision(seq, &rejected(4126, "rate_limited").app(NONE_APP)).await;
    assert_eq!((d.stage.as_str(), d.count, d.ae_id.as_str()), ("request", 1, aei.as_str()));
    let counted = env
        .metric("warden_admission_request_refusals_total", &[("reason", "rate_limited"), ("outcome", "refused")])
        .await;
    assert!(counted >= 20.0, "{counted}");
}
