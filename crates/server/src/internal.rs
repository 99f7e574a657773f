//! Node-to-node routes of cluster mode (issue 9 item 4; not part of the public API, not in the OpenAPI document):
//! the meeting's media home runs media requests and releases that other nodes forward
//! (`signaling::cluster::HttpRemote`). Every call carries the cluster's shared secret; without it: 404, as if the
//! route did not exist.

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use meeting::ports::RemoteReply;
use meeting::{MeetingService, Outcome};
use signaling::cluster::{ForwardedAnswer, ForwardedRelease, ForwardedRequest, SECRET_HEADER};
use std::sync::Arc;

#[derive(Clone)]
pub struct Internal {
    pub service: Arc<MeetingService>,
    pub io: Arc<dyn signaling::Deliver>,
    pub secret: Arc<str>,
}

pub fn routes(state: Internal) -> Router {
    Router::new()
        .route("/internal/media/request", post(request))
        .route("/internal/media/release", post(release))
        .with_state(state)
}

/// Constant-time comparison of the presented secret.
fn authorized(st: &Internal, headers: &HeaderMap) -> bool {
    let Some(given) = headers.get(SECRET_HEADER).map(|v| v.as_bytes()) else {
        return false;
    };
    let want = st.secret.as_bytes();
    given.len() == want.len()
        && given
            .iter()
            .zip(want)
            .fold(0u8, |acc, (a, b)| acc | (a ^ b))
            == 0
}

async fn request(
    State(st): State<Internal>,
    headers: HeaderMap,
    Json(body): Json<ForwardedRequest>,
) -> Response {
    if !authorized(&st, &headers) {
        return StatusCode::NOT_FOUND.into_response();
    }
    let result = st
        .service
        .handle_forwarded(
            body.identity,
            body.membership,
            &body.event,
            body.payload.as_ref(),
        )
        .await;
    let answer = match result {
        // Media requests change no rooms and end no meeting: the reply and the events are all there is, and the
        // requester's node delivers the events in order.
        Ok(out) => ForwardedAnswer::Ok {
            reply: RemoteReply {
                reply: out.reply,
                emits: out
                    .emits
                    .into_iter()
                    .map(|e| (e.target, e.event.to_owned(), e.payload))
                    .collect(),
            },
        },
        Err(error) => ForwardedAnswer::Err { error },
    };
    Json(answer).into_response()
}

async fn release(
    State(st): State<Internal>,
    headers: HeaderMap,
    Json(body): Json<ForwardedRelease>,
) -> Response {
    if !authorized(&st, &headers) {
        return StatusCode::NOT_FOUND.into_response();
    }
    let emits = st
        .service
        .release_forwarded(&body.meeting, &body.participant, &body.reason)
        .await;
    st.io
        .deliver(&Outcome {
            emits,
            ..Outcome::default()
        })
        .await;
    Json(serde_json::json!({ "ok": true })).into_response()
}
