//! `RedisRuntimeStore` against a real `redis-server` of the test's own: the local store's behaviour (the same test
//! bodies run against both implementations), two nodes modifying one meeting at once, and field-level writes.

mod support;

use proto::{Layout, MeetingId, ParticipantId, UserId};
use state::{
    LocalRuntimeStore, MeetingRuntime, RuntimeConsumer, RuntimeProducer, RuntimeRecording,
    RuntimeStore, ScreenShare,
};
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use support::{participant, RedisServer};

/// Both implementations, the reference first; Redis over RESP2 and over RESP3 (socketioxide's Redis adapter needs
/// RESP3, so a node may well be given a `?protocol=resp3` URL), each under its own prefix.
async fn both(server: &RedisServer) -> Vec<(&'static str, Arc<dyn RuntimeStore>)> {
    let resp3 = state::RedisState::connect(&format!("{}?protocol=resp3", server.url()), "t3")
        .await
        .expect("connect over resp3");
    vec![
        ("local", Arc::new(LocalRuntimeStore::new())),
        ("redis", Arc::new(server.state("t").await.runtime_store())),
        ("redis resp3", Arc::new(resp3.runtime_store())),
    ]
}

async fn get(s: &dyn RuntimeStore, m: &MeetingId) -> Option<MeetingRuntime> {
    s.get(m).await.expect("get")
}

async fn modify(
    s: &dyn RuntimeStore,
    m: &MeetingId,
    mut f: impl FnMut(&mut MeetingRuntime) -> bool + Send,
) {
    s.modify(m, &mut f).await.expect("modify");
}

// ---- the behaviour of the local store, on both -----------------------------------------------------------

async fn modify_read_remove(s: &dyn RuntimeStore) {
    let m = MeetingId::new("m");
    let mut seen = None;
    s.read(&m, &mut |rt| seen = Some(rt.is_some()))
        .await
        .expect("read");
    assert_eq!(seen, Some(false));
    modify(s, &m, |rt| {
        rt.next_seq = 7;
        true
    })
    .await;
    let rt = get(s, &m).await.expect("state");
    assert_eq!((rt.next_seq, rt.meeting_id.as_ref()), (7, Some(&m)));
    let mut seen = None;
    s.read(&m, &mut |rt| seen = rt.map(|rt| rt.next_seq))
        .await
        .expect("read");
    assert_eq!(seen, Some(7));
    assert_eq!(s.totals().await.expect("totals"), (0, 0));
    assert_eq!(s.held().await.expect("held"), 1);
    s.remove_if_empty(&m).await.expect("remove");
    assert_eq!(get(s, &m).await, None);
    assert_eq!(s.held().await.expect("held"), 0);
}

async fn dropped_hand_keeps_an_empty_meeting_until_pruned(s: &dyn RuntimeStore) {
    let m = MeetingId::new("m");
    modify(s, &m, |rt| {
        rt.raised_hands_of_dropped.insert(UserId::new("u"), 1_000);
        true
    })
    .await;
    s.remove_if_empty(&m).await.expect("remove");
    assert_eq!(
        get(s, &m).await.map(|rt| rt.raised_hands_of_dropped.len()),
        Some(1),
        "the hand must outlive the last participant"
    );
    assert_eq!(s.totals().await.expect("totals"), (0, 0));
    modify(s, &m, |rt| {
        rt.raised_hands_of_dropped.clear();
        true
    })
    .await;
    s.remove_if_empty(&m).await.expect("remove");
    assert_eq!(get(s, &m).await, None, "no leak");
}

async fn an_ended_meeting_is_a_tombstone_until_removed(s: &dyn RuntimeStore) {
    let m = MeetingId::new("ended");
    modify(s, &m, |rt| {
        rt.insert_participant(participant("a", 0));
        true
    })
    .await;
    modify(s, &m, |rt| {
        rt.take_participants();
        rt.ended = true;
        true
    })
    .await;
    s.remove_if_empty(&m).await.expect("remove_if_empty");
    assert!(get(s, &m)
        .await
        .is_some_and(|rt| rt.ended && rt.participants.is_empty()));
    s.remove(&m).await.expect("remove");
    assert_eq!(get(s, &m).await, None);
    assert_eq!(s.held().await.expect("held"), 0);
}

