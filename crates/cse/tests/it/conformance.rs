//! Conformance over real HTTP: one table of requests and the response status codes (and body
//! checks) a oneM2M client expects, run in order against a fresh CSE. Later rows use values that
//! earlier rows saved (`{ae1}` is the AE-ID saved as `ae1`).

use std::collections::HashMap;

use reqwest::Method;
use serde_json::{Value, json};
use testkit::cse::{CseOptions, TestCse};
use testkit::m2m::{Reply, Req, client};
use testkit::sink::Sink;

type Check = Box<dyn Fn(&Reply) -> Result<(), String>>;

struct Step {
    name: &'static str,
    req: Req,
    want: u16,
    expects: Vec<(&'static str, Value)>,
    checks: Vec<Check>,
    saves: Vec<(&'static str, &'static str)>,
}

fn step(name: &'static str, req: Req, want: u16) -> Step {
    Step { name, req, want, expects: Vec::new(), checks: Vec::new(), saves: Vec::new() }
}

impl Step {
    /// Saves the string at a JSON pointer of the body as a variable.
    fn save(mut self, var: &'static str, pointer: &'static str) -> Self {
        self.saves.push((var, pointer));
        self
    }

    /// The value at a JSON pointer must equal `want` (with saved values substituted).
    fn expect(mut self, pointer: &'static str, want: Value) -> Self {
        self.expects.push((pointer, want));
        self
    }

