//! Persistence: meetings, roles, participant sessions, chat messages, stats reports and the moderation audit log.
//!
//! One code path for both databases: queries go through sqlx's `Any` driver with `$n` placeholders (SQLite accepts
//! them too) and only portable types (TEXT, BIGINT, DOUBLE PRECISION; booleans as 0/1). Only the migrations differ
//! per dialect (auto-increment keys), in `migrations/sqlite` and `migrations/postgres`.

use proto::{MeetingId, MessageId, ParticipantId, Role, UserId};
use sqlx::any::{AnyPoolOptions, AnyRow};
use sqlx::{AnyPool, Row};

mod recordings;
mod webhooks;
pub use recordings::{RecordingRecord, RecordingStatus};
pub use webhooks::{
    WebhookDelivery, WebhookEvent, WebhookMeeting, WebhookParticipant, WebhookStatus,
};

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("unsupported database URL (use sqlite://… or postgres://…): {0}")]
    UnsupportedUrl(String),
    #[error("database error: {0}")]
    Db(#[from] sqlx::Error),
    #[error("migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("could not create the database directory {0}: {1}")]
    Dir(String, std::io::Error),
    #[error("corrupt row: {0}")]
    Corrupt(String),
}

pub type Result<T> = std::result::Result<T, StoreError>;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MeetingStatus {
    Active,
    Ended,
}

impl MeetingStatus {
    fn as_str(self) -> &'static str {
        match self {
            MeetingStatus::Active => "active",
            MeetingStatus::Ended => "ended",
        }
    }
}

/// A meeting's settings as stored.
#[derive(Clone, Debug, PartialEq)]
pub struct MeetingRecord {
    pub id: MeetingId,
    pub title: String,
    pub host_user_id: UserId,
    pub campus_id: String,
    pub max_participants: u32,
    pub recording_enabled: bool,
    pub allow_self_unmute: bool,
    pub allowed_campuses: Vec<String>,
    pub invited_user_ids: Vec<String>,
    pub status: MeetingStatus,
    pub created_at: i64,
    pub ended_at: Option<i64>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RecipientType {
    All,
    Private,
    Host,
}

impl RecipientType {
    pub fn as_str(self) -> &'static str {
        match self {
            RecipientType::All => "all",
            RecipientType::Private => "private",
            RecipientType::Host => "host",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "all" => Some(RecipientType::All),
            "private" => Some(RecipientType::Private),
            "host" => Some(RecipientType::Host),
            _ => None,
        }
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct ChatRecord {
    pub id: MessageId,
    pub meeting_id: MeetingId,
    pub sender_id: UserId,
    pub sender_name: String,
    pub message: String,
    pub recipient_type: RecipientType,
    pub recipient_id: Option<UserId>,
    pub created_at: i64,
}

/// One `stats:report` as stored.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct StatsRecord {
    pub rtt: Option<f64>,
    pub packet_loss: Option<f64>,
    pub jitter: Option<f64>,
    pub bitrate: Option<f64>,
}

/// Who reads chat history: private messages only their own, `host` messages only hosts/moderators and the sender.
#[derive(Clone, Debug)]
pub struct Viewer<'a> {
    pub user_id: &'a UserId,
    pub sees_host_messages: bool,
}

#[derive(Clone)]
pub struct Store {
    pool: AnyPool,
    backend: Backend,
    /// Webhook receivers (empty: webhooks off). See `webhooks.rs`.
    webhook_urls: std::sync::Arc<[String]>,
    webhook_notify: std::sync::Arc<tokio::sync::Notify>,
}