async fn occupied_meetings_are_kept_and_counted(s: &dyn RuntimeStore) {
    let (m1, m2, m3) = (
        MeetingId::new("m1"),
        MeetingId::new("m2"),
        MeetingId::new("m3"),
    );
    for (m, n) in [(&m1, 2), (&m2, 3)] {
        for i in 0..n {
            modify(s, m, |rt| {
                rt.insert_participant(participant(&format!("{m}-{i}"), i));
                true
            })
            .await;
        }
    }
    modify(s, &m3, |rt| {
        rt.raised_hands_of_dropped.insert(UserId::new("u"), 1);
        true
    })
    .await;
    for m in [&m1, &m2, &m3] {
        s.remove_if_empty(m).await.expect("remove_if_empty");
    }
    assert_eq!(s.totals().await.expect("totals"), (2, 5));
    assert_eq!(s.held().await.expect("held"), 3);
    modify(s, &m2, |rt| {
        rt.remove_participant(&ParticipantId::new("m2-1")).is_some()
    })
    .await;
    assert_eq!(s.totals().await.expect("totals"), (2, 4));
}

async fn a_refused_change_changes_nothing(s: &dyn RuntimeStore) {
    let m = MeetingId::new("m");
    // A refused change of a meeting with no state makes no live meeting (the local store keeps an empty slot,
    // the Redis one writes nothing).
    modify(s, &m, |_| false).await;
    assert_eq!(s.totals().await.expect("totals"), (0, 0));
    modify(s, &m, |rt| {
        rt.insert_participant(participant("a", 0));
        true
    })
    .await;
    let before = get(s, &m).await;
    modify(s, &m, |rt| rt.ended).await;
    assert_eq!(get(s, &m).await, before);
}

type Step = Box<dyn FnMut(&mut MeetingRuntime) -> bool + Send>;

/// Every kind of change the domain makes to a meeting, in an order that makes sense.
fn change_steps() -> Vec<Step> {
    let pid = ParticipantId::new;
    let prod = |id: &str, kind: &str| RuntimeProducer {
        producer_id: id.into(),
        kind: kind.into(),
        source: if kind == "audio" { "mic" } else { "camera" }.into(),
        paused: false,
    };
    vec![
        Box::new(|rt| {
            for (i, id) in ["a", "b", "c:colon"].iter().enumerate() {
                rt.insert_participant(participant(id, i as u64));
            }
            rt.next_seq = 3;
            true
        }),
        Box::new(move |rt| {
            rt.set_transport(&pid("a"), true, Some("ta".into()))
                && rt.set_transport(&pid("b"), false, Some("tb".into()))
                && rt.set_transport(&pid("c:colon"), false, Some("tc".into()))
        }),
        Box::new(move |rt| {
            rt.add_producer(&pid("a"), prod("p1", "audio"))
                && rt.add_producer(&pid("a"), prod("p2", "video"))
        }),
        Box::new(move |rt| {
            rt.add_consumer(
                &pid("b"),
                RuntimeConsumer {
                    consumer_id: "c1".into(),
                    producer_id: "p1".into(),
                },
            )
        }),
        Box::new(move |rt| {
            let b = pid("b");
            let first = rt.next_announcement(&b).is_some();
            if let Some(p) = rt.participants.get_mut(&b) {
                p.announced_at = Some(5);
            }
            first
        }),
        Box::new(move |rt| rt.set_moderator_muted(&pid("a"), "audio", true)),
        Box::new(move |rt| {
            rt.participants
                .get_mut(&pid("b"))
                .map(|p| p.hand_raised = true)
                .is_some()
        }),
        Box::new(|rt| {
            rt.layout = Layout::Presentation;
            rt.spotlight = Some(UserId::new("user_a"));
            rt.screen_share = Some(ScreenShare {
                participant_id: ParticipantId::new("a"),
                user_id: UserId::new("user_a"),
                user_name: "A".into(),
                started_at: 9,
            });
            rt.recording = Some(RuntimeRecording {
                recording_id: "rec_1".into(),
                started_at: 10,
                started_by_user_id: UserId::new("user_a"),
                started_by_name: "A".into(),
                record_video: true,
                record_audio: true,
                record_chat: false,
                paused_at: None,
                paused_ms: 0,
            });
            true
        }),
        Box::new(|rt| rt.remove_producer("p1").is_some()),
        Box::new(move |rt| {
            rt.raised_hands_of_dropped.insert(UserId::new("user_a"), 42);
            rt.remove_participant(&pid("a")).is_some()
        }),
        Box::new(move |rt| {
            let c = pid("c:colon");
            for i in 0..40 {
                rt.add_producer(&c, prod(&format!("q{i}"), "video"));
            }
            true
        }),
        Box::new(|rt| {
            for i in 0..38 {
                rt.remove_producer(&format!("q{i}"));
            }
            rt.compact_announce_log();
            true
        }),
        Box::new(move |rt| {
            let mut n = 0;
            while rt.next_announcement(&pid("b")).is_some() {
                n += 1;
            }
            n > 0
        }),
        Box::new(|rt| {
            rt.take_participants();
            rt.ended = true;
            rt.screen_share = None;
            rt.recording = None;
            true
        }),
    ]
}

