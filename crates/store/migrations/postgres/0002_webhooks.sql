-- Webhook outbox: one row per (event, receiver URL), written in the same transaction as the change it reports, so
-- a restart loses none. Delivered in seq order per (url, meeting); rows are kept a day after delivery.
CREATE TABLE webhook_outbox (
    seq BIGSERIAL PRIMARY KEY,
    id TEXT NOT NULL,
    url TEXT NOT NULL,
    meeting_id TEXT NOT NULL,
    event TEXT NOT NULL,
    body TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    attempts BIGINT NOT NULL DEFAULT 0,
    next_attempt_at BIGINT NOT NULL,
    last_error TEXT,
    delivered_at BIGINT,
    failed_at BIGINT
);
CREATE INDEX webhook_outbox_pending ON webhook_outbox(url, meeting_id, seq)
    WHERE delivered_at IS NULL AND failed_at IS NULL;
CREATE INDEX webhook_outbox_due ON webhook_outbox(next_attempt_at)
    WHERE delivered_at IS NULL AND failed_at IS NULL;
-- When a meeting's first participant ever joined (meeting.started is reported once per meeting).
ALTER TABLE meetings ADD COLUMN started_at BIGINT;
