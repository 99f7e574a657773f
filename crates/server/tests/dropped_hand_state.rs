//! A meeting's runtime state outlives its last participant only while it holds a dropped participant's raised hand:
//! the hand comes back on a rejoin within the grace period, and once that is over the state is forgotten (no leak).

use meeting::{DomainConfig, Identity, MeetingService, Request, Session};
use proto::{MeetingId, UserId};
use serde_json::json;
use state::{LocalRateLimiter, LocalRuntimeStore, RuntimeStore};
use std::sync::Arc;
use std::time::Duration;

const GRACE_MS: i64 = 400;

async fn service(runtime: Arc<LocalRuntimeStore>) -> (MeetingService, std::path::PathBuf) {
    let db = std::env::temp_dir().join(format!(
        "meet-dropped-hand-{}-{}.db",
        std::process::id(),
        proto::ids::random_base62(8)
    ));
    let store = store::Store::connect(&format!("sqlite://{}?mode=rwc", db.display()))
        .await
        .expect("sqlite store");
    let media = media::MediaEngine::start(&media::MediaConfig {
        listen_ip: "127.0.0.1".parse().expect("ip"),
        announced_ip: None,
        port_min: 41_000,
        port_max: 49_999,
        workers: 1,
        ..Default::default()
    })
    .expect("media engine");
    let service = MeetingService::new(
        Arc::new(store),
        runtime,
        Arc::new(LocalRateLimiter::new()),
        Arc::new(media),
        DomainConfig {
            dev_mode: true,
            rejoin_grace_ms: GRACE_MS,
            ..DomainConfig::default()
        },
    );
    (service, db)
}

fn request(event: &str, meeting: &str) -> Request {
    Request::parse(event, Some(&json!({ "meetingId": meeting }))).expect("request")
}

#[tokio::test]
async fn a_lone_dropped_hand_keeps_the_meeting_state_for_the_grace_period_only() {
    let runtime = Arc::new(LocalRuntimeStore::new());
    let (service, db) = service(runtime.clone()).await;
    let meeting = format!("meeting_{}", proto::ids::random_base62(8));
    let id = MeetingId::new(meeting.clone());
    let identity = Identity {
        user_id: UserId::new("user_lone"),
        user_name: "Lone".into(),
        campus_id: "campus_dev".into(),
        email: String::new(),
    };

    let mut session = Session::new(identity.clone());
    service
        .handle(&mut session, request("join-meeting", &meeting))
        .await
        .expect("join");
    service
        .handle(&mut session, request("hand:raise", &meeting))
        .await
        .expect("raise");
    service.disconnect(&mut session).await;

    let kept = runtime.get(&id).await.expect("state");
    assert_eq!(
        kept.map(|rt| (rt.participants.len(), rt.raised_hands_of_dropped.len())),
        Some((0, 1)),
        "the empty meeting keeps the dropped hand"
    );

    // a rejoin within the grace gets it back
    let mut again = Session::new(identity.clone());
    service
        .handle(&mut again, request("join-meeting", &meeting))
        .await
        .expect("rejoin");
    let rt = runtime
        .get(&id)
        .await
        .expect("state")
        .expect("live meeting");
    assert!(rt.participants.values().all(|p| p.hand_raised));
    service.disconnect(&mut again).await;

    // nobody comes back: after the grace the state is gone
    tokio::time::sleep(Duration::from_millis(GRACE_MS as u64 + 600)).await;
    assert_eq!(runtime.get(&id).await.expect("state"), None, "no leak");
    let _ = std::fs::remove_file(db);
}
