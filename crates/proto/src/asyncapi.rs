//! The AsyncAPI 3.0 document of the Socket.IO API (served at `GET /api/asyncapi.json`), generated from the event
//! tables of [`crate::typescript`] and the payload schemas of [`crate::schemas`]: adding an event to a table adds it
//! here, with its payload's schema.
//!
//! How Socket.IO maps onto AsyncAPI (the document describes the server, so `send` is server → client):
//! - one channel, `socket`, for the default namespace `/`; each event is a message whose `name` is the event name;
//! - a server event is a `send` operation; a client request is a `receive` operation whose `reply` is the socket.io
//!   ack: `{ok: true, …payload}` or `{ok: false, error}`;
//! - the JWT goes in the handshake (`io(url, {auth: {token}})`): the server's security scheme says so;
//! - failures: the ack's `error` and the `error` event carry a [`crate::WireError`] whose `code` is an
//!   [`crate::ErrorCode`] (the schema lists every code).

use crate::error::ALL_CODES;
use crate::typescript::{CLIENT_TO_SERVER, SERVER_TO_CLIENT};
use serde_json::{json, Map, Value};

/// The channel every operation uses (`#/channels/socket`).
pub const CHANNEL: &str = "socket";

/// An event name as a component key (`^[A-Za-z0-9_.-]+$`): `:` becomes `_` (`screen:started` → `screen_started`).
pub fn key(event: &str) -> String {
    event.replace(':', "_")
}

/// The message key of a server event (`emit.<event>`).
pub fn emit_key(event: &str) -> String {
    format!("emit.{}", key(event))
}

/// The message key of a client request (`on.<event>`).
pub fn request_key(event: &str) -> String {
    format!("on.{}", key(event))
}

/// The message key of a client request's ack (`ack.<event>`).
pub fn ack_key(event: &str) -> String {
    format!("ack.{}", key(event))
}

fn schema_ref(name: &str) -> Value {
    json!({"$ref": format!("#/components/schemas/{name}")})
}

fn message_ref(key: &str) -> Value {
    json!({"$ref": format!("#/components/messages/{key}")})
}

