//! The enumerations of TS-0004 §6.3 that requests and resources carry (ONEM2M.md §4).

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Declares a C-like enum with numeric wire values, a `from_u*` constructor and serde as a number.
macro_rules! num_enum {
    ($(#[$meta:meta])* $name:ident: $repr:ty { $($(#[$vmeta:meta])* $variant:ident = $value:literal,)* }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        #[repr($repr)]
        pub enum $name {
            $($(#[$vmeta])* $variant = $value,)*
        }

        impl $name {
            pub const ALL: &'static [$name] = &[$($name::$variant,)*];

            pub fn from_num(n: i64) -> Option<Self> {
                match n {
                    $($value => Some($name::$variant),)*
                    _ => None,
                }
            }

            pub fn num(self) -> $repr {
                self as $repr
            }
        }

        impl Serialize for $name {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_i64(self.num() as i64)
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let n = i64::deserialize(d)?;
                $name::from_num(n).ok_or_else(|| {
                    serde::de::Error::custom(format!(concat!("invalid ", stringify!($name), " {}"), n))
                })
            }
        }
    };
}

num_enum! {
    /// The operation of a request (`op`).
    Operation: u8 {
        Create = 1,
        Retrieve = 2,
        Update = 3,
        Delete = 4,
        Notify = 5,
    }
}

impl Operation {
    /// The `acop` bit for this operation (TS-0004 accessControlOperations). Discovery is a retrieve
    /// with `fu=1` and has its own bit, [`ACOP_DISCOVERY`].
    pub fn acop_bit(self) -> u32 {
        match self {
            Operation::Create => 1,
            Operation::Retrieve => 2,
            Operation::Update => 4,
            Operation::Delete => 8,
            Operation::Notify => 16,
        }
    }
}

/// The `acop` bit of discovery.
pub const ACOP_DISCOVERY: u32 = 32;
/// Every `acop` bit.
pub const ACOP_ALL: u32 = 63;

/// `Some(short name)`, or `None` when the table row has none.
macro_rules! short {
    () => {
        None
    };
    ($short:literal) => {
        Some($short)
    };
}

/// The JSON member name: `m2m:` and the short name, or the name when there is no short name.
macro_rules! member {
    ($name:literal) => {
        concat!("m2m:", $name)
    };
    ($name:literal, $short:literal) => {
        concat!("m2m:", $short)
    };
}

/// Declares [`ResourceType`] from one table: variant, number, the name of TS-0004 Table 6.3.4.2.1-1
/// and, where ONEM2M.md §4 gives one, the short name (TS-0004 §8.2.4).
macro_rules! resource_types {
    ($($(#[$vmeta:meta])* $variant:ident = $value:literal, $name:literal $(, $short:literal)?;)*) => {
        /// Resource types (TS-0004 Table 6.3.4.2.1-1, ONEM2M.md §4): every type of the Release 3 table,
        /// the `<mgmtObj>` specialisations 1001–1010, and the announced types (10000 + the type).
        /// Warden serves only some of them; the others still parse, so that a request naming one gets
        /// a proper answer from the CSE rather than a decoding error.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        #[repr(u16)]
        pub enum ResourceType {
            $($(#[$vmeta])* $variant = $value,)*
        }

        impl ResourceType {
            pub const ALL: &'static [ResourceType] = &[$(ResourceType::$variant,)*];

            pub fn from_num(n: i64) -> Option<Self> {
                match n {
                    $($value => Some(ResourceType::$variant),)*
                    _ => None,
                }
            }

            pub fn num(self) -> u16 {
                self as u16
            }

            /// The type's name in TS-0004 Table 6.3.4.2.1-1, e.g. `accessControlPolicy`.
            pub fn name(self) -> &'static str {
                match self {
                    $(ResourceType::$variant => $name,)*
                }
            }

            /// The short name, if the type has one, and the JSON member name: `m2m:<short>`, or
            /// `m2m:<name>` for a type without a short name.
            fn names(self) -> (Option<&'static str>, &'static str) {
                match self {
                    $(ResourceType::$variant => (short!($($short)?), member!($name $(, $short)?)),)*
                }
            }
        }
    };
}

resource_types! {
    AccessControlPolicy = 1, "accessControlPolicy", "acp";
    Ae = 2, "AE", "ae";
    Container = 3, "container", "cnt";
    ContentInstance = 4, "contentInstance", "cin";
    CseBase = 5, "CSEBase", "cb";
    Delivery = 6, "delivery", "dlv";
    EventConfig = 7, "eventConfig", "evcg";
    ExecInstance = 8, "execInstance", "exin";
    Group = 9, "group", "grp";
    LocationPolicy = 10, "locationPolicy", "lcp";
    M2mServiceSubscriptionProfile = 11, "m2mServiceSubscriptionProfile", "mssp";
    MgmtCmd = 12, "mgmtCmd", "mgc";
    /// Serialised under the name of its specialisation (`m2m:fwr`, ...), so it has no short name of
    /// its own.
    MgmtObj = 13, "mgmtObj";
    Node = 14, "node", "nod";
    PollingChannel = 15, "pollingChannel", "pch";
    RemoteCse = 16, "remoteCSE", "csr";
    Request = 17, "request", "req";
    Schedule = 18, "schedule", "sch";
    ServiceSubscribedAppRule = 19, "serviceSubscribedAppRule", "asar";
    ServiceSubscribedNode = 20, "serviceSubscribedNode", "svsn";
    StatsCollect = 21, "statsCollect", "stcl";
    StatsConfig = 22, "statsConfig", "stcg";
    Subscription = 23, "subscription", "sub";
    SemanticDescriptor = 24, "semanticDescriptor", "smd";
    NotificationTargetMgmtPolicyRef = 25, "notificationTargetMgmtPolicyRef", "ntpr";
    NotificationTargetPolicy = 26, "notificationTargetPolicy", "ntp";
    PolicyDeletionRules = 27, "policyDeletionRules", "pdr";
    FlexContainer = 28, "flexContainer", "fcnt";
    TimeSeries = 29, "timeSeries", "ts";
    TimeSeriesInstance = 30, "timeSeriesInstance", "tsi";
    Role = 31, "role", "rol";
    Token = 32, "token", "tk";
    DynamicAuthorizationConsultation = 34, "dynamicAuthorizationConsultation", "dac";
    AeContactList = 43, "AEContactList";
    AeContactListPerCse = 44, "AEContactListPerCSE";
    TriggerRequest = 47, "triggerRequest";
    CrossResourceSubscription = 48, "crossResourceSubscription";

    // The <mgmtObj> specialisations (TS-0001 Annex D).
    Firmware = 1001, "firmware", "fwr";
    Software = 1002, "software", "swr";
    Memory = 1003, "memory", "mem";
    AreaNwkInfo = 1004, "areaNwkInfo", "ani";
    AreaNwkDeviceInfo = 1005, "areaNwkDeviceInfo", "andi";
    Battery = 1006, "battery", "bat";
    DeviceInfo = 1007, "deviceInfo", "dvi";
    DeviceCapability = 1008, "deviceCapability", "dvc";
    Reboot = 1009, "reboot", "rbo";
    EventLog = 1010, "eventLog", "evl";

    // Announced types: 10000 + the type, named `<name>Annc`, short name `<short>A`.
    AccessControlPolicyAnnc = 10001, "accessControlPolicyAnnc", "acpA";
    AeAnnc = 10002, "AEAnnc", "aeA";
    ContainerAnnc = 10003, "containerAnnc", "cntA";
    ContentInstanceAnnc = 10004, "contentInstanceAnnc", "cinA";
    CseBaseAnnc = 10005, "CSEBaseAnnc", "cbA";
    GroupAnnc = 10009, "groupAnnc", "grpA";
    LocationPolicyAnnc = 10010, "locationPolicyAnnc", "lcpA";
    MgmtObjAnnc = 10013, "mgmtObjAnnc";
    NodeAnnc = 10014, "nodeAnnc", "nodA";
    RemoteCseAnnc = 10016, "remoteCSEAnnc", "csrA";
    ScheduleAnnc = 10018, "scheduleAnnc", "schA";
    SemanticDescriptorAnnc = 10024, "semanticDescriptorAnnc", "smdA";
    FlexContainerAnnc = 10028, "flexContainerAnnc", "fcntA";
    TimeSeriesAnnc = 10029, "timeSeriesAnnc", "tsA";
    TimeSeriesInstanceAnnc = 10030, "timeSeriesInstanceAnnc", "tsiA";
}

impl Serialize for ResourceType {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_i64(i64::from(self.num()))
    }
}

impl<'de> Deserialize<'de> for ResourceType {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let n = i64::deserialize(d)?;
        ResourceType::from_num(n).ok_or_else(|| serde::de::Error::custom(format!("invalid ResourceType {n}")))
    }
}

impl ResourceType {
    /// The short name of ONEM2M.md §4 (TS-0004 §8.2.4), e.g. `ae`; `None` for the types that have
    /// none there (mgmtObj, which is serialised under its specialisation's name, and 43, 44, 47, 48).
    pub fn spec_short_name(self) -> Option<&'static str> {
        self.names().0
    }

    /// The short name used as `m2m:<name>` in JSON, and in messages, metrics labels and resource
    /// IDs: the [`spec_short_name`](Self::spec_short_name), or the type's [`name`](Self::name) for
    /// the few types that have no short name (Warden serves none of those).
    pub fn short_name(self) -> &'static str {
        self.names().0.unwrap_or_else(|| self.name())
    }

    /// The JSON member name, e.g. `m2m:ae` (`m2m:` and the [`short_name`](Self::short_name)).
    pub fn member_name(self) -> &'static str {
        self.names().1
    }

    /// The type whose short name is `name` (with or without the `m2m:` prefix). Only the short
    /// names of §4 are known: a type without one is never found by name.
    pub fn from_short_name(name: &str) -> Option<Self> {
        let name = name.strip_prefix("m2m:").unwrap_or(name);
        Self::ALL.iter().copied().find(|t| t.spec_short_name() == Some(name))
    }

    /// For an announced type (10001 and up), the type it announces.
    pub fn announced_from(self) -> Option<Self> {
        let n = self.num();
        if n > 10_000 { Self::from_num(i64::from(n - 10_000)) } else { None }
    }

    /// For a `<mgmtObj>` specialisation (1001–1010), true.
    pub fn is_mgmt_obj_specialisation(self) -> bool {
        (1001..=1010).contains(&self.num())
    }
}

