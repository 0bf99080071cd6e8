//! Response status codes (TS-0004 §6.6.3) and their HTTP status (TS-0009 Table 6.3.2-1).
//!
//! The table is the one of ONEM2M.md §3, complete. 4128 is not in TS-0009 V3.9.1; like ACME, we map
//! it to 403.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

macro_rules! rsc_table {
    ($($variant:ident = $code:literal, $name:literal, $http:literal;)*) => {
        /// A oneM2M response status code.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        #[repr(u16)]
        #[non_exhaustive]
        pub enum Rsc {
            $($variant = $code,)*
        }

        impl Rsc {
            /// Every code, in numeric order.
            pub const ALL: &'static [Rsc] = &[$(Rsc::$variant,)*];

            /// The code for a number, if it is one of the table.
            pub fn from_u16(code: u16) -> Option<Rsc> {
                match code {
                    $($code => Some(Rsc::$variant),)*
                    _ => None,
                }
            }

            /// The name used in the specification, e.g. `APP_RULE_VALIDATION_FAILED`.
            pub fn name(self) -> &'static str {
                match self {
                    $(Rsc::$variant => $name,)*
                }
            }

            /// The HTTP status code of the HTTP binding (TS-0009 Table 6.3.2-1).
            pub fn http_status(self) -> u16 {
                match self {
                    $(Rsc::$variant => $http,)*
                }
            }
        }
    };
}

