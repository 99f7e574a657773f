//! Redis goes away under a running store and limiter: every call fails with `StateError::Backend` within the
//! timeout and nothing panics; Redis comes back on the same port: the same instances work again by themselves.

mod support;

use proto::MeetingId;
use state::{Limit, RateLimiter, RuntimeStore, StateError};
use std::time::{Duration, Instant};
use support::RedisServer;

const LIMIT: Limit = Limit {
    count: 100,
    window: Duration::from_secs(10),
};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_fail_fast_while_redis_is_down_and_work_again_when_it_is_back() {
    let mut server = RedisServer::start();
    let redis = server.state("t").await;
    let (store, limiter) = (redis.runtime_store(), redis.rate_limiter());
    let m = MeetingId::new("m");
    store
        .modify(&m, &mut |rt| {
            rt.next_seq = 1;
            true
        })
        .await
        .expect("modify while up");
    assert_eq!(
        limiter.check("k", LIMIT).await.expect("check while up"),
        Ok(())
    );

    server.stop();
    for round in 0..3 {
        let t = Instant::now();
        let results = [
            store
                .modify(&m, &mut |rt| {
                    rt.next_seq += 1;
                    true
                })
                .await
                .err(),
            store.get(&m).await.err(),
            store.read(&m, &mut |_| {}).await.err(),
            store.remove_if_empty(&m).await.err(),
            store.totals().await.err(),
            store.held().await.err(),
            limiter.check("k", LIMIT).await.err(),
            store.ping().await.err(),
            limiter.ping().await.err(),
        ];
        for (i, r) in results.iter().enumerate() {
            match r {
                Some(StateError::Backend(msg)) => assert!(msg.contains("redis"), "{msg}"),
                None => panic!("round {round}: call {i} succeeded with redis down"),
            }
        }
        // nine calls, each bounded by the 2 s timeout; in practice each is refused at once
        let took = t.elapsed();
        eprintln!(
            "round {round}: 9 calls failed in {took:?}; e.g. {:?}",
            results[0]
        );
        assert!(took < Duration::from_secs(9 * 2), "{took:?}");
    }
    // a single call returns within ~2 s
    let t = Instant::now();
    assert!(store.get(&m).await.is_err());
    assert!(
        t.elapsed() < Duration::from_millis(2500),
        "{:?}",
        t.elapsed()
    );

    let _server = RedisServer::start_on(server.port);
    let deadline = Instant::now() + Duration::from_secs(10);
    while store.ping().await.is_err() {
        assert!(Instant::now() < deadline, "the store did not reconnect");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // the restarted Redis kept nothing (no persistence in the test): the meeting starts again
    store
        .modify(&m, &mut |rt| {
            rt.next_seq += 1;
            true
        })
        .await
        .expect("modify after the restart");
    assert_eq!(
        store.get(&m).await.expect("get").map(|rt| rt.next_seq),
        Some(1)
    );
    assert_eq!(
        limiter
            .check("k", LIMIT)
            .await
            .expect("check after the restart"),
        Ok(())
    );
    assert_eq!(store.totals().await.expect("totals"), (0, 0));
    assert_eq!(store.held().await.expect("held"), 1);
}

/// A node may start while Redis is not there yet: `connect` fails within the timeout, `open` succeeds and its
/// first calls fail until Redis is up.
#[tokio::test]
async fn connecting_to_a_redis_that_is_not_there_fails_within_the_timeout() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("port")
        .port();
    let url = format!("redis://127.0.0.1:{port}/");
    let t = Instant::now();
    let err = state::RedisState::connect(&url, "t")
        .await
        .expect_err("nobody listens");
    assert!(
        t.elapsed() < Duration::from_millis(2500),
        "{:?}",
        t.elapsed()
    );
    assert!(matches!(err, StateError::Backend(_)));
    let lazy = state::RedisState::open(&url, "t", state::RedisOptions::default()).expect("open");
    assert!(lazy.ping().await.is_err());
    let _server = RedisServer::start_on(port);
    let deadline = Instant::now() + Duration::from_secs(10);
    while lazy.ping().await.is_err() {
        assert!(
            Instant::now() < deadline,
            "did not connect once redis was up"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(state::RedisState::open("not a url", "t", state::RedisOptions::default()).is_err());
}

/// A Redis that accepts connections but does not answer (frozen with SIGSTOP, as a hung or partitioned server):
/// calls fail after the 2 s timeout instead of hanging, and work again once it answers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redis_that_does_not_answer_fails_calls_after_the_timeout() {
    let server = RedisServer::start();
    let redis = server.state("t").await;
    let (store, limiter) = (redis.runtime_store(), redis.rate_limiter());
    let m = MeetingId::new("m");
    assert_eq!(store.get(&m).await.expect("get while up"), None);
    server.signal("STOP");
    let t = Instant::now();
    let (a, b) = tokio::join!(store.get(&m), limiter.check("k", LIMIT));
    let took = t.elapsed();
    server.signal("CONT");
    assert!(matches!(a, Err(StateError::Backend(_))), "{a:?}");
    assert!(matches!(b, Err(StateError::Backend(_))), "{b:?}");
    assert!(
        took >= Duration::from_millis(1500) && took < Duration::from_secs(4),
        "{took:?}"
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    while store.get(&m).await.is_err() {
        assert!(Instant::now() < deadline, "did not recover after SIGCONT");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(limiter.check("k", LIMIT).await.expect("check"), Ok(()));
}
