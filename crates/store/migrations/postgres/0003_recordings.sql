-- Recordings (issue 10): one row per recording; its files live in a folder named by its id under the recording
-- directory. status: recording -> processing -> ready | failed (failure_reason says why).
CREATE TABLE recordings (
    id TEXT PRIMARY KEY,
    meeting_id TEXT NOT NULL REFERENCES meetings(id),
    status TEXT NOT NULL,
    started_by TEXT NOT NULL,
    started_by_name TEXT NOT NULL,
    record_video BIGINT NOT NULL,
    record_audio BIGINT NOT NULL,
    record_chat BIGINT NOT NULL,
    started_at BIGINT NOT NULL,
    stopped_at BIGINT,
    duration_ms BIGINT,
    stop_reason TEXT,
    failure_reason TEXT,
    updated_at BIGINT NOT NULL
);
CREATE INDEX recordings_meeting ON recordings(meeting_id, started_at);
CREATE INDEX recordings_status ON recordings(status);