rsc_table! {
    Accepted = 1000, "ACCEPTED", 202;
    AcceptedNonBlockingRequestSynch = 1001, "ACCEPTED_NON_BLOCKING_REQUEST_SYNCH", 202;
    AcceptedNonBlockingRequestAsynch = 1002, "ACCEPTED_NON_BLOCKING_REQUEST_ASYNCH", 202;
    Ok = 2000, "OK", 200;
    Created = 2001, "CREATED", 201;
    Deleted = 2002, "DELETED", 200;
    Updated = 2004, "UPDATED", 200;
    BadRequest = 4000, "BAD_REQUEST", 400;
    ReleaseVersionNotSupported = 4001, "RELEASE_VERSION_NOT_SUPPORTED", 501;
    NotFound = 4004, "NOT_FOUND", 404;
    OperationNotAllowed = 4005, "OPERATION_NOT_ALLOWED", 405;
    RequestTimeout = 4008, "REQUEST_TIMEOUT", 504;
    UnsupportedMediaType = 4015, "UNSUPPORTED_MEDIA_TYPE", 415;
    SubscriptionCreatorHasNoPrivilege = 4101, "SUBSCRIPTION_CREATOR_HAS_NO_PRIVILEGE", 403;
    ContentsUnacceptable = 4102, "CONTENTS_UNACCEPTABLE", 400;
    OriginatorHasNoPrivilege = 4103, "ORIGINATOR_HAS_NO_PRIVILEGE", 403;
    GroupRequestIdentifierExists = 4104, "GROUP_REQUEST_IDENTIFIER_EXISTS", 409;
    Conflict = 4105, "CONFLICT", 409;
    OriginatorNotAuthenticated = 4106, "ORIGINATOR_NOT_AUTHENTICATED", 403;
    SecurityAssociationRequired = 4107, "SECURITY_ASSOCIATION_REQUIRED", 403;
    InvalidChildResourceType = 4108, "INVALID_CHILD_RESOURCE_TYPE", 403;
    NoMembers = 4109, "NO_MEMBERS", 403;
    GroupMemberTypeInconsistent = 4110, "GROUP_MEMBER_TYPE_INCONSISTENT", 400;
    EsprimUnsupportedOption = 4111, "ESPRIM_UNSUPPORTED_OPTION", 403;
    EsprimUnknownKeyId = 4112, "ESPRIM_UNKNOWN_KEY_ID", 403;
    EsprimUnknownOrigRandId = 4113, "ESPRIM_UNKNOWN_ORIG_RAND_ID", 403;
    EsprimUnknownRecvRandId = 4114, "ESPRIM_UNKNOWN_RECV_RAND_ID", 403;
    EsprimBadMac = 4115, "ESPRIM_BAD_MAC", 403;
    EsprimImpersonationError = 4116, "ESPRIM_IMPERSONATION_ERROR", 403;
    OriginatorHasAlreadyRegistered = 4117, "ORIGINATOR_HAS_ALREADY_REGISTERED", 403;
    OntologyNotAvailable = 4118, "ONTOLOGY_NOT_AVAILABLE", 404;
    LinkedSemanticsNotAvailable = 4119, "LINKED_SEMANTICS_NOT_AVAILABLE", 404;
    InvalidSemantics = 4120, "INVALID_SEMANTICS", 400;
    MashupMemberNotFound = 4121, "MASHUP_MEMBER_NOT_FOUND", 404;
    InvalidTriggerPurpose = 4122, "INVALID_TRIGGER_PURPOSE", 400;
    IllegalTransactionStateTransitionAttempted = 4123, "ILLEGAL_TRANSACTION_STATE_TRANSITION_ATTEMPTED", 400;
    BlockingSubscriptionAlreadyExists = 4124, "BLOCKING_SUBSCRIPTION_ALREADY_EXISTS", 409;
    SpecializationSchemaNotFound = 4125, "SPECIALIZATION_SCHEMA_NOT_FOUND", 501;
    AppRuleValidationFailed = 4126, "APP_RULE_VALIDATION_FAILED", 403;
    OperationDeniedByRemoteEntity = 4127, "OPERATION_DENIED_BY_REMOTE_ENTITY", 403;
    ServiceSubscriptionNotEstablished = 4128, "SERVICE_SUBSCRIPTION_NOT_ESTABLISHED", 403;
    InvalidSparqlQuery = 4143, "INVALID_SPARQL_QUERY", 400;
    InternalServerError = 5000, "INTERNAL_SERVER_ERROR", 500;
    NotImplemented = 5001, "NOT_IMPLEMENTED", 501;
    TargetNotReachable = 5103, "TARGET_NOT_REACHABLE", 404;
    ReceiverHasNoPrivilege = 5105, "RECEIVER_HAS_NO_PRIVILEGE", 403;
    AlreadyExists = 5106, "ALREADY_EXISTS", 409;
    RemoteEntityNotReachable = 5107, "REMOTE_ENTITY_NOT_REACHABLE", 404;
    TargetNotSubscribable = 5203, "TARGET_NOT_SUBSCRIBABLE", 403;
    SubscriptionVerificationInitiationFailed = 5204, "SUBSCRIPTION_VERIFICATION_INITIATION_FAILED", 500;
    SubscriptionHostHasNoPrivilege = 5205, "SUBSCRIPTION_HOST_HAS_NO_PRIVILEGE", 403;
    NonBlockingSynchRequestNotSupported = 5206, "NON_BLOCKING_SYNCH_REQUEST_NOT_SUPPORTED", 501;
    NotAcceptable = 5207, "NOT_ACCEPTABLE", 406;
    DiscoveryDeniedByIpe = 5208, "DISCOVERY_DENIED_BY_IPE", 403;
    GroupMembersNotResponded = 5209, "GROUP_MEMBERS_NOT_RESPONDED", 500;
    EsprimDecryptionError = 5210, "ESPRIM_DECRYPTION_ERROR", 500;
    EsprimEncryptionError = 5211, "ESPRIM_ENCRYPTION_ERROR", 500;
    SparqlUpdateError = 5212, "SPARQL_UPDATE_ERROR", 500;
    TargetHasNoSessionCapability = 5214, "TARGET_HAS_NO_SESSION_CAPABILITY", 403;
    SessionIsOnline = 5215, "SESSION_IS_ONLINE", 403;
    JoinMulticastGroupFailed = 5216, "JOIN_MULTICAST_GROUP_FAILED", 500;
    LeaveMulticastGroupFailed = 5217, "LEAVE_MULTICAST_GROUP_FAILED", 500;
    TriggeringDisabledForRecipient = 5218, "TRIGGERING_DISABLED_FOR_RECIPIENT", 403;
    UnableToReplaceRequest = 5219, "UNABLE_TO_REPLACE_REQUEST", 409;
    UnableToRecallRequest = 5220, "UNABLE_TO_RECALL_REQUEST", 409;
    CrossResourceOperationFailure = 5221, "CROSS_RESOURCE_OPERATION_FAILURE", 500;
    TransactionProcessingIsIncomplete = 5222, "TRANSACTION_PROCESSING_IS_INCOMPLETE", 403;
    ExternalObjectNotReachable = 6003, "EXTERNAL_OBJECT_NOT_REACHABLE", 404;
    ExternalObjectNotFound = 6005, "EXTERNAL_OBJECT_NOT_FOUND", 404;
    MaxNumberOfMemberExceeded = 6010, "MAX_NUMBER_OF_MEMBER_EXCEEDED", 400;
    MgmtSessionCannotBeEstablished = 6020, "MGMT_SESSION_CANNOT_BE_ESTABLISHED", 500;
    MgmtSessionEstablishmentTimeout = 6021, "MGMT_SESSION_ESTABLISHMENT_TIMEOUT", 500;
    InvalidCmdtype = 6022, "INVALID_CMDTYPE", 400;
    InvalidArguments = 6023, "INVALID_ARGUMENTS", 400;
    InsufficientArguments = 6024, "INSUFFICIENT_ARGUMENTS", 400;
    MgmtConversionError = 6025, "MGMT_CONVERSION_ERROR", 500;
    MgmtCancellationFailed = 6026, "MGMT_CANCELLATION_FAILED", 500;
    AlreadyComplete = 6028, "ALREADY_COMPLETE", 409;
    MgmtCommandNotCancellable = 6029, "MGMT_COMMAND_NOT_CANCELLABLE", 409;
    ExternalObjectNotReachableBeforeRqetTimeout = 6030, "EXTERNAL_OBJECT_NOT_REACHABLE_BEFORE_RQET_TIMEOUT", 504;
    ExternalObjectNotReachableBeforeOetTimeout = 6031, "EXTERNAL_OBJECT_NOT_REACHABLE_BEFORE_OET_TIMEOUT", 504;
}