/// Every kind of change the domain makes, step by step: after each, the store holds exactly what the same
/// closures made of a plain value in memory, and the indexes are consistent.
async fn every_change_reads_back_exactly(s: &dyn RuntimeStore) {
    let m = MeetingId::new("media");
    let steps = change_steps();
    let mut reference = MeetingRuntime {
        meeting_id: Some(m.clone()),
        ..MeetingRuntime::default()
    };
    for (i, mut step) in steps.into_iter().enumerate() {
        assert!(step(&mut reference), "step {i} changes something");
        s.modify(&m, &mut step).await.expect("modify");
        let stored = get(s, &m).await.expect("state");
        assert_eq!(stored, reference, "after step {i}");
        stored
            .check_indexes()
            .unwrap_or_else(|e| panic!("after step {i}: {e}"));
    }
    assert_eq!(reference.announce_log.len(), 0);
}

macro_rules! on_both {
    ($($name:ident),* $(,)?) => {$(
        #[tokio::test]
        async fn $name() {
            let server = RedisServer::start();
            for (which, store) in both(&server).await {
                eprintln!("{} on {which}", stringify!($name));
                super::$name(&*store).await;
            }
        }
    )*};
}

mod on_both {
    use super::*;
    on_both!(
        modify_read_remove,
        dropped_hand_keeps_an_empty_meeting_until_pruned,
        an_ended_meeting_is_a_tombstone_until_removed,
        occupied_meetings_are_kept_and_counted,
        a_refused_change_changes_nothing,
        every_change_reads_back_exactly,
    );
}

// ---- Redis only ------------------------------------------------------------------------------------------

/// Two nodes (two stores on two connections) each run many concurrent modifies of one meeting; every one of them
/// lands (no lost update); it prints how many closure reruns the conflicts between the nodes cost.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_nodes_modifying_one_meeting_lose_no_update() {
    let server = RedisServer::start();
    let nodes = [
        server.state("t").await.runtime_store(),
        server.state("t").await.runtime_store(),
    ];
    let m = MeetingId::new("busy");
    let runs = Arc::new(AtomicUsize::new(0));
    const TASKS: usize = 4;
    const EACH: usize = 40;
    let mut tasks = Vec::new();
    for (n, node) in nodes.iter().enumerate() {
        for t in 0..TASKS {
            let (node, m, runs) = (node.clone(), m.clone(), runs.clone());
            tasks.push(tokio::spawn(async move {
                for i in 0..EACH {
                    let id = format!("n{n}t{t}i{i}");
                    node.modify(&m, &mut |rt| {
                        runs.fetch_add(1, Ordering::Relaxed);
                        rt.next_seq += 1;
                        let seq = rt.next_seq;
                        rt.insert_participant(participant(&id, seq));
                        true
                    })
                    .await
                    .expect("modify");
                }
            }));
        }
    }
    for t in tasks {
        t.await.expect("task");
    }
    let total = 2 * TASKS * EACH;
    let rt = nodes[0].get(&m).await.expect("get").expect("state");
    assert_eq!(rt.next_seq as usize, total, "every increment landed");
    assert_eq!(rt.participants.len(), total, "every participant landed");
    let mut seqs: Vec<u64> = rt.participants.values().map(|p| p.joined_seq).collect();
    seqs.sort_unstable();
    assert_eq!(
        seqs,
        (1..=total as u64).collect::<Vec<_>>(),
        "each saw the one before it"
    );
    let runs = runs.load(Ordering::Relaxed);
    eprintln!(
        "{total} modifies, {runs} closure runs ({} reruns after a conflict)",
        runs - total
    );
    assert_eq!(nodes[1].totals().await.expect("totals"), (1, total));
    for (n, node) in nodes.iter().enumerate() {
        let (whole, caught_up) = node.read_counts();
        eprintln!("node {n}: {whole} whole reads, {caught_up} catch-ups");
    }
}

