//! Recording control (issue 10): `recording:start|stop|pause|resume`, its states and refusals, the stored rows,
//! and the stops the server makes itself (meeting ended, last participant left, maximum duration). The media and
//! files are the [`RecordingSink`]'s (the `recorder` crate); this module keeps the state machine, in the meeting's
//! runtime state (so every node of a cluster agrees), and says what to emit.

use crate::ports::RecordedProducer;
use crate::request::RecordingAction;
use crate::service::internal;
use crate::{Identity, MeetingService, Outcome, Target};
use proto::events as ev;
use proto::time::{iso8601, now_ms};
use proto::{ErrorCode, MeetingId, RecordingId, WireError};
use state::{MeetingRuntime, RuntimeRecording};
use store::{RecordingRecord, RecordingStatus};

fn err(code: ErrorCode, message: &str) -> WireError {
    WireError::new(code, message)
}

fn options_of(r: &RuntimeRecording) -> ev::RecordingOptions {
    ev::RecordingOptions {
        record_video: r.record_video,
        record_audio: r.record_audio,
        record_chat: r.record_chat,
    }
}

fn ms(v: i64) -> u64 {
    u64::try_from(v).unwrap_or(0)
}

/// `recording` in the snapshot and in the acks.
pub(crate) fn recording_status(rt: &MeetingRuntime, now: i64) -> ev::RecordingStatus {
    match &rt.recording {
        None => idle(),
        Some(r) => ev::RecordingStatus {
            state: if r.paused_at.is_some() {
                "paused"
            } else {
                "recording"
            }
            .to_owned(),
            recording_id: Some(RecordingId::new(r.recording_id.clone())),
            started_by: Some(ev::UserRef {
                user_id: r.started_by_user_id.clone(),
                user_name: r.started_by_name.clone(),
            }),
            started_at: Some(iso8601(r.started_at)),
            options: Some(options_of(r)),
            duration_ms: Some(ms(r.recorded_ms(now))),
        },
    }
}

fn idle() -> ev::RecordingStatus {
    ev::RecordingStatus {
        state: "idle".to_owned(),
        recording_id: None,
        started_by: None,
        started_at: None,
        options: None,
        duration_ms: None,
    }
}

impl MeetingService {
    pub(crate) async fn recording_action(
        &self,
        meeting: &MeetingId,
        who: &Identity,
        action: RecordingAction,
        options: ev::RecordingOptions,
    ) -> Result<Outcome, WireError> {
        let now = now_ms();
        let by = ev::UserRef {
            user_id: who.user_id.clone(),
            user_name: who.user_name.clone(),
        };
        match action {
            RecordingAction::Start => self.start_recording(meeting, who, options, now).await,
            RecordingAction::Stop => {
                let mut taken = None;
                self.modify(meeting, |rt| {
                    taken = rt.recording.take();
                    taken.is_some()
                })
                .await?;
                let Some(r) = taken else {
                    return Err(err(
                        ErrorCode::RecordingNotActive,
                        "this meeting is not being recorded",
                    ));
                };
                let stopped = self
                    .finish_recording(meeting, &r, Some(by), "stopped", now)
                    .await;
                self.audit(
                    meeting,
                    &who.user_id,
                    "recording:stop",
                    None,
                    &r.recording_id,
                )
                .await;
                Ok(Outcome::reply(&idle()).emit(
                    Target::Meeting(meeting.clone()),
                    "recording:stopped",
                    &stopped,
                ))
            }
            RecordingAction::Pause | RecordingAction::Resume => {
                let pause = action == RecordingAction::Pause;
                let mut res: Result<RuntimeRecording, WireError> = Err(err(
                    ErrorCode::RecordingNotActive,
                    "this meeting is not being recorded",
                ));
                let mut status = idle();
                self.modify(meeting, |rt| {
                    let Some(r) = rt.recording.as_mut() else {
                        return false;
                    };
                    match (pause, r.paused_at) {
                        (true, Some(_)) => {
                            res = Err(err(
                                ErrorCode::RecordingPaused,
                                "the recording is already paused",
                            ));
                            return false;
                        }
                        (false, None) => {
                            res = Err(err(
                                ErrorCode::RecordingNotPaused,
                                "the recording is not paused",
                            ));
                            return false;
                        }
                        (true, None) => r.paused_at = Some(now),
                        (false, Some(at)) => {
                            r.paused_ms += now.saturating_sub(at).max(0);
                            r.paused_at = None;
                        }
                    }
                    res = Ok(r.clone());
                    status = recording_status(rt, now);
                    true
                })
                .await?;
                let r = res?;
                if let Some(sink) = &self.recorder {
                    if pause {
                        sink.paused(meeting, now);
                    } else {
                        sink.resumed(meeting, now);
                    }
                }
                let (event, what) = if pause {
                    ("recording:paused", "recording:pause")
                } else {
                    ("recording:resumed", "recording:resume")
                };
                self.audit(meeting, &who.user_id, what, None, &r.recording_id)
                    .await;
                let payload = ev::RecordingPausedEvent {
                    meeting_id: meeting.clone(),
                    recording_id: RecordingId::new(r.recording_id.clone()),
                    host_name: r.started_by_name.clone(),
                    by,
                    duration_ms: ms(r.recorded_ms(now)),
                    timestamp: iso8601(now),
                };
                Ok(Outcome::reply(&status).emit(Target::Meeting(meeting.clone()), event, &payload))
            }
        }
    }

