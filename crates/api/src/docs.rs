//! The published documents of the contract and their viewer:
//! - `GET /api/openapi.json`: OpenAPI 3.1 of the REST routes (utoipa, from the handlers' annotations);
//! - `GET /api/asyncapi.json`: AsyncAPI 3.0 of the Socket.IO events ([`proto::asyncapi`], from the event tables);
//! - `GET /api/docs`: one self-contained HTML page (`viewer.html`: no script, style or font from anywhere else) that
//!   fetches both documents and renders routes, events and schemas.
//!
//! The viewer is ours rather than an npm bundle (Swagger UI, Redoc, AsyncAPI's React component are each a few MB
//! of JavaScript and render only one of the two formats): a small page that reads both documents is enough to read
//! the contract, has no build step, and keeps the server's binary small.

use axum::http::header;
use axum::response::{Html, IntoResponse, Response};
use axum::Extension;
use std::sync::Arc;

/// Both documents, serialized once when the router is built.
pub struct Documents {
    openapi: String,
    asyncapi: String,
}

impl Documents {
    pub fn new(openapi: &utoipa::openapi::OpenApi) -> Self {
        Documents {
            openapi: openapi.to_pretty_json().unwrap_or_default(),
            asyncapi: serde_json::to_string_pretty(&asyncapi()).unwrap_or_default(),
        }
    }
}

/// The AsyncAPI document of the Socket.IO API.
pub fn asyncapi() -> serde_json::Value {
    proto::asyncapi::document(proto::schemas::all_json())
}

fn json(body: &str) -> Response {
    (
        [(header::CONTENT_TYPE, "application/json")],
        body.to_owned(),
    )
        .into_response()
}

/// This document: OpenAPI 3.1 of every REST route.
#[utoipa::path(get, path = "/api/openapi.json", tag = "docs",
    responses((status = 200, description = "The OpenAPI 3.1 document.", content_type = "application/json", body = Object)))]
pub async fn openapi_json(Extension(docs): Extension<Arc<Documents>>) -> Response {
    json(&docs.openapi)
}

/// AsyncAPI 3.0 of the Socket.IO events (send = server → client, receive = client → server, reply = the ack).
#[utoipa::path(get, path = "/api/asyncapi.json", tag = "docs",
    responses((status = 200, description = "The AsyncAPI 3.0 document.", content_type = "application/json", body = Object)))]
pub async fn asyncapi_json(Extension(docs): Extension<Arc<Documents>>) -> Response {
    json(&docs.asyncapi)
}

/// A page that renders both documents (self-contained: no external URL).
#[utoipa::path(get, path = "/api/docs", tag = "docs",
    responses((status = 200, description = "HTML.", content_type = "text/html", body = String)))]
pub async fn viewer() -> Html<&'static str> {
    Html(include_str!("viewer.html"))
}