    fn check(mut self, f: impl Fn(&Reply) -> Result<(), String> + 'static) -> Self {
        self.checks.push(Box::new(f));
        self
    }
}

fn subst(s: &str, vars: &HashMap<String, String>) -> String {
    let mut out = s.to_owned();
    for (k, v) in vars {
        out = out.replace(&format!("{{{k}}}"), v);
    }
    out
}

fn get(path: &str, origin: &str) -> Req {
    Req::get(path, origin)
}

fn create(path: &str, origin: &str, ty: u16, body: Value) -> Req {
    Req::create(path, origin, ty, body)
}

fn update(path: &str, origin: &str, body: Value) -> Req {
    Req::update(path, origin, body)
}

fn delete(path: &str, origin: &str) -> Req {
    Req::delete(path, origin)
}

fn ae(rn: &str, api: &str, poa: &str) -> Value {
    json!({"m2m:ae": {"rn": rn, "api": api, "rr": true, "srv": ["3", "4"], "poa": [poa]}})
}

fn cin(con: &str) -> Value {
    json!({"m2m:cin": {"con": con, "cnf": "text/plain:0"}})
}

fn len_at(pointer: &'static str, n: usize) -> impl Fn(&Reply) -> Result<(), String> {
    move |r: &Reply| match r.at(pointer).as_array() {
        Some(a) if a.len() == n => Ok(()),
        other => Err(format!("{pointer} should have {n} entries: {other:?}")),
    }
}

fn starts_with(pointer: &'static str, prefix: &'static str) -> impl Fn(&Reply) -> Result<(), String> {
    move |r: &Reply| {
        let s = r.str_at(pointer);
        if s.starts_with(prefix) { Ok(()) } else { Err(format!("{pointer} = {s:?} should start with {prefix}")) }
    }
}

fn header_is(name: &'static str, want: &'static str) -> impl Fn(&Reply) -> Result<(), String> {
    move |r: &Reply| match r.header(name) {
        Some(v) if v == want => Ok(()),
        other => Err(format!("header {name} is {other:?}, want {want}")),
    }
}

/// HTTP 400 with a reason in `m2m:dbg`.
fn bad_request_with_reason(r: &Reply) -> Result<(), String> {
    if r.status == 400 && r.at("/m2m:dbg").is_string() { Ok(()) } else { Err(format!("{} {}", r.status, r.body)) }
}

fn no_header(name: &'static str) -> impl Fn(&Reply) -> Result<(), String> {
    move |r: &Reply| match r.header(name) {
        None => Ok(()),
        Some(v) => Err(format!("header {name} should be absent, is {v}")),
    }
}

fn absent(pointer: &'static str) -> impl Fn(&Reply) -> Result<(), String> {
    move |r: &Reply| if r.body.pointer(pointer).is_none() { Ok(()) } else { Err(format!("{pointer} should be absent")) }
}

/// The table. `A` is the admin originator.
fn table(sink: &str) -> Vec<Step> {
    const A: &str = "CAdmin";
    let mut t = vec![
        // --- the CSEBase and every addressing form ---
        step("retrieve CSEBase", get("/cse-in", A), 2000)
            .expect("/m2m:cb/csi", json!("/id-in"))
            .expect("/m2m:cb/rn", json!("cse-in"))
            .expect("/m2m:cb/ty", json!(5))
            .expect("/m2m:cb/cst", json!(1))
            .check(|r| if r.at("/m2m:cb/ctm").is_string() { Ok(()) } else { Err("no ctm".into()) }),
        step("SP-relative structured", get("/~/id-in/cse-in", A), 2000),
        step("SP-relative CSE-ID alone", get("/~/id-in", A), 2000).expect("/m2m:cb/ri", json!("id-in")),
        step("absolute", get("/_/acme.example.com/id-in/cse-in", A), 2000),
        step("dash for the CSEBase name", get("/-", A), 2000),
        step("unstructured CSEBase ri", get("/id-in", A), 2000),
        step("another SP is not reachable", get("/_/other.example.com/id-in/cse-in", A), 5103),
        step("another CSE is not reachable", get("/~/id-other/cse-in", A), 5103),
        step("unknown target", get("/cse-in/nothere", A), 4004),
        step("unknown unstructured target", get("/nothere", A), 4004),
        // --- release versions, request identifiers, originators, expiry ---
        step("no RVI is release 1", get("/cse-in", A).rvi(None), 4001),
        step("RVI 1", get("/cse-in", A).rvi(Some("1")), 4001),
        step("RVI 9", get("/cse-in", A).rvi(Some("9")), 4001),
        step("RVI 2a", get("/cse-in", A).rvi(Some("2a")), 2000),
        step("RVI 3", get("/cse-in", A).rvi(Some("3")), 2000),
        step("RVI 5", get("/cse-in", A).rvi(Some("5")), 2000).check(header_is("x-m2m-rvi", "5")),
        step("missing originator", Req::new(Method::GET, "/cse-in", None), 4000),
        step("request expired", get("/cse-in", A).header("X-M2M-RET", "20000101T000000"), 4008),
        step("request not yet expired", get("/cse-in", A).header("X-M2M-RET", "99991231T000000"), 2000),
        step("request expiry as milliseconds", get("/cse-in", A).header("X-M2M-RET", "60000"), 2000),
        step("rcn 9 is not for RETRIEVE", get("/cse-in?rcn=9", A), 4000),
        step("non-blocking asynchronous is refused", get("/cse-in?rt=2", A), 5206),
        // --- AE registration ---
        step("register AE with C", create("/cse-in", "C", 2, ae("ae1", "Nt.app", sink)), 2001)
            .check(starts_with("/m2m:ae/aei", "C"))
            .check(header_is("content-location", "cse-in/ae1"))
            .expect("/m2m:ae/rn", json!("ae1"))
            .expect("/m2m:ae/pi", json!("id-in"))
            .save("ae1", "/m2m:ae/aei"),
        step("aei is the resource ID", get("/cse-in/ae1", "{ae1}"), 2000).check(|r| {
            if r.at("/m2m:ae/ri") == r.at("/m2m:ae/aei") { Ok(()) } else { Err("ri != aei".into()) }
        }),
        step("same rn again", create("/cse-in", "C", 2, ae("ae1", "Nt.app", sink)), 4105),
        step("same originator again", create("/cse-in", "{ae1}", 2, ae("ae1b", "Nt.app", sink)), 4117),
        step("register AE with S", create("/cse-in", "S", 2, ae("ae2", "Nt.app", sink)), 2001)
            .check(starts_with("/m2m:ae/aei", "S"))
            .save("ae2", "/m2m:ae/aei"),
        step("register AE with an empty originator", create("/cse-in", "", 2, ae("ae3", "Nt.app", sink)), 2001)
            .check(starts_with("/m2m:ae/aei", "C"))
            .save("ae3", "/m2m:ae/aei"),
        step(
            "register AE without an originator",
            {
                let mut r = Req::new(Method::POST, "/cse-in", None);
                r.ty = Some(2);
                r.body = Some(ae("ae4", "Nt.app", sink));
                r
            },
            2001,
        ),
        step("register AE with its own stem", create("/cse-in", "Cmine-1", 2, ae("ae5", "Nt.app", sink)), 2001)
            .expect("/m2m:ae/aei", json!("Cmine-1")),
        step("register AE with an SP-relative AE-ID", create("/cse-in", "/id-in/Cmine-2", 2, ae("ae6", "Nt.app", sink)), 2001)
            .expect("/m2m:ae/aei", json!("Cmine-2")),
        step("a CSE-ID cannot register as an AE", create("/cse-in", "/id-in", 2, ae("x1", "Nt.app", sink)), 4107),
        step("a bare CSE name cannot register as an AE", create("/cse-in", "id-mn", 2, ae("x2", "Nt.app", sink)), 4107),
        step("AE under an AE", create("/cse-in/ae1", "C", 2, ae("x3", "Nt.app", sink)), 4108),
        step("api with a wrong prefix", create("/cse-in", "C", 2, ae("x4", "Xwrong", sink)), 4000),
        step("registered api", create("/cse-in", "C", 2, ae("x5", "Rabc.com.example.acme", sink)), 2001),
        step("registered api with two parts", create("/cse-in", "C", 2, ae("x6", "Rabc.com", sink)), 4000),
        step("lowercase r at release 3", create("/cse-in", "C", 2, ae("x7", "racme", sink)).rvi(Some("3")), 2001),
        step("lowercase r at release 4", create("/cse-in", "C", 2, ae("x8", "racme", sink)), 4000),
        step("srv missing", create("/cse-in", "C", 2, json!({"m2m:ae": {"api": "Nx", "rr": false}})), 4000),
        step("rr missing", create("/cse-in", "C", 2, json!({"m2m:ae": {"api": "Nx", "srv": ["4"]}})), 4000),
        step("bad srv", create("/cse-in", "C", 2, json!({"m2m:ae": {"api": "Nx", "rr": false, "srv": ["9"]}})), 4000),
        step(
            "bad csz",
            create("/cse-in", "C", 2, json!({"m2m:ae": {"api": "Nx", "rr": false, "srv": ["4"], "csz": ["application/xml"]}})),
            4000,
        ),
        step("cr on an AE", create("/cse-in", "C", 2, json!({"m2m:ae": {"api": "Nx", "rr": false, "srv": ["4"], "cr": null}})), 4000),
        step("aei is read-only", create("/cse-in", "C", 2, json!({"m2m:ae": {"api": "Nx", "rr": false, "srv": ["4"], "aei": "Cx"}})), 4000),
        step("bad poa", create("/cse-in", "C", 2, json!({"m2m:ae": {"api": "Nx", "rr": false, "srv": ["4"], "poa": ["nowhere"]}})), 4000),
        step("illegal resource name", create("/cse-in", "C", 2, json!({"m2m:ae": {"rn": "a b", "api": "Nx", "rr": false, "srv": ["4"]}})), 4000),
        step("ty does not match the content", create("/cse-in", "C", 3, ae("x9", "Nt.app", sink)), 4000),
        step("unknown resource type", create("/cse-in", "C", 999, ae("x10", "Nt.app", sink)), 4000),
        step("unsupported resource type", create("/cse-in", A, 28, json!({"m2m:fcnt": {"cnd": "x"}})), 5001),
        // Types of the release that this CSE does not host: 5001 whatever the content is named.
        step("AEContactList is not hosted", create("/cse-in", A, 43, json!({"m2m:acl": {}})), 5001),
        step("AEContactListPerCSE is not hosted", create("/cse-in", A, 44, json!({"m2m:aclp": {}})), 5001),
        step("triggerRequest is not hosted", create("/cse-in", A, 47, json!({"m2m:trqt": {}})), 5001),
        step("crossResourceSubscription is not hosted", create("/cse-in", A, 48, json!({"m2m:crs": {"nu": ["x"]}})), 5001)
            .check(|r| {
                let dbg = r.str_at("/m2m:dbg");
                if dbg.contains("not supported") { Ok(()) } else { Err(format!("the reason names the type: {dbg}")) }
            }),
        step("filter criteria in a CREATE", create("/cse-in?lbl=x", "C", 2, ae("x11", "Nt.app", sink)), 4000),
        step("api is not updatable", update("/cse-in/ae1", "{ae1}", json!({"m2m:ae": {"api": "Nother"}})), 4000),
        step("ty is not updatable", update("/cse-in/ae1", "{ae1}", json!({"m2m:ae": {"ty": 3}})), 4000),
        step("pi is not updatable", update("/cse-in/ae1", "{ae1}", json!({"m2m:ae": {"pi": "x"}})), 4000),
        step("unknown attribute on update", update("/cse-in/ae1", "{ae1}", json!({"m2m:ae": {"bogus": 1}})), 4000),
        step("update labels", update("/cse-in/ae1?rcn=9", "{ae1}", json!({"m2m:ae": {"lbl": ["room:kitchen"]}})), 2004)
            .check(absent("/m2m:ae/lbl"))
            .check(|r| if r.at("/m2m:ae/lt").is_string() { Ok(()) } else { Err("lt should be among the modified".into()) }),
        step("the labels stay", get("/cse-in/ae1", "{ae1}"), 2000).expect("/m2m:ae/lbl", json!(["room:kitchen"])),
        step("another AE may not read an AE", get("/cse-in/ae1", "{ae2}"), 4103),
        step("the admin may", get("/cse-in/ae1", A), 2000),
        step("an unknown originator may not", get("/cse-in/ae1", "Cnobody"), 4103),
        // --- containers and content instances ---
        step("create a container", create("/cse-in/ae1", "{ae1}", 3, json!({"m2m:cnt": {"rn": "cnt1", "mni": 3, "cr": null}})), 2001)
            .expect("/m2m:cnt/cni", json!(0))
            .expect("/m2m:cnt/cbs", json!(0))
            .expect("/m2m:cnt/cr", json!("{ae1}"))
            .save("cnt1", "/m2m:cnt/ri"),
        step("cr with a value", create("/cse-in/ae1", "{ae1}", 3, json!({"m2m:cnt": {"cr": "Cx"}})), 4000),
        step("cni is read-only", create("/cse-in/ae1", "{ae1}", 3, json!({"m2m:cnt": {"cni": 3}})), 4000),
        step("la is a virtual name", create("/cse-in/ae1/cnt1", "{ae1}", 3, json!({"m2m:cnt": {"rn": "la"}})), 4000),
        step("empty container la", get("/cse-in/ae1/cnt1/la", "{ae1}"), 4004),
        step("cin 1", create("/cse-in/ae1/cnt1", "{ae1}", 4, cin("v1")), 2001).expect("/m2m:cin/cs", json!(2)),
        step("cin 2", create("/cse-in/ae1/cnt1", "{ae1}", 4, cin("v2")), 2001),
        step("cin 3", create("/cse-in/ae1/cnt1", "{ae1}", 4, cin("v3")), 2001),
        step("cin 4", create("/cse-in/ae1/cnt1", "{ae1}", 4, cin("v4")), 2001),
        step("cin 5", create("/cse-in/ae1/cnt1", "{ae1}", 4, cin("v5")), 2001).save("cin5", "/m2m:cin/ri"),
        step("mni keeps 3", get("/cse-in/ae1/cnt1", "{ae1}"), 2000)
            .expect("/m2m:cnt/cni", json!(3))
            .expect("/m2m:cnt/cbs", json!(6))
            .expect("/m2m:cnt/st", json!(5)),
        step("la", get("/cse-in/ae1/cnt1/la", "{ae1}"), 2000).expect("/m2m:cin/con", json!("v5")),
        step("ol", get("/cse-in/ae1/cnt1/ol", "{ae1}"), 2000).expect("/m2m:cin/con", json!("v3")),
        step("hybrid ri/la", get("/{cnt1}/la", "{ae1}"), 2000).expect("/m2m:cin/con", json!("v5")),
        step("unstructured cin", get("/{cin5}", "{ae1}"), 2000).expect("/m2m:cin/con", json!("v5")),
        step("SP-relative unstructured", get("/~/id-in/{cin5}", "{ae1}"), 2000),
        step("a cin cannot be updated", update("/{cin5}", "{ae1}", json!({"m2m:cin": {"con": "x"}})), 4005),
        step("la cannot be updated", update("/cse-in/ae1/cnt1/la", "{ae1}", json!({"m2m:cin": {"con": "x"}})), 4005),
        step("partial retrieve", get("/cse-in/ae1/cnt1?atrl=cni+mni", "{ae1}"), 2000)
            .expect("/m2m:cnt", json!({"cni": 3, "mni": 3})),
        step("partial retrieve of an unknown attribute", get("/cse-in/ae1/cnt1?atrl=bogus", "{ae1}"), 4000),
        step("delete la", delete("/cse-in/ae1/cnt1/la", "{ae1}"), 2002),
        step("counters follow a delete", get("/cse-in/ae1/cnt1", "{ae1}"), 2000)
            .expect("/m2m:cnt/cni", json!(2))
            .expect("/m2m:cnt/cbs", json!(4)),
        step("lower mni", update("/cse-in/ae1/cnt1", "{ae1}", json!({"m2m:cnt": {"mni": 1}})), 2004).expect("/m2m:cnt/cni", json!(1)),
        step("a cin needs con", create("/cse-in/ae1/cnt1", "{ae1}", 4, json!({"m2m:cin": {"cnf": "text/plain:0"}})), 4000),
        step("a bad cnf", create("/cse-in/ae1/cnt1", "{ae1}", 4, json!({"m2m:cin": {"con": "x", "cnf": "nonsense"}})), 4000),
        step("a cin under an AE", create("/cse-in/ae1", "{ae1}", 4, cin("x")), 4108),
        step("an mbs container", create("/cse-in/ae1", "{ae1}", 3, json!({"m2m:cnt": {"rn": "cnt2", "mbs": 4}})), 2001)
            .save("cnt2", "/m2m:cnt/ri"),
        step("content larger than mbs", create("/cse-in/ae1/cnt2", "{ae1}", 4, cin("12345")), 5207),
        step("mbs 1", create("/cse-in/ae1/cnt2", "{ae1}", 4, cin("ab")), 2001),
        step("mbs 2", create("/cse-in/ae1/cnt2", "{ae1}", 4, cin("cd")), 2001),
        step("mbs 3", create("/cse-in/ae1/cnt2", "{ae1}", 4, cin("ef")), 2001),
        step("mbs keeps the newest", get("/cse-in/ae1/cnt2", "{ae1}"), 2000)
            .expect("/m2m:cnt/cbs", json!(4))
            .expect("/m2m:cnt/cni", json!(2)),
        step("rcn 0", create("/cse-in/ae1/cnt2?rcn=0", "{ae1}", 4, cin("g")), 2001).check(|r| {
            if r.body.is_null() { Ok(()) } else { Err("rcn 0 must have no content".into()) }
        }),
        step("rcn 2", create("/cse-in/ae1/cnt2?rcn=2", "{ae1}", 4, cin("h")), 2001).check(starts_with("/m2m:uri", "cse-in/ae1/cnt2/")),
        step("rcn 2 unstructured", create("/cse-in/ae1/cnt2?rcn=2&drt=2", "{ae1}", 4, cin("i")), 2001)
            .check(starts_with("/m2m:uri", "cin")),
        step("rcn 3", create("/cse-in/ae1/cnt2?rcn=3", "{ae1}", 4, cin("j")), 2001)
            .check(starts_with("/m2m:rce/uri", "cse-in/ae1/cnt2/"))
            .expect("/m2m:rce/m2m:cin/con", json!("j")),
        step("rcn 9 on create", create("/cse-in/ae1/cnt2?rcn=9", "{ae1}", 4, cin("k")), 2001)
            .check(absent("/m2m:cin/con"))
            .expect("/m2m:cin/cs", json!(1)),
        step("rcn 7 is not for CREATE", create("/cse-in/ae1/cnt2?rcn=7", "{ae1}", 4, cin("k")), 4000),
        step("rcn 4", get("/cse-in/ae1?rcn=4", "{ae1}"), 2000).check(len_at("/m2m:ae/m2m:cnt", 2)),
        step("rcn 5", get("/cse-in/ae1?rcn=5", "{ae1}"), 2000).check(len_at("/m2m:ae/ch", 2)),
        step("rcn 6", get("/cse-in/ae1?rcn=6", "{ae1}"), 2000).check(len_at("/m2m:rrl/rrf", 2)),
        step("rcn 8", get("/cse-in/ae1?rcn=8", "{ae1}"), 2000)
            .check(len_at("/m2m:ae/m2m:cnt", 2))
            .check(absent("/m2m:ae/api")),
        step("rcn 4 with a conditional filter", get("/cse-in/ae1?rcn=4&lim=1", "{ae1}"), 2000).check(len_at("/m2m:ae/m2m:cnt", 1)),
        step("a container by the admin under the AE", create("/cse-in/ae1", A, 3, json!({"m2m:cnt": {"rn": "adminCnt"}})), 2001),
        step("only its creator has access to it", get("/cse-in/ae1/adminCnt", "{ae1}"), 4103),
        // --- access control policies ---
        step(
            "create an ACP",
            create(
                "/cse-in/ae1",
                "{ae1}",
                1,
                json!({"m2m:acp": {"rn": "acp1", "pv": {"acr": [{"acor": ["{ae2}"], "acop": 2}, {"acor": ["{ae1}"], "acop": 63}]},
                                   "pvs": {"acr": [{"acor": ["{ae1}"], "acop": 63}]}}}),
            ),
            2001,
        )
        .save("acp1", "/m2m:acp/ri"),
        step("a bad pv", create("/cse-in/ae1", "{ae1}", 1, json!({"m2m:acp": {"pv": {"acr": [{"acor": "all", "acop": 2}]}, "pvs": {"acr": []}}})), 4000),
        step("acop out of range", create("/cse-in/ae1", "{ae1}", 1, json!({"m2m:acp": {"pv": {"acr": [{"acor": ["all"], "acop": 64}]}, "pvs": {"acr": []}}})), 4000),
        step("pvs is mandatory", create("/cse-in/ae1", "{ae1}", 1, json!({"m2m:acp": {"pv": {"acr": []}}})), 4000),
        step("acpi to a missing policy", update("/cse-in/ae1/cnt1", "{ae1}", json!({"m2m:cnt": {"acpi": ["acpNope"]}})), 4000),
        step("attach the ACP", update("/cse-in/ae1/cnt1", "{ae1}", json!({"m2m:cnt": {"acpi": ["{acp1}"]}})), 2004),
        step("the ACP grants retrieve", get("/cse-in/ae1/cnt1", "{ae2}"), 2000),
        step("and to the instances", get("/cse-in/ae1/cnt1/la", "{ae2}"), 2000),
        step("but not update", update("/cse-in/ae1/cnt1", "{ae2}", json!({"m2m:cnt": {"lbl": ["x"]}})), 4103),
        step("nor to others", get("/cse-in/ae1/cnt1", "{ae3}"), 4103),
        step("the ACP itself is guarded by pvs", get("/cse-in/ae1/acp1", "{ae2}"), 4103),
        step("its owner may read it", get("/cse-in/ae1/acp1", "{ae1}"), 2000),
        step("changing acpi needs pvs", update("/cse-in/ae1/cnt1", "{ae2}", json!({"m2m:cnt": {"acpi": []}})), 4103),
        step(
            "a wildcard ACP",
            create(
                "/cse-in/ae1",
                "{ae1}",
                1,
                json!({"m2m:acp": {"rn": "acpS", "pv": {"acr": [{"acor": ["S*"], "acop": 34}, {"acor": ["{ae1}"], "acop": 63}]},
                                   "pvs": {"acr": [{"acor": ["{ae1}"], "acop": 63}]}}}),
            ),
            2001,
        )
        .save("acpS", "/m2m:acp/ri"),
        step("attach it", update("/cse-in/ae1/cnt2", "{ae1}", json!({"m2m:cnt": {"acpi": ["{acpS}"]}})), 2004),
        step("S-stems match S*", get("/cse-in/ae1/cnt2", "{ae2}"), 2000),
        step("C-stems don't", get("/cse-in/ae1/cnt2", "{ae3}"), 4103),
        step(
            "an all ACP",
            create(
                "/cse-in/ae1",
                "{ae1}",
                1,
                json!({"m2m:acp": {"rn": "acpAll", "pv": {"acr": [{"acor": ["all"], "acop": 2}, {"acor": ["{ae1}"], "acop": 63}]},
                                   "pvs": {"acr": [{"acor": ["{ae1}"], "acop": 63}]}}}),
            ),
            2001,
        )
        .save("acpAll", "/m2m:acp/ri"),
        step("a public container", create("/cse-in/ae1", "{ae1}", 3, json!({"m2m:cnt": {"rn": "pub", "acpi": ["{acpAll}"], "lbl": ["public"]}})), 2001),
        step("anyone may read it", get("/cse-in/ae1/pub", "Cwhoever"), 2000),
        // --- discovery ---
        step("discover instances", get("/cse-in/ae1?fu=1&ty=4", "{ae1}"), 2000).check(len_at("/m2m:uril", 5)),
        step("discover containers", get("/cse-in/ae1?fu=1&ty=3", "{ae1}"), 2000)
            .check(|r| {
                let list = r.at("/m2m:uril").as_array().cloned().unwrap_or_default();
                // The admin's container is not discoverable by the AE.
                if list.len() == 3 && !list.iter().any(|u| u.as_str().is_some_and(|s| s.ends_with("adminCnt"))) {
                    Ok(())
                } else {
                    Err(format!("{list:?}"))
                }
            }),
        step("discover with lim", get("/cse-in/ae1?fu=1&ty=4&lim=2", "{ae1}"), 2000)
            .check(len_at("/m2m:uril", 2))
            .check(header_is("x-m2m-cts", "1"))
            .check(header_is("x-m2m-cto", "3")),
        step("discover with ofst: the 4th on", get("/cse-in/ae1?fu=1&ty=4&ofst=4", "{ae1}"), 2000)
            .check(len_at("/m2m:uril", 2))
            .check(no_header("x-m2m-cts")),
        step("discover with ofst: the last", get("/cse-in/ae1?fu=1&ty=4&ofst=5", "{ae1}"), 2000).check(len_at("/m2m:uril", 1)),
        step("ofst starts at 1", get("/cse-in/ae1?fu=1&ty=4&ofst=0", "{ae1}"), 4000),
        step("discover one level", get("/cse-in/ae1?fu=1&lvl=1", "{ae1}"), 2000).check(len_at("/m2m:uril", 6)),
        step("discover by label", get("/cse-in?fu=1&lbl=public", "{ae1}"), 2000).expect("/m2m:uril", json!(["cse-in/ae1/pub"])),
        step("discover by label with a wildcard", get("/cse-in?fu=1&lbl=room:*", A), 2000).expect("/m2m:uril", json!(["cse-in/ae1"])),
        step("discover with OR", get("/cse-in/ae1?fu=1&ty=1&lbl=public&fo=2", "{ae1}"), 2000).check(len_at("/m2m:uril", 4)),
        step("discover by attribute", get("/cse-in/ae1?fu=1&mni=1", "{ae1}"), 2000).check(len_at("/m2m:uril", 1)),
        step("discover unstructured", get("/cse-in/ae1?fu=1&ty=3&drt=2", "{ae1}"), 2000).check(|r| {
            let ok = r.at("/m2m:uril").as_array().is_some_and(|a| a.iter().all(|u| u.as_str().is_some_and(|s| s.starts_with("cnt"))));
            if ok { Ok(()) } else { Err(format!("{}", r.body)) }
        }),
        step("discover as references", get("/cse-in/ae1?fu=1&ty=3&rcn=6", "{ae1}"), 2000).check(len_at("/m2m:rrl/rrf", 3)),
        step("discover with resources", get("/cse-in/ae1?fu=1&ty=3&rcn=8", "{ae1}"), 2000).check(len_at("/m2m:ae/m2m:cnt", 3)),
        step("discover by created-after", get("/cse-in/ae1?fu=1&ty=4&cra=99991231T000000", "{ae1}"), 2000).check(len_at("/m2m:uril", 0)),
        step("discovery is filtered by privileges", get("/cse-in?fu=1&ty=3", "{ae3}"), 2000).expect("/m2m:uril", json!([])),
        step("the public container is discoverable by nobody without DISCOVERY", get("/cse-in?fu=1&lbl=public", "Cwhoever"), 2000)
            .expect("/m2m:uril", json!([])),
        step("rcn 1 is not for discovery", get("/cse-in/ae1?fu=1&rcn=1", "{ae1}"), 4000),
        step("unknown query parameter", get("/cse-in?bogus=1", A), 4000),
        step("bad filter value", get("/cse-in?fu=1&lim=many", A), 4000),
        // --- groups and fan-out ---
        step(
            "a group",
            create("/cse-in/ae1", "{ae1}", 9, json!({"m2m:grp": {"rn": "grp", "mt": 3, "mnm": 5, "mid": ["{cnt1}", "{cnt2}"]}})),
            2001,
        )
        .expect("/m2m:grp/cnm", json!(2))
        .expect("/m2m:grp/mtv", json!(true)),
        step("too many members", create("/cse-in/ae1", "{ae1}", 9, json!({"m2m:grp": {"mnm": 1, "mid": ["{cnt1}", "{cnt2}"]}})), 6010),
        step("a missing member", create("/cse-in/ae1", "{ae1}", 9, json!({"m2m:grp": {"mnm": 5, "mid": ["nope"]}})), 4004),
        step(
            "a member of another type",
            create("/cse-in/ae1", "{ae1}", 9, json!({"m2m:grp": {"mt": 4, "csy": 2, "mnm": 5, "mid": ["{cnt1}"]}})),
            4110,
        ),
        step("fan-out retrieve", get("/cse-in/ae1/grp/fopt", "{ae1}"), 2000).check(len_at("/m2m:agr/m2m:rsp", 2)).check(|r| {
            let all_ok = r.at("/m2m:agr/m2m:rsp").as_array().is_some_and(|a| a.iter().all(|x| x["rsc"] == 2000));
            if all_ok { Ok(()) } else { Err(format!("{}", r.body)) }
        }),
        step("fan-out create", create("/cse-in/ae1/grp/fopt", "{ae1}", 4, cin("fan")), 2000).check(|r| {
            let all = r.at("/m2m:agr/m2m:rsp").as_array().is_some_and(|a| a.len() == 2 && a.iter().all(|x| x["rsc"] == 2001));
            if all { Ok(()) } else { Err(format!("{}", r.body)) }
        }),
        step("fan-out reached the members", get("/cse-in/ae1/cnt1/la", "{ae1}"), 2000).expect("/m2m:cin/con", json!("fan")),
        step("fan-out needs access to the group", get("/cse-in/ae1/grp/fopt", "{ae3}"), 4103),
        // --- remote CSE ---
        step(
            "register a remote CSE",
            create("/cse-in", "/id-mn", 16, json!({"m2m:csr": {"rn": "cse-mn", "cb": "/id-mn/cse-mn", "csi": "/id-mn", "rr": true, "srv": ["3"]}})),
            2001,
        )
        .expect("/m2m:csr/ri", json!("id-mn"))
        .expect("/m2m:csr/csi", json!("/id-mn")),
        step(
            "csi is not mandatory: the registrar sets it",
            create("/cse-in", "/id-mn2", 16, json!({"m2m:csr": {"rn": "cse-mn2", "cb": "/id-mn2/cse-mn2", "rr": false, "srv": ["4"]}})),
            2001,
        )
        .expect("/m2m:csr/csi", json!("/id-mn2")),
        step("cb is mandatory", create("/cse-in", "/id-mn3", 16, json!({"m2m:csr": {"rr": false, "srv": ["4"]}})), 4000),
        step(
            "an AE cannot register a remote CSE",
            create("/cse-in", "{ae1}", 16, json!({"m2m:csr": {"cb": "/id-x/cse-x", "csi": "/id-x", "rr": true, "srv": ["3"]}})),
            4005,
        ),
        // --- deletion ---
        step("delete a container with instances", delete("/cse-in/ae1/cnt2", "{ae1}"), 2002),
        step("it is gone", get("/cse-in/ae1/cnt2", "{ae1}"), 4004),
        step("with its instances", get("/cse-in/ae1?fu=1&ty=4", "{ae1}"), 2000).check(len_at("/m2m:uril", 1)),
        step("another AE may not delete", delete("/cse-in/ae1/cnt1", "{ae3}"), 4103),
        step("the CSEBase cannot be deleted", delete("/cse-in", A), 4005),
        step("delete with rcn 1", delete("/cse-in/ae1/pub?rcn=1", "{ae1}"), 2002).expect("/m2m:cnt/rn", json!("pub")),
        // --- expiration ---
        step("et in the past", create("/cse-in/ae1", "{ae1}", 3, json!({"m2m:cnt": {"et": "20000101T000000"}})), 4000),
        step("et far ahead is lowered", create("/cse-in/ae1", "{ae1}", 3, json!({"m2m:cnt": {"rn": "far", "et": "99991231T000000"}})), 2001)
            .check(|r| {
                if r.str_at("/m2m:cnt/et").as_str() < "99991231T000000" { Ok(()) } else { Err("et was not capped".into()) }
            }),
    ];
    t.extend(update_privilege_rows());
    t.extend(virtual_name_rows(sink));
    t.extend(context_rows(sink));
    t.extend(discovery_rows(sink));
    t.extend(more_rows());
    // The HTTP binding's own rules.
    t.extend([
        step(
            "bad JSON",
            create("/cse-in/ae1/cnt1", "{ae1}", 4, json!(null)).raw("application/json;ty=4", b"{broken".to_vec()),
            4000,
        )
        .check(bad_request_with_reason),
        step(
            "unknown attribute",
            create("/cse-in/ae1/cnt1", "{ae1}", 4, json!({"m2m:cin": {"con": "x", "bogus": 1}})),
            4000,
        ),
        step(
            "bad CBOR",
            create("/cse-in/ae1/cnt1", "{ae1}", 4, json!(null))
                .raw("application/cbor;ty=4", vec![0xbf, 0x61, 0x78, 0xff, 0x13]),
            4000,
        )
        .check(bad_request_with_reason),
        step(
            "XML is not supported",
            create("/cse-in/ae1/cnt1", "{ae1}", 4, json!(null)).raw("application/xml;ty=4", b"<cin/>".to_vec()),
            4015,
        ),
        step("Accept only XML", get("/cse-in", A).header("Accept", "application/xml"), 5207)
            .check(|r| if r.status == 406 { Ok(()) } else { Err(format!("HTTP {}", r.status)) }),
        step(
            "a body without Content-Type",
            Req::new(Method::PUT, "/cse-in/ae1", Some("{ae1}")).raw("", b"{}".to_vec()),
            4015,
        ),
        step("PATCH is not in the binding", Req::new(Method::PATCH, "/cse-in", Some(A)), 4005)
            .check(|r| if r.status == 405 { Ok(()) } else { Err(format!("HTTP {}", r.status)) }),
        step(
            "oversized body",
            create("/cse-in/ae1/cnt1", "{ae1}", 4, json!(null))
                .raw("application/json;ty=4", vec![b'x'; 2 * 1024 * 1024]),
            4000,
        )
        // RSC 4000 maps to HTTP 400 (TS-0009 Table 6.3.2-1); the reason names the limit.
        .check(|r| match (r.status, r.body["m2m:dbg"].as_str()) {
            (400, Some(d)) if d.contains("1048576 bytes") => Ok(()),
            (s, d) => Err(format!("HTTP {s}, {d:?}")),
        }),
        step("the request ID is echoed", get("/cse-in", A).header("X-M2M-RI", "my-request-7"), 2000)
            .check(header_is("x-m2m-ri", "my-request-7")),
    ]);
    t
}

fn acp(rn: &str, pv: Value, pvs: Value) -> Value {
    json!({"m2m:acp": {"rn": rn, "pv": {"acr": pv}, "pvs": {"acr": pvs}}})
}

/// `by` creates the policy `rn` (saved as `{rn}`) under `parent`, and the container `cnt` under
/// `parent` that it governs.
fn guarded(parent: &str, by: &str, rn: &'static str, pv: Value, pvs: Value, cnt: &str) -> [Step; 2] {
    [
        step("a policy", create(parent, by, 1, acp(rn, pv, pvs)), 2001).save(rn, "/m2m:acp/ri"),
        step(
            "a container under it",
            create(parent, by, 3, json!({"m2m:cnt": {"rn": cnt, "acpi": [format!("{{{rn}}}")]}})),
            2001,
        ),
    ]
}

/// Changing `acpi` needs UPDATE in the referenced policies' `pvs` only; anything else needs it in
/// their `pv` (ONEM2M.md §4, ACP update rule). `{ae2}` has UPDATE in `pv` only, `{ae3}` in `pvs` only.
fn update_privilege_rows() -> Vec<Step> {
    let owner = json!({"acor": ["{ae1}"], "acop": 63});
    let mut t = Vec::from(guarded(
        "/cse-in/ae1",
        "{ae1}",
        "acpSplit",
        json!([{"acor": ["{ae2}"], "acop": 6}, owner]),
        json!([{"acor": ["{ae3}"], "acop": 4}, owner]),
        "split",
    ));
    let split =
        |name, by, body: Value, want| step(name, update("/cse-in/ae1/split", by, json!({ "m2m:cnt": body })), want);
    t.extend([
        split("pv-only may change other attributes", "{ae2}", json!({"lbl": ["a"]}), 2004),
        split("pv-only may not change acpi", "{ae2}", json!({"acpi": ["{acpSplit}"]}), 4103),
        split("pvs-only may change acpi", "{ae3}", json!({"acpi": ["{acpSplit}"]}), 2004),
        split("pvs-only may not change other attributes", "{ae3}", json!({"lbl": ["b"]}), 4103),
        split(
            "pvs-only may not change acpi and others together",
            "{ae3}",
            json!({"acpi": ["{acpSplit}"], "lbl": ["b"]}),
            4103,
        ),
        step("an empty update needs UPDATE in pv", update("/cse-in/ae1/split", "{ae3}", json!({"m2m:cnt": {}})), 4103),
        step("the labels are ae2's", get("/cse-in/ae1/split", "{ae1}"), 2000).expect("/m2m:cnt/lbl", json!(["a"])),
        step("delete it", delete("/cse-in/ae1/split", "{ae1}"), 2002),
        step("and its policy", delete("/cse-in/ae1/acpSplit", "{ae1}"), 2002),
    ]);
    t
}

/// `la`, `ol` and `fopt` are virtual only under a container and a group; elsewhere they are names.
fn virtual_name_rows(sink: &str) -> Vec<Step> {
    vec![
        step("an AE for names", create("/cse-in", "C", 2, ae("names", "Nt.app", sink)), 2001)
            .save("names", "/m2m:ae/aei"),
        step(
            "a container named la under an AE",
            create("/cse-in/names", "{names}", 3, json!({"m2m:cnt": {"rn": "la"}})),
            2001,
        ),
        step("it can be addressed", get("/cse-in/names/la", "{names}"), 2000).expect("/m2m:cnt/rn", json!("la")),
        step("with - for the CSEBase", get("/-/names/la", "{names}"), 2000).expect("/m2m:cnt/rn", json!("la")),
        step("its own la is virtual", get("/-/names/la/la", "{names}"), 4004),
        step("an instance in it", create("/-/names/la", "{names}", 4, cin("inside")), 2001),
        step("la of la", get("/-/names/la/la", "{names}"), 2000).expect("/m2m:cin/con", json!("inside")),
        step("ol of la", get("/cse-in/names/la/ol", "{names}"), 2000).expect("/m2m:cin/con", json!("inside")),
        step("a container named ol", create("/cse-in/names", "{names}", 3, json!({"m2m:cnt": {"rn": "ol"}})), 2001),
        step("addressed by name", get("/cse-in/names/ol", "{names}"), 2000).expect("/m2m:cnt/rn", json!("ol")),
        step(
            "a container named fopt under an AE",
            create("/cse-in/names", "{names}", 3, json!({"m2m:cnt": {"rn": "fopt"}})),
            2001,
        )
        .save("foptCnt", "/m2m:cnt/ri"),
        step("it is a container, not a fan-out", get("/cse-in/names/fopt", "{names}"), 2000)
            .expect("/m2m:cnt/rn", json!("fopt")),
        step("hybrid address below it", get("/{foptCnt}", "{names}"), 2000).expect("/m2m:cnt/rn", json!("fopt")),
        step(
            "fopt is reserved under a group",
            create("/cse-in/ae1/grp", "{ae1}", 23, json!({"m2m:sub": {"rn": "fopt", "nu": ["{ae1}"]}})),
            4000,
        ),
        step(
            "la is reserved under a container",
            create("/cse-in/names/la", "{names}", 3, json!({"m2m:cnt": {"rn": "ol"}})),
            4000,
        ),
    ]
}

/// Access control contexts (`acco`) and the authentication flag (`acaf`).
fn context_rows(sink: &str) -> Vec<Step> {
    let owner = json!({"acor": ["{actx}"], "acop": 63});
    let guarded = |rn: &'static str, rule: Value| {
        let cnt = format!("c-{rn}");
        guarded("/cse-in/actx", "{actx}", rn, json!([rule, owner.clone()]), json!([owner.clone()]), &cnt)
    };
    let read = |rule: Value| json!({"acor": ["{ae2}"], "acop": 2, "acco": rule});
    let mut t = vec![
        step("an AE for contexts", create("/cse-in", "C", 2, ae("actx", "Nt.app", sink)), 2001)
            .save("actx", "/m2m:ae/aei"),
    ];
    t.extend(guarded("winPast", read(json!([{"actw": ["* * * * * * 2000"]}]))));
    t.push(step("a time window in the past grants nothing", get("/cse-in/actx/c-winPast", "{ae2}"), 4103));
    t.extend(guarded("winAny", read(json!([{"actw": ["* * * * * * 2000", "* * * * * * *"]}]))));
    t.push(step("any of the time windows", get("/cse-in/actx/c-winAny", "{ae2}"), 2000));
    t.extend(guarded("ipHere", read(json!([{"acip": {"ipv4": ["127.0.0.0/8"]}}]))));
    t.push(step("from an allowed network", get("/cse-in/actx/c-ipHere", "{ae2}"), 2000));
    t.extend(guarded("ipElse", read(json!([{"acip": {"ipv4": ["10.0.0.0/8"], "ipv6": ["::1"]}}]))));
    t.push(step("from another network", get("/cse-in/actx/c-ipElse", "{ae2}"), 4103));
    t.extend(guarded("both", read(json!([{"actw": ["* * * * * * 2000"], "acip": {"ipv4": ["127.0.0.1"]}}]))));
    t.push(step("every parameter of a context must hold", get("/cse-in/actx/c-both", "{ae2}"), 4103));
    t.extend(guarded("either", read(json!([{"actw": ["* * * * * * 2000"]}, {"acip": {"ipv4": ["127.0.0.1"]}}]))));
    t.push(step("any of the contexts", get("/cse-in/actx/c-either", "{ae2}"), 2000));
    t.extend(guarded("authn", json!({"acor": ["{ae2}"], "acop": 2, "acaf": true})));
    t.push(step("acaf needs an authenticated originator", get("/cse-in/actx/c-authn", "{ae2}"), 4103));
    t.push(step("the rule's owner is not restricted", get("/cse-in/actx/c-authn", "{actx}"), 2000));
    let refused = |name: &'static str, rule: Value| {
        step(
            name,
            create("/cse-in/actx", "{actx}", 1, acp("bad", json!([rule]), json!([{"acor": ["{actx}"], "acop": 63}]))),
            4000,
        )
    };
    t.extend([
        refused("a location region is not supported", read(json!([{"aclr": {"accc": ["DE"]}}]))),
        refused("object details are not supported", json!({"acor": ["{ae2}"], "acop": 1, "acod": [{"chty": [4]}]})),
        refused("a malformed time window", read(json!([{"actw": ["nine to five"]}]))),
        refused("a malformed address", read(json!([{"acip": {"ipv4": ["10.0.0.0/40"]}}]))),
        refused("an unknown context parameter", read(json!([{"acui": ["u"]}]))),
    ]);
    t
}