impl Store {
    /// Connects (creating an SQLite file and its directory when missing) and runs the migrations.
    pub async fn connect(url: &str) -> Result<Self> {
        sqlx::any::install_default_drivers();
        let backend = if url.starts_with("sqlite:") {
            Backend::Sqlite
        } else if url.starts_with("postgres:") || url.starts_with("postgresql:") {
            Backend::Postgres
        } else {
            return Err(StoreError::UnsupportedUrl(redact_url(url)));
        };
        let mut options = AnyPoolOptions::new();
        if backend == Backend::Sqlite {
            ensure_sqlite_dir(url)?;
            options = options.max_connections(4).after_connect(|conn, _| {
                Box::pin(async move {
                    // WAL lets readers run beside the writer; foreign keys are off by default in SQLite.
                    sqlx::query("PRAGMA journal_mode = WAL")
                        .execute(&mut *conn)
                        .await?;
                    sqlx::query("PRAGMA foreign_keys = ON")
                        .execute(&mut *conn)
                        .await?;
                    // In WAL mode NORMAL survives application crashes (only an OS crash or power loss can lose
                    // the last commits) and saves an fsync per write; chat is written per message.
                    sqlx::query("PRAGMA synchronous = NORMAL")
                        .execute(&mut *conn)
                        .await?;
                    sqlx::query("PRAGMA busy_timeout = 5000")
                        .execute(&mut *conn)
                        .await?;
                    Ok(())
                })
            });
        } else {
            options = options.max_connections(16);
        }
        let pool = options.connect(url).await?;
        match backend {
            Backend::Sqlite => sqlx::migrate!("migrations/sqlite").run(&pool).await?,
            Backend::Postgres => sqlx::migrate!("migrations/postgres").run(&pool).await?,
        }
        Ok(Self {
            pool,
            backend,
            webhook_urls: Vec::new().into(),
            webhook_notify: Default::default(),
        })
    }

    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// Readiness: the database answers a trivial query.
    pub async fn ping(&self) -> Result<()> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }

    /// Waits for in-flight queries and closes every connection (graceful shutdown).
    pub async fn close(&self) {
        self.pool.close().await;
    }

    // ---- meetings

    pub async fn insert_meeting(&self, m: &MeetingRecord) -> Result<()> {
        sqlx::query(
            "INSERT INTO meetings (id, title, host_user_id, campus_id, max_participants, recording_enabled, \
             allow_self_unmute, allowed_campuses, invited_user_ids, status, created_at, ended_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)",
        )
        .bind(m.id.as_str())
        .bind(&m.title)
        .bind(m.host_user_id.as_str())
        .bind(&m.campus_id)
        .bind(i64::from(m.max_participants))
        .bind(i64::from(m.recording_enabled))
        .bind(i64::from(m.allow_self_unmute))
        .bind(json_list(&m.allowed_campuses))
        .bind(json_list(&m.invited_user_ids))
        .bind(m.status.as_str())
        .bind(m.created_at)
        .bind(m.ended_at)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    pub async fn get_meeting(&self, id: &MeetingId) -> Result<Option<MeetingRecord>> {
        let row = sqlx::query(
            "SELECT id, title, host_user_id, campus_id, max_participants, recording_enabled, allow_self_unmute, \
             allowed_campuses, invited_user_ids, status, created_at, ended_at FROM meetings WHERE id = $1",
        )
        .bind(id.as_str())
        .fetch_optional(&self.pool)
        .await?;
        row.map(|r| meeting_from_row(&r)).transpose()
    }

    /// Marks a meeting ended. Returns false when it was not active (already ended or unknown). With webhooks on,
    /// `meeting.ended` is queued in the same transaction.
    pub async fn end_meeting(&self, id: &MeetingId, at: i64) -> Result<bool> {
        const END: &str = "UPDATE meetings SET status = 'ended', ended_at = $1 WHERE id = $2 AND status = 'active'";
        if !self.webhooks_enabled() {
            let done = sqlx::query(END)
                .bind(at)
                .bind(id.as_str())
                .execute(&self.pool)
                .await?;
            return Ok(done.rows_affected() > 0);
        }
        let mut tx = self.pool.begin().await?;
        let done = sqlx::query(END)
            .bind(at)
            .bind(id.as_str())
            .execute(&mut *tx)
            .await?;
        let ended = done.rows_affected() > 0;
        if ended {
            let meeting = Self::meeting_for_hook(&mut tx, id.as_str(), Some(at)).await?;
            let ev = WebhookEvent {
                id: webhooks::event_id(),
                event: "meeting.ended",
                created_at: proto::time::iso8601(at),
                meeting_id: id.as_str().to_owned(),
                meeting,
                participant: None,
            };
            self.enqueue(&mut tx, &ev, at).await?;
        }
        tx.commit().await?;
        if ended {
            self.webhook_notify.notify_one();
        }
        Ok(ended)
    }

    pub async fn count_active_meetings(&self) -> Result<i64> {
        let row = sqlx::query("SELECT COUNT(*) AS n FROM meetings WHERE status = 'active'")
            .fetch_one(&self.pool)
            .await?;
        Ok(row.try_get::<i64, _>("n")?)
    }

    // ---- roles

    /// Grants `role` (moderator) or, with `Role::Participant`, removes a granted role.
    pub async fn set_role(&self, meeting: &MeetingId, user: &UserId, role: Role) -> Result<()> {
        sqlx::query("DELETE FROM meeting_roles WHERE meeting_id = $1 AND user_id = $2")
            .bind(meeting.as_str())
            .bind(user.as_str())
            .execute(&self.pool)
            .await?;
        if role != Role::Participant {
            sqlx::query(
                "INSERT INTO meeting_roles (meeting_id, user_id, role) VALUES ($1, $2, $3)",
            )
            .bind(meeting.as_str())
            .bind(user.as_str())
            .bind(role.as_str())
            .execute(&self.pool)
            .await?;
        }
        Ok(())
    }

    /// The role granted to `user` in `meeting`, if any (the host's role comes from the meeting itself).
    pub async fn granted_role(&self, meeting: &MeetingId, user: &UserId) -> Result<Option<Role>> {
        let row =
            sqlx::query("SELECT role FROM meeting_roles WHERE meeting_id = $1 AND user_id = $2")
                .bind(meeting.as_str())
                .bind(user.as_str())
                .fetch_optional(&self.pool)
                .await?;
        row.map(|r| {
            let s: String = r.try_get("role")?;
            parse_role(&s)
        })
        .transpose()
    }

    // ---- participant sessions

    /// Records a participant's session. With webhooks on, `participant.joined` (and `meeting.started` for the
    /// meeting's first participant ever) is queued in the same transaction.
    pub async fn open_session(
        &self,
        id: &ParticipantId,
        meeting: &MeetingId,
        user: &UserId,
        user_name: &str,
        role: Role,
        at: i64,
    ) -> Result<()> {
        const OPEN: &str = "INSERT INTO participant_sessions (id, meeting_id, user_id, user_name, role, joined_at) \
                            VALUES ($1, $2, $3, $4, $5, $6)";
        let bind = |q: sqlx::query::Query<'static, sqlx::Any, sqlx::any::AnyArguments<'static>>| {
            q.bind(id.as_str().to_owned())
                .bind(meeting.as_str().to_owned())
                .bind(user.as_str().to_owned())
                .bind(user_name.to_owned())
                .bind(role.as_str())
                .bind(at)
        };
        if !self.webhooks_enabled() {
            bind(sqlx::query(OPEN)).execute(&self.pool).await?;
            return Ok(());
        }
        let mut tx = self.pool.begin().await?;
        bind(sqlx::query(OPEN)).execute(&mut *tx).await?;
        // exactly one session marks the meeting started, however many join at once
        let first =
            sqlx::query("UPDATE meetings SET started_at = $1 WHERE id = $2 AND started_at IS NULL")
                .bind(at)
                .bind(meeting.as_str())
                .execute(&mut *tx)
                .await?
                .rows_affected()
                > 0;
        if first {
            let ev = WebhookEvent {
                id: webhooks::event_id(),
                event: "meeting.started",
                created_at: proto::time::iso8601(at),
                meeting_id: meeting.as_str().to_owned(),
                meeting: Self::meeting_for_hook(&mut tx, meeting.as_str(), None).await?,
                participant: None,
            };
            self.enqueue(&mut tx, &ev, at).await?;
        }
        let ev = WebhookEvent {
            id: webhooks::event_id(),
            event: "participant.joined",
            created_at: proto::time::iso8601(at),
            meeting_id: meeting.as_str().to_owned(),
            meeting: None,
            participant: Some(webhooks::participant_for_hook(
                id,
                user.as_str(),
                user_name,
                role.as_str(),
            )),
        };
        self.enqueue(&mut tx, &ev, at).await?;
        tx.commit().await?;
        self.webhook_notify.notify_one();
        Ok(())
    }

    /// Closes a participant's session (once). With webhooks on, `participant.left` is queued in the same
    /// transaction.
    pub async fn close_session(&self, id: &ParticipantId, at: i64) -> Result<()> {
        const CLOSE: &str =
            "UPDATE participant_sessions SET left_at = $1 WHERE id = $2 AND left_at IS NULL";
        if !self.webhooks_enabled() {
            sqlx::query(CLOSE)
                .bind(at)
                .bind(id.as_str())
                .execute(&self.pool)
                .await?;
            return Ok(());
        }
        let mut tx = self.pool.begin().await?;
        let closed = sqlx::query(CLOSE)
            .bind(at)
            .bind(id.as_str())
            .execute(&mut *tx)
            .await?
            .rows_affected()
            > 0;
        if closed {
            let row = sqlx::query("SELECT meeting_id, user_id, user_name, role FROM participant_sessions WHERE id = $1")
                .bind(id.as_str())
                .fetch_one(&mut *tx)
                .await?;
            let meeting_id: String = row.try_get("meeting_id")?;
            let user: String = row.try_get("user_id")?;
            let name: String = row.try_get("user_name")?;
            let role: String = row.try_get("role")?;
            let ev = WebhookEvent {
                id: webhooks::event_id(),
                event: "participant.left",
                created_at: proto::time::iso8601(at),
                meeting_id,
                meeting: None,
                participant: Some(webhooks::participant_for_hook(id, &user, &name, &role)),
            };
            self.enqueue(&mut tx, &ev, at).await?;
        }
        tx.commit().await?;
        if closed {
            self.webhook_notify.notify_one();
        }
        Ok(())
    }

    // ---- chat

    pub async fn insert_message(&self, m: &ChatRecord) -> Result<()> {
        sqlx::query(
            "INSERT INTO chat_messages (id, meeting_id, sender_id, sender_name, message, message_type, \
             recipient_type, recipient_id, created_at) VALUES ($1, $2, $3, $4, $5, 'text', $6, $7, $8)",
        )
        .bind(m.id.as_str())
        .bind(m.meeting_id.as_str())
        .bind(m.sender_id.as_str())
        .bind(&m.sender_name)
        .bind(&m.message)
        .bind(m.recipient_type.as_str())
        .bind(m.recipient_id.as_ref().map(|u| u.as_str().to_owned()))
        .bind(m.created_at)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Up to `limit` messages of `meeting` that `viewer` may see, older than message `before` (when given),
    /// oldest first.
    pub async fn messages_visible(
        &self,
        meeting: &MeetingId,
        viewer: &Viewer<'_>,
        before: Option<&MessageId>,
        limit: u32,
    ) -> Result<Vec<ChatRecord>> {
        let before_seq = match before {
            None => i64::MAX,
            Some(id) => {
                let row =
                    sqlx::query("SELECT seq FROM chat_messages WHERE id = $1 AND meeting_id = $2")
                        .bind(id.as_str())
                        .bind(meeting.as_str())
                        .fetch_optional(&self.pool)
                        .await?;
                match row {
                    Some(r) => r.try_get::<i64, _>("seq")?,
                    None => return Ok(Vec::new()),
                }
            }
        };
        let rows = sqlx::query(
            "SELECT id, meeting_id, sender_id, sender_name, message, recipient_type, recipient_id, created_at \
             FROM chat_messages WHERE meeting_id = $1 AND seq < $2 \
             AND (recipient_type = 'all' OR sender_id = $3 \
                  OR (recipient_type = 'private' AND recipient_id = $3) \
                  OR (recipient_type = 'host' AND $4 = 1)) \
             ORDER BY seq DESC LIMIT $5",
        )
        .bind(meeting.as_str())
        .bind(before_seq)
        .bind(viewer.user_id.as_str())
        .bind(i64::from(viewer.sees_host_messages))
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?;
        let mut out = rows.iter().map(chat_from_row).collect::<Result<Vec<_>>>()?;
        out.reverse();
        Ok(out)
    }

    // ---- stats and audit

    pub async fn insert_stats(
        &self,
        meeting: &MeetingId,
        participant: &ParticipantId,
        user: &UserId,
        s: &StatsRecord,
        at: i64,
    ) -> Result<()> {
        sqlx::query(
            "INSERT INTO stats_reports (meeting_id, participant_id, user_id, rtt, packet_loss, jitter, bitrate, \
             created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .bind(meeting.as_str())
        .bind(participant.as_str())
        .bind(user.as_str())
        .bind(s.rtt)
        .bind(s.packet_loss)
        .bind(s.jitter)
        .bind(s.bitrate)
        .bind(at)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Stored stats reports of one participant, oldest first (for operators and tests).
    pub async fn stats_of(&self, participant: &ParticipantId) -> Result<Vec<StatsRecord>> {
        let rows = sqlx::query(
            "SELECT rtt, packet_loss, jitter, bitrate FROM stats_reports WHERE participant_id = $1 ORDER BY seq",
        )
        .bind(participant.as_str())
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(StatsRecord {
                    rtt: r.try_get("rtt")?,
                    packet_loss: r.try_get("packet_loss")?,
                    jitter: r.try_get("jitter")?,
                    bitrate: r.try_get("bitrate")?,
                })
            })
            .collect()
    }

    /// Records a moderation action (mute, role change, spotlight, layout, end).
    pub async fn audit(
        &self,
        meeting: &MeetingId,
        actor: &UserId,
        action: &str,
        target: Option<&UserId>,
        detail: &str,
        at: i64,
    ) -> Result<()> {
        sqlx::query(
            "INSERT INTO audit_log (meeting_id, actor_user_id, action, target_user_id, detail, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(meeting.as_str())
        .bind(actor.as_str())
        .bind(action)
        .bind(target.map(|t| t.as_str().to_owned()))
        .bind(detail)
        .bind(at)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// The audit trail of one meeting as `(actor, action, target)`, oldest first.
    pub async fn audit_of(
        &self,
        meeting: &MeetingId,
    ) -> Result<Vec<(String, String, Option<String>)>> {
        let rows = sqlx::query(
            "SELECT actor_user_id, action, target_user_id FROM audit_log WHERE meeting_id = $1 ORDER BY seq",
        )
        .bind(meeting.as_str())
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok((
                    r.try_get("actor_user_id")?,
                    r.try_get("action")?,
                    r.try_get("target_user_id")?,
                ))
            })
            .collect()
    }
}

fn json_list(v: &[String]) -> String {
    serde_json::to_string(v).unwrap_or_else(|_| "[]".to_owned())
}

fn parse_list(s: &str) -> Result<Vec<String>> {
    serde_json::from_str(s).map_err(|e| StoreError::Corrupt(format!("list column: {e}")))
}

fn parse_role(s: &str) -> Result<Role> {
    match s {
        "host" => Ok(Role::Host),
        "moderator" => Ok(Role::Moderator),
        "participant" => Ok(Role::Participant),
        other => Err(StoreError::Corrupt(format!("role {other:?}"))),
    }
}

fn meeting_from_row(r: &AnyRow) -> Result<MeetingRecord> {
    let status: String = r.try_get("status")?;
    let max: i64 = r.try_get("max_participants")?;
    Ok(MeetingRecord {
        id: MeetingId::new(r.try_get::<String, _>("id")?),
        title: r.try_get("title")?,
        host_user_id: UserId::new(r.try_get::<String, _>("host_user_id")?),
        campus_id: r.try_get("campus_id")?,
        max_participants: u32::try_from(max)
            .map_err(|_| StoreError::Corrupt("max_participants".into()))?,
        recording_enabled: r.try_get::<i64, _>("recording_enabled")? != 0,
        allow_self_unmute: r.try_get::<i64, _>("allow_self_unmute")? != 0,
        allowed_campuses: parse_list(&r.try_get::<String, _>("allowed_campuses")?)?,
        invited_user_ids: parse_list(&r.try_get::<String, _>("invited_user_ids")?)?,
        status: match status.as_str() {
            "active" => MeetingStatus::Active,
            "ended" => MeetingStatus::Ended,
            other => return Err(StoreError::Corrupt(format!("status {other:?}"))),
        },
        created_at: r.try_get("created_at")?,
        ended_at: r.try_get("ended_at")?,
    })
}

fn chat_from_row(r: &AnyRow) -> Result<ChatRecord> {
    let rt: String = r.try_get("recipient_type")?;
    Ok(ChatRecord {
        id: MessageId::new(r.try_get::<String, _>("id")?),
        meeting_id: MeetingId::new(r.try_get::<String, _>("meeting_id")?),
        sender_id: UserId::new(r.try_get::<String, _>("sender_id")?),
        sender_name: r.try_get("sender_name")?,
        message: r.try_get("message")?,
        recipient_type: RecipientType::parse(&rt)
            .ok_or_else(|| StoreError::Corrupt(format!("recipient_type {rt:?}")))?,
        recipient_id: r
            .try_get::<Option<String>, _>("recipient_id")?
            .map(UserId::new),
        created_at: r.try_get("created_at")?,
    })
}

/// Creates the directory of an SQLite database file (`sqlite://dir/file.db?…`, `sqlite:dir/file.db`).
fn ensure_sqlite_dir(url: &str) -> Result<()> {
    let rest = url.trim_start_matches("sqlite:").trim_start_matches("//");
    let path = rest.split('?').next().unwrap_or("");
    if path.is_empty() || path.starts_with(":memory:") {
        return Ok(());
    }
    if let Some(dir) = std::path::Path::new(path).parent() {
        if !dir.as_os_str().is_empty() {
            std::fs::create_dir_all(dir)
                .map_err(|e| StoreError::Dir(dir.display().to_string(), e))?;
        }
    }
    Ok(())
}

/// A database URL fit for logs: the password, if any, replaced.
pub fn redact_url(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme_end), Some(at)) if at > scheme_end => {
            let creds = &url[scheme_end + 3..at];
            match creds.find(':') {
                Some(colon) => format!(
                    "{}{}:***{}",
                    &url[..scheme_end + 3],
                    &creds[..colon],
                    &url[at..]
                ),
                None => url.to_owned(),
            }
        }
        _ => url.to_owned(),
    }
}

#[cfg(test)]
mod tests;
