//! The same scenarios against SQLite (a fresh file) and PostgreSQL (a fresh database on the local server, named
//! by `MEET_TEST_PG_ADMIN_URL`, default `postgres://postgres@127.0.0.1:5432/postgres`).

use super::*;

async fn sqlite_store() -> (Store, std::path::PathBuf) {
    let dir = std::env::temp_dir().join(format!("meet-store-{}", proto::ids::random_base62(10)));
    let url = format!("sqlite://{}/meet.db?mode=rwc", dir.display());
    let store = Store::connect(&url).await.expect("sqlite store");
    (store, dir)
}

async fn postgres_store() -> (Store, String) {
    let admin = std::env::var("MEET_TEST_PG_ADMIN_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_owned());
    sqlx::any::install_default_drivers();
    let pool = AnyPoolOptions::new().max_connections(1).connect(&admin).await.expect(
        "PostgreSQL must be reachable for the store tests (scripts/test installs and starts it)",
    );
    let name = format!(
        "meet_store_test_{}",
        proto::ids::random_base62(10).to_lowercase()
    );
    sqlx::query(&format!("CREATE DATABASE {name}"))
        .execute(&pool)
        .await
        .expect("create database");
    pool.close().await;
    let base = admin
        .rsplit_once('/')
        .map(|(b, _)| b.to_owned())
        .unwrap_or(admin.clone());
    let url = format!("{base}/{name}");
    (Store::connect(&url).await.expect("postgres store"), name)
}

async fn drop_pg(name: &str) {
    let admin = std::env::var("MEET_TEST_PG_ADMIN_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_owned());
    if let Ok(pool) = AnyPoolOptions::new()
        .max_connections(1)
        .connect(&admin)
        .await
    {
        let _ = sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
            .execute(&pool)
            .await;
    }
}

fn meeting(id: &str) -> MeetingRecord {
    MeetingRecord {
        id: MeetingId::new(id),
        title: "Standup".into(),
        host_user_id: UserId::new("u_host"),
        campus_id: "campus_1".into(),
        max_participants: 100,
        recording_enabled: true,
        allow_self_unmute: false,
        allowed_campuses: vec!["campus_2".into()],
        invited_user_ids: vec!["u_guest".into()],
        status: MeetingStatus::Active,
        created_at: 1_700_000_000_000,
        ended_at: None,
    }
}

fn chat(id: &str, sender: &str, rt: RecipientType, to: Option<&str>, at: i64) -> ChatRecord {
    ChatRecord {
        id: MessageId::new(id),
        meeting_id: MeetingId::new("m1"),
        sender_id: UserId::new(sender),
        sender_name: sender.to_uppercase(),
        message: format!("hello from {sender}"),
        recipient_type: rt,
        recipient_id: to.map(UserId::new),
        created_at: at,
    }
}

async fn scenario(store: &Store) {
    let m = meeting("m1");
    store.insert_meeting(&m).await.expect("insert meeting");
    assert_eq!(
        store.get_meeting(&m.id).await.expect("get"),
        Some(m.clone())
    );
    assert_eq!(
        store
            .get_meeting(&MeetingId::new("nope"))
            .await
            .expect("get"),
        None
    );
    assert_eq!(store.count_active_meetings().await.expect("count"), 1);

    // roles
    let alice = UserId::new("alice");
    assert_eq!(store.granted_role(&m.id, &alice).await.expect("role"), None);
    store
        .set_role(&m.id, &alice, Role::Moderator)
        .await
        .expect("grant");
    assert_eq!(
        store.granted_role(&m.id, &alice).await.expect("role"),
        Some(Role::Moderator)
    );
    store
        .set_role(&m.id, &alice, Role::Participant)
        .await
        .expect("revoke");
    assert_eq!(store.granted_role(&m.id, &alice).await.expect("role"), None);

    // chat visibility and paging
    let msgs = [
        chat("msg_1", "alice", RecipientType::All, None, 1),
        chat("msg_2", "bob", RecipientType::Private, Some("alice"), 2),
        chat("msg_3", "bob", RecipientType::Host, None, 3),
        chat("msg_4", "carol", RecipientType::Private, Some("bob"), 4),
        chat("msg_5", "carol", RecipientType::All, None, 5),
    ];
    for c in &msgs {
        store.insert_message(c).await.expect("insert message");
    }
    let ids = |v: Vec<ChatRecord>| v.into_iter().map(|c| c.id.to_string()).collect::<Vec<_>>();
    let alice_view = Viewer {
        user_id: &alice,
        sees_host_messages: false,
    };
    let all = store
        .messages_visible(&m.id, &alice_view, None, 50)
        .await
        .expect("history");
    assert_eq!(all[1], msgs[1]);
    assert_eq!(ids(all), ["msg_1", "msg_2", "msg_5"]);
    let host = UserId::new("u_host");
    let host_view = Viewer {
        user_id: &host,
        sees_host_messages: true,
    };
    assert_eq!(
        ids(store
            .messages_visible(&m.id, &host_view, None, 50)
            .await
            .expect("history")),
        ["msg_1", "msg_3", "msg_5"]
    );
    let bob = UserId::new("bob");
    let bob_view = Viewer {
        user_id: &bob,
        sees_host_messages: false,
    };
    assert_eq!(
        ids(store
            .messages_visible(&m.id, &bob_view, None, 2)
            .await
            .expect("page 1")),
        ["msg_4", "msg_5"]
    );
    assert_eq!(
        ids(store
            .messages_visible(&m.id, &bob_view, Some(&MessageId::new("msg_4")), 2)
            .await
            .expect("page 2")),
        ["msg_2", "msg_3"]
    );
    assert!(store
        .messages_visible(&m.id, &bob_view, Some(&MessageId::new("msg_unknown")), 2)
        .await
        .expect("unknown cursor")
        .is_empty());

    // sessions, stats, audit, end
    let p = ParticipantId::new("participant_1");
    store
        .open_session(&p, &m.id, &alice, "Alice", Role::Participant, 10)
        .await
        .expect("session");
    store.close_session(&p, 20).await.expect("close session");
    let s = StatsRecord {
        rtt: Some(45.0),
        packet_loss: Some(0.5),
        jitter: None,
        bitrate: Some(1.5e6),
    };
    store
        .insert_stats(&m.id, &p, &alice, &s, 30)
        .await
        .expect("stats");
    assert_eq!(store.stats_of(&p).await.expect("stats_of"), vec![s]);
    store
        .audit(&m.id, &host, "mute", Some(&alice), "audio", 40)
        .await
        .expect("audit");
    assert_eq!(
        store.audit_of(&m.id).await.expect("audit_of"),
        vec![(
            "u_host".to_owned(),
            "mute".to_owned(),
            Some("alice".to_owned())
        )]
    );
    assert!(store.end_meeting(&m.id, 50).await.expect("end"));
    assert!(!store.end_meeting(&m.id, 60).await.expect("end twice"));
    let ended = store
        .get_meeting(&m.id)
        .await
        .expect("get")
        .expect("exists");
    assert_eq!(
        (ended.status, ended.ended_at),
        (MeetingStatus::Ended, Some(50))
    );
}

#[tokio::test]
async fn sqlite_scenario_and_reopen() {
    let (store, dir) = sqlite_store().await;
    scenario(&store).await;
    store.close().await;
    // survives a reopen (migrations are idempotent)
    let url = format!("sqlite://{}/meet.db?mode=rwc", dir.display());
    let again = Store::connect(&url).await.expect("reopen");
    assert!(again
        .get_meeting(&MeetingId::new("m1"))
        .await
        .expect("get")
        .is_some());
    again.close().await;
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test]
async fn postgres_scenario() {
    let (store, name) = postgres_store().await;
    assert_eq!(store.backend(), Backend::Postgres);
    scenario(&store).await;
    store.close().await;
    drop_pg(&name).await;
}

#[test]
fn redacts_passwords() {
    assert_eq!(
        redact_url("postgres://u:secret@h:5432/db"),
        "postgres://u:***@h:5432/db"
    );
    assert_eq!(redact_url("postgres://u@h/db"), "postgres://u@h/db");
    assert_eq!(redact_url("sqlite://data/x.db"), "sqlite://data/x.db");
}

/// The webhook outbox: events queued with their change, one row per URL, only each (url, meeting)'s oldest pending
/// event due, retries move `next_attempt_at`, give-ups unblock the next event.
async fn outbox_scenario(mut store: Store) {
    store.set_webhook_urls(vec!["http://a/hook".into(), "http://b/hook".into()]);
    let (m1, m2) = (meeting("wh1"), meeting("wh2"));
    store.insert_meeting(&m1).await.expect("m1");
    store.insert_meeting(&m2).await.expect("m2");
    let p = |s: &str| ParticipantId::new(s);
    let u = UserId::new("u_1");
    store
        .open_session(&p("p1"), &m1.id, &u, "Ada", Role::Host, 10)
        .await
        .expect("open p1");
    store
        .open_session(&p("p2"), &m1.id, &u, "Ada", Role::Participant, 11)
        .await
        .expect("open p2");
    store
        .open_session(&p("p3"), &m2.id, &u, "Bo", Role::Host, 12)
        .await
        .expect("open p3");
    store.close_session(&p("p2"), 13).await.expect("close p2");
    store
        .close_session(&p("p2"), 14)
        .await
        .expect("close p2 twice: nothing queued");
    assert!(store.end_meeting(&m1.id, 15).await.expect("end"));
    assert!(!store
        .end_meeting(&m1.id, 16)
        .await
        .expect("end twice: nothing queued"));
    let events = |v: Vec<WebhookStatus>| {
        v.into_iter()
            .filter(|w| w.url == "http://a/hook")
            .map(|w| w.event)
            .collect::<Vec<_>>()
    };
    assert_eq!(
        events(store.webhooks_of(&m1.id).await.expect("of m1")),
        [
            "meeting.started",
            "participant.joined",
            "participant.joined",
            "participant.left",
            "meeting.ended"
        ]
    );
    assert_eq!(
        events(store.webhooks_of(&m2.id).await.expect("of m2")),
        ["meeting.started", "participant.joined"]
    );
    // due: the head of each (url, meeting): 2 urls × 2 meetings, all meeting.started
    let due = store.due_webhooks(100, 50).await.expect("due");
    assert_eq!(due.len(), 4);
    assert!(due.iter().all(|d| d.event == "meeting.started"));
    let body: serde_json::Value = serde_json::from_str(&due[0].body).expect("json body");
    assert_eq!(body["meeting"]["title"], "Standup");
    assert_eq!(
        body["id"].as_str().map(|s| s.starts_with("evt_")),
        Some(true)
    );
    // the same event id for both URLs
    let m1_heads: Vec<_> = due.iter().filter(|d| d.meeting_id == "wh1").collect();
    assert_eq!(m1_heads[0].id, m1_heads[1].id);
    // a failed attempt with a retry time: not due before it, the meeting's next event still waits behind it
    let head = m1_heads[0].clone();
    store
        .webhook_attempt_failed(head.seq, "HTTP 500", 100, Some(200))
        .await
        .expect("fail");
    let due = store.due_webhooks(150, 50).await.expect("due");
    assert!(
        !due.iter()
            .any(|d| d.url == head.url && d.meeting_id == "wh1"),
        "{due:?}"
    );
    assert_eq!(store.next_webhook_due().await.expect("next"), Some(10));
    let due = store.due_webhooks(250, 50).await.expect("due");
    let again = due
        .iter()
        .find(|d| d.seq == head.seq)
        .expect("retried head is due");
    assert_eq!(again.attempts, 1);
    // delivered: the next event of that meeting becomes due
    store
        .webhook_delivered(head.seq, 260)
        .await
        .expect("delivered");
    let due = store.due_webhooks(300, 50).await.expect("due");
    let next = due
        .iter()
        .find(|d| d.url == head.url && d.meeting_id == "wh1")
        .expect("next of m1");
    assert_eq!(next.event, "participant.joined");
    // given up: unblocks the one after it
    store
        .webhook_attempt_failed(next.seq, "HTTP 410", 300, None)
        .await
        .expect("give up");
    let due = store.due_webhooks(300, 50).await.expect("due");
    let after = due
        .iter()
        .find(|d| d.url == head.url && d.meeting_id == "wh1")
        .expect("after give-up");
    assert_eq!(after.event, "participant.joined");
    assert_ne!(after.seq, next.seq);
    // pruning forgets finished rows only
    assert_eq!(store.prune_webhooks(1_000).await.expect("prune"), 2);
}

#[tokio::test]
async fn sqlite_webhook_outbox() {
    let (store, dir) = sqlite_store().await;
    outbox_scenario(store).await;
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test]
async fn postgres_webhook_outbox() {
    let (store, name) = postgres_store().await;
    outbox_scenario(store.clone()).await;
    store.close().await;
    drop_pg(&name).await;
}

/// Recording rows: insert, list per meeting, `recording` → `processing` once, status with reason, the unfinished
/// ones (for start-up), delete.
async fn recording_scenario(store: &Store) {
    let m = meeting("rm1");
    store.insert_meeting(&m).await.expect("meeting");
    let rec = |id: &str, at: i64| RecordingRecord {
        id: proto::RecordingId::new(id),
        meeting_id: m.id.clone(),
        status: RecordingStatus::Recording,
        started_by: UserId::new("u_host"),
        started_by_name: "Host".into(),
        record_video: true,
        record_audio: false,
        record_chat: true,
        started_at: at,
        stopped_at: None,
        duration_ms: None,
        stop_reason: None,
        failure_reason: None,
    };
    let (a, b) = (rec("rec_a", 100), rec("rec_b", 200));
    store.insert_recording(&b).await.expect("insert b");
    store.insert_recording(&a).await.expect("insert a");
    assert_eq!(
        store.get_recording(&a.id).await.expect("get"),
        Some(a.clone())
    );
    assert_eq!(
        store
            .get_recording(&proto::RecordingId::new("rec_none"))
            .await
            .expect("get none"),
        None
    );
    let listed = store.recordings_of(&m.id).await.expect("list");
    assert_eq!(listed, vec![a.clone(), b.clone()]);
    assert!(store
        .stop_recording(&a.id, 150, 40, "stopped")
        .await
        .expect("stop"));
    assert!(!store
        .stop_recording(&a.id, 160, 50, "stopped")
        .await
        .expect("stop twice changes nothing"));
    let stopped = store
        .get_recording(&a.id)
        .await
        .expect("get")
        .expect("exists");
    assert_eq!(stopped.status, RecordingStatus::Processing);
    assert_eq!(
        (stopped.stopped_at, stopped.duration_ms, stopped.stop_reason),
        (Some(150), Some(40), Some("stopped".to_owned()))
    );
    let unfinished: Vec<_> = store
        .unfinished_recordings()
        .await
        .expect("unfinished")
        .into_iter()
        .map(|r| r.id.to_string())
        .collect();
    assert_eq!(unfinished, ["rec_a", "rec_b"]);
    assert!(store
        .set_recording_status(&a.id, RecordingStatus::Failed, Some("no ffmpeg"), 170)
        .await
        .expect("fail"));
    let failed = store
        .get_recording(&a.id)
        .await
        .expect("get")
        .expect("exists");
    assert_eq!(
        (failed.status, failed.failure_reason.as_deref()),
        (RecordingStatus::Failed, Some("no ffmpeg"))
    );
    assert_eq!(
        store
            .unfinished_recordings()
            .await
            .expect("unfinished")
            .len(),
        1
    );
    assert!(store.delete_recording(&b.id).await.expect("delete"));
    assert!(!store.delete_recording(&b.id).await.expect("delete twice"));
    assert_eq!(store.recordings_of(&m.id).await.expect("list").len(), 1);
}

#[tokio::test]
async fn sqlite_recordings() {
    let (store, dir) = sqlite_store().await;
    recording_scenario(&store).await;
    store.close().await;
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test]
async fn postgres_recordings() {
    let (store, name) = postgres_store().await;
    recording_scenario(&store).await;
    store.close().await;
    drop_pg(&name).await;
}
