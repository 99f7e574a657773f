//! The webhook outbox: events for integrators (`meeting.started`, `meeting.ended`, `participant.joined`,
//! `participant.left`) written in the same transaction as the change they report, one row per receiver URL, so a
//! crash or restart loses none. The `webhooks` crate delivers them (signing, retries, order per meeting).

use crate::{Result, Store};
use proto::{MeetingId, ParticipantId};
use serde::Serialize;
use sqlx::{Any, Row, Transaction};

/// What a receiver gets as the POST body (JSON, camelCase).
#[derive(Clone, Debug, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct WebhookEvent {
    /// Unique per event (the same for every receiver URL and every retry): receivers de-duplicate with it.
    pub id: String,
    /// `meeting.started` | `meeting.ended` | `participant.joined` | `participant.left`
    pub event: &'static str,
    /// ISO 8601 UTC, when the change happened.
    pub created_at: String,
    pub meeting_id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub meeting: Option<WebhookMeeting>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub participant: Option<WebhookParticipant>,
}

#[derive(Clone, Debug, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct WebhookMeeting {
    pub meeting_id: String,
    pub title: String,
    pub host_user_id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ended_at: Option<String>,
}

#[derive(Clone, Debug, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct WebhookParticipant {
    pub participant_id: String,
    pub user_id: String,
    pub user_name: String,
    pub role: String,
}

/// One pending delivery.
#[derive(Clone, Debug, PartialEq)]
pub struct WebhookDelivery {
    pub seq: i64,
    pub id: String,
    pub url: String,
    pub meeting_id: String,
    pub event: String,
    pub body: String,
    pub attempts: i64,
}

/// Where a delivery ended up (for tests and diagnostics).
#[derive(Clone, Debug, PartialEq)]
pub struct WebhookStatus {
    pub event: String,
    pub url: String,
    pub attempts: i64,
    pub delivered: bool,
    pub failed: bool,
    pub last_error: Option<String>,
}

impl Store {
    /// Receivers every event is queued for (none: nothing is queued, the old single-statement paths are used).
    pub fn set_webhook_urls(&mut self, urls: Vec<String>) {
        self.webhook_urls = urls.into();
    }

    pub fn webhooks_enabled(&self) -> bool {
        !self.webhook_urls.is_empty()
    }

    /// Woken whenever events were queued.
    pub fn webhook_notify(&self) -> std::sync::Arc<tokio::sync::Notify> {
        self.webhook_notify.clone()
    }

    pub(crate) async fn enqueue(
        &self,
        tx: &mut Transaction<'static, Any>,
        ev: &WebhookEvent,
        at: i64,
    ) -> Result<()> {
        let body =
            serde_json::to_string(ev).map_err(|e| crate::StoreError::Corrupt(e.to_string()))?;
        for url in self.webhook_urls.iter() {
            sqlx::query(
                "INSERT INTO webhook_outbox (id, url, meeting_id, event, body, created_at, next_attempt_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $6)",
            )
            .bind(&ev.id)
            .bind(url)
            .bind(&ev.meeting_id)
            .bind(ev.event)
            .bind(&body)
            .bind(at)
            .execute(&mut **tx)
            .await?;
        }
        Ok(())
    }

    pub(crate) async fn meeting_for_hook(
        tx: &mut Transaction<'static, Any>,
        meeting: &str,
        ended_at: Option<i64>,
    ) -> Result<Option<WebhookMeeting>> {
        let row = sqlx::query("SELECT title, host_user_id FROM meetings WHERE id = $1")
            .bind(meeting)
            .fetch_optional(&mut **tx)
            .await?;
        Ok(match row {
            None => None,
            Some(r) => Some(WebhookMeeting {
                meeting_id: meeting.to_owned(),
                title: r.try_get("title")?,
                host_user_id: r.try_get("host_user_id")?,
                ended_at: ended_at.map(proto::time::iso8601),
            }),
        })
    }