    async fn start_recording(
        &self,
        meeting: &MeetingId,
        who: &Identity,
        options: ev::RecordingOptions,
        now: i64,
    ) -> Result<Outcome, WireError> {
        // Cheap refusals first (the state is checked again, atomically, below).
        let mut active = false;
        self.read(meeting, |rt| {
            active = rt.is_some_and(|r| r.recording.is_some())
        })
        .await?;
        if active {
            return Err(err(
                ErrorCode::RecordingActive,
                "this meeting is already being recorded",
            ));
        }
        if let Some(why) = self.recorder.as_ref().and_then(|s| s.refuse_start()) {
            return Err(WireError::new(ErrorCode::RecordingUnavailable, why));
        }
        let id = RecordingId::generate();
        let r = RuntimeRecording {
            recording_id: id.to_string(),
            started_at: now,
            started_by_user_id: who.user_id.clone(),
            started_by_name: who.user_name.clone(),
            record_video: options.record_video,
            record_audio: options.record_audio,
            record_chat: options.record_chat,
            paused_at: None,
            paused_ms: 0,
        };
        let mut res = Err(err(
            ErrorCode::RecordingActive,
            "this meeting is already being recorded",
        ));
        let mut producers = Vec::new();
        let mut status = idle();
        self.modify(meeting, |rt| {
            if rt.recording.is_some() || rt.ended {
                return false;
            }
            rt.recording = Some(r.clone());
            producers = recorded_producers(rt);
            status = recording_status(rt, now);
            res = Ok(());
            true
        })
        .await?;
        res?;
        let row = RecordingRecord {
            id: id.clone(),
            meeting_id: meeting.clone(),
            status: RecordingStatus::Recording,
            started_by: who.user_id.clone(),
            started_by_name: who.user_name.clone(),
            record_video: options.record_video,
            record_audio: options.record_audio,
            record_chat: options.record_chat,
            started_at: now,
            stopped_at: None,
            duration_ms: None,
            stop_reason: None,
            failure_reason: None,
        };
        if let Err(e) = self.store.insert_recording(&row).await {
            // Undo: nothing changes when a request fails.
            let rid = id.to_string();
            let _ = self
                .modify(meeting, |rt| {
                    if rt.recording.as_ref().is_some_and(|x| x.recording_id == rid) {
                        rt.recording = None;
                        return true;
                    }
                    false
                })
                .await;
            return Err(internal("storing recording", e));
        }
        if let Some(sink) = &self.recorder {
            sink.started(&row, self.media.clone());
            for p in &producers {
                sink.producer_added(meeting, p);
            }
        }
        self.arm_max_duration(meeting, &id);
        self.audit(meeting, &who.user_id, "recording:start", None, id.as_str())
            .await;
        tracing::info!(%meeting, recording = %id, by = %who.user_id, "recording started");
        let payload = ev::RecordingStarted {
            meeting_id: meeting.clone(),
            recording_id: id,
            host_name: who.user_name.clone(),
            started_by: ev::UserRef {
                user_id: who.user_id.clone(),
                user_name: who.user_name.clone(),
            },
            options,
            timestamp: iso8601(now),
        };
        Ok(Outcome::reply(&status).emit(
            Target::Meeting(meeting.clone()),
            "recording:started",
            &payload,
        ))
    }