async fn hgetall(server: &RedisServer, key: &str) -> BTreeMap<String, Vec<u8>> {
    let mut c = server.conn().await;
    redis::cmd("HGETALL")
        .arg(key)
        .query_async(&mut c)
        .await
        .expect("hgetall")
}

/// What Redis has read from and written to its clients so far (`INFO stats`), in bytes.
async fn net_bytes(server: &RedisServer) -> (u64, u64) {
    let mut c = server.conn().await;
    let info: String = redis::cmd("INFO")
        .arg("stats")
        .query_async(&mut c)
        .await
        .expect("info");
    let field = |name: &str| -> u64 {
        info.lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or_else(|| panic!("{name} in INFO"))
    };
    (
        field("total_net_input_bytes:"),
        field("total_net_output_bytes:"),
    )
}

/// A change to one participant of a 1,000-member meeting rewrites only that participant's field (and the version
/// token): the other fields keep their bytes, and what crosses the network either way is a few hundred bytes,
/// not the meeting (the node's copy of the meeting is current, so nothing is read back).
#[tokio::test]
async fn one_participant_change_writes_only_its_field() {
    let server = RedisServer::start();
    let store = server.state("t").await.runtime_store();
    let m = MeetingId::new("big");
    modify(&store, &m, |rt| {
        for i in 0..1000 {
            let id = format!("participant_{i:04}");
            rt.insert_participant(participant(&id, i));
            let pid = ParticipantId::new(id.as_str());
            rt.set_transport(&pid, false, Some(format!("transport_{i}")));
            rt.add_producer(
                &pid,
                RuntimeProducer {
                    producer_id: format!("producer_{i}"),
                    kind: "audio".into(),
                    source: "mic".into(),
                    paused: false,
                },
            );
        }
        rt.next_seq = 1000;
        true
    })
    .await;
    let key = store.meeting_key(&m);
    let before = hgetall(&server, &key).await;
    let meeting_bytes: usize = before.iter().map(|(k, v)| k.len() + v.len()).sum();
    assert!(
        before.len() > 4000,
        "one field per participant, index entry and log entry: {}",
        before.len()
    );

    let (in0, out0) = net_bytes(&server).await;
    let target = ParticipantId::new("participant_0500");
    modify(&store, &m, |rt| {
        rt.participants
            .get_mut(&target)
            .map(|p| p.hand_raised = true)
            .is_some()
    })
    .await;
    let (in1, out1) = net_bytes(&server).await;
    let (sent, received) = (in1 - in0, out1 - out0);

    let after = hgetall(&server, &key).await;
    let changed: Vec<&str> = after
        .iter()
        .filter(|(k, v)| before.get(*k) != Some(v))
        .map(|(k, _)| k.as_str())
        .collect();
    assert_eq!(changed, vec!["p:participant_0500", "v"]);
    assert_eq!(before.len(), after.len(), "nothing removed");
    // the write script (by sha) and the INFO call itself; INFO's own answer (~1.5 KiB) is in `received`
    assert!(
        sent < 1024,
        "sent {sent} bytes to change one participant of a {meeting_bytes}-byte meeting"
    );
    assert!(
        received < 4096,
        "received {received} bytes to change one participant of a {meeting_bytes}-byte meeting"
    );
    eprintln!(
        "one hand raised in a {meeting_bytes}-byte meeting: {sent} bytes sent to redis, {received} received"
    );
    // A figure, not a check: what one such modify costs end to end (the Redis round trip, and on the node the
    // clone of its copy and the field-by-field diff, which grow with the meeting). Build with --release for
    // figures worth quoting.
    const ROUNDS: u32 = 50;
    let started = std::time::Instant::now();
    for i in 0..ROUNDS {
        modify(&store, &m, |rt| {
            rt.participants
                .get_mut(&target)
                .map(|p| p.hand_raised = i % 2 == 0)
                .is_some()
        })
        .await;
    }
    eprintln!(
        "one-participant modify of a 1,000-member meeting: {} µs each ({ROUNDS} rounds)",
        (started.elapsed() / ROUNDS).as_micros()
    );
}