/// Discovery's filter criteria on a subtree whose every resource is known: AE `disc` with
/// containers `d1` (label `a`, et in 2099) and `d2` (label `b`, two instances, so st 2).
fn discovery_rows(sink: &str) -> Vec<Step> {
    let d = |q: &str| format!("/cse-in/disc?fu=1&{q}");
    let uris = |want: &'static [&'static str]| {
        move |r: &Reply| {
            let got: Vec<String> = r
                .at("/m2m:uril")
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|u| u.as_str().map(str::to_owned))
                .collect();
            let want: Vec<String> = want.iter().map(|w| format!("cse-in/disc/{w}")).collect();
            if got == want { Ok(()) } else { Err(format!("{got:?}, want {want:?}")) }
        }
    };
    vec![
        step("an AE for discovery", create("/cse-in", "C", 2, ae("disc", "Nt.app", sink)), 2001)
            .save("disc", "/m2m:ae/aei"),
        step(
            "d1",
            create(
                "/cse-in/disc",
                "{disc}",
                3,
                json!({"m2m:cnt": {"rn": "d1", "lbl": ["a"], "et": "20991231T000000"}}),
            ),
            2001,
        ),
        step("d2", create("/cse-in/disc", "{disc}", 3, json!({"m2m:cnt": {"rn": "d2", "lbl": ["b"]}})), 2001),
        step("d2/i1", create("/cse-in/disc/d2", "{disc}", 4, json!({"m2m:cin": {"rn": "i1", "con": "v1"}})), 2001),
        step("d2/i2", create("/cse-in/disc/d2", "{disc}", 4, json!({"m2m:cin": {"rn": "i2", "con": "v2"}})), 2001),
        step("lvl 1", get(&d("lvl=1"), "{disc}"), 2000).check(uris(&["d1", "d2"])),
        step("lvl 2", get(&d("lvl=2"), "{disc}"), 2000).check(uris(&["d1", "d2", "d2/i1", "d2/i2"])),
        step("crb in the past", get(&d("ty=3&crb=20000101T000000"), "{disc}"), 2000).check(uris(&[])),
        step("crb in the future", get(&d("ty=3&crb=99991231T000000"), "{disc}"), 2000).check(uris(&["d1", "d2"])),
        step("cra in the past", get(&d("ty=3&cra=20000101T000000"), "{disc}"), 2000).check(uris(&["d1", "d2"])),
        step("ms in the past", get(&d("ty=3&ms=20000101T000000"), "{disc}"), 2000).check(uris(&["d1", "d2"])),
        step("ms in the future", get(&d("ty=3&ms=99991231T000000"), "{disc}"), 2000).check(uris(&[])),
        step("us in the past", get(&d("ty=3&us=20000101T000000"), "{disc}"), 2000).check(uris(&[])),
        step("us in the future", get(&d("ty=3&us=99991231T000000"), "{disc}"), 2000).check(uris(&["d1", "d2"])),
        step("exb", get(&d("ty=3&exb=20500101T000000"), "{disc}"), 2000).check(uris(&["d2"])),
        step("exa", get(&d("ty=3&exa=20500101T000000"), "{disc}"), 2000).check(uris(&["d1"])),
        step("stb", get(&d("ty=3&stb=1"), "{disc}"), 2000).check(uris(&["d2"])),
        step("sts", get(&d("ty=3&sts=1"), "{disc}"), 2000).check(uris(&["d1"])),
        step("fo=3 is XOR", get(&d("ty=3&lbl=a&fo=3"), "{disc}"), 2000).check(uris(&["d2"])),
        step("fo=2 is OR", get(&d("ty=4&lbl=a&fo=2"), "{disc}"), 2000).check(uris(&["d1", "d2/i1", "d2/i2"])),
        step("a child attribute", get(&d("c.con=v1"), "{disc}"), 2000).check(uris(&["d2"])),
        step("a child attribute with a wildcard", get(&d("ty=3&c.con=v*"), "{disc}"), 2000).check(uris(&["d2"])),
        step("a parent attribute", get(&d("p.lbl=b"), "{disc}"), 2000).check(uris(&["d2/i1", "d2/i2"])),
        step("parent and own attributes", get(&d("p.rn=d2&rn=i2"), "{disc}"), 2000).check(uris(&["d2/i2"])),
        step("a child attribute with OR", get(&d("c.con=v2&lbl=a&fo=2"), "{disc}"), 2000).check(uris(&["d1", "d2"])),
        step("an unknown child attribute", get(&d("c.bogus=1"), "{disc}"), 4000),
        step("the first page", get(&d("ty=4&lim=1"), "{disc}"), 2000)
            .check(uris(&["d2/i1"]))
            .check(header_is("x-m2m-cts", "1"))
            .check(header_is("x-m2m-cto", "2")),
        step("the page at cnot", get(&d("ty=4&lim=1&ofst=2"), "{disc}"), 2000)
            .check(uris(&["d2/i2"]))
            .check(no_header("x-m2m-cts")),
        step("past the end", get(&d("ty=4&ofst=3"), "{disc}"), 2000).check(uris(&[])),
        step("the store pages for the admin", get(&d("ty=4&lim=1"), "CAdmin"), 2000)
            .check(uris(&["d2/i1"]))
            .check(header_is("x-m2m-cts", "1"))
            .check(header_is("x-m2m-cto", "2")),
        step("the admin's second page", get(&d("ty=4&lim=1&ofst=2"), "CAdmin"), 2000)
            .check(uris(&["d2/i2"]))
            .check(no_header("x-m2m-cts")),
        step("lim 0", get(&d("ty=4&lim=0"), "{disc}"), 2000).check(uris(&[])).check(header_is("x-m2m-cto", "1")),
        step("a conditional retrieval is paged too", get("/cse-in/disc/d2?rcn=6&lim=1", "{disc}"), 2000)
            .check(len_at("/m2m:rrl/rrf", 1))
            .check(header_is("x-m2m-cts", "1"))
            .check(header_is("x-m2m-cto", "2")),
    ]
}