impl Rsc {
    pub fn code(self) -> u16 {
        self as u16
    }

    /// 1xxx: the request was accepted for later processing.
    pub fn is_accepted(self) -> bool {
        self.code() < 2000
    }

    /// 2xxx.
    pub fn is_success(self) -> bool {
        (2000..3000).contains(&self.code())
    }

    /// 4xxx: the originator's mistake.
    pub fn is_originator_error(self) -> bool {
        (4000..5000).contains(&self.code())
    }
}

impl fmt::Display for Rsc {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.code(), self.name())
    }
}

impl Serialize for Rsc {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u16(self.code())
    }
}

impl<'de> Deserialize<'de> for Rsc {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let n = u16::deserialize(d)?;
        Rsc::from_u16(n).ok_or_else(|| serde::de::Error::custom(format!("unknown response status code {n}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The table of ONEM2M.md §3, as text: every row must match the code's table, and every code of
    /// the code's table must be a row.
    #[test]
    fn matches_the_spec_table() {
        let spec = include_str!("testdata/rsc_table.md");
        crate::spec_copy::assert_is_in_the_docs(spec);
        let mut seen = 0;
        for line in spec.lines().filter(|l| l.starts_with("| ") && l.as_bytes()[2].is_ascii_digit()) {
            let cols: Vec<&str> = line.split('|').map(str::trim).collect();
            let code: u16 = cols[1].parse().unwrap();
            let name = cols[2].trim_matches('*');
            let rsc = Rsc::from_u16(code).unwrap_or_else(|| panic!("{code} missing"));
            if !name.starts_with("ACCEPTED for") {
                assert_eq!(rsc.name(), name, "{code}");
            }
            let http: u16 = cols[3].parse().unwrap_or(403); // 4128: "ACME uses 403"
            assert_eq!(rsc.http_status(), http, "{code}");
            seen += 1;
        }
        assert_eq!(seen, Rsc::ALL.len());
    }

    #[test]
    fn serde_as_number() {
        assert_eq!(serde_json::to_string(&Rsc::Created).unwrap(), "2001");
        let r: Rsc = serde_json::from_str("4126").unwrap();
        assert_eq!(r, Rsc::AppRuleValidationFailed);
        assert!(serde_json::from_str::<Rsc>("4999").is_err());
        assert_eq!(Rsc::from_u16(4126).unwrap().http_status(), 403);
        assert!(Rsc::Ok.is_success() && Rsc::BadRequest.is_originator_error() && Rsc::Accepted.is_accepted());
    }
}
