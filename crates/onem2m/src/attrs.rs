//! Attribute policies: which attributes each resource type has, their value types, and whether a
//! client may (or must) set them on CREATE and UPDATE (TS-0004 §7.4, ACME's attribute policies; see
//! ONEM2M.md §4). A receiver validates every request body against these tables, so that an unknown
//! attribute, a read-only one, a missing mandatory one or a value of the wrong type is a 4000 with a
//! reason naming the attribute.

use serde_json::{Map, Value};

use crate::{Error, Operation, ResourceType, Timestamp};

/// The type of an attribute's value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Str,
    /// A non-negative integer.
    Uint,
    Bool,
    /// A oneM2M timestamp string.
    Time,
    /// A list of strings.
    StrList,
    /// A list of non-negative integers.
    UintList,
    /// A JSON object.
    Object,
    /// Any JSON value (e.g. `con`).
    Any,
}

/// Whether a client may set an attribute in a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Opt {
    /// Must be present.
    Mandatory,
    /// May be present.
    Optional,
    /// May be present only as `null`, asking the receiver to fill it in (`cr`).
    NullOnly,
    /// Must not be present: set by the receiver, or fixed after create.
    NotPresent,
}

/// One attribute of one resource type.
#[derive(Debug, Clone, Copy)]
pub struct Policy {
    pub name: &'static str,
    pub kind: Kind,
    pub create: Opt,
    pub update: Opt,
}

const fn p(name: &'static str, kind: Kind, create: Opt, update: Opt) -> Policy {
    Policy { name, kind, create, update }
}

use Kind::*;
use Opt::{Mandatory as M, NotPresent as NP, NullOnly as NO, Optional as O};

/// Attributes every resource type has.
const UNIVERSAL: &[Policy] = &[
    p("ty", Uint, NP, NP),
    p("ri", Str, NP, NP),
    p("rn", Str, O, NP),
    p("pi", Str, NP, NP),
    p("ct", Time, NP, NP),
    p("lt", Time, NP, NP),
    p("et", Time, O, O),
    p("lbl", StrList, O, O),
];

/// Common attributes that most (not all) types have.
const ACPI: Policy = p("acpi", StrList, O, O);
const AT: Policy = p("at", StrList, O, O);
const AA: Policy = p("aa", StrList, O, O);
const DACI: Policy = p("daci", StrList, O, O);
const CSTN: Policy = p("cstn", Str, O, O);
const CR: Policy = p("cr", Str, NO, NP);
const ST: Policy = p("st", Uint, NP, NP);

const AE: &[Policy] = &[
    ACPI,
    AT,
    AA,
    DACI,
    p("apn", Str, O, O),
    p("api", Str, M, NP),
    p("aei", Str, NP, NP),
    p("poa", StrList, O, O),
    p("nl", Str, O, O),
    p("rr", Bool, M, O),
    p("csz", StrList, O, O),
    p("esi", Object, O, O),
    p("mei", Str, O, O),
    p("srv", StrList, M, O),
    p("regs", Str, O, O),
    p("trps", Bool, O, O),
    p("scp", StrList, O, O),
    p("tren", Bool, O, O),
    p("ape", Str, O, O),
    p("or", Str, O, O),
    p("tri", Str, O, O),
    p("trn", Uint, O, O),
];

const CNT: &[Policy] = &[
    ACPI,
    AT,
    AA,
    DACI,
    CSTN,
    CR,
    ST,
    p("mni", Uint, O, O),
    p("mbs", Uint, O, O),
    p("mia", Uint, O, O),
    p("cni", Uint, NP, NP),
    p("cbs", Uint, NP, NP),
    p("li", Str, O, O),
    p("or", Str, O, O),
    p("disr", Bool, O, O),
];

const CIN: &[Policy] = &[
    AT,
    AA,
    CR,
    ST,
    p("cnf", Str, O, NP),
    p("cs", Uint, NP, NP),
    p("con", Any, M, NP),
    p("conr", Str, O, NP),
    p("or", Str, O, NP),
    p("dcnt", Uint, O, NP),
    p("dgt", Time, O, NP),
];