/// Response status codes the core produces in rarer cases, groups through `fopt`, and `csy`.
fn more_rows() -> Vec<Step> {
    let owner = json!({"acor": ["{ae1}"], "acop": 63});
    let all_rsc = |rsc: u64| {
        move |r: &Reply| {
            let list = r.at("/m2m:agr/m2m:rsp").as_array().cloned().unwrap_or_default();
            if list.len() == 2 && list.iter().all(|x| x["rsc"] == rsc) { Ok(()) } else { Err(format!("{}", r.body)) }
        }
    };
    let mut t = Vec::from(guarded(
        "/cse-in/ae1",
        "{ae1}",
        "acpCreate",
        json!([{"acor": ["{ae3}"], "acop": 1}, owner]),
        json!([owner]),
        "createOnly",
    ));
    t.extend([
        step(
            "subscribing needs RETRIEVE on the subscribed-to resource",
            create("/cse-in/ae1/createOnly", "{ae3}", 23, json!({"m2m:sub": {"nu": ["{ae3}"]}})),
            4101,
        ),
        step(
            "an AE without a point of access",
            create("/cse-in", "C", 2, json!({"m2m:ae": {"rn": "nopoa", "api": "Nt.app", "rr": false, "srv": ["4"]}})),
            2001,
        ),
        step(
            "a notification for it cannot be delivered",
            {
                let mut r = Req::new(Method::POST, "/cse-in/nopoa", Some(A_ADMIN));
                r.body = Some(json!({"m2m:sgn": {"nev": {"net": 1}}}));
                r
            },
            5103,
        ),
        step("the CSEBase cannot be updated", update("/cse-in", A_ADMIN, json!({"m2m:cb": {"lbl": ["x"]}})), 4005),
        step("group members m1", create("/cse-in/names", "{names}", 3, json!({"m2m:cnt": {"rn": "m1"}})), 2001)
            .save("m1", "/m2m:cnt/ri"),
        step("and m2", create("/cse-in/names", "{names}", 3, json!({"m2m:cnt": {"rn": "m2"}})), 2001)
            .save("m2", "/m2m:cnt/ri"),
        step(
            "a group of them",
            create(
                "/cse-in/names",
                "{names}",
                9,
                json!({"m2m:grp": {"rn": "gu", "mt": 3, "mnm": 5, "mid": ["{m1}", "{m2}"]}}),
            ),
            2001,
        ),
        step(
            "fan-out update",
            update("/cse-in/names/gu/fopt", "{names}", json!({"m2m:cnt": {"lbl": ["fanned"]}})),
            2000,
        )
        .check(all_rsc(2004)),
        step("the members were updated", get("/cse-in/names/m2", "{names}"), 2000)
            .expect("/m2m:cnt/lbl", json!(["fanned"])),
        step("fan-out delete", delete("/cse-in/names/gu/fopt", "{names}"), 2000).check(all_rsc(2002)),
        step("the members are gone", get("/cse-in/names/m1", "{names}"), 4004),
        step("the group stays", get("/cse-in/names/gu", "{names}"), 2000),
        step("a member m3", create("/cse-in/names", "{names}", 3, json!({"m2m:cnt": {"rn": "m3"}})), 2001)
            .save("m3", "/m2m:cnt/ri"),
        step(
            "csy 1 abandons a member of another type",
            create(
                "/cse-in/names",
                "{names}",
                9,
                json!({"m2m:grp": {"rn": "g1", "mt": 3, "csy": 1, "mnm": 5, "mid": ["{m3}", "{names}"]}}),
            ),
            2001,
        )
        .expect("/m2m:grp/mid", json!(["{m3}"]))
        .expect("/m2m:grp/cnm", json!(1))
        .expect("/m2m:grp/mt", json!(3)),
        step(
            "csy 3 makes the group mixed",
            create(
                "/cse-in/names",
                "{names}",
                9,
                json!({"m2m:grp": {"rn": "g3", "mt": 3, "csy": 3, "mnm": 5, "mid": ["{m3}", "{names}"]}}),
            ),
            2001,
        )
        .expect("/m2m:grp/cnm", json!(2))
        .expect("/m2m:grp/mt", json!(0)),
        step("a mixed group fans out to both", get("/cse-in/names/g3/fopt", "{names}"), 2000).check(all_rsc(2000)),
    ]);
    t.extend(group_policy_rows());
    t
}

