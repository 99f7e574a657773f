//! Webhooks for integrators (LiveKit's model): `meeting.started`, `meeting.ended`, `participant.joined` and
//! `participant.left` are POSTed as JSON to every configured URL.
//!
//! Durable: the store queues each event in the same transaction as the change it reports (`webhook_outbox`), and
//! this worker delivers from there, so a crash or restart loses none (delivery is at least once; receivers
//! de-duplicate with the event `id`). Ordered: per receiver, a meeting's events go one at a time in the order they
//! happened; other meetings are not held up. Retried: a non-2xx answer, a timeout or a connection error is retried
//! with exponential backoff up to `max_attempts`, then given up (logged, counted). Never in a meeting's way: the
//! only cost on the meeting's path is the outbox insert.
//!
//! Signed: `X-Meet-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>.<raw body>")>` — the receiver
//! recomputes it over the raw body and rejects a mismatch or an old `t` (replay); see docs/webhooks.md.

use futures_util::future::join_all;
use hmac::{Hmac, Mac};
use sha2::Sha256;
use std::time::Duration;
use store::{Store, WebhookDelivery};

#[derive(Clone, Debug)]
pub struct WebhookConfig {
    pub secret: String,
    /// Per attempt (connect + answer).
    pub timeout: Duration,
    pub max_attempts: u32,
    /// Backoff before the 2nd attempt; doubled per attempt up to `retry_max`.
    pub retry_base: Duration,
    pub retry_max: Duration,
}

/// Header value for `body` signed at `t` (Unix seconds).
pub fn signature(secret: &str, t: i64, body: &str) -> String {
    // HMAC accepts keys of any length: new_from_slice cannot fail for it.
    let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(secret.as_bytes()) else {
        return String::new();
    };
    mac.update(t.to_string().as_bytes());
    mac.update(b".");
    mac.update(body.as_bytes());
    let digest = mac.finalize().into_bytes();
    let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
    format!("t={t},v1={hex}")
}

/// The wait before attempt `attempt + 1` after `attempt` failed ones (1-based).
pub fn backoff(cfg: &WebhookConfig, attempt: u32) -> Duration {
    let factor = 1u32 << attempt.saturating_sub(1).min(20);
    cfg.retry_base.saturating_mul(factor).min(cfg.retry_max)
}

/// How long delivered (or given-up) events stay in the outbox.
const KEEP_MS: i64 = 24 * 3600 * 1000;
/// Deliveries started together (each is the head of a different meeting/receiver pair).
const BATCH: u32 = 32;

