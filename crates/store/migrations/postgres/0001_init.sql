-- Meetings, their roles, participant sessions, chat, stats reports and the moderation audit log.
-- Times are Unix milliseconds (BIGINT); booleans are 0/1 BIGINT so one query path serves SQLite and PostgreSQL.
CREATE TABLE meetings (
    id TEXT PRIMARY KEY,
    title TEXT NOT NULL,
    host_user_id TEXT NOT NULL,
    campus_id TEXT NOT NULL,
    max_participants BIGINT NOT NULL,
    recording_enabled BIGINT NOT NULL,
    allow_self_unmute BIGINT NOT NULL,
    allowed_campuses TEXT NOT NULL,
    invited_user_ids TEXT NOT NULL,
    status TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    ended_at BIGINT
);

CREATE TABLE meeting_roles (
    meeting_id TEXT NOT NULL REFERENCES meetings(id),
    user_id TEXT NOT NULL,
    role TEXT NOT NULL,
    PRIMARY KEY (meeting_id, user_id)
);

CREATE TABLE participant_sessions (
    id TEXT PRIMARY KEY,
    meeting_id TEXT NOT NULL REFERENCES meetings(id),
    user_id TEXT NOT NULL,
    user_name TEXT NOT NULL,
    role TEXT NOT NULL,
    joined_at BIGINT NOT NULL,
    left_at BIGINT
);
CREATE INDEX participant_sessions_meeting ON participant_sessions(meeting_id);

CREATE TABLE chat_messages (
    seq BIGSERIAL PRIMARY KEY,
    id TEXT NOT NULL UNIQUE,
    meeting_id TEXT NOT NULL REFERENCES meetings(id),
    sender_id TEXT NOT NULL,
    sender_name TEXT NOT NULL,
    message TEXT NOT NULL,
    message_type TEXT NOT NULL,
    recipient_type TEXT NOT NULL,
    recipient_id TEXT,
    created_at BIGINT NOT NULL
);
CREATE INDEX chat_messages_meeting_seq ON chat_messages(meeting_id, seq);

CREATE TABLE stats_reports (
    seq BIGSERIAL PRIMARY KEY,
    meeting_id TEXT NOT NULL,
    participant_id TEXT NOT NULL,
    user_id TEXT NOT NULL,
    rtt DOUBLE PRECISION,
    packet_loss DOUBLE PRECISION,
    jitter DOUBLE PRECISION,
    bitrate DOUBLE PRECISION,
    created_at BIGINT NOT NULL
);
CREATE INDEX stats_reports_meeting ON stats_reports(meeting_id, seq);

CREATE TABLE audit_log (
    seq BIGSERIAL PRIMARY KEY,
    meeting_id TEXT NOT NULL,
    actor_user_id TEXT NOT NULL,
    action TEXT NOT NULL,
    target_user_id TEXT,
    detail TEXT NOT NULL,
    created_at BIGINT NOT NULL
);
CREATE INDEX audit_log_meeting ON audit_log(meeting_id, seq);