/// The member RSCs of a fan-out answer, in the order of `mid`.
fn member_rscs(want: &'static [u64]) -> impl Fn(&Reply) -> Result<(), String> {
    move |r: &Reply| {
        let got: Vec<u64> = r
            .at("/m2m:agr/m2m:rsp")
            .as_array()
            .map(|a| a.iter().filter_map(|x| x["rsc"].as_u64()).collect())
            .unwrap_or_default();
        if got == want { Ok(()) } else { Err(format!("member RSCs {got:?}, want {want:?}: {}", r.body)) }
    }
}

/// `macp`: the policies of a group's fan-out point (TS-0001 §9.6.13). When set, they alone decide who
/// may send an operation through `fopt` (each member still checks the request with its own access
/// control); without it, the group's own access control does. `ssi` and `nar` are not implemented
/// and are refused rather than ignored.
fn group_policy_rows() -> Vec<Step> {
    let names_all = json!({"acor": ["{names}"], "acop": 63});
    vec![
        step("a fan-out policy", create("/cse-in/names", "{names}", 1, acp("acpFopt", json!([{"acor": ["{ae3}"], "acop": 2}]), json!([names_all]))), 2001)
            .save("acpFopt", "/m2m:acp/ri"),
        step(
            "a member policy",
            create("/cse-in/names", "{names}", 1, acp("acpMember", json!([{"acor": ["{ae3}"], "acop": 2}, names_all]), json!([names_all]))),
            2001,
        )
        .save("acpMember", "/m2m:acp/ri"),
        step("a member ae3 may read", create("/cse-in/names", "{names}", 3, json!({"m2m:cnt": {"rn": "m5", "acpi": ["{acpMember}"]}})), 2001)
            .save("m5", "/m2m:cnt/ri"),
        step("macp naming a missing policy", create("/cse-in/names", "{names}", 9, json!({"m2m:grp": {"mnm": 5, "mid": ["{m3}"], "macp": ["acpNope"]}})), 4000),
        step(
            "a group with macp (by address)",
            create(
                "/cse-in/names",
                "{names}",
                9,
                json!({"m2m:grp": {"rn": "gm", "mt": 3, "mnm": 5, "mid": ["{m3}", "{m5}"], "macp": ["cse-in/names/acpFopt"]}}),
            ),
            2001,
        )
        .expect("/m2m:grp/macp", json!(["{acpFopt}"])),
        step("macp lets ae3 through fopt; each member decides", get("/cse-in/names/gm/fopt", "{ae3}"), 2000)
            .check(member_rscs(&[4103, 2000])),
        step("the group itself stays its creator's", get("/cse-in/names/gm", "{ae3}"), 4103),
        step("macp grants only its operations", update("/cse-in/names/gm/fopt", "{ae3}", json!({"m2m:cnt": {"lbl": ["x"]}})), 4103),
        step("macp, not the group's creator rights, governs fopt", get("/cse-in/names/gm/fopt", "{names}"), 4103),
        step("an update of macp is checked too", update("/cse-in/names/gm", "{names}", json!({"m2m:grp": {"macp": ["acpNope"]}})), 4000),
        step("macp removed", update("/cse-in/names/gm", "{names}", json!({"m2m:grp": {"macp": null}})), 2004),
        step("then the group's access control applies to fopt", get("/cse-in/names/gm/fopt", "{names}"), 2000)
            .check(member_rscs(&[2000, 2000])),
        step("and ae3 is refused", get("/cse-in/names/gm/fopt", "{ae3}"), 4103),
        step("ssi true is not implemented", create("/cse-in/names", "{names}", 9, json!({"m2m:grp": {"mnm": 5, "mid": ["{m3}"], "ssi": true}})), 4000)
            .check(bad_request_with_reason)
            .check(|r| if r.str_at("/m2m:dbg").contains("ssi") { Ok(()) } else { Err(r.body.to_string()) }),
        step("nar is not implemented", create("/cse-in/names", "{names}", 9, json!({"m2m:grp": {"mnm": 5, "mid": ["{m3}"], "nar": 1}})), 4000)
            .check(|r| if r.str_at("/m2m:dbg").contains("nar") { Ok(()) } else { Err(r.body.to_string()) }),
        step("ssi false is what every group is", create("/cse-in/names", "{names}", 9, json!({"m2m:grp": {"rn": "gs", "mnm": 5, "mid": ["{m3}"], "ssi": false}})), 2001),
        step("ssi cannot be set true by an update", update("/cse-in/names/gs", "{names}", json!({"m2m:grp": {"ssi": true}})), 4000),
        step("nor nar", update("/cse-in/names/gs", "{names}", json!({"m2m:grp": {"nar": 2}})), 4000),
    ]
}

