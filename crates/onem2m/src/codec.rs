//! JSON and CBOR serialisations (TS-0004 §8.4): the same serde data model for both, so a resource or
//! a primitive reads the same whichever one carried it.

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::Error;

/// A content serialisation, chosen by `Content-Type` and `Accept`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Serialization {
    #[default]
    Json,
    Cbor,
}

impl Serialization {
    /// The serialisation of a media type such as `application/json`, `application/vnd.onem2m-res+json`
    /// or `application/cbor`. Parameters (`;ty=4`) are ignored. XML is not supported.
    pub fn from_media_type(mt: &str) -> Option<Self> {
        let essence = mt.split(';').next().unwrap_or("").trim().to_ascii_lowercase();
        match essence.as_str() {
            "application/json" => Some(Self::Json),
            "application/cbor" => Some(Self::Cbor),
            s if s.starts_with("application/vnd.onem2m-") && s.ends_with("+json") => Some(Self::Json),
            s if s.starts_with("application/vnd.onem2m-") && s.ends_with("+cbor") => Some(Self::Cbor),
            _ => None,
        }
    }

    pub fn media_type(self) -> &'static str {
        match self {
            Self::Json => "application/json",
            Self::Cbor => "application/cbor",
        }
    }

    /// The topic suffix of the MQTT binding (TS-0010 §6.5.4).
    pub fn mqtt_suffix(self) -> &'static str {
        match self {
            Self::Json => "json",
            Self::Cbor => "cbor",
        }
    }

    /// Decodes a body. A malformed one is a 4000 with the parser's reason.
    pub fn decode<T: DeserializeOwned>(self, bytes: &[u8]) -> Result<T, Error> {
        match self {
            Self::Json => serde_json::from_slice(bytes).map_err(|e| Error::bad_request(format!("invalid JSON: {e}"))),
            Self::Cbor => {
                minicbor_serde::from_slice(bytes).map_err(|e| Error::bad_request(format!("invalid CBOR: {e}")))
            }
        }
    }

    /// Encodes a value. Values of this crate's types always encode.
    pub fn encode<T: Serialize + ?Sized>(self, value: &T) -> Vec<u8> {
        match self {
            Self::Json => serde_json::to_vec(value).unwrap_or_default(),
            Self::Cbor => {
                // JSON's null is CBOR's null (minicbor-serde would write `()` as an empty array).
                let mut ser = minicbor_serde::Serializer::new(Vec::new());
                ser.serialize_unit_as_null(true);
                match value.serialize(&mut ser) {
                    Ok(()) => ser.into_encoder().into_writer(),
                    Err(_) => Vec::new(),
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{AbsRelTime, Notification, Operation, Request, ResourceType, Response, Rsc, Timestamp};
    use proptest::prelude::*;
    use serde_json::{Value, json};

    #[test]
    fn media_types() {
        assert_eq!(Serialization::from_media_type("application/json;ty=2"), Some(Serialization::Json));
        assert_eq!(Serialization::from_media_type("application/vnd.onem2m-res+json"), Some(Serialization::Json));
        assert_eq!(Serialization::from_media_type("Application/CBOR; ty=4"), Some(Serialization::Cbor));
        assert_eq!(Serialization::from_media_type("application/xml"), None);
    }

    #[test]
    fn bad_bodies_are_4000() {
        assert_eq!(Serialization::Json.decode::<Value>(b"{broken").unwrap_err().rsc, Rsc::BadRequest);
        assert_eq!(Serialization::Cbor.decode::<Value>(&[0xff, 0x00]).unwrap_err().rsc, Rsc::BadRequest);
    }

    fn round_trip(v: &Value) -> Value {
        let cbor = Serialization::Cbor.encode(v);
        let back: Value = Serialization::Cbor.decode(&cbor).unwrap();
        let json = Serialization::Json.encode(&back);
        Serialization::Json.decode(&json).unwrap()
    }

    #[test]
    fn resources_round_trip_through_cbor() {
        let resources = [
            json!({"m2m:ae": {"rn":"testAE","api":"NMyApp1Id","rr":false,"srv":["4"],"poa":["http://h:9990"],
                   "ri":"Cabc","pi":"id-in","ty":2,"ct":"20240101T000000,000000","lbl":[],"aei":"Cabc"}}),
            json!({"m2m:cnt": {"rn":"c","mni":10,"mbs":1024,"cni":0,"cbs":0,"st":0}}),
            json!({"m2m:cin": {"con":"21.5","cnf":"text/plain:0","cs":4}}),
            json!({"m2m:acp": {"pv":{"acr":[{"acor":["all"],"acop":63}]},"pvs":{"acr":[]}}}),
            json!({"m2m:sub": {"nu":["http://x"],"enc":{"net":[1,3]},"nct":1,"exc":10}}),
            json!({"m2m:uril": ["cse-in/a", "cse-in/b"]}),
            json!({"m2m:dbg": "error"}),
        ];
        for r in resources {
            assert_eq!(round_trip(&r), r);
        }
    }

    #[test]
    fn primitives_round_trip_through_cbor() {
        let mut req = Request::new(Operation::Create, "cse-in", Some("C".into()), "r1");
        req.ty = Some(ResourceType::Container);
        req.pc = Some(json!({"m2m:cnt": {"rn": "x"}}));
        let bytes = Serialization::Cbor.encode(&req);
        assert_eq!(Serialization::Cbor.decode::<Request>(&bytes).unwrap(), req);
        let resp = Response::new(Rsc::Created, "r1").with_pc(json!({"m2m:cnt": {"ri": "cnt1"}}));
        let bytes = Serialization::Cbor.encode(&resp);
        assert_eq!(Serialization::Cbor.decode::<Response>(&bytes).unwrap(), resp);
    }

    /// JSON text → the typed primitive → CBOR → the typed primitive → JSON: the same JSON.
    fn json_cbor_json_as<T>(json: Value)
    where
        T: Serialize + DeserializeOwned + PartialEq + std::fmt::Debug,
    {
        let typed: T = Serialization::Json.decode(&Serialization::Json.encode(&json)).unwrap();
        let cbor = Serialization::Cbor.encode(&typed);
        let back: T = Serialization::Cbor.decode(&cbor).unwrap_or_else(|e| panic!("{e}: {json}"));
        assert_eq!(back, typed);
        let again: Value = Serialization::Json.decode(&Serialization::Json.encode(&back)).unwrap();
        assert_eq!(again, json);
    }

    #[test]
    fn primitives_round_trip_json_cbor_json() {
        // requests: every parameter kind, both forms of absRelTimestamp, timestamps with a fraction
        json_cbor_json_as::<Request>(json!({
            "op": 1, "to": "//acme.example.com/id-in/cse-in", "fr": "Cabc", "rqi": "r-1", "rvi": "4", "ty": 3,
            "pc": {"m2m:cnt": {"rn": "c", "mni": 10, "lbl": ["a", "b"], "acpi": []}},
            "rcn": 1, "rt": {"rtv": 2, "nu": ["http://127.0.0.1:9000/n"]},
            "rqet": 10000, "rset": "20250102T030405,123456", "oet": "20250102T030405,000000",
            "ot": "20250102T030405,000001", "drt": 2, "ec": 2, "gid": "g1", "vsi": "vendor"
        }));
        json_cbor_json_as::<Request>(json!({
            "op": 2, "to": "cse-in/ae", "fr": "Cabc", "rqi": "r-2", "rvi": "3",
            "fc": {"fu": 1, "ty": [4, 3], "lbl": ["x"], "cra": "20240101T000000,000000", "sts": 3, "lim": 5,
                   "lvl": 2, "fo": 2, "atr": [{"nm": "rn", "val": "c*"}, {"nm": "mni", "val": 10}]},
            "atrl": ["rn", "ct"]
        }));
        // child and parent attribute filters
        json_cbor_json_as::<Request>(json!({
            "op": 2, "to": "cse-in", "fr": "Cabc", "rqi": "r-6", "rvi": "4",
            "fc": {"fu": 1, "catr": [{"nm": "cnf", "val": "text/*"}, {"nm": "cs", "val": 4}],
                   "patr": [{"nm": "lbl", "val": "home"}, {"nm": "rr", "val": true}]}
        }));
        json_cbor_json_as::<Request>(json!({"op": 4, "to": "cin00856", "rqi": "r-3", "rqet": -5}));
        // a type Warden does not serve, and an announced one, still parse
        json_cbor_json_as::<Request>(json!({"op": 1, "to": "cse-in", "fr": "C", "rqi": "r-4", "ty": 48, "pc": {}}));
        json_cbor_json_as::<Request>(json!({"op": 1, "to": "cse-in", "fr": "C", "rqi": "r-5", "ty": 10002}));
        // responses
        json_cbor_json_as::<Response>(json!({
            "rsc": 2001, "rqi": "r-1", "rvi": "4", "pc": {"m2m:cnt": {"ri": "cnt1", "st": 0, "cbs": 0}},
            "to": "Cabc", "fr": "/id-in", "ot": "20250102T030405,000000", "rset": "20250103T000000,000000",
            "ec": 3, "cnst": 2, "cnot": 100
        }));
        json_cbor_json_as::<Response>(json!({"rsc": 4126, "rqi": "r-9", "pc": {"m2m:dbg": "App-ID revoked"}}));
        // notifications
        json_cbor_json_as::<Notification>(json!({
            "nev": {"net": 3, "rep": {"m2m:cin": {"con": "21.5", "cs": 4, "ct": "20250102T030405,000000"}}},
            "sur": "/id-in/sub1", "cr": "Cabc", "nfu": "/id-in"
        }));
        json_cbor_json_as::<Notification>(json!({"vrq": true, "sur": "/id-in/sub1", "cr": "Cabc"}));
        json_cbor_json_as::<Notification>(json!({"sud": true, "sur": "/id-in/sub1"}));
        // the values on their own
        json_cbor_json_as::<Timestamp>(json!("99991231T235959,999999"));
        json_cbor_json_as::<Timestamp>(json!("19700101T000000,000000"));
        json_cbor_json_as::<AbsRelTime>(json!(3_600_000));
        json_cbor_json_as::<AbsRelTime>(json!("20141003T112032,000000"));
    }

    #[test]
    fn timestamps_without_a_fraction_come_back_with_one() {
        let r: Request = Serialization::Json.decode(br#"{"op":2,"to":"x","rqi":"1","ot":"20141003T112032"}"#).unwrap();
        let back: Request = Serialization::Cbor.decode(&Serialization::Cbor.encode(&r)).unwrap();
        let v: Value = serde_json::to_value(&back).unwrap();
        assert_eq!(v["ot"], json!("20141003T112032,000000"));
        assert!(
            Serialization::Cbor
                .decode::<Request>(&Serialization::Cbor.encode(&json!({"op":2,"to":"x","rqi":"1","ty":33})))
                .is_err()
        );
    }

    fn arb_json() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            any::<i64>().prop_map(|n| json!(n)),
            (-1e9f64..1e9).prop_map(|f| json!(f)),
            "[a-zA-Z0-9 :/._-]{0,20}".prop_map(Value::String),
        ];
        leaf.prop_recursive(3, 32, 6, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
                prop::collection::btree_map("[a-z]{1,4}", inner, 0..6)
                    .prop_map(|m| Value::Object(m.into_iter().collect())),
            ]
        })
    }

    proptest! {
        #[test]
        fn json_cbor_json(v in arb_json()) {
            prop_assert_eq!(round_trip(&v), v);
        }
    }
}
