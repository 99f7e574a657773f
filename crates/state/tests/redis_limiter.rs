//! `RedisRateLimiter` against a real `redis-server`: one exact sliding window shared by several limiter instances
//! (nodes), on the Redis server's clock.

mod support;

use state::{Limit, RateLimiter, RedisRateLimiter};
use std::time::{Duration, Instant};
use support::RedisServer;

/// Two limiters on two connections, one over RESP2 and one over RESP3 (a node given socketioxide's RESP3 URL).
async fn two_nodes(server: &RedisServer) -> [RedisRateLimiter; 2] {
    let resp3 = state::RedisState::connect(&format!("{}?protocol=resp3", server.url()), "t")
        .await
        .expect("connect over resp3");
    [server.state("t").await.rate_limiter(), resp3.rate_limiter()]
}

async fn check(l: &RedisRateLimiter, key: &str, limit: Limit) -> Result<(), Duration> {
    l.check(key, limit).await.expect("redis answers")
}

/// N accepted across two nodes, the N+1st refused with the wait until the first leaves the window, and accepted
/// again once it has (the first alone: the others came 400 ms later and are still in the window).
#[tokio::test]
async fn n_accepted_then_refused_with_the_wait_then_accepted_after_the_window() {
    let server = RedisServer::start();
    let nodes = two_nodes(&server).await;
    let limit = Limit {
        count: 5,
        window: Duration::from_millis(1000),
    };
    let start = Instant::now();
    assert_eq!(check(&nodes[0], "m/u/chat", limit).await, Ok(()), "event 0");
    tokio::time::sleep(Duration::from_millis(400)).await;
    for i in 1..5 {
        assert_eq!(
            check(&nodes[i % 2], "m/u/chat", limit).await,
            Ok(()),
            "event {i}"
        );
    }
    let wait = check(&nodes[1], "m/u/chat", limit)
        .await
        .expect_err("the sixth is refused");
    let elapsed = start.elapsed();
    assert!(
        wait <= limit.window - Duration::from_millis(400),
        "{wait:?}"
    );
    assert!(
        wait + elapsed >= limit.window - Duration::from_millis(50),
        "wait {wait:?} after {elapsed:?}"
    );
    // refused events are not counted: still refused on the other node
    assert!(check(&nodes[0], "m/u/chat", limit).await.is_err());
    // other keys are independent
    assert_eq!(check(&nodes[0], "m/other/chat", limit).await, Ok(()));
    tokio::time::sleep(wait + Duration::from_millis(20)).await;
    assert_eq!(
        check(&nodes[0], "m/u/chat", limit).await,
        Ok(()),
        "the first event left the window"
    );
    assert!(
        check(&nodes[1], "m/u/chat", limit).await.is_err(),
        "only one left"
    );
}

/// A burst from both nodes at once admits exactly `count`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_concurrent_burst_from_two_nodes_admits_exactly_count() {
    let server = RedisServer::start();
    let nodes = two_nodes(&server).await;
    let limit = Limit {
        count: 10,
        window: Duration::from_secs(30),
    };
    let mut tasks = Vec::new();
    for i in 0..60 {
        let l = nodes[i % 2].clone();
        tasks.push(tokio::spawn(async move {
            l.check("burst", limit).await.expect("redis answers")
        }));
    }
    let mut accepted = 0;
    for t in tasks {
        match t.await.expect("task") {
            Ok(()) => accepted += 1,
            Err(wait) => assert!(
                wait > Duration::from_secs(29) && wait <= limit.window,
                "{wait:?}"
            ),
        }
    }
    assert_eq!(accepted, 10);
}

/// Hammering one key from two nodes for 2 s at 3 per 500 ms: never more than 3 accepted in any 500 ms (checked on
/// the accept times the test saw, with the round trip as slack), and the limit is reached.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn never_more_than_n_in_any_window_across_nodes() {
    let server = RedisServer::start();
    let nodes = two_nodes(&server).await;
    let limit = Limit {
        count: 3,
        window: Duration::from_millis(500),
    };
    let t0 = Instant::now();
    let mut tasks = Vec::new();
    for node in nodes {
        tasks.push(tokio::spawn(async move {
            let mut accepted = Vec::new();
            while t0.elapsed() < Duration::from_secs(2) {
                let sent = t0.elapsed();
                if node
                    .check("hammer", limit)
                    .await
                    .expect("redis answers")
                    .is_ok()
                {
                    accepted.push(sent);
                }
                tokio::time::sleep(Duration::from_millis(3)).await;
            }
            accepted
        }));
    }
    let mut accepted = Vec::new();
    for t in tasks {
        accepted.extend(t.await.expect("task"));
    }
    accepted.sort();
    // An event accepted at server time s was sent before s; a window of the server's is at least
    // `window - round trip` wide in sent times. With a 100 ms margin, more than 3 in a window is a real excess.
    let narrow = limit.window - Duration::from_millis(100);
    for (i, t) in accepted.iter().enumerate() {
        let within = accepted[i..]
            .iter()
            .take_while(|u| **u < *t + narrow)
            .count();
        assert!(
            within <= 3,
            "{within} accepted within {narrow:?} from {t:?}: {accepted:?}"
        );
    }
    // 3 per 500 ms over 2 s is 12; a loaded machine's round trips may push the last batch past the end
    assert!(
        accepted.len() >= 9,
        "3 per 500 ms over 2 s: {}",
        accepted.len()
    );
    assert!(accepted.len() <= 15, "{}", accepted.len());
}

/// Idle keys expire by themselves (PEXPIRE to the window) and live under the prefix.
#[tokio::test]
async fn keys_live_under_the_prefix_and_expire_with_their_window() {
    let server = RedisServer::start();
    let l = server.state("meet-test").await.rate_limiter();
    let limit = Limit {
        count: 2,
        window: Duration::from_millis(1500),
    };
    assert_eq!(check(&l, "m/u/typing", limit).await, Ok(()));
    let mut c = server.conn().await;
    let ttl: i64 = redis::cmd("PTTL")
        .arg("meet-test:rl:m/u/typing")
        .query_async(&mut c)
        .await
        .expect("pttl");
    assert!(ttl > 0 && ttl <= 1500, "{ttl}");
    let n: i64 = redis::cmd("ZCARD")
        .arg("meet-test:rl:m/u/typing")
        .query_async(&mut c)
        .await
        .expect("zcard");
    assert_eq!(n, 1);
}