const A_ADMIN: &str = "CAdmin";

#[tokio::test]
async fn conformance_table() {
    let cse = TestCse::start(CseOptions::default()).await;
    let sink = Sink::start().await;
    let http = client();
    let mut vars: HashMap<String, String> = HashMap::new();
    let mut failures = Vec::new();
    for s in table(&sink.url()) {
        let mut req = s.req.clone();
        req.headers = req.headers.iter().map(|(k, v)| (k.clone(), subst(v, &vars))).collect();
        req.path = subst(&req.path, &vars);
        req.origin = req.origin.map(|o| subst(&o, &vars));
        req.body = req.body.map(|b| serde_json::from_str(&subst(&b.to_string(), &vars)).expect("body"));
        let reply = req.send(&http, &cse.url).await;
        if reply.rsc != s.want {
            failures.push(format!(
                "{}: rsc {} (HTTP {}), want {}: {}",
                s.name, reply.rsc, reply.status, s.want, reply.body
            ));
            continue;
        }
        for (pointer, want) in &s.expects {
            let want: Value = serde_json::from_str(&subst(&want.to_string(), &vars)).expect("expected value");
            let got = reply.at(pointer);
            if *got != want {
                failures.push(format!("{}: {pointer} is {got}, want {want}", s.name));
            }
        }
        for c in &s.checks {
            if let Err(e) = c(&reply) {
                failures.push(format!("{}: {}", s.name, subst(&e, &vars)));
            }
        }
        for (var, pointer) in &s.saves {
            vars.insert((*var).to_owned(), reply.str_at(pointer));
        }
    }
    assert!(failures.is_empty(), "{} rows failed:\n{}", failures.len(), failures.join("\n"));
}