/// The whole document. `schemas` are the contract's JSON Schemas by name ([`crate::schemas::all`] as JSON).
pub fn document(schemas: Map<String, Value>) -> Value {
    let mut schemas = schemas;
    schemas.insert(
        "AckError".into(),
        json!({
            "type": "object",
            "description": "A failed request's ack. The same error is also emitted as the `error` event to the \
                            requesting socket (except over-limit `typing` / `stats:report`, which are dropped silently).",
            "required": ["ok", "error"],
            "properties": {"ok": {"const": false}, "error": schema_ref("WireError")},
        }),
    );
    let mut messages = Map::new();
    let mut channel_messages = Map::new();
    let mut operations = Map::new();

    for (event, ty) in SERVER_TO_CLIENT {
        let k = emit_key(event);
        let mut msg = json!({
            "name": event,
            "title": event,
            "summary": format!("Server → client: `{event}` with a `{ty}`."),
            "payload": schema_ref(ty),
        });
        if *event == "error" {
            msg["description"] = json!(
                "A request failed: sent to the requesting socket only, together with the failed ack. `event` names \
                 the request; `retryAfterMs` comes with RATE_LIMIT_EXCEEDED. The server never emits `error` \
                 unsolicited."
            );
        }
        messages.insert(k.clone(), msg);
        channel_messages.insert(k.clone(), message_ref(&k));
        operations.insert(
            format!("send.{}", key(event)),
            json!({
                "action": "send",
                "channel": {"$ref": format!("#/channels/{CHANNEL}")},
                "title": format!("emit {event}"),
                "messages": [{"$ref": format!("#/channels/{CHANNEL}/messages/{k}")}],
            }),
        );
    }

    for (event, ty, ack) in CLIENT_TO_SERVER {
        let req = request_key(event);
        let ackk = ack_key(event);
        messages.insert(
            req.clone(),
            json!({
                "name": event,
                "title": event,
                "summary": format!("Client → server: `{event}` with a `{ty}`; the optional ack replies."),
                "payload": schema_ref(ty),
            }),
        );
        messages.insert(
            ackk.clone(),
            json!({
                "name": format!("{event} (ack)"),
                "title": format!("{event} ack"),
                "summary": format!("The socket.io ack of `{event}`: `{{ok: true}}` with a `{ack}`, or `{{ok: false, error}}`."),
                "payload": {
                    "oneOf": [
                        {"allOf": [
                            {"type": "object", "required": ["ok"], "properties": {"ok": {"const": true}}},
                            schema_ref(ack),
                        ]},
                        schema_ref("AckError"),
                    ]
                },
            }),
        );
        channel_messages.insert(req.clone(), message_ref(&req));
        channel_messages.insert(ackk.clone(), message_ref(&ackk));
        operations.insert(
            format!("receive.{}", key(event)),
            json!({
                "action": "receive",
                "channel": {"$ref": format!("#/channels/{CHANNEL}")},
                "title": format!("on {event}"),
                "messages": [{"$ref": format!("#/channels/{CHANNEL}/messages/{req}")}],
                "reply": {
                    "channel": {"$ref": format!("#/channels/{CHANNEL}")},
                    "messages": [{"$ref": format!("#/channels/{CHANNEL}/messages/{ackk}")}],
                },
            }),
        );
    }

    let codes: Vec<String> = ALL_CODES
        .iter()
        .map(|c| format!("`{}`", c.as_str()))
        .collect();
    json!({
        "asyncapi": "3.0.0",
        "info": {
            "title": "meet-server Socket.IO API",
            "version": env!("CARGO_PKG_VERSION"),
            "description": format!(
                "The signaling API over Socket.IO (default namespace `/`): connect with \
                 `io(url, {{auth: {{token: '<JWT>'}}}})`; a refused handshake is a `connect_error` whose message says \
                 why. Every request takes an optional ack callback: `{{ok: true, …}}` or `{{ok: false, error}}`. \
                 A socket's requests are handled in arrival order, one at a time. Behaviour (who receives what, \
                 rate limits, mute rules) is described in docs/protocol.md; the REST API is at /api/openapi.json. \
                 Error codes: {}.",
                codes.join(", ")
            ),
        },
        "defaultContentType": "application/json",
        "servers": {
            "meet-server": {
                "host": "{host}",
                "protocol": "ws",
                "pathname": "/socket.io/",
                "title": "meet-server (Socket.IO v4 / Engine.IO v4: WebSocket, or HTTP long-polling upgraded to it)",
                "variables": {"host": {"default": "localhost:3000", "description": "host and port of the server"}},
                "security": [{"$ref": "#/components/securitySchemes/handshakeToken"}],
            }
        },
        "channels": {
            CHANNEL: {
                "address": "/",
                "title": "Socket.IO default namespace",
                "messages": channel_messages,
            }
        },
        "operations": operations,
        "components": {
            "schemas": schemas,
            "messages": messages,
            "securitySchemes": {
                "handshakeToken": {
                    "type": "http",
                    "scheme": "bearer",
                    "bearerFormat": "JWT",
                    "description": "The JWT travels in the Socket.IO handshake's auth object, \
                                    `io(url, {auth: {token: '<JWT>'}})`, not in an HTTP header. Claims: `user_id`, \
                                    `campus_id`, `userName`, `email`, `exp`. Before `exp` passes the server sends \
                                    `auth:expired`; `auth:refresh` with a fresh token of the same user keeps the \
                                    socket.",
                }
            },
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_valid_component_keys() {
        for (event, _) in SERVER_TO_CLIENT {
            let k = emit_key(event);
            assert!(
                k.chars()
                    .all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c)),
                "{k}"
            );
        }
        for (event, _, _) in CLIENT_TO_SERVER {
            for k in [request_key(event), ack_key(event)] {
                assert!(
                    k.chars()
                        .all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c)),
                    "{k}"
                );
            }
        }
    }
}
