//! JSON Schemas of every contract type (utoipa's `ToSchema`, derived next to serde's on each struct), keyed by the
//! type's name. The OpenAPI document (`crates/api`) and the AsyncAPI document ([`crate::asyncapi`]) both put them
//! under `components/schemas` and refer to them as `#/components/schemas/<Name>`.

use crate::events::*;
use crate::requests::*;
use crate::rest::{
    DevToken, MeetingStatus, MeetingView, MessagePage, ParticipantList, RestError, RestErrorBody,
    RestOk, RoleSet, WebRtcConfig,
};
use crate::{
    ErrorCode, Layout, MeetingId, MessageId, ParticipantId, RecordingId, Role, UserId, WireError,
};
use std::collections::BTreeMap;
use utoipa::openapi::{RefOr, Schema};
use utoipa::{PartialSchema, ToSchema};

/// Every contract type's schema (and those its fields refer to), by name.
pub fn all() -> BTreeMap<String, RefOr<Schema>> {
    let mut found: Vec<(String, RefOr<Schema>)> = Vec::new();
    fn one<T: ToSchema>(found: &mut Vec<(String, RefOr<Schema>)>) {
        found.push((T::name().into_owned(), <T as PartialSchema>::schema()));
        T::schemas(found);
    }
    macro_rules! all {
        ($($t:ty),* $(,)?) => { $(one::<$t>(&mut found);)* };
    }
    contract_types!(all);
    found.into_iter().collect()
}

/// [`all`] as JSON (what the documents embed).
pub fn all_json() -> serde_json::Map<String, serde_json::Value> {
    all()
        .into_iter()
        .map(|(name, schema)| {
            let json = serde_json::to_value(schema).unwrap_or(serde_json::Value::Null);
            (name, json)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::typescript::{CLIENT_TO_SERVER, SERVER_TO_CLIENT};

    #[test]
    fn tables_name_known_schemas() {
        let schemas = all();
        for (event, ty) in SERVER_TO_CLIENT {
            assert!(schemas.contains_key(*ty), "{event}: no schema named {ty}");
        }
        for (event, ty, ack) in CLIENT_TO_SERVER {
            assert!(schemas.contains_key(*ty), "{event}: no schema named {ty}");
            assert!(
                schemas.contains_key(*ack),
                "{event} ack: no schema named {ack}"
            );
        }
    }
}
