//! The published documents cover the whole API: every route the router serves is in the OpenAPI document, every
//! event of `proto`'s tables is in the AsyncAPI document, and every `$ref` in either resolves. A route or event
//! added without its documentation fails here.

use proto::asyncapi::{ack_key, emit_key, key, request_key};
use proto::typescript::{CLIENT_TO_SERVER, SERVER_TO_CLIENT};
use serde_json::Value;

fn openapi() -> Value {
    let (_, doc) = api::api_routes();
    serde_json::to_value(doc).unwrap_or(Value::Null)
}

/// The crate's sources (src/**/*.rs) with comment lines dropped.
fn sources() -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut dirs = vec![std::path::PathBuf::from(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/src"
    ))];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
            let path = entry.path();
            if path.is_dir() {
                dirs.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") {
                let text = std::fs::read_to_string(&path).unwrap_or_default();
                let code: Vec<&str> = text
                    .lines()
                    .filter(|l| !l.trim_start().starts_with("//"))
                    .collect();
                out.push((path.display().to_string(), code.join("\n")));
            }
        }
    }
    assert!(!out.is_empty(), "no sources found");
    out
}

/// Every `$ref` in `doc` points at something in `doc`.
fn refs_resolve(doc: &Value, at: &Value, where_: &str) {
    match at {
        Value::Object(m) => {
            if let Some(Value::String(r)) = m.get("$ref") {
                let pointer = r.strip_prefix('#').unwrap_or("not a local ref");
                assert!(
                    doc.pointer(pointer).is_some(),
                    "{where_}: unresolved $ref {r}"
                );
            }
            for v in m.values() {
                refs_resolve(doc, v, where_);
            }
        }
        Value::Array(a) => a.iter().for_each(|v| refs_resolve(doc, v, where_)),
        _ => {}
    }
}

#[test]
fn every_route_is_documented() {
    // Routes reach the router only through `OpenApiRouter::routes(routes!(handler))` (documented by the handler's
    // `#[utoipa::path]`); axum's own ways of adding one would bypass the document. The one exception is the
    // catch-all that makes unknown `/api/…` paths a coded 404.
    let mut registered = 0;
    for (file, code) in sources() {
        for bypass in [
            ".route(",
            ".route_service(",
            ".nest(",
            ".nest_service(",
            ".merge(",
        ] {
            for (at, _) in code.match_indices(bypass) {
                let rest = &code[at..];
                assert!(
                    bypass == ".route(" && rest.starts_with(".route(\"/api/{*rest}\""),
                    "{file}: a route added with `{bypass}` is not in the OpenAPI document: annotate the handler with \
                     #[utoipa::path] and register it with `.routes(routes!(handler))` (see api::api_routes)\n{}",
                    rest.lines().next().unwrap_or_default()
                );
            }
        }
        registered += code.matches(".routes(routes!(").count();
    }
    let doc = openapi();
    let operations: usize = doc["paths"]
        .as_object()
        .map(|paths| {
            paths
                .values()
                .map(|item| {
                    item.as_object().map_or(0, |m| {
                        m.keys()
                            .filter(|k| {
                                ["get", "post", "put", "patch", "delete"].contains(&k.as_str())
                            })
                            .count()
                    })
                })
                .sum()
        })
        .unwrap_or(0);
    assert_eq!(
        operations, registered,
        "each routes!(handler) is one documented operation"
    );
    for (method, path) in [
        ("post", "/api/meetings"),
        ("get", "/api/meetings/{id}"),
        ("post", "/api/meetings/{id}/end"),
        ("get", "/api/meetings/{id}/participants"),
        ("get", "/api/meetings/{id}/messages"),
        ("put", "/api/meetings/{id}/roles/{userId}"),
        ("get", "/meeting/{id}/webrtc-config"),
        ("get", "/healthz"),
        ("get", "/readyz"),
        ("get", "/metrics"),
        ("post", "/dev/token"),
        ("post", "/debug/media/drop"),
        ("post", "/debug/media/temporal"),
        ("get", "/api/openapi.json"),
        ("get", "/api/asyncapi.json"),
        ("get", "/api/docs"),
    ] {
        assert!(
            doc["paths"][path][method].is_object(),
            "{method} {path} missing"
        );
    }
    assert_eq!(doc["openapi"], "3.1.0");
    refs_resolve(&doc, &doc, "openapi");
}