impl fmt::Display for ResourceType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.short_name())
    }
}

num_enum! {
    /// Result content (`rcn`).
    ResultContent: u8 {
        Nothing = 0,
        Attributes = 1,
        HierarchicalAddress = 2,
        HierarchicalAddressAndAttributes = 3,
        AttributesAndChildResources = 4,
        AttributesAndChildResourceReferences = 5,
        ChildResourceReferences = 6,
        OriginalResource = 7,
        ChildResources = 8,
        ModifiedAttributes = 9,
        SemanticContent = 10,
        DiscoveryResultReferences = 11,
    }
}

num_enum! {
    /// Response type (`rt.rtv`).
    ResponseType: u8 {
        NonBlockingRequestSynch = 1,
        NonBlockingRequestAsynch = 2,
        BlockingRequest = 3,
        FlexBlocking = 4,
        NoResponse = 5,
    }
}

num_enum! {
    /// Filter usage (`fu`).
    FilterUsage: u8 {
        DiscoveryCriteria = 1,
        ConditionalRetrieval = 2,
        IpeOnDemandDiscovery = 3,
        DiscoveryBasedOperation = 4,
    }
}

num_enum! {
    /// Filter operation (`fo`): how the filter conditions combine.
    FilterOperation: u8 {
        And = 1,
        Or = 2,
        Xor = 3,
    }
}