#[tokio::test]
async fn missing_request_id_is_4000() {
    let cse = TestCse::start(CseOptions::default()).await;
    let resp = client()
        .get(format!("{}/cse-in", cse.url))
        .header("X-M2M-Origin", "CAdmin")
        .header("X-M2M-RVI", "4")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.headers()["x-m2m-rsc"], "4000");
    assert_eq!(resp.status(), 400);
}

#[tokio::test]
async fn cbor_in_and_out() {
    let cse = TestCse::start(CseOptions::default()).await;
    let http = client();
    let ae = Req::create("/cse-in", "C", 2, json!({"m2m:ae": {"rn": "c", "api": "Nc", "rr": false, "srv": ["4"]}}))
        .send(&http, &cse.url)
        .await;
    let aei = ae.str_at("/m2m:ae/aei");
    Req::create("/cse-in/c", &aei, 3, json!({"m2m:cnt": {"rn": "k"}})).send(&http, &cse.url).await;
    let body = onem2m::Serialization::Cbor.encode(&json!({"m2m:cin": {"con": "cbor", "cnf": "text/plain:0"}}));
    let resp = http
        .post(format!("{}/cse-in/c/k", cse.url))
        .header("X-M2M-Origin", &aei)
        .header("X-M2M-RI", "1")
        .header("X-M2M-RVI", "4")
        .header("Content-Type", "application/cbor;ty=4")
        .header("Accept", "application/cbor")
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.headers()["x-m2m-rsc"], "2001");
    assert_eq!(resp.headers()["content-type"], "application/cbor");
    let got: Value = onem2m::Serialization::Cbor.decode(&resp.bytes().await.unwrap()).unwrap();
    assert_eq!(got["m2m:cin"]["con"], "cbor");
}