#[test]
fn openapi_has_auth_errors_and_dev_marks() {
    let doc = openapi();
    assert_eq!(
        doc["components"]["securitySchemes"]["bearer"]["scheme"],
        "bearer"
    );
    for (path, item) in doc["paths"].as_object().into_iter().flatten() {
        for (method, op) in item.as_object().into_iter().flatten() {
            let dev = path.starts_with("/dev/") || path.starts_with("/debug/");
            assert_eq!(
                op["x-dev-only"] == Value::Bool(true),
                dev,
                "{method} {path}: x-dev-only marks exactly the development routes"
            );
            if dev {
                assert_eq!(op["tags"][0], "development", "{method} {path}");
            }
            if path.starts_with("/api/meetings") {
                assert_eq!(
                    op["security"][0]["bearer"],
                    serde_json::json!([]),
                    "{method} {path}"
                );
                for status in ["400", "401"] {
                    assert_eq!(
                        op["responses"][status]["content"]["application/json"]["schema"]["$ref"],
                        "#/components/schemas/RestError",
                        "{method} {path}: {status}"
                    );
                }
            }
            // A route with coded errors can also fail with INTERNAL_ERROR.
            if path.starts_with("/api/meetings") || path.starts_with("/dev/") {
                assert_eq!(
                    op["responses"]["500"]["content"]["application/json"]["schema"]["$ref"],
                    "#/components/schemas/RestError",
                    "{method} {path}: 500"
                );
            }
            // Every error response names its codes.
            for (status, r) in op["responses"].as_object().into_iter().flatten() {
                if status.starts_with('4')
                    || (status.starts_with('5') && r["content"]["application/json"].is_object())
                {
                    let d = r["description"].as_str().unwrap_or_default();
                    assert!(
                        proto::error::ALL_CODES
                            .iter()
                            .any(|c| d.contains(c.as_str())),
                        "{method} {path} {status}: the description names no error code: {d}"
                    );
                }
            }
        }
    }
    let codes = &doc["components"]["schemas"]["ErrorCode"]["enum"];
    for c in proto::error::ALL_CODES {
        assert!(
            codes
                .as_array()
                .into_iter()
                .flatten()
                .any(|v| v == c.as_str()),
            "{c:?}"
        );
    }
}

#[test]
fn every_event_is_in_the_asyncapi_document() {
    let doc = api::docs::asyncapi();
    assert_eq!(doc["asyncapi"], "3.0.0");
    let ops = &doc["operations"];
    let msg = |k: &str| doc["components"]["messages"][k].clone();
    for (event, ty) in SERVER_TO_CLIENT {
        let op = &ops[format!("send.{}", key(event))];
        assert_eq!(op["action"], "send", "{event}");
        let m = msg(&emit_key(event));
        assert_eq!(m["name"], *event);
        assert_eq!(m["payload"]["$ref"], format!("#/components/schemas/{ty}"));
        assert!(
            doc["components"]["schemas"][*ty].is_object(),
            "{event}: schema {ty}"
        );
    }
    for (event, ty, ack) in CLIENT_TO_SERVER {
        let op = &ops[format!("receive.{}", key(event))];
        assert_eq!(op["action"], "receive", "{event}");
        assert_eq!(
            op["reply"]["messages"][0]["$ref"],
            format!("#/channels/socket/messages/{}", ack_key(event))
        );
        let m = msg(&request_key(event));
        assert_eq!(m["name"], *event);
        assert_eq!(m["payload"]["$ref"], format!("#/components/schemas/{ty}"));
        let a = msg(&ack_key(event));
        assert_eq!(
            a["payload"]["oneOf"][0]["allOf"][1]["$ref"],
            format!("#/components/schemas/{ack}")
        );
    }
    let expected = SERVER_TO_CLIENT.len() + CLIENT_TO_SERVER.len();
    assert_eq!(
        doc["operations"].as_object().map(|m| m.len()),
        Some(expected)
    );
    assert_eq!(
        doc["servers"]["meet-server"]["security"][0]["$ref"],
        "#/components/securitySchemes/handshakeToken"
    );
    refs_resolve(&doc, &doc, "asyncapi");
}