const SUB: &[Policy] = &[
    ACPI,
    DACI,
    CR,
    p("enc", Object, O, O),
    p("exc", Uint, O, O),
    p("nu", StrList, M, O),
    p("gpi", Str, O, O),
    p("nfu", Str, O, O),
    p("bn", Object, O, O),
    p("rl", Object, O, O),
    p("psn", Uint, O, O),
    p("pn", Uint, O, O),
    p("nsp", Uint, O, O),
    p("ln", Bool, O, O),
    p("nct", Uint, O, O),
    p("nec", Uint, O, O),
    p("su", Str, O, NP),
    p("nse", Bool, O, O),
    p("nsi", Object, NP, NP),
];

const ACP: &[Policy] = &[
    AT,
    AA,
    CSTN,
    p("pv", Object, M, O),
    p("pvs", Object, M, O),
    p("adri", StrList, O, O),
    p("apri", StrList, O, O),
    p("airi", StrList, O, O),
];

const GRP: &[Policy] = &[
    ACPI,
    AT,
    AA,
    DACI,
    CSTN,
    CR,
    p("mt", Uint, O, NP),
    p("cnm", Uint, NP, NP),
    p("mnm", Uint, M, O),
    p("mid", StrList, M, O),
    p("macp", StrList, O, O),
    p("mtv", Bool, NP, NP),
    p("csy", Uint, O, NP),
    p("gn", Str, O, O),
    p("ssi", Bool, O, O),
    p("nar", Uint, O, O),
];

const CSR: &[Policy] = &[
    ACPI,
    AT,
    AA,
    DACI,
    p("cst", Uint, O, NP),
    p("poa", StrList, O, O),
    p("cb", Str, M, NP),
    // The registering CSE's ID; the Registrar replaces it with the originator (ONEM2M.md §4).
    p("csi", Str, O, NP),
    p("spi", Str, O, NP),
    p("ici", Str, O, O),
    p("mei", Str, O, O),
    p("tri", Str, O, O),
    p("rr", Bool, M, O),
    p("nl", Str, O, O),
    p("csz", StrList, O, O),
    p("esi", Object, O, O),
    p("trn", Uint, O, O),
    p("dcse", StrList, O, O),
    p("mtcc", Uint, O, O),
    p("egid", Str, O, O),
    p("tren", Bool, O, O),
    p("ape", Str, O, O),
    p("srv", StrList, M, O),
];

const CB: &[Policy] = &[
    ACPI,
    p("cst", Uint, NP, NP),
    p("csi", Str, NP, NP),
    p("spi", Str, NP, NP),
    p("ici", Str, NP, NP),
    p("csz", StrList, NP, NP),
    p("ctm", Time, NP, NP),
    p("esi", Object, NP, NP),
    p("nl", Str, NP, O),
    p("poa", StrList, NP, O),
    p("srt", UintList, NP, NP),
    p("srv", StrList, NP, NP),
];

/// The type-specific attributes of a resource type, or `None` for a type Warden does not host.
pub fn type_policies(ty: ResourceType) -> Option<&'static [Policy]> {
    Some(match ty {
        ResourceType::Ae => AE,
        ResourceType::Container => CNT,
        ResourceType::ContentInstance => CIN,
        ResourceType::Subscription => SUB,
        ResourceType::AccessControlPolicy => ACP,
        ResourceType::Group => GRP,
        ResourceType::RemoteCse => CSR,
        ResourceType::CseBase => CB,
        _ => return None,
    })
}

/// The policy of attribute `name` on type `ty`.
pub fn policy(ty: ResourceType, name: &str) -> Option<&'static Policy> {
    UNIVERSAL.iter().chain(type_policies(ty).unwrap_or_default()).find(|p| p.name == name)
}

/// True if resources of type `ty` carry an `acpi` attribute (others use their parent's).
pub fn has_acpi(ty: ResourceType) -> bool {
    policy(ty, "acpi").is_some()
}

/// Every attribute name of `ty`, for partial retrieve and attribute filters.
pub fn names(ty: ResourceType) -> impl Iterator<Item = &'static str> {
    UNIVERSAL.iter().chain(type_policies(ty).unwrap_or_default()).map(|p| p.name)
}

/// True if `name` is an attribute of any hosted type (to tell attribute filters from typos).
pub fn is_known_attribute(name: &str) -> bool {
    UNIVERSAL.iter().chain([AE, CNT, CIN, SUB, ACP, GRP, CSR, CB].into_iter().flatten()).any(|p| p.name == name)
}