    /// Stores the stop, tells the recorder, and builds `recording:stopped`. `r` was already taken out of the
    /// runtime state (so exactly one caller finishes a recording).
    pub(crate) async fn finish_recording(
        &self,
        meeting: &MeetingId,
        r: &RuntimeRecording,
        by: Option<ev::UserRef>,
        reason: &str,
        now: i64,
    ) -> ev::RecordingStopped {
        let duration = r.recorded_ms(now);
        let id = RecordingId::new(r.recording_id.clone());
        match self.store.stop_recording(&id, now, duration, reason).await {
            Ok(_) => {}
            Err(e) => {
                tracing::error!(error = %e, recording = %id, "storing a recording's stop failed")
            }
        }
        match &self.recorder {
            Some(sink) => match self.store.get_recording(&id).await {
                Ok(Some(row)) => sink.stopped(&row),
                Ok(None) => tracing::error!(recording = %id, "a stopped recording has no row"),
                Err(e) => {
                    tracing::error!(error = %e, recording = %id, "loading a recording failed")
                }
            },
            None => {
                // No recorder on this node: the row says why there are no files.
                let _ = self
                    .store
                    .set_recording_status(
                        &id,
                        RecordingStatus::Failed,
                        Some("this node has no recorder configured"),
                        now,
                    )
                    .await;
            }
        }
        tracing::info!(%meeting, recording = %id, reason, duration_ms = duration, "recording stopped");
        ev::RecordingStopped {
            meeting_id: meeting.clone(),
            recording_id: id,
            host_name: r.started_by_name.clone(),
            stopped_by: by,
            duration_ms: ms(duration),
            reason: reason.to_owned(),
            timestamp: iso8601(now),
        }
    }

    /// With a maximum duration configured: stops the recording by itself once that much was recorded (paused
    /// time does not count), with `recording:stopped` reason `max-duration`.
    fn arm_max_duration(&self, meeting: &MeetingId, id: &RecordingId) {
        let Some(max) = self.recorder.as_ref().and_then(|s| s.max_duration_ms()) else {
            return;
        };
        let Some(me) = self.weak_self() else {
            return;
        };
        let (meeting, id) = (meeting.clone(), id.to_string());
        tokio::spawn(async move {
            let mut wait = max;
            loop {
                tokio::time::sleep(std::time::Duration::from_millis(wait.max(10))).await;
                let Some(svc) = me.upgrade() else { return };
                let now = now_ms();
                let mut taken = None;
                let mut left = None;
                let res = svc
                    .modify(&meeting, |rt| match &rt.recording {
                        Some(r) if r.recording_id == id => {
                            let done = ms(r.recorded_ms(now));
                            if done + 5 >= max {
                                taken = rt.recording.take();
                                true
                            } else {
                                left = Some(max - done);
                                false
                            }
                        }
                        _ => false,
                    })
                    .await;
                if res.is_err() {
                    return;
                }
                if let Some(r) = taken {
                    let stopped = svc
                        .finish_recording(&meeting, &r, None, "max-duration", now)
                        .await;
                    let out = Outcome::default().emit(
                        Target::Meeting(meeting.clone()),
                        "recording:stopped",
                        &stopped,
                    );
                    let _ = svc.background.send(out);
                    return;
                }
                match left {
                    Some(l) => wait = l,
                    None => return, // stopped or replaced meanwhile
                }
            }
        });
    }