/// Another node changes a meeting this node holds a copy of: reads see the change, and a closure that decides
/// "nothing to do" on the old copy is rerun on the current state before that answer counts.
#[tokio::test]
async fn a_copy_another_node_made_stale_is_never_the_answer() {
    let server = RedisServer::start();
    let (a, b) = (
        server.state("t").await.runtime_store(),
        server.state("t").await.runtime_store(),
    );
    let m = MeetingId::new("m");
    modify(&a, &m, |rt| {
        rt.insert_participant(participant("x", 0));
        true
    })
    .await;
    assert_eq!(a.cached_meetings(), 1);
    modify(&b, &m, |rt| {
        rt.insert_participant(participant("y", 1));
        true
    })
    .await;
    let y = ParticipantId::new("y");
    assert!(get(&a, &m)
        .await
        .is_some_and(|rt| rt.participants.contains_key(&y)));
    // b changes it again; a's copy is stale once more
    modify(&b, &m, |rt| rt.remove_participant(&y).is_some()).await;
    let mut saw_y = None;
    a.modify(&m, &mut |rt| {
        saw_y = Some(rt.participants.contains_key(&y));
        false
    })
    .await
    .expect("modify");
    assert_eq!(saw_y, Some(false), "the last run saw the current state");
    let mut seen = None;
    a.read(&m, &mut |rt| seen = rt.map(|rt| rt.participants.len()))
        .await
        .expect("read");
    assert_eq!(seen, Some(1));
    // removing forgets the copy (here removed by b: a's next read finds nothing and forgets it too)
    modify(&b, &m, |rt| {
        rt.take_participants();
        true
    })
    .await;
    b.remove_if_empty(&m).await.expect("remove");
    assert_eq!(b.cached_meetings(), 0);
    assert_eq!(get(&a, &m).await, None);
    assert_eq!(a.cached_meetings(), 0);
}

/// A meeting removed and made again by another node while this one was computing: the stale write is refused
/// (the version token is new, not a counter that restarted) and the closure is rerun on the new state.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_against_a_removed_and_remade_meeting_is_rerun() {
    let server = RedisServer::start();
    let a = server.state("t").await.runtime_store();
    let m = MeetingId::new("m");
    modify(&a, &m, |rt| {
        rt.next_seq = 1;
        true
    })
    .await;
    let url = server.url();
    let mut first = true;
    a.modify(&m, &mut |rt| {
        if first {
            first = false;
            // Between this read and its write, node b (its own thread, runtime and connection) removes the meeting
            // and makes it again with the same fields but for next_seq.
            let (url, m) = (url.clone(), m.clone());
            std::thread::spawn(move || {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .expect("runtime");
                rt.block_on(async {
                    let b = state::RedisState::connect(&url, "t")
                        .await
                        .expect("b")
                        .runtime_store();
                    b.remove(&m).await.expect("remove");
                    modify(&b, &m, |rt| {
                        rt.next_seq = 100;
                        true
                    })
                    .await;
                });
            })
            .join()
            .expect("node b");
        }
        rt.next_seq += 1;
        true
    })
    .await
    .expect("modify");
    assert_eq!(get(&a, &m).await.map(|rt| rt.next_seq), Some(101));
}

/// A value that is not what this version writes is reported as a backend error, not a panic.
#[tokio::test]
async fn corrupt_state_is_an_error_not_a_panic() {
    let server = RedisServer::start();
    let store = server.state("t").await.runtime_store();
    let m = MeetingId::new("m");
    let mut c = server.conn().await;
    let _: () = redis::cmd("HSET")
        .arg(store.meeting_key(&m))
        .arg("p:x")
        .arg("not json")
        .query_async(&mut c)
        .await
        .expect("hset");
    let err = store.get(&m).await.expect_err("corrupt");
    assert!(err.to_string().contains("p:x"), "{err}");
    assert!(store.modify(&m, &mut |_| true).await.is_err());
}

// ---- the change log: another node's changes cost what changed, not the meeting ---------------------------

/// Two nodes take turns through every kind of change; after each, the other node's copy catches up from the change
/// log to exactly the state the closures made of a plain value, and neither node reads the meeting whole after its
/// first read.
#[tokio::test]
async fn another_nodes_changes_are_caught_up_field_by_field() {
    let server = RedisServer::start();
    let nodes = [
        server.state("t").await.runtime_store(),
        server.state("t").await.runtime_store(),
    ];
    let m = MeetingId::new("two-nodes");
    let mut reference = MeetingRuntime {
        meeting_id: Some(m.clone()),
        ..MeetingRuntime::default()
    };
    for (i, mut step) in change_steps().into_iter().enumerate() {
        let (writer, reader) = (&nodes[i % 2], &nodes[(i + 1) % 2]);
        assert!(step(&mut reference), "step {i} changes something");
        writer.modify(&m, &mut step).await.expect("modify");
        let seen = get(reader, &m).await.expect("state");
        assert_eq!(seen, reference, "the other node after step {i}");
        seen.check_indexes()
            .unwrap_or_else(|e| panic!("after step {i}: {e}"));
    }
    for (n, node) in nodes.iter().enumerate() {
        let (whole, caught_up) = node.read_counts();
        eprintln!("node {n}: {whole} whole reads, {caught_up} catch-ups");
        assert!(whole <= 1, "node {n} read the meeting whole {whole} times");
        assert!(caught_up >= 6, "node {n} caught up {caught_up} times");
    }
    // removing the meeting removes its log
    nodes[0].remove(&m).await.expect("remove");
    assert!(
        !exists(&server, &nodes[0].log_key(&m)).await,
        "log left behind"
    );
    assert_eq!(get(&nodes[1], &m).await, None);
}

