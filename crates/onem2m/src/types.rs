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

num_enum! {
    /// Resource types (TS-0004 Table 6.3.4.2.1-1) that Warden knows by name.
    ResourceType: u16 {
        AccessControlPolicy = 1,
        Ae = 2,
        Container = 3,
        ContentInstance = 4,
        CseBase = 5,
        Delivery = 6,
        EventConfig = 7,
        ExecInstance = 8,
        Group = 9,
        LocationPolicy = 10,
        M2mServiceSubscriptionProfile = 11,
        MgmtCmd = 12,
        MgmtObj = 13,
        Node = 14,
        PollingChannel = 15,
        RemoteCse = 16,
        Request = 17,
        Schedule = 18,
        ServiceSubscribedAppRule = 19,
        ServiceSubscribedNode = 20,
        StatsCollect = 21,
        StatsConfig = 22,
        Subscription = 23,
        SemanticDescriptor = 24,
        NotificationTargetMgmtPolicyRef = 25,
        NotificationTargetPolicy = 26,
        PolicyDeletionRules = 27,
        FlexContainer = 28,
        TimeSeries = 29,
        TimeSeriesInstance = 30,
        Role = 31,
        Token = 32,
        DynamicAuthorizationConsultation = 34,
    }
}

impl ResourceType {
    /// The short name used as `m2m:<name>` in JSON (TS-0004 §8.2.4).
    pub fn short_name(self) -> &'static str {
        NAMES.iter().find(|(t, ..)| *t == self).map_or("unknown", |(_, s, _)| s)
    }

    /// The JSON member name, e.g. `m2m:ae`.
    pub fn member_name(self) -> &'static str {
        NAMES.iter().find(|(t, ..)| *t == self).map_or("m2m:unknown", |(.., m)| m)
    }

    /// The type whose `m2m:` member name is `name` (with or without the `m2m:` prefix).
    pub fn from_short_name(name: &str) -> Option<Self> {
        let name = name.strip_prefix("m2m:").unwrap_or(name);
        NAMES.iter().find(|(_, s, _)| *s == name).map(|(t, ..)| *t)
    }
}

/// Type, short name, JSON member name.
const NAMES: &[(ResourceType, &str, &str)] = &[
    (ResourceType::AccessControlPolicy, "acp", "m2m:acp"),
    (ResourceType::Ae, "ae", "m2m:ae"),
    (ResourceType::Container, "cnt", "m2m:cnt"),
    (ResourceType::ContentInstance, "cin", "m2m:cin"),
    (ResourceType::CseBase, "cb", "m2m:cb"),
    (ResourceType::Delivery, "dlv", "m2m:dlv"),
    (ResourceType::EventConfig, "evcg", "m2m:evcg"),
    (ResourceType::ExecInstance, "exin", "m2m:exin"),
    (ResourceType::Group, "grp", "m2m:grp"),
    (ResourceType::LocationPolicy, "lcp", "m2m:lcp"),
    (ResourceType::M2mServiceSubscriptionProfile, "mssp", "m2m:mssp"),
    (ResourceType::MgmtCmd, "mgc", "m2m:mgc"),
    (ResourceType::MgmtObj, "mgo", "m2m:mgo"),
    (ResourceType::Node, "nod", "m2m:nod"),
    (ResourceType::PollingChannel, "pch", "m2m:pch"),
    (ResourceType::RemoteCse, "csr", "m2m:csr"),
    (ResourceType::Request, "req", "m2m:req"),
    (ResourceType::Schedule, "sch", "m2m:sch"),
    (ResourceType::ServiceSubscribedAppRule, "asar", "m2m:asar"),
    (ResourceType::ServiceSubscribedNode, "svsn", "m2m:svsn"),
    (ResourceType::StatsCollect, "stcl", "m2m:stcl"),
    (ResourceType::StatsConfig, "stcg", "m2m:stcg"),
    (ResourceType::Subscription, "sub", "m2m:sub"),
    (ResourceType::SemanticDescriptor, "smd", "m2m:smd"),
    (ResourceType::NotificationTargetMgmtPolicyRef, "ntpr", "m2m:ntpr"),
    (ResourceType::NotificationTargetPolicy, "ntp", "m2m:ntp"),
    (ResourceType::PolicyDeletionRules, "pdr", "m2m:pdr"),
    (ResourceType::FlexContainer, "fcnt", "m2m:fcnt"),
    (ResourceType::TimeSeries, "ts", "m2m:ts"),
    (ResourceType::TimeSeriesInstance, "tsi", "m2m:tsi"),
    (ResourceType::Role, "rol", "m2m:rol"),
    (ResourceType::Token, "tk", "m2m:tk"),
    (ResourceType::DynamicAuthorizationConsultation, "dac", "m2m:dac"),
];

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

    /// The lowercase `r` App-ID form "will be forbidden from release 4".
    pub fn allows_lowercase_app_id(self) -> bool {
        self <= Self::V3
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

    #[test]
    fn resource_type_names_round_trip() {
        for t in ResourceType::ALL {
            assert_eq!(ResourceType::from_short_name(t.short_name()), Some(*t));
            assert_eq!(ResourceType::from_short_name(t.member_name()), Some(*t));
            assert_eq!(ResourceType::from_num(t.num() as i64), Some(*t));
        }
        assert_eq!(ResourceType::Ae.member_name(), "m2m:ae");
        assert_eq!(ResourceType::Schedule.member_name(), "m2m:sch");
        assert_eq!(ResourceType::from_num(33), None);
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
        assert!(ReleaseVersion::V3.allows_lowercase_app_id());
        assert!(!ReleaseVersion::V4.allows_lowercase_app_id());
    }
}