fn kind_ok(kind: Kind, v: &Value) -> bool {
    let uint = |v: &Value| v.as_u64().is_some();
    match kind {
        Str => v.is_string(),
        Uint => uint(v),
        Bool => v.is_boolean(),
        Time => v.as_str().is_some_and(|s| Timestamp::parse(s).is_ok()),
        StrList => v.as_array().is_some_and(|a| a.iter().all(Value::is_string)),
        UintList => v.as_array().is_some_and(|a| a.iter().all(uint)),
        Object => v.is_object(),
        Any => true,
    }
}

fn kind_name(kind: Kind) -> &'static str {
    match kind {
        Str => "a string",
        Uint => "a non-negative integer",
        Bool => "a boolean",
        Time => "a timestamp YYYYMMDDTHHMMSS",
        StrList => "a list of strings",
        UintList => "a list of non-negative integers",
        Object => "an object",
        Any => "a value",
    }
}

/// Checks the attributes of a CREATE or UPDATE request body against the policies of `ty`.
/// On UPDATE, `null` deletes an optional attribute and is always allowed for one that may be set.
pub fn validate(ty: ResourceType, op: Operation, attrs: &Map<String, Value>) -> Result<(), Error> {
    let Some(specific) = type_policies(ty) else {
        return Err(Error::bad_request(format!("resource type {ty} is not supported")));
    };
    for (name, value) in attrs {
        let Some(pol) = UNIVERSAL.iter().chain(specific).find(|p| p.name == name) else {
            return Err(Error::bad_request(format!("unknown attribute '{name}' for {ty}")));
        };
        let opt = if op == Operation::Create { pol.create } else { pol.update };
        match opt {
            Opt::NotPresent => {
                return Err(Error::bad_request(format!(
                    "attribute '{name}' may not be set on {} of {ty}",
                    if op == Operation::Create { "create" } else { "update" }
                )));
            }
            Opt::NullOnly if !value.is_null() => {
                return Err(Error::bad_request(format!("attribute '{name}' may only be null (the CSE sets it)")));
            }
            Opt::NullOnly => {}
            Opt::Mandatory | Opt::Optional => {
                let deleting = value.is_null() && op == Operation::Update && opt == Opt::Optional;
                if !deleting && !kind_ok(pol.kind, value) {
                    return Err(Error::bad_request(format!("attribute '{name}' must be {}", kind_name(pol.kind))));
                }
            }
        }
    }
    if op == Operation::Create
        && let Some(missing) = specific.iter().find(|p| p.create == Opt::Mandatory && !attrs.contains_key(p.name))
    {
        return Err(Error::bad_request(format!("mandatory attribute '{}' is missing", missing.name)));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn attrs(v: Value) -> Map<String, Value> {
        v.as_object().unwrap().clone()
    }

    #[test]
    fn ae_create() {
        let ok = attrs(json!({"rn":"a","api":"Nx","rr":false,"srv":["4"],"poa":["http://h"],"lbl":["x"]}));
        validate(ResourceType::Ae, Operation::Create, &ok).unwrap();
        let cases = [
            (json!({"api":"Nx","rr":false}), "srv"),
            (json!({"api":"Nx","rr":false,"srv":["4"],"aei":"C1"}), "aei"),
            (json!({"api":"Nx","rr":false,"srv":["4"],"bogus":1}), "bogus"),
            (json!({"api":"Nx","rr":"no","srv":["4"]}), "rr"),
            (json!({"api":"Nx","rr":false,"srv":"4"}), "srv"),
            (json!({"api":"Nx","rr":false,"srv":["4"],"cr":null}), "cr"),
            (json!({"api":"Nx","rr":false,"srv":["4"],"et":"tomorrow"}), "et"),
        ];
        for (body, named) in cases {
            let e = validate(ResourceType::Ae, Operation::Create, &attrs(body.clone())).unwrap_err();
            assert!(e.dbg.contains(named), "{body}: {}", e.dbg);
        }
    }

    #[test]
    fn update_rules() {
        validate(ResourceType::Ae, Operation::Update, &attrs(json!({"lbl":["a"],"poa":null}))).unwrap();
        assert!(validate(ResourceType::Ae, Operation::Update, &attrs(json!({"api":"Ny"}))).is_err());
        assert!(validate(ResourceType::Ae, Operation::Update, &attrs(json!({"ty":2}))).is_err());
        assert!(validate(ResourceType::Ae, Operation::Update, &attrs(json!({"pi":"x"}))).is_err());
        assert!(validate(ResourceType::ContentInstance, Operation::Update, &attrs(json!({"con":"x"}))).is_err());
        validate(ResourceType::Container, Operation::Update, &attrs(json!({"mni":5}))).unwrap();
        assert!(validate(ResourceType::Container, Operation::Update, &attrs(json!({"mni":-1}))).is_err());
    }

    #[test]
    fn creator_only_as_null() {
        validate(ResourceType::Container, Operation::Create, &attrs(json!({"cr":null}))).unwrap();
        assert!(validate(ResourceType::Container, Operation::Create, &attrs(json!({"cr":"Cx"}))).is_err());
    }

    /// The attributes of each hosted type as ONEM2M.md §4 lists them: `*` mandatory on CREATE,
    /// `!` read-only (set by the CSE), `~` not updatable. `con` is mandatory by TS-0004 Table
    /// 7.4.7.1-3 (ONEM2M.md gives no optionality for it); a contentInstance is never updatable and
    /// the CSEBase is never created by a request.
    const ONEM2M_MD: &str = "
        ae: apn api*~ aei! poa nl rr* csz esi mei srv* regs trps scp tren ape or tri trn
        cb: csi! spi! ici! cst! csz! ctm! esi! nl poa srt! srv!
        csr: cst~ poa cb*~ csi~ spi~ ici mei tri rr* nl csz esi trn dcse mtcc egid tren ape srv*
        cnt: mni mbs mia cni! cbs! li or disr st! cr
        cin: cnf~ cs! con*~ conr~ or~ dcnt~ dgt~ st! cr
        sub: nu* enc nct exc su~ bn rl psn pn nsp ln nec gpi nfu cr nse nsi!
        acp: pv* pvs* adri apri airi
        grp: mt~ cnm! mnm* mid* macp mtv! csy~ gn ssi nar
    ";
    /// The common attributes of ONEM2M.md §4 that a type may have besides its own.
    const COMMON: &[&str] =
        &["rn", "ty", "ri", "pi", "ct", "lt", "et", "lbl", "acpi", "at", "aa", "ast", "daci", "cstn", "cr", "st"];

    #[test]
    fn policies_follow_onem2m_md() {
        for line in ONEM2M_MD.lines().map(str::trim).filter(|l| !l.is_empty()) {
            let (short, list) = line.split_once(':').unwrap();
            let ty = [
                ResourceType::Ae,
                ResourceType::CseBase,
                ResourceType::RemoteCse,
                ResourceType::Container,
                ResourceType::ContentInstance,
                ResourceType::Subscription,
                ResourceType::AccessControlPolicy,
                ResourceType::Group,
            ]
            .into_iter()
            .find(|t| t.short_name() == short)
            .unwrap();
            let mut listed = Vec::new();
            for entry in list.split_whitespace() {
                let name = entry.trim_end_matches(['*', '!', '~']);
                listed.push(name);
                let pol = policy(ty, name).unwrap_or_else(|| panic!("{short}: {name} has no policy"));
                let mandatory = entry.contains('*');
                assert_eq!(pol.create == Opt::Mandatory, mandatory, "{short}.{name}: mandatory on create");
                let read_only = entry.contains('!') || ty == ResourceType::CseBase && !matches!(name, "nl" | "poa");
                if read_only || ty == ResourceType::CseBase {
                    assert_eq!(pol.create, Opt::NotPresent, "{short}.{name}: not settable on create");
                }
                if read_only || entry.contains('~') {
                    assert_eq!(pol.update, Opt::NotPresent, "{short}.{name}: not updatable");
                } else if pol.create != Opt::NullOnly {
                    assert_ne!(pol.update, Opt::NotPresent, "{short}.{name}: updatable");
                }
            }
            for pol in type_policies(ty).unwrap() {
                assert!(
                    listed.contains(&pol.name) || COMMON.contains(&pol.name),
                    "{short}.{} is not an attribute of ONEM2M.md §4",
                    pol.name
                );
            }
        }
    }

    #[test]
    fn lookups() {
        assert!(has_acpi(ResourceType::Container));
        assert!(!has_acpi(ResourceType::ContentInstance));
        assert!(!has_acpi(ResourceType::AccessControlPolicy));
        assert!(is_known_attribute("cni") && is_known_attribute("lbl") && !is_known_attribute("zzz"));
        assert!(names(ResourceType::ContentInstance).any(|n| n == "con"));
        assert!(validate(ResourceType::Node, Operation::Create, &Map::new()).is_err());
    }
}