num_enum! {
    /// Desired identifier result type (`drt`).
    DesiredIdResultType: u8 {
        Structured = 1,
        Unstructured = 2,
    }
}

num_enum! {
    /// Notification event type (`net`).
    NotificationEventType: u8 {
        UpdateOfResource = 1,
        DeleteOfResource = 2,
        CreateOfDirectChild = 3,
        DeleteOfDirectChild = 4,
        RetrieveOfContainerWithNoChild = 5,
        TriggerReceivedForAe = 6,
        BlockingUpdate = 7,
        MissingDataPoints = 8,
    }
}

num_enum! {
    /// Notification content type (`nct`).
    NotificationContentType: u8 {
        AllAttributes = 1,
        ModifiedAttributes = 2,
        ResourceId = 3,
        TriggerPayload = 4,
        TimeSeriesNotification = 5,
    }
}

num_enum! {
    /// CSE type (`cst`).
    CseType: u8 {
        In = 1,
        Mn = 2,
        Asn = 3,
    }
}

/// A release version indicator (`rvi`) value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ReleaseVersion {
    V1,
    V2,
    V2a,
    V3,
    V4,
    V5,
}

impl ReleaseVersion {
    /// Every release version.
    pub const ALL: &'static [ReleaseVersion] = &[
        ReleaseVersion::V1,
        ReleaseVersion::V2,
        ReleaseVersion::V2a,
        ReleaseVersion::V3,
        ReleaseVersion::V4,
        ReleaseVersion::V5,
    ];

    /// The versions Warden serves.
    pub const SUPPORTED: &'static [ReleaseVersion] =
        &[ReleaseVersion::V2a, ReleaseVersion::V3, ReleaseVersion::V4, ReleaseVersion::V5];

    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "1" => Self::V1,
            "2" => Self::V2,
            "2a" => Self::V2a,
            "3" => Self::V3,
            "4" => Self::V4,
            "5" => Self::V5,
            _ => return None,
        })
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::V1 => "1",
            Self::V2 => "2",
            Self::V2a => "2a",
            Self::V3 => "3",
            Self::V4 => "4",
            Self::V5 => "5",
        }
    }

    pub fn is_supported(self) -> bool {
        Self::SUPPORTED.contains(&self)
    }

    /// The lowercase `r` App-ID form "will be forbidden from release 4" (ONEM2M.md §1); it is
    /// tolerated for 2a and 3 only (§2.2, and TS-0004's check on `api`).
    pub fn allows_lowercase_app_id(self) -> bool {
        matches!(self, Self::V2a | Self::V3)
    }
}