/// Starts the delivery worker; it runs until the runtime stops.
pub fn spawn(store: Store, cfg: WebhookConfig) -> Result<tokio::task::JoinHandle<()>, String> {
    let client = reqwest::Client::builder()
        .timeout(cfg.timeout)
        .connect_timeout(cfg.timeout)
        .redirect(reqwest::redirect::Policy::none())
        .user_agent(concat!("meet-server-webhooks/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|e| format!("webhooks: HTTP client: {e}"))?;
    Ok(tokio::spawn(run(store, cfg, client)))
}

async fn run(store: Store, cfg: WebhookConfig, client: reqwest::Client) {
    let notify = store.webhook_notify();
    let mut last_prune = 0i64;
    loop {
        let now = proto::time::now_ms();
        if now - last_prune > 3600 * 1000 {
            last_prune = now;
            match store.prune_webhooks(now - KEEP_MS).await {
                Ok(n) if n > 0 => tracing::debug!(n, "webhooks: pruned old deliveries"),
                Ok(_) => {}
                Err(e) => tracing::warn!("webhooks: prune: {e}"),
            }
        }
        let due = match store.due_webhooks(now, BATCH).await {
            Ok(d) => d,
            Err(e) => {
                tracing::warn!("webhooks: reading the outbox: {e}");
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
        };
        if due.is_empty() {
            let wait = match store.next_webhook_due().await {
                Ok(Some(t)) => (t - now).clamp(0, 5_000),
                _ => 5_000,
            };
            let wait = Duration::from_millis(u64::try_from(wait).unwrap_or(0));
            tokio::select! {
                _ = notify.notified() => {}
                _ = tokio::time::sleep(wait) => {}
            }
            continue;
        }
        join_all(due.iter().map(|d| deliver(&store, &cfg, &client, d))).await;
    }
}

async fn deliver(
    store: &Store,
    cfg: &WebhookConfig,
    client: &reqwest::Client,
    d: &WebhookDelivery,
) {
    let attempt = u32::try_from(d.attempts)
        .unwrap_or(u32::MAX)
        .saturating_add(1);
    let t = proto::time::now_ms() / 1000;
    let outcome = client
        .post(&d.url)
        .header("content-type", "application/json")
        .header("x-meet-event", &d.event)
        .header("x-meet-delivery", &d.id)
        .header("x-meet-attempt", attempt.to_string())
        .header("x-meet-signature", signature(&cfg.secret, t, &d.body))
        .body(d.body.clone())
        .send()
        .await;
    let error = match outcome {
        Ok(res) if res.status().is_success() => None,
        Ok(res) => Some(format!("HTTP {}", res.status().as_u16())),
        Err(e) if e.is_timeout() => Some(format!("timed out after {:?}", cfg.timeout)),
        Err(e) => Some(format!("request failed: {e}")),
    };
    let now = proto::time::now_ms();
    let result = match &error {
        None => {
            metrics::counter!("meet_webhooks_delivered_total", "event" => d.event.clone())
                .increment(1);
            store.webhook_delivered(d.seq, now).await
        }
        Some(err) if attempt >= cfg.max_attempts => {
            metrics::counter!("meet_webhooks_given_up_total", "event" => d.event.clone())
                .increment(1);
            tracing::warn!(event = %d.event, id = %d.id, url = %d.url, attempt, "webhook given up: {err}");
            store.webhook_attempt_failed(d.seq, err, now, None).await
        }
        Some(err) => {
            metrics::counter!("meet_webhooks_failed_attempts_total", "event" => d.event.clone())
                .increment(1);
            let wait = backoff(cfg, attempt);
            tracing::info!(event = %d.event, id = %d.id, url = %d.url, attempt, ?wait, "webhook attempt failed: {err}");
            let retry_at = now + i64::try_from(wait.as_millis()).unwrap_or(i64::MAX / 2);
            store
                .webhook_attempt_failed(d.seq, err, now, Some(retry_at))
                .await
        }
    };
    if let Err(e) = result {
        tracing::warn!("webhooks: recording a delivery: {e}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg() -> WebhookConfig {
        WebhookConfig {
            secret: "s".into(),
            timeout: Duration::from_secs(1),
            max_attempts: 5,
            retry_base: Duration::from_millis(100),
            retry_max: Duration::from_millis(1_000),
        }
    }

    #[test]
    fn signature_is_hmac_sha256_over_timestamp_dot_body() {
        // known answer, computed independently (Python: hmac.new(b"secret", b"1700000000.{}", "sha256"))
        let sig = signature("secret", 1_700_000_000, "{}");
        assert_eq!(
            sig,
            "t=1700000000,v1=b8569b78799ff9e3cbff0fc2d63a33a2b57f3282abd07c37ae5e8e7d79a5f163"
        );
        assert_ne!(sig, signature("secret2", 1_700_000_000, "{}"));
        assert_ne!(sig, signature("secret", 1_700_000_001, "{}"));
        assert_ne!(sig, signature("secret", 1_700_000_000, "{ }"));
    }

    #[test]
    fn backoff_doubles_up_to_the_cap() {
        let c = cfg();
        assert_eq!(backoff(&c, 1), Duration::from_millis(100));
        assert_eq!(backoff(&c, 2), Duration::from_millis(200));
        assert_eq!(backoff(&c, 4), Duration::from_millis(800));
        assert_eq!(backoff(&c, 5), Duration::from_millis(1_000));
        assert_eq!(backoff(&c, 60), Duration::from_millis(1_000));
    }
}