async fn exists(server: &RedisServer, key: &str) -> bool {
    let mut c = server.conn().await;
    redis::cmd("EXISTS")
        .arg(key)
        .query_async::<i64>(&mut c)
        .await
        .expect("exists")
        == 1
}

/// The log keeps the last `LOG_LEN` writes: a copy exactly that far behind still catches up; one write further
/// behind is read whole (and is right either way).
#[tokio::test]
async fn a_copy_behind_the_log_is_read_whole() {
    let server = RedisServer::start();
    let (a, b) = (
        server.state("t").await.runtime_store(),
        server.state("t").await.runtime_store(),
    );
    let m = MeetingId::new("far");
    modify(&a, &m, |rt| {
        rt.insert_participant(participant("x", 0));
        true
    })
    .await;
    let _ = get(&b, &m).await;
    for behind in [state::redis_store::LOG_LEN, state::redis_store::LOG_LEN + 1] {
        for _ in 0..behind {
            modify(&a, &m, |rt| {
                rt.next_seq += 1;
                true
            })
            .await;
        }
        let before = b.read_counts();
        let seen = get(&b, &m).await.expect("state");
        let after = b.read_counts();
        assert_eq!(seen, get(&a, &m).await.expect("state"));
        let whole = after.0 - before.0;
        let caught_up = after.1 - before.1;
        eprintln!("{behind} writes behind: {whole} whole reads, {caught_up} catch-ups");
        if behind == state::redis_store::LOG_LEN {
            assert_eq!((whole, caught_up), (0, 1));
        } else {
            assert_eq!((whole, caught_up), (1, 0));
        }
    }
    let mut c = server.conn().await;
    let len: usize = redis::cmd("LLEN")
        .arg(a.log_key(&m))
        .query_async(&mut c)
        .await
        .expect("llen");
    assert_eq!(len, state::redis_store::LOG_LEN, "the log is trimmed");
}

/// A node holding a copy of a 1,000-member meeting learns of one raised hand on another node by reading that one
/// field: what Redis sends it is a couple of KiB at most (INFO's own answer included), not the meeting.
#[tokio::test]
async fn catching_up_on_one_change_reads_only_that_change() {
    let server = RedisServer::start();
    let (a, b) = (
        server.state("t").await.runtime_store(),
        server.state("t").await.runtime_store(),
    );
    let m = MeetingId::new("big");
    modify(&a, &m, |rt| {
        for i in 0..1000 {
            let id = format!("participant_{i:04}");
            rt.insert_participant(participant(&id, i));
            rt.set_transport(
                &ParticipantId::new(id.as_str()),
                false,
                Some(format!("transport_{i}")),
            );
        }
        true
    })
    .await;
    let meeting_bytes: usize = hgetall(&server, &a.meeting_key(&m))
        .await
        .iter()
        .map(|(k, v)| k.len() + v.len())
        .sum();
    let _ = get(&b, &m).await;
    let target = ParticipantId::new("participant_0700");
    modify(&a, &m, |rt| {
        rt.participants
            .get_mut(&target)
            .map(|p| p.hand_raised = true)
            .is_some()
    })
    .await;
    let (_, out0) = net_bytes(&server).await;
    let mut hand = None;
    b.read(&m, &mut |rt| {
        hand = rt.and_then(|rt| rt.participants.get(&target).map(|p| p.hand_raised))
    })
    .await
    .expect("read");
    let (_, out1) = net_bytes(&server).await;
    assert_eq!(hand, Some(true));
    let received = out1 - out0;
    eprintln!("catching up on one raised hand in a {meeting_bytes}-byte meeting: {received} bytes received");
    assert!(
        received < 4096,
        "received {received} bytes for one change in a {meeting_bytes}-byte meeting"
    );
    assert_eq!(b.read_counts(), (1, 1));
}