    /// The next deliveries that are due: for each (url, meeting) only its oldest undelivered event, so events of
    /// one meeting reach a receiver in order while other meetings go on.
    pub async fn due_webhooks(&self, now: i64, limit: u32) -> Result<Vec<WebhookDelivery>> {
        let rows = sqlx::query(
            "SELECT o.seq, o.id, o.url, o.meeting_id, o.event, o.body, o.attempts FROM webhook_outbox o \
             WHERE o.delivered_at IS NULL AND o.failed_at IS NULL AND o.next_attempt_at <= $1 \
             AND NOT EXISTS (SELECT 1 FROM webhook_outbox p WHERE p.url = o.url AND p.meeting_id = o.meeting_id \
                             AND p.seq < o.seq AND p.delivered_at IS NULL AND p.failed_at IS NULL) \
             ORDER BY o.seq LIMIT $2",
        )
        .bind(now)
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(WebhookDelivery {
                    seq: r.try_get("seq")?,
                    id: r.try_get("id")?,
                    url: r.try_get("url")?,
                    meeting_id: r.try_get("meeting_id")?,
                    event: r.try_get("event")?,
                    body: r.try_get("body")?,
                    attempts: r.try_get("attempts")?,
                })
            })
            .collect()
    }

    /// When the earliest pending delivery is due (None: nothing pending).
    pub async fn next_webhook_due(&self) -> Result<Option<i64>> {
        let row = sqlx::query(
            "SELECT MIN(next_attempt_at) AS t FROM webhook_outbox WHERE delivered_at IS NULL AND failed_at IS NULL",
        )
        .fetch_one(&self.pool)
        .await?;
        Ok(row.try_get::<Option<i64>, _>("t")?)
    }

    pub async fn webhook_delivered(&self, seq: i64, at: i64) -> Result<()> {
        sqlx::query(
            "UPDATE webhook_outbox SET delivered_at = $1, attempts = attempts + 1 WHERE seq = $2",
        )
        .bind(at)
        .bind(seq)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// A failed attempt: retried at `retry_at`, or given up (`None`) after the last attempt.
    pub async fn webhook_attempt_failed(
        &self,
        seq: i64,
        error: &str,
        at: i64,
        retry_at: Option<i64>,
    ) -> Result<()> {
        let error: String = error.chars().take(500).collect();
        match retry_at {
            Some(t) => sqlx::query(
                "UPDATE webhook_outbox SET attempts = attempts + 1, last_error = $1, next_attempt_at = $2 \
                 WHERE seq = $3",
            )
            .bind(error)
            .bind(t)
            .bind(seq),
            None => sqlx::query(
                "UPDATE webhook_outbox SET attempts = attempts + 1, last_error = $1, failed_at = $2 WHERE seq = $3",
            )
            .bind(error)
            .bind(at)
            .bind(seq),
        }
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Forgets deliveries that ended (delivered or given up) before `before`.
    pub async fn prune_webhooks(&self, before: i64) -> Result<u64> {
        let done = sqlx::query(
            "DELETE FROM webhook_outbox WHERE (delivered_at IS NOT NULL AND delivered_at < $1) \
             OR (failed_at IS NOT NULL AND failed_at < $1)",
        )
        .bind(before)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected())
    }

    /// Every queued event of a meeting, oldest first (diagnostics and tests).
    pub async fn webhooks_of(&self, meeting: &MeetingId) -> Result<Vec<WebhookStatus>> {
        let rows = sqlx::query(
            "SELECT event, url, attempts, delivered_at, failed_at, last_error FROM webhook_outbox \
             WHERE meeting_id = $1 ORDER BY seq",
        )
        .bind(meeting.as_str())
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(WebhookStatus {
                    event: r.try_get("event")?,
                    url: r.try_get("url")?,
                    attempts: r.try_get("attempts")?,
                    delivered: r.try_get::<Option<i64>, _>("delivered_at")?.is_some(),
                    failed: r.try_get::<Option<i64>, _>("failed_at")?.is_some(),
                    last_error: r.try_get("last_error")?,
                })
            })
            .collect()
    }
}

/// A new event id.
pub(crate) fn event_id() -> String {
    format!("evt_{}", proto::ids::random_base62(22))
}

pub(crate) fn participant_for_hook(
    id: &ParticipantId,
    user: &str,
    name: &str,
    role: &str,
) -> WebhookParticipant {
    WebhookParticipant {
        participant_id: id.as_str().to_owned(),
        user_id: user.to_owned(),
        user_name: name.to_owned(),
        role: role.to_owned(),
    }
}