    /// Tells the recorder about a new producer when its meeting is being recorded.
    pub(crate) async fn record_if_recording(&self, meeting: &MeetingId, producer_id: &str) {
        let Some(sink) = &self.recorder else { return };
        let mut found = None;
        let _ = self
            .read(meeting, |rt| {
                let Some(rt) = rt else { return };
                if rt.recording.is_none() {
                    return;
                }
                found = rt.producer(producer_id).map(|(owner, p)| RecordedProducer {
                    producer_id: p.producer_id.clone(),
                    participant_id: owner.participant_id.clone(),
                    user_id: owner.user_id.clone(),
                    user_name: owner.user_name.clone(),
                    kind: p.kind.clone(),
                    source: p.source.clone(),
                });
            })
            .await;
        if let Some(p) = found {
            sink.producer_added(meeting, &p);
        }
    }

    /// A chat message everyone could see, for the transcript of a running recording.
    pub(crate) fn record_chat(&self, meeting: &MeetingId, msg: &store::ChatRecord) {
        if let Some(sink) = &self.recorder {
            sink.chat(meeting, msg);
        }
    }

    /// A meeting's recordings (REST; hosts and moderators).
    pub async fn recordings(
        &self,
        who: &Identity,
        meeting: &MeetingId,
    ) -> Result<Vec<RecordingRecord>, WireError> {
        self.may_see_recordings(who, meeting).await?;
        self.store
            .recordings_of(meeting)
            .await
            .map_err(|e| internal("listing recordings", e))
    }

    /// One recording (REST; hosts and moderators of its meeting). NOT_FOUND when it is not of this meeting.
    pub async fn recording(
        &self,
        who: &Identity,
        meeting: &MeetingId,
        id: &RecordingId,
    ) -> Result<RecordingRecord, WireError> {
        self.may_see_recordings(who, meeting).await?;
        match self
            .store
            .get_recording(id)
            .await
            .map_err(|e| internal("loading recording", e))?
        {
            Some(r) if &r.meeting_id == meeting => Ok(r),
            _ => Err(err(
                ErrorCode::NotFound,
                "no such recording in this meeting",
            )),
        }
    }

    /// Deletes a finished recording's row (REST; the host only). The caller removes its files.
    pub async fn delete_recording(
        &self,
        who: &Identity,
        meeting: &MeetingId,
        id: &RecordingId,
    ) -> Result<RecordingRecord, WireError> {
        let r = self.recording(who, meeting, id).await?;
        let m = self.meeting_record_pub(meeting).await?;
        if m.host_user_id != who.user_id {
            return Err(err(
                ErrorCode::Forbidden,
                "only the host can delete a recording",
            ));
        }
        if matches!(
            r.status,
            RecordingStatus::Recording | RecordingStatus::Processing
        ) {
            return Err(err(
                ErrorCode::RecordingActive,
                "the recording is still being recorded or processed",
            ));
        }
        self.store
            .delete_recording(id)
            .await
            .map_err(|e| internal("deleting recording", e))?;
        self.audit(meeting, &who.user_id, "recording:delete", None, id.as_str())
            .await;
        Ok(r)
    }

    /// Hosts and moderators of the meeting (granted roles are stored, so this holds after the meeting).
    async fn may_see_recordings(
        &self,
        who: &Identity,
        meeting: &MeetingId,
    ) -> Result<(), WireError> {
        let m = self.meeting_record_pub(meeting).await?;
        if m.host_user_id == who.user_id {
            return Ok(());
        }
        let role = self
            .store
            .granted_role(meeting, &who.user_id)
            .await
            .map_err(|e| internal("loading role", e))?;
        if role.is_some_and(proto::Role::can_moderate) {
            return Ok(());
        }
        // Whether the meeting exists is none of an outsider's business either.
        Err(err(
            ErrorCode::Forbidden,
            "only the meeting's hosts and moderators can see its recordings",
        ))
    }
}

/// Every producer of the meeting, for a recording that starts.
pub(crate) fn recorded_producers(rt: &MeetingRuntime) -> Vec<RecordedProducer> {
    rt.in_join_order()
        .into_iter()
        .flat_map(|owner| {
            owner.producers.iter().map(move |p| RecordedProducer {
                producer_id: p.producer_id.clone(),
                participant_id: owner.participant_id.clone(),
                user_id: owner.user_id.clone(),
                user_name: owner.user_name.clone(),
                kind: p.kind.clone(),
                source: p.source.clone(),
            })
        })
        .collect()
}