impl fmt::Display for ReleaseVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The short name column of a row: `None` for "—" and for mgmtObj's "specialization names
    /// (...)"; the first name of "fcnt, or a specialization name such as ...".
    fn short_of(col: &str) -> Option<&str> {
        if col == "—" || col.starts_with("specialization") {
            return None;
        }
        Some(col.split(',').next().unwrap_or(col).trim())
    }

    /// The table of ONEM2M.md §4, as text (`src/testdata/resource_types.md`), against the code's:
    /// every row is a type with that number, name and short name, and every type of the code is a
    /// row, one of the mgmtObj specialisations, or an announced type that follows the "10000+N" row.
    #[test]
    fn matches_the_spec_table() {
        let spec = include_str!("testdata/resource_types.md");
        crate::spec_copy::assert_is_in_the_docs(spec);
        let mut covered = std::collections::BTreeSet::new();
        let mut rows = 0;
        for line in spec.lines().filter(|l| l.starts_with("| ") && l.as_bytes()[2].is_ascii_digit()) {
            rows += 1;
            let cols: Vec<&str> = line.split('|').map(str::trim).collect();
            let (ty, name, short) = (cols[1], cols[2], cols[3]);
            if let Ok(n) = ty.parse::<i64>() {
                let t = ResourceType::from_num(n).unwrap_or_else(|| panic!("type {n} ({name}) is missing"));
                assert_eq!(t.name(), name, "{n}");
                assert_eq!(t.spec_short_name(), short_of(short), "{n}");
                covered.insert(t);
            } else if let Some((from, to)) = ty.split_once('–') {
                // 1001–1010: the mgmtObj specialisations, their short names in order.
                let (from, to): (i64, i64) = (from.parse().unwrap(), to.parse().unwrap());
                let shorts: Vec<&str> = short.split(',').map(str::trim).collect();
                assert_eq!(shorts.len() as i64, to - from + 1, "{line}");
                for (n, short) in (from..=to).zip(shorts) {
                    let t = ResourceType::from_num(n).unwrap_or_else(|| panic!("specialisation {n} is missing"));
                    assert!(t.is_mgmt_obj_specialisation());
                    assert_eq!(t.spec_short_name(), Some(short), "{n}");
                    covered.insert(t);
                }
            } else {
                // 10000+N: the examples it gives, by number and short name.
                assert_eq!(ty, "10000+N", "{line}");
                let examples = name.split_once('(').unwrap().1;
                let mut seen = 0;
                for pair in examples.split(',') {
                    let mut words = pair.split_whitespace();
                    let (Some(n), Some(short)) = (words.next(), words.next()) else { continue };
                    let Ok(n) = n.parse::<i64>() else { continue };
                    let t = ResourceType::from_num(n).unwrap_or_else(|| panic!("announced type {n} is missing"));
                    assert_eq!(t.spec_short_name(), Some(short.trim_end_matches(')')), "{n}");
                    seen += 1;
                }
                assert!(seen >= 6, "{line}");
            }
        }
        assert_eq!(rows, 39);
        // Both ways: the announced types follow the rule, and nothing else is in the code.
        for t in ResourceType::ALL {
            if covered.contains(t) {
                continue;
            }
            let base = t.announced_from().unwrap_or_else(|| panic!("{t:?} is in no row of §4"));
            assert!(covered.contains(&base), "{t:?} announces {base:?}, which is in no row of §4");
            assert_eq!(t.num(), 10_000 + base.num());
            assert_eq!(t.name(), format!("{}Annc", base.name()));
            assert_eq!(t.spec_short_name().map(str::to_owned), base.spec_short_name().map(|s| format!("{s}A")));
        }
    }

    #[test]
    fn short_names() {
        assert_eq!(ResourceType::from_short_name("m2m:ae"), Some(ResourceType::Ae));
        assert_eq!(ResourceType::from_short_name("sch"), Some(ResourceType::Schedule));
        assert_eq!(ResourceType::from_short_name("m2m:aeA"), Some(ResourceType::AeAnnc));
        assert_eq!(ResourceType::from_short_name("fwr"), Some(ResourceType::Firmware));
        assert_eq!(ResourceType::Ae.member_name(), "m2m:ae");
        // mgmtObj has no short name of its own ("mgo" is nobody's)
        assert_eq!(ResourceType::MgmtObj.spec_short_name(), None);
        assert_eq!(ResourceType::from_short_name("mgo"), None);
        assert_eq!(ResourceType::from_short_name("mgmtObj"), None, "names are not short names");
        assert_eq!(ResourceType::CrossResourceSubscription.short_name(), "crossResourceSubscription");
        assert_eq!(ResourceType::from_num(33), None);
        assert_eq!(ResourceType::from_num(10_033), None);
        assert_eq!(ResourceType::Ae.announced_from(), None);
        assert_eq!(ResourceType::ContainerAnnc.announced_from(), Some(ResourceType::Container));
    }

    #[test]
    fn every_type_is_a_number_on_the_wire() {
        for t in ResourceType::ALL {
            let json = serde_json::to_string(t).unwrap();
            assert_eq!(json, t.num().to_string());
            assert_eq!(serde_json::from_str::<ResourceType>(&json).unwrap(), *t);
        }
        assert!(serde_json::from_str::<ResourceType>("33").is_err());
        assert!(serde_json::from_str::<ResourceType>("\"ae\"").is_err());
    }

    #[test]
    fn spec_numbers() {
        assert_eq!(ResourceType::CseBase.num(), 5);
        assert_eq!(ResourceType::Subscription.num(), 23);
        assert_eq!(ResourceType::RemoteCse.num(), 16);
        assert_eq!(Operation::Notify.num(), 5);
        assert_eq!(Operation::Delete.acop_bit(), 8);
        assert_eq!(ResultContent::ChildResources.num(), 8);
        assert_eq!(serde_json::to_string(&ResultContent::Attributes).unwrap(), "1");
        assert!(serde_json::from_str::<Operation>("9").is_err());
    }

    #[test]
    fn release_versions() {
        for s in ["2a", "3", "4", "5"] {
            assert!(ReleaseVersion::parse(s).unwrap().is_supported());
        }
        assert!(!ReleaseVersion::parse("1").unwrap().is_supported());
        assert!(ReleaseVersion::parse("6").is_none());
        // ONEM2M.md §1 and §2.2: lowercase `r` App-IDs at 2a and 3 only
        let lowercase: Vec<&str> =
            ReleaseVersion::ALL.iter().filter(|v| v.allows_lowercase_app_id()).map(|v| v.as_str()).collect();
        assert_eq!(lowercase, ["2a", "3"]);
    }
}
