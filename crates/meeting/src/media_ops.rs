//! The WebRTC requests of the guide on top of the media engine: transports, producers, consumers, pause/resume,
//! moderator mute, paced `new-producer` announcements, and cleanup when participants leave.
//!
//! Ownership: every transport, producer and consumer id is recorded on its participant in the runtime state, and
//! a request may name only its own (else NOT_FOUND, never another participant's). The media worker keys routers
//! by meeting id, so a consumer can only ever attach to a producer of the same meeting.

use crate::ports::MediaAt;
use crate::request::{ConsumeTarget, MediaOp, MuteType};
use crate::service::MeetingService;
use crate::service::{media_kind, source_of};
use crate::{Emit, Outcome, Target};
use proto::events as ev;
use proto::{ErrorCode, MeetingId, ParticipantId, UserId, WireError};
use sfu::{Direction, Kind, SfuError};
use state::{MeetingRuntime, RuntimeConsumer, RuntimeParticipant, RuntimeProducer};
use std::time::Duration;

/// A participant's `stats:report` (rtt and jitter in ms, packetLoss in %) joins the server's own figures for its
/// connection quality, on its send transport (or its recv transport when it sends nothing).
pub(crate) async fn client_stats(
    svc: &MeetingService,
    meeting: &MeetingId,
    me: &RuntimeParticipant,
    stats: &store::StatsRecord,
) {
    let Some(transport) = me.send_transport.clone().or(me.recv_transport.clone()) else {
        return;
    };
    let ms = |v: Option<f64>| {
        v.filter(|x| x.is_finite() && *x >= 0.0)
            .map(|x| Duration::from_secs_f64(x.min(600_000.0) / 1000.0))
    };
    let (rtt, jitter) = (ms(stats.rtt), ms(stats.jitter));
    let loss = stats
        .packet_loss
        .filter(|x| x.is_finite())
        .map(|x| (x / 100.0).clamp(0.0, 1.0) as f32);
    let at = transport.clone();
    let _ = svc
        .media
        .call_at(meeting.as_str(), MediaAt::Transport(&at), move |core, _| {
            core.report_client_stats(&transport, loss, rtt, jitter)
        })
        .await;
}

/// A media object to close again (see `discard`).
#[derive(Debug)]
enum Discard {
    Transport(String),
    Producer(String),
    Consumer(String),
}

/// A participant is told about the next producer after its `consume` for the previous one, or after this long.
pub const ANNOUNCE_FALLBACK_MS: i64 = 2_000;
/// After a `consume`, the next announcement goes in that consume's own outcome, right behind its `subscribed`. When
/// there is none yet, one that a producer brings later waits this long: the `subscribed` reply leaves through the
/// consumer's socket only after the request returns, and a `new-producer` sent by another participant's request
/// meanwhile could overtake it. The guide's client then has two `once('subscribed')` handlers waiting, both take
/// the first reply, and mediasoup-client fails on the twice-consumed consumer ("Duplicate a=msid lines").
pub const REPLY_IN_FLIGHT_MS: i64 = 300;
const MAX_PRODUCERS_PER_PARTICIPANT: usize = 8;

fn err(code: ErrorCode, message: impl Into<String>) -> WireError {
    WireError::new(code, message)
}

fn sfu_error(e: SfuError) -> WireError {
    match e {
        SfuError::NotFound(what) => err(ErrorCode::NotFound, format!("{what} not found")),
        SfuError::Invalid(m) => WireError::validation(m),
        SfuError::CannotConsume(m) => err(ErrorCode::CannotConsume, m),
        SfuError::Unsupported(m) => WireError::validation(format!("unsupported: {m}")),
    }
}

fn media_gone(e: media::MediaError) -> WireError {
    tracing::error!(error = %e, "media engine");
    WireError::internal()
}

fn new_producer(owner: &RuntimeParticipant, p: &RuntimeProducer) -> ev::NewProducer {
    ev::NewProducer {
        participant_id: owner.participant_id.clone(),
        user_id: owner.user_id.clone(),
        user_name: owner.user_name.clone(),
        producer_id: p.producer_id.clone(),
        kind: media_kind(&p.kind),
        source: source_of(&p.source),
    }
}

fn muted_by_moderator() -> WireError {
    err(
        ErrorCode::Forbidden,
        "a moderator muted you; this meeting does not allow unmuting yourself until a host or moderator allows it",
    )
}

/// `producer:paused` / `producer:resumed`.
fn paused_event(
    meeting: &MeetingId,
    owner: &RuntimeParticipant,
    p: &RuntimeProducer,
    by_moderator: bool,
) -> ev::ProducerPaused {
    ev::ProducerPaused {
        meeting_id: meeting.clone(),
        participant_id: owner.participant_id.clone(),
        user_id: owner.user_id.clone(),
        user_name: owner.user_name.clone(),
        producer_id: p.producer_id.clone(),
        kind: media_kind(&p.kind),
        source: source_of(&p.source),
        by_moderator,
    }
}

/// The next `new-producer` for `pid`, if it may have one now (it has a recv transport, and nothing is outstanding
/// or the outstanding one is older than the fallback).
fn pump(rt: &mut MeetingRuntime, pid: &ParticipantId, now: i64) -> Option<Emit> {
    let p = rt.participants.get(pid)?;
    p.recv_transport.as_ref()?;
    if p.announced_at
        .is_some_and(|t| now - t < ANNOUNCE_FALLBACK_MS)
    {
        return None;
    }
    let found = rt
        .next_announcement(pid)
        .map(|(owner, prod)| new_producer(owner, prod));
    let p = rt.participants.get_mut(pid)?;
    match found {
        Some(payload) => {
            p.announced_at = Some(now);
            Some(Emit::new(
                Target::Participants(vec![pid.clone()]),
                "new-producer",
                &payload,
            ))
        }
        None => {
            p.announced_at = None;
            None
        }
    }
}

/// The guide names participants by user id in places (`quality:change {participantId: 'user_456'}`): accept a
/// user id where a participant id is expected, meaning that user's latest session.
/// A video producer's priority in its subscribers' bandwidth share-out: a screen share, a spotlighted participant's
/// camera, the rest.
pub(crate) fn priority_of(source: &str, spotlighted: bool) -> sfu::allocator::Priority {
    use sfu::allocator::Priority;
    match (source, spotlighted) {
        ("screen", _) => Priority::Screen,
        (_, true) => Priority::Large,
        _ => Priority::Normal,
    }
}

fn by_user<'a>(rt: &'a MeetingRuntime, id: &str) -> Option<&'a RuntimeParticipant> {
    rt.participants
        .values()
        .filter(|p| p.user_id.as_str() == id)
        .max_by_key(|p| p.joined_seq)
}

impl MeetingService {
    pub(crate) async fn handle_media(
        &self,
        meeting: &MeetingId,
        me: &RuntimeParticipant,
        op: MediaOp,
    ) -> Result<Outcome, WireError> {
        let router = meeting.to_string();
        let now = proto::time::now_ms();
        // Cost limits: the media worker is shared with other meetings (`Limits`). Counted before anything else,
        // so invalid requests count too.
        let limits = &self.config().limits;
        let (class, limit) = match &op {
            MediaOp::CreateTransport { .. } => ("create-transport", limits.create_transport),
            MediaOp::ConnectTransport { .. } => ("connect-transport", limits.connect_transport),
            MediaOp::RestartIce { .. } => ("restart-ice", limits.restart_ice),
            MediaOp::Produce { .. } => ("produce", limits.produce),
            MediaOp::Consume { .. } => ("consume", limits.consume),
            _ => ("media control requests", limits.media_control),
        };
        self.rate_limit(meeting, &me.user_id, class, limit).await?;
        match op {
            MediaOp::CreateTransport { send } => {
                let mut out = Outcome::reply(&ev::Empty {});
                let old = if send {
                    me.send_transport.clone()
                } else {
                    me.recv_transport.clone()
                };
                if let Some(old) = old {
                    out.emits.extend(
                        self.close_transport(meeting, &me.participant_id, &old)
                            .await,
                    );
                }
                // A recv transport may go to another worker than the meeting's home (`media` placement).
                let info = self
                    .media
                    .create_transport(
                        &router,
                        if send {
                            Direction::Send
                        } else {
                            Direction::Recv
                        },
                    )
                    .await
                    .map_err(media_gone)?
                    .map_err(sfu_error)?;
                // TURN servers (per-user credentials) and the relay policy, when configured (`ice.rs`).
                let mut raw_params = info.params;
                self.config().ice.decorate(
                    &mut raw_params,
                    me.user_id.as_str(),
                    u64::try_from(now / 1000).unwrap_or(0),
                );
                // Typed before anything is recorded, so a mismatch with the media plane changes nothing.
                let params: ev::TransportParams = match serde_json::from_value(raw_params) {
                    Ok(p) => p,
                    Err(e) => {
                        tracing::error!(error = %e, "the media plane's transport parameters");
                        self.discard(meeting, Discard::Transport(info.id)).await;
                        return Err(WireError::internal());
                    }
                };
                let pid = me.participant_id.clone();
                let mut pumped = None;
                let mut attached = false;
                self.modify(meeting, |rt| {
                    // Late joiners: a new recv transport reads the announce log from its start (every producer
                    // already in the meeting), one at a time.
                    if !rt.set_transport(&pid, send, Some(info.id.clone())) {
                        return false;
                    }
                    if !send {
                        pumped = pump(rt, &pid, now);
                    }
                    attached = true;
                    true
                })
                .await?;
                if !attached {
                    // The participant left (or was replaced, or the meeting ended) while the transport was made.
                    self.discard(meeting, Discard::Transport(info.id)).await;
                    return Err(self.not_in_meeting());
                }
                let payload = ev::TransportCreated {
                    direction: if send {
                        ev::Direction::Send
                    } else {
                        ev::Direction::Recv
                    },
                    params,
                };
                out.reply = crate::wire(&payload);
                out = out.emit(Target::Requester, "transport-created", &payload);
                out.emits.extend(pumped);
                self.schedule_pacing(meeting);
                Ok(out)
            }
            MediaOp::ConnectTransport { transport, dtls } => {
                if me.send_transport.as_ref() != Some(&transport)
                    && me.recv_transport.as_ref() != Some(&transport)
                {
                    return Err(err(ErrorCode::NotFound, "transport not found"));
                }
                let t = transport.clone();
                self.media
                    .call_at(&router, MediaAt::Transport(&transport), move |core, _| {
                        core.connect_transport(&t, &dtls)
                    })
                    .await
                    .map_err(media_gone)?
                    .map_err(sfu_error)?;
                let payload = ev::TransportConnected {
                    transport_id: transport,
                };
                Ok(Outcome::reply(&payload).emit(
                    Target::Requester,
                    "transport-connected",
                    &payload,
                ))
            }
            MediaOp::RestartIce { transport } => {
                // Only the requester's own transports (another participant's is as unknown as a made-up id).
                if me.send_transport.as_ref() != Some(&transport)
                    && me.recv_transport.as_ref() != Some(&transport)
                {
                    return Err(err(ErrorCode::NotFound, "transport not found"));
                }
                let t = transport.clone();
                let ice = self
                    .media
                    .call_at(&router, MediaAt::Transport(&transport), move |core, _| {
                        core.restart_ice(&t)
                    })
                    .await
                    .map_err(media_gone)?
                    .map_err(sfu_error)?;
                metrics::counter!("meet_ice_restarts_total").increment(1);
                let ice_parameters: ev::IceParameters =
                    serde_json::from_value(ice).map_err(|e| {
                        tracing::error!(error = %e, "the media plane's ICE parameters");
                        WireError::internal()
                    })?;
                let payload = ev::IceRestarted {
                    transport_id: transport,
                    ice_parameters,
                };
                Ok(Outcome::reply(&payload).emit(Target::Requester, "ice-restarted", &payload))
            }
            MediaOp::Produce { kind, rtp, source } => {
                let transport = me
                    .send_transport
                    .clone()
                    .ok_or_else(|| err(ErrorCode::NotFound, "create a send transport first"))?;
                let source = source.unwrap_or_else(|| {
                    if kind == Kind::Audio { "mic" } else { "camera" }.to_owned()
                });
                if source == "screen" && kind != Kind::Video
                    || source == "mic" && kind != Kind::Audio
                    || source == "camera" && kind != Kind::Video
                {
                    return Err(WireError::validation(format!(
                        "appData.source {source} does not fit kind {}",
                        kind.as_str()
                    )));
                }
                if me.producers.len() >= MAX_PRODUCERS_PER_PARTICIPANT {
                    return Err(WireError::validation("too many producers"));
                }
                if source == "screen" {
                    let mut busy = None;
                    self.read(meeting, |rt| {
                        busy = rt
                            .and_then(|r| r.screen_share.as_ref())
                            .filter(|s| s.participant_id != me.participant_id)
                            .map(|s| s.user_name.clone())
                    })
                    .await?;
                    if let Some(name) = busy {
                        return Err(err(
                            ErrorCode::ScreenShareActive,
                            format!("{name} is already sharing their screen"),
                        ));
                    }
                }
                // A moderator's mute of this kind holds for a new producer too (DESIGN §4): with allowSelfUnmute
                // false it is created paused on the server. Decided again below, atomically with the mute state.
                let allow_self_unmute = self.allow_self_unmute(meeting).await?;
                let pid = me.participant_id.clone();
                let mut held_before = false;
                if !allow_self_unmute {
                    self.read(meeting, |rt| {
                        held_before = rt.is_some_and(|r| r.moderator_muted(&pid, kind.as_str()))
                    })
                    .await?;
                }
                let producer = self
                    .media
                    .call(&router, move |core, now| {
                        let id = core.produce(&transport, kind, &rtp)?;
                        if held_before {
                            core.set_producer_paused(&id, true, now)?;
                        }
                        Ok(id)
                    })
                    .await
                    .map_err(media_gone)?
                    .map_err(sfu_error)?;
                let mut emits = Vec::new();
                let mut started_share = false;
                let mut attached = false;
                let mut held = held_before;
                let rec = RuntimeProducer {
                    producer_id: producer.clone(),
                    kind: kind.as_str().to_owned(),
                    source: source.clone(),
                    paused: false,
                };
                self.modify(meeting, |rt| {
                    emits.clear();
                    if !rt.participants.contains_key(&pid) {
                        return false;
                    }
                    let muted = rt.moderator_muted(&pid, kind.as_str());
                    held = held_before || (muted && !allow_self_unmute);
                    if muted && allow_self_unmute {
                        // Producing again is unmuting yourself, which this meeting allows.
                        rt.set_moderator_muted(&pid, kind.as_str(), false);
                    }
                    if !rt.add_producer(
                        &pid,
                        RuntimeProducer {
                            paused: held,
                            ..rec.clone()
                        },
                    ) {
                        return false;
                    }
                    attached = true;
                    if source == "screen" && rt.screen_share.is_none() {
                        rt.screen_share = Some(state::ScreenShare {
                            participant_id: pid.clone(),
                            user_id: me.user_id.clone(),
                            user_name: me.user_name.clone(),
                            started_at: now,
                        });
                        started_share = true;
                    }
                    // The producer is in the shared announce log now; tell whoever is idle.
                    let idle: Vec<ParticipantId> = rt
                        .participants
                        .values()
                        .filter(|p| {
                            p.participant_id != pid
                                && p.recv_transport.is_some()
                                && p.announced_at
                                    .is_none_or(|t| now - t >= ANNOUNCE_FALLBACK_MS)
                        })
                        .map(|p| p.participant_id.clone())
                        .collect();
                    for o in idle {
                        emits.extend(pump(rt, &o, now));
                    }
                    true
                })
                .await?;
                if !attached {
                    self.discard(meeting, Discard::Producer(producer)).await;
                    return Err(self.not_in_meeting());
                }
                if held && !held_before {
                    // Muted while this producer was being created.
                    let id = producer.clone();
                    self.media
                        .call(&router, move |core, now| {
                            core.set_producer_paused(&id, true, now)
                        })
                        .await
                        .map_err(media_gone)?
                        .map_err(sfu_error)?;
                }
                self.schedule_pacing(meeting);
                if kind == Kind::Video {
                    self.apply_priorities(meeting).await;
                }
                self.record_if_recording(meeting, &producer).await;
                let payload = ev::Produced {
                    producer_id: producer,
                    kind: media_kind(kind.as_str()),
                    source: source_of(&source),
                    paused: held.then_some(true),
                };
                let mut out =
                    Outcome::reply(&payload).emit(Target::Requester, "produced", &payload);
                if held {
                    out = out.emit(
                        Target::Meeting(meeting.clone()),
                        "producer:paused",
                        &paused_event(
                            meeting,
                            me,
                            &RuntimeProducer {
                                paused: true,
                                ..rec
                            },
                            true,
                        ),
                    );
                }
                if started_share {
                    out = out.emit(
                        Target::Meeting(meeting.clone()),
                        "screen:started",
                        &ev::ParticipantAction {
                            meeting_id: meeting.clone(),
                            participant_id: pid,
                            user_id: me.user_id.clone(),
                            user_name: me.user_name.clone(),
                            timestamp: proto::time::iso8601(now),
                        },
                    );
                }
                out.emits.extend(emits);
                Ok(out)
            }
            MediaOp::Consume { target, caps } => {
                let recv = me
                    .recv_transport
                    .clone()
                    .ok_or_else(|| err(ErrorCode::NotFound, "create a recv transport first"))?;
                let mut found: Option<(RuntimeParticipant, RuntimeProducer)> = None;
                self.read(meeting, |rt| {
                    let Some(rt) = rt else { return };
                    found = match &target {
                        ConsumeTarget::Producer(id) => {
                            rt.producer(id).map(|(o, x)| (o.clone(), x.clone()))
                        }
                        ConsumeTarget::Participant {
                            participant,
                            kind,
                            source,
                        } => rt
                            .participants
                            .get(&ParticipantId::new(participant.as_str()))
                            .or_else(|| by_user(rt, participant))
                            .and_then(|o| {
                                let mut candidates: Vec<&RuntimeProducer> = o
                                    .producers
                                    .iter()
                                    .filter(|x| x.kind == kind.as_str())
                                    .filter(|x| source.as_ref().is_none_or(|s| &x.source == s))
                                    .collect();
                                // Without a source, the camera/mic before a screen share.
                                candidates.sort_by_key(|x| x.source == "screen");
                                candidates.first().map(|x| (o.clone(), (*x).clone()))
                            }),
                    };
                })
                .await?;
                let (owner, producer) = found.ok_or_else(|| {
                    err(ErrorCode::NotFound, "producer not found in this meeting")
                })?;
                // On the recv transport's worker; the producer is piped there first when it lives elsewhere.
                let info = self
                    .media
                    .consume(&router, &recv, &producer.producer_id, *caps)
                    .await
                    .map_err(media_gone)?
                    .map_err(sfu_error)?;
                let me_id = me.participant_id.clone();
                let mut next = None;
                let consumer = info.id.clone();
                let mut attached = false;
                self.modify(meeting, |rt| {
                    if !rt.add_consumer(
                        &me_id,
                        RuntimeConsumer {
                            consumer_id: consumer.clone(),
                            producer_id: producer.producer_id.clone(),
                        },
                    ) {
                        return false;
                    }
                    attached = true;
                    if let Some(p) = rt.participants.get_mut(&me_id) {
                        p.announced_at = None;
                    }
                    next = pump(rt, &me_id, now);
                    if next.is_none() {
                        // Nothing to announce now: hold what comes next until `subscribed` is out.
                        if let Some(p) = rt.participants.get_mut(&me_id) {
                            p.announced_at = Some(now - ANNOUNCE_FALLBACK_MS + REPLY_IN_FLIGHT_MS);
                        }
                    }
                    true
                })
                .await?;
                if !attached {
                    self.discard(meeting, Discard::Consumer(info.id)).await;
                    return Err(self.not_in_meeting());
                }
                let payload = ev::Subscribed {
                    id: info.id,
                    producer_id: producer.producer_id,
                    kind: media_kind(info.kind.as_str()),
                    rtp_parameters: crate::wire(&info.rtp_parameters),
                    consumer_type: info.consumer_type.to_owned(),
                    producer_paused: producer.paused || info.producer_paused,
                    participant_id: owner.participant_id,
                    user_id: owner.user_id,
                    source: source_of(&producer.source),
                };
                let mut out =
                    Outcome::reply(&payload).emit(Target::Requester, "subscribed", &payload);
                out.emits.extend(next);
                Ok(out)
            }
            MediaOp::ConsumerPaused { consumer, paused } => {
                if !me.consumers.iter().any(|c| c.consumer_id == consumer) {
                    return Err(err(ErrorCode::NotFound, "consumer not found"));
                }
                let c = consumer.clone();
                self.media
                    .call_at(&router, MediaAt::Consumer(&consumer), move |core, now| {
                        core.set_consumer_paused(&c, paused, now)
                    })
                    .await
                    .map_err(media_gone)?
                    .map_err(sfu_error)?;
                Ok(Outcome::reply(&ev::ConsumerPausedAck {
                    consumer_id: consumer,
                    paused,
                }))
            }
            MediaOp::ProducerPaused { producer, paused } => {
                let Some(rec) = me
                    .producers
                    .iter()
                    .find(|p| p.producer_id == producer)
                    .cloned()
                else {
                    return Err(err(ErrorCode::NotFound, "producer not found"));
                };
                // The mute is the participant's, per kind (not the producer's): pausing and resuming, or closing
                // and producing again, does not lift it.
                let mut muted = false;
                if !paused {
                    self.read(meeting, |rt| {
                        muted = rt.is_some_and(|r| r.moderator_muted(&me.participant_id, &rec.kind))
                    })
                    .await?;
                }
                let allow_self_unmute = paused || self.allow_self_unmute(meeting).await?;
                if muted && !allow_self_unmute {
                    return Err(muted_by_moderator());
                }
                // Checked again when the resume is recorded: a mute may arrive meanwhile.
                let out = self
                    .set_paused(meeting, me, &rec, paused, false, !allow_self_unmute)
                    .await?;
                if muted {
                    // Unmuting yourself, which this meeting allows, ends the moderator's mute of that kind.
                    let (pid, kind) = (me.participant_id.clone(), rec.kind.clone());
                    self.modify(meeting, |rt| rt.set_moderator_muted(&pid, &kind, false))
                        .await?;
                }
                Ok(out)
            }
            MediaOp::CloseProducer { producer } => {
                if !me.producers.iter().any(|p| p.producer_id == producer) {
                    return Err(err(ErrorCode::NotFound, "producer not found"));
                }
                let emits = self
                    .close_producers(
                        meeting,
                        &me.participant_id,
                        vec![producer.clone()],
                        "producer-closed",
                    )
                    .await;
                let mut out = Outcome::reply(&ev::ProducerAck {
                    producer_id: producer,
                });
                out.emits.extend(emits);
                Ok(out)
            }
            MediaOp::Quality {
                participant,
                layer,
                quality,
            } => {
                let mut targets: Vec<String> = Vec::new();
                self.read(meeting, |rt| {
                    let Some(rt) = rt else { return };
                    let Some(o) = rt
                        .participants
                        .get(&ParticipantId::new(participant.as_str()))
                        .or_else(|| by_user(rt, &participant))
                    else {
                        return;
                    };
                    let video: Vec<&str> = o
                        .producers
                        .iter()
                        .filter(|p| p.kind == "video")
                        .map(|p| p.producer_id.as_str())
                        .collect();
                    targets = me
                        .consumers
                        .iter()
                        .filter(|c| video.contains(&c.producer_id.as_str()))
                        .map(|c| c.consumer_id.clone())
                        .collect();
                })
                .await?;
                if targets.is_empty() {
                    return Err(err(
                        ErrorCode::NotFound,
                        "you consume no video of that participant",
                    ));
                }
                // The requester's consumers: all on its recv transport's worker.
                let first = targets[0].clone();
                self.media
                    .call_at(&router, MediaAt::Consumer(&first), move |core, now| {
                        for c in &targets {
                            let _ = core.set_consumer_preferred_layer(c, layer, now);
                        }
                    })
                    .await
                    .map_err(media_gone)?;
                let payload = ev::QualityChanged {
                    participant_id: participant,
                    quality,
                };
                Ok(Outcome::reply(&payload).emit(Target::Requester, "quality:changed", &payload))
            }
        }
    }

    /// Test hook (the REST edge allows it only with `media.debug_hooks`): the transport's packets are dropped, both
    /// ways, for `ms`. False when the meeting's router has no such transport.
    pub async fn debug_drop_transport(
        &self,
        meeting: &MeetingId,
        transport: String,
        ms: u64,
    ) -> Result<bool, WireError> {
        let router = meeting.to_string();
        let at = transport.clone();
        self.media
            .call_at(&router, MediaAt::Transport(&at), move |core, now| {
                core.debug_drop_transport(&transport, now + Duration::from_millis(ms))
            })
            .await
            .map_err(media_gone)
    }

    /// Test hook (the REST edge allows it only with `media.debug_hooks`): what the media shell sends to the
    /// transport's peer is capped at `kbps` for `ms`, with a queue of `queue_ms` (`media::debug_cap`). False when
    /// there is no such transport or its peer was never seen.
    pub async fn debug_cap_transport(
        &self,
        meeting: &MeetingId,
        transport: String,
        kbps: u64,
        queue_ms: u64,
        ms: u64,
    ) -> Result<bool, WireError> {
        let router = meeting.to_string();
        let addrs = self
            .media
            .call_at(
                &router,
                MediaAt::Transport(&transport.clone()),
                move |core, _| core.transport_sources(&transport),
            )
            .await
            .map_err(media_gone)?;
        if addrs.is_empty() {
            return Ok(false);
        }
        media::debug_cap(
            &addrs,
            kbps.saturating_mul(1000),
            Duration::from_millis(queue_ms),
            std::time::Instant::now() + Duration::from_millis(ms),
        );
        Ok(true)
    }

    /// Test hook (the REST edge allows it only with `media.debug_hooks`): the highest temporal layer the consumer
    /// gets (`Core::set_consumer_preferred_temporal_layer`). False when the meeting's router has no such consumer.
    pub async fn debug_temporal_layer(
        &self,
        meeting: &MeetingId,
        consumer: String,
        layer: u8,
    ) -> Result<bool, WireError> {
        let router = meeting.to_string();
        let at = consumer.clone();
        self.media
            .call_at(&router, MediaAt::Consumer(&at), move |core, _| {
                core.set_consumer_preferred_temporal_layer(&consumer, layer)
                    .is_ok()
            })
            .await
            .map_err(media_gone)
    }

    /// Closes a media object made for a participant who was gone by the time it existed (a leave, a replacing
    /// rejoin or the meeting's end raced the request): nobody else knows of it, so nobody is told.
    async fn discard(&self, meeting: &MeetingId, what: Discard) {
        tracing::debug!(%meeting, ?what, "closing media made for a participant who left meanwhile");
        let (id, at) = match &what {
            Discard::Transport(id) => (id.clone(), 0),
            Discard::Producer(id) => (id.clone(), 1),
            Discard::Consumer(id) => (id.clone(), 2),
        };
        let place = match at {
            0 => MediaAt::Transport(&id),
            1 => MediaAt::Home,
            _ => MediaAt::Consumer(&id),
        };
        let _ = self
            .media
            .call_at(meeting.as_str(), place, move |core, _| match what {
                Discard::Transport(id) => {
                    core.close_transport(&id);
                }
                Discard::Producer(id) => {
                    core.close_producer(&id);
                }
                Discard::Consumer(id) => core.close_consumer(&id),
            })
            .await;
        let ids = std::slice::from_ref(&id);
        match at {
            0 => self.media.forget(ids, &[], &[]),
            1 => self.media.forget(&[], ids, &[]),
            _ => self.media.forget(&[], &[], ids),
        }
    }

    /// Pauses or resumes one producer on the server and tells everyone.
    async fn set_paused(
        &self,
        meeting: &MeetingId,
        owner: &RuntimeParticipant,
        rec: &RuntimeProducer,
        paused: bool,
        by_moderator: bool,
        refuse_if_muted: bool,
    ) -> Result<Outcome, WireError> {
        let id = rec.producer_id.clone();
        self.media
            .call(meeting.as_str(), move |core, now| {
                core.set_producer_paused(&id, paused, now)
            })
            .await
            .map_err(media_gone)?
            .map_err(sfu_error)?;
        let pid = owner.participant_id.clone();
        let mut refused = false;
        self.modify(meeting, |rt| {
            // A resume racing a moderator's mute (which found this producer paused, so left it alone) loses.
            refused = !paused && refuse_if_muted && rt.moderator_muted(&pid, &rec.kind);
            if refused {
                return false;
            }
            let Some(p) = rt.participants.get_mut(&pid) else {
                return false;
            };
            for x in p
                .producers
                .iter_mut()
                .filter(|x| x.producer_id == rec.producer_id)
            {
                x.paused = paused;
            }
            true
        })
        .await?;
        if refused {
            let id = rec.producer_id.clone();
            self.media
                .call(meeting.as_str(), move |core, now| {
                    core.set_producer_paused(&id, true, now)
                })
                .await
                .map_err(media_gone)?
                .map_err(sfu_error)?;
            return Err(muted_by_moderator());
        }
        let payload = paused_event(meeting, owner, rec, by_moderator);
        let event = if paused {
            "producer:paused"
        } else {
            "producer:resumed"
        };
        Ok(Outcome::reply(&payload).emit(Target::Meeting(meeting.clone()), event, &payload))
    }

    /// Moderator mute: marks every session of `target` muted for `kind` (participant state, DESIGN §4) and pauses
    /// their producers of that kind on the server.
    pub(crate) async fn pause_for_moderator(
        &self,
        meeting: &MeetingId,
        target: &UserId,
        kind: MuteType,
    ) -> Result<Vec<Emit>, WireError> {
        // One step with the state, so a producer created concurrently is either seen here or sees the mute.
        let mut to_pause: Vec<(RuntimeParticipant, RuntimeProducer)> = Vec::new();
        self.modify(meeting, |rt| {
            to_pause.clear();
            let sessions: Vec<RuntimeParticipant> = rt.sessions_of(target).cloned().collect();
            let mut changed = false;
            for s in sessions {
                changed |= rt.set_moderator_muted(&s.participant_id, kind.as_str(), true);
                for p in s
                    .producers
                    .iter()
                    .filter(|p| p.kind == kind.as_str() && !p.paused)
                {
                    to_pause.push((s.clone(), p.clone()));
                }
            }
            changed
        })
        .await?;
        let mut emits = Vec::new();
        for (s, p) in &to_pause {
            emits.extend(
                self.set_paused(meeting, s, p, true, true, false)
                    .await?
                    .emits,
            );
        }
        Ok(emits)
    }

    /// Lifts a moderator mute of `kind` from every session of `target`; whether one was lifted. It does not resume
    /// their producers: the person unmutes themselves then.
    pub(crate) async fn lift_moderator_mute(
        &self,
        meeting: &MeetingId,
        target: &UserId,
        kind: MuteType,
    ) -> Result<bool, WireError> {
        let mut lifted = false;
        self.modify(meeting, |rt| {
            let sessions: Vec<ParticipantId> = rt
                .sessions_of(target)
                .map(|p| p.participant_id.clone())
                .collect();
            lifted = false;
            for s in &sessions {
                lifted |= rt.set_moderator_muted(s, kind.as_str(), false);
            }
            lifted
        })
        .await?;
        Ok(lifted)
    }

    /// The meeting's `allowSelfUnmute` setting.
    async fn allow_self_unmute(&self, meeting: &MeetingId) -> Result<bool, WireError> {
        match self.store.get_meeting(meeting).await {
            Ok(Some(m)) => Ok(m.allow_self_unmute),
            Ok(None) => Err(err(
                ErrorCode::MeetingNotFound,
                format!("meeting {meeting} not found"),
            )),
            Err(e) => {
                tracing::error!(error = %e, "loading meeting settings failed");
                Err(WireError::internal())
            }
        }
    }

    /// Closes producers of `owner` and tells the consumers' owners (`consumer-closed`).
    async fn close_producers(
        &self,
        meeting: &MeetingId,
        owner: &ParticipantId,
        producers: Vec<String>,
        reason: &str,
    ) -> Vec<Emit> {
        let ids = producers.clone();
        let closed = self
            .media
            .call(meeting.as_str(), move |core, _| {
                ids.iter()
                    .flat_map(|p| core.close_producer(p))
                    .collect::<Vec<_>>()
            })
            .await
            .unwrap_or_default();
        // Their pipe producers on other workers close through the pipes.
        self.media.forget(&[], &producers, &[]);
        self.forget_media(meeting, Some(owner), &producers, &closed, reason)
            .await
    }

    /// Closes one of `owner`'s transports.
    async fn close_transport(
        &self,
        meeting: &MeetingId,
        owner: &ParticipantId,
        transport: &str,
    ) -> Vec<Emit> {
        let t = transport.to_owned();
        let (producers, consumers) = self
            .media
            .call_at(
                meeting.as_str(),
                MediaAt::Transport(transport),
                move |core, _| core.close_transport(&t),
            )
            .await
            .unwrap_or_default();
        self.media
            .forget(std::slice::from_ref(&transport.to_owned()), &[], &[]);
        let tid = transport.to_owned();
        let pid = owner.clone();
        let _ = self
            .modify(meeting, |rt| {
                let Some(p) = rt.participants.get(&pid) else {
                    return false;
                };
                let send = p.send_transport.as_deref() == Some(tid.as_str());
                let recv = p.recv_transport.as_deref() == Some(tid.as_str());
                if send {
                    rt.set_transport(&pid, true, None);
                }
                if recv {
                    rt.set_transport(&pid, false, None);
                }
                send || recv
            })
            .await;
        self.forget_media(
            meeting,
            Some(owner),
            &producers,
            &consumers,
            "producer-closed",
        )
        .await
    }

    /// A participant left (or the meeting ended): close its transports; tell the others whose consumers closed.
    pub(crate) async fn release_media(
        &self,
        meeting: &MeetingId,
        p: &RuntimeParticipant,
        reason: &str,
    ) -> Vec<Emit> {
        if p.send_transport.is_none() && p.recv_transport.is_none() {
            return Vec::new();
        }
        // Cluster mode: the transports are on the meeting's media home; when that is another node, it closes them.
        if let (Some(remote), Some(mine)) = (&self.remote, &self.config().node_id) {
            let mut home = None;
            let _ = self
                .read(meeting, |rt| home = rt.and_then(|r| r.media_home.clone()))
                .await;
            if let Some(home) = home.filter(|h| h != mine) {
                if let Err(e) = remote.release(&home, meeting, p, reason).await {
                    tracing::warn!(error = %e.message, %home, "releasing media on the media home failed");
                }
                return Vec::new();
            }
        }
        self.release_here(meeting, p, reason).await
    }

    /// Closes a participant's transports in this node's media plane and forgets what went with them.
    pub(crate) async fn release_here(
        &self,
        meeting: &MeetingId,
        p: &RuntimeParticipant,
        reason: &str,
    ) -> Vec<Emit> {
        let transports: Vec<String> = p
            .send_transport
            .iter()
            .chain(p.recv_transport.iter())
            .cloned()
            .collect();
        if transports.is_empty() {
            return Vec::new();
        }
        // The send and recv transports may be on different workers (`media` placement): one call each.
        let (mut producers, mut consumers) = (Vec::new(), Vec::new());
        for t in &transports {
            let id = t.clone();
            let (p, c) = self
                .media
                .call_at(meeting.as_str(), MediaAt::Transport(t), move |core, _| {
                    core.close_transport(&id)
                })
                .await
                .unwrap_or_default();
            producers.extend(p);
            consumers.extend(c);
        }
        self.media.forget(&transports, &[], &[]);
        self.forget_media(meeting, None, &producers, &consumers, reason)
            .await
    }

    /// Removes closed producers and consumers from the runtime state; `consumer-closed` to each consumer's owner
    /// (other than `skip_owner`'s own consumers, which it closed itself); `screen:stopped` if a screen producer went.
    async fn forget_media(
        &self,
        meeting: &MeetingId,
        closer: Option<&ParticipantId>,
        producers: &[String],
        consumers: &[String],
        reason: &str,
    ) -> Vec<Emit> {
        let mut emits = Vec::new();
        let now = proto::time::now_ms();
        let _ = self
            .modify(meeting, |rt| {
                emits.clear();
                // O(closed objects): each is found through the owner indexes.
                let mut closer_lost_producer = false;
                for id in producers {
                    if let Some((owner, _)) = rt.remove_producer(id) {
                        closer_lost_producer |= Some(&owner) == closer;
                    }
                }
                let share_stopped = match (&rt.screen_share, closer) {
                    (Some(s), Some(c)) if closer_lost_producer && &s.participant_id == c => {
                        let still = rt
                            .participants
                            .get(c)
                            .is_some_and(|p| p.producers.iter().any(|x| x.source == "screen"));
                        (!still).then(|| s.clone())
                    }
                    _ => None,
                };
                // Consumers of these producers on other media workers (through pipes) closed there, unlisted.
                let piped: Vec<String> = if producers.is_empty() {
                    Vec::new()
                } else {
                    rt.participants
                        .values()
                        .flat_map(|p| p.consumers.iter())
                        .filter(|c| producers.contains(&c.producer_id))
                        .map(|c| c.consumer_id.clone())
                        .filter(|c| !consumers.contains(c))
                        .collect()
                };
                for id in consumers.iter().chain(piped.iter()) {
                    let Some((owner, c)) = rt.remove_consumer(id) else {
                        continue;
                    };
                    if Some(&owner) == closer {
                        continue;
                    }
                    emits.push(Emit::new(
                        Target::Participants(vec![owner]),
                        "consumer-closed",
                        &ev::ConsumerClosed {
                            consumer_id: c.consumer_id,
                            producer_id: c.producer_id,
                            reason: reason.to_owned(),
                        },
                    ));
                }
                rt.compact_announce_log();
                if let Some(s) = share_stopped {
                    rt.screen_share = None;
                    emits.push(Emit::new(
                        Target::Meeting(meeting.clone()),
                        "screen:stopped",
                        &crate::service::screen_stopped(meeting, &s, now),
                    ));
                }
                true
            })
            .await;
        emits
    }

    /// A transport failed in the media plane (already closed there, with its producers and consumers): its owner
    /// gets `transport:closed {transportId, direction, reason}`, the others `consumer-closed` for what they
    /// consumed of it (and `screen:stopped` if it carried the screen share).
    pub async fn transport_failed(&self, event: media::CoreEvent) -> Outcome {
        let media::CoreEvent::TransportClosed {
            transport,
            router,
            direction,
            reason,
            producers,
            consumers,
        } = event
        else {
            return Outcome::default();
        };
        // The media worker's router key is the meeting id (`handle_media`).
        let meeting = MeetingId::new(router);
        let mut owner = None;
        let tid = transport.clone();
        let _ = self
            .modify(&meeting, |rt| {
                let Some(p) = rt.transport_owner(&tid) else {
                    return false;
                };
                let send = p.send_transport.as_deref() == Some(tid.as_str());
                let pid = p.participant_id.clone();
                rt.set_transport(&pid, send, None);
                owner = Some(pid);
                true
            })
            .await;
        let Some(owner) = owner else {
            // Its owner left meanwhile; leaving closed everything it had.
            return Outcome::default();
        };
        let closed = Emit::new(
            Target::Participants(vec![owner.clone()]),
            "transport:closed",
            &ev::TransportClosed {
                transport_id: transport,
                direction: if direction == Direction::Send {
                    ev::Direction::Send
                } else {
                    ev::Direction::Recv
                },
                reason: reason.to_string(),
            },
        );
        let others = self
            .forget_media(
                &meeting,
                Some(&owner),
                &producers,
                &consumers,
                "producer-closed",
            )
            .await;
        Outcome {
            emits: std::iter::once(closed).chain(others).collect(),
            ..Outcome::default()
        }
    }

    /// What the media plane reports: a failed transport, the dominant speaker, audio levels.
    pub async fn media_event(&self, event: media::CoreEvent) -> Outcome {
        match event {
            media::CoreEvent::ActiveSpeaker { router, producer } => {
                self.active_speaker(MeetingId::new(router), &producer).await
            }
            media::CoreEvent::AudioLevels { router, levels } => {
                self.audio_levels(MeetingId::new(router), &levels).await
            }
            media::CoreEvent::ConnectionQuality {
                router,
                transport,
                quality,
                previous,
            } => {
                self.connection_quality(MeetingId::new(router), &transport, quality, previous)
                    .await
            }
            media::CoreEvent::LayersNeeded {
                router,
                producer,
                spatial_layers,
            } => {
                self.layers_needed(MeetingId::new(router), producer, spatial_layers)
                    .await
            }
            media::CoreEvent::ConsumerLayersChanged {
                router,
                consumer,
                spatial_layer,
                temporal_layer,
            } => {
                let meeting = MeetingId::new(router);
                let owner = self
                    .owner_of(&meeting, |rt| rt.consumer_owner(&consumer))
                    .await;
                to_owner(
                    owner,
                    "consumer:layers-changed",
                    &ev::ConsumerLayersChanged {
                        consumer_id: consumer,
                        spatial_layer: u32::try_from(spatial_layer).unwrap_or(u32::MAX),
                        temporal_layer: u32::try_from(temporal_layer).unwrap_or(u32::MAX),
                    },
                )
            }
            e => self.transport_failed(e).await,
        }
    }

    /// Tells the media plane where each video producer's consumers come when a subscriber's bandwidth estimate is
    /// shared out (issue 11 item 1): the screen share first, then the spotlighted participant's camera, then the
    /// rest. Recomputed for the whole meeting (a handful of producers) after a `produce` and a spotlight change, so
    /// nothing is left stale; best effort (a producer closed meanwhile is skipped, a gone media plane logged).
    pub(crate) async fn apply_priorities(&self, meeting: &MeetingId) {
        let mut wanted: Vec<(String, sfu::allocator::Priority)> = Vec::new();
        let _ = self
            .read(meeting, |rt| {
                wanted.clear();
                let Some(rt) = rt else { return };
                for p in rt.participants.values() {
                    let spotlighted = rt.spotlight.as_ref() == Some(&p.user_id);
                    for x in p.producers.iter().filter(|x| x.kind == "video") {
                        wanted.push((x.producer_id.clone(), priority_of(&x.source, spotlighted)));
                    }
                }
            })
            .await;
        if wanted.is_empty() {
            return;
        }
        let router = meeting.to_string();
        let res = self
            .media
            .call(&router, move |core, _| {
                for (id, priority) in &wanted {
                    // A producer closed since the read has nothing to set.
                    let _ = core.set_producer_priority(id, *priority);
                }
            })
            .await;
        if let Err(e) = res {
            tracing::debug!(meeting = %meeting, error = %e, "producer priorities not applied");
        }
    }

    /// `producer:layers-needed {producerId, spatialLayers}` to the producer's owner.
    async fn layers_needed(&self, meeting: MeetingId, producer: String, layers: usize) -> Outcome {
        let owner = self
            .owner_of(&meeting, |rt| rt.producer_owner(&producer))
            .await;
        to_owner(
            owner,
            "producer:layers-needed",
            &ev::ProducerLayersNeeded {
                producer_id: producer,
                spatial_layers: u32::try_from(layers).unwrap_or(u32::MAX),
            },
        )
    }

    /// The participant `find` picks in the meeting's runtime state (a producer's or consumer's owner), if any.
    async fn owner_of(
        &self,
        meeting: &MeetingId,
        find: impl Fn(&MeetingRuntime) -> Option<&RuntimeParticipant> + Send + Sync,
    ) -> Option<ParticipantId> {
        let mut owner = None;
        let _ = self
            .read(meeting, |rt| {
                owner = rt.and_then(&find).map(|p| p.participant_id.clone());
            })
            .await;
        owner
    }

    /// `connection-quality {meetingId, participantId, quality}` to the meeting when a participant's quality — the
    /// worse of its two transports — changes. The media plane reports one transport's change; the other's class
    /// is asked of it, so nothing per participant is stored here.
    async fn connection_quality(
        &self,
        meeting: MeetingId,
        transport: &str,
        quality: sfu::quality::Quality,
        previous: Option<sfu::quality::Quality>,
    ) -> Outcome {
        let mut owner = None;
        let _ = self
            .read(&meeting, |rt| {
                owner = rt.and_then(|rt| rt.transport_owner(transport)).map(|p| {
                    let other = if p.send_transport.as_deref() == Some(transport) {
                        p.recv_transport.clone()
                    } else {
                        p.send_transport.clone()
                    };
                    (p.participant_id.clone(), other)
                });
            })
            .await;
        let Some((participant, other)) = owner else {
            return Outcome::default();
        };
        let other_quality = match other {
            Some(id) => self
                .media
                .call_at(
                    meeting.as_str(),
                    MediaAt::Transport(&id.clone()),
                    move |core, _| core.transport_quality(&id),
                )
                .await
                .ok()
                .flatten(),
            None => None,
        };
        // Option's order puts None first, so max() is the worse known class.
        let before = previous.max(other_quality);
        let after = Some(quality).max(other_quality);
        let Some(after) = after.filter(|q| before != Some(*q)) else {
            return Outcome::default();
        };
        metrics::counter!("meet_connection_quality_changes_total", "quality" => after.as_str())
            .increment(1);
        let quality = match after {
            sfu::quality::Quality::Excellent => ev::ConnectionQualityLevel::Excellent,
            sfu::quality::Quality::Good => ev::ConnectionQualityLevel::Good,
            sfu::quality::Quality::Poor => ev::ConnectionQualityLevel::Poor,
            sfu::quality::Quality::Lost => ev::ConnectionQualityLevel::Lost,
        };
        Outcome {
            emits: vec![Emit::new(
                Target::Meeting(meeting.clone()),
                "connection-quality",
                &ev::ConnectionQuality {
                    meeting_id: meeting,
                    participant_id: participant,
                    quality,
                },
            )],
            ..Outcome::default()
        }
    }

    /// `active-speaker {meetingId, participantId, userId}` to the meeting: the owner of the audio producer the
    /// media plane found dominant (nothing if it left meanwhile).
    async fn active_speaker(&self, meeting: MeetingId, producer: &str) -> Outcome {
        let mut payload = None;
        let _ = self
            .read(&meeting, |rt| {
                payload =
                    rt.and_then(|rt| rt.producer_owner(producer))
                        .map(|p| ev::ActiveSpeaker {
                            meeting_id: meeting.clone(),
                            participant_id: p.participant_id.clone(),
                            user_id: p.user_id.clone(),
                        });
            })
            .await;
        let Some(payload) = payload else {
            return Outcome::default();
        };
        Outcome {
            emits: vec![Emit::new(
                Target::Meeting(meeting.clone()),
                "active-speaker",
                &payload,
            )],
            ..Outcome::default()
        }
    }

    /// `audio-levels {meetingId, levels:[{participantId, level}]}` to the meeting, loudest first, one entry per
    /// participant; the media plane sends these at most every 500 ms and only while there is sound (plus one empty
    /// list when it stops).
    async fn audio_levels(&self, meeting: MeetingId, levels: &[(String, f32)]) -> Outcome {
        let mut out: Vec<ev::AudioLevel> = Vec::new();
        let _ = self
            .read(&meeting, |rt| {
                out.clear();
                let Some(rt) = rt else { return };
                for (producer, level) in levels {
                    let Some(p) = rt.producer_owner(producer) else {
                        continue;
                    };
                    if out.iter().all(|x| x.participant_id != p.participant_id) {
                        out.push(ev::AudioLevel {
                            participant_id: p.participant_id.clone(),
                            // Three decimals: an f32 widened as is prints as 0.029999999329447746.
                            level: (f64::from(*level) * 1000.0).round() / 1000.0,
                        });
                    }
                }
            })
            .await;
        // Levels of producers that are all gone now: nothing to say.
        if out.is_empty() && !levels.is_empty() {
            return Outcome::default();
        }
        Outcome {
            emits: vec![Emit::new(
                Target::Meeting(meeting.clone()),
                "audio-levels",
                &ev::AudioLevels {
                    meeting_id: meeting,
                    levels: out,
                },
            )],
            ..Outcome::default()
        }
    }

    /// Delivers what the media plane reports (failed transports, speakers) until the engine stops.
    pub fn spawn_media_events(
        self: &std::sync::Arc<Self>,
        mut events: tokio::sync::mpsc::UnboundedReceiver<media::CoreEvent>,
    ) {
        let weak = std::sync::Arc::downgrade(self);
        tokio::spawn(async move {
            while let Some(e) = events.recv().await {
                let Some(svc) = weak.upgrade() else { return };
                let out = svc.media_event(e).await;
                if !out.emits.is_empty() {
                    let _ = svc.background.send(out);
                }
            }
        });
    }

    fn schedule_pacing(&self, meeting: &MeetingId) {
        if let Ok(mut set) = self.pacing.lock() {
            set.insert(meeting.clone());
        }
    }

    /// Every 250 ms: announcements whose 2 s fallback passed. Runs until the service is dropped.
    pub fn spawn_pacer(self: &std::sync::Arc<Self>) {
        let weak = std::sync::Arc::downgrade(self);
        let _ = self.me.set(weak.clone());
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_millis(250));
            loop {
                tick.tick().await;
                let Some(svc) = weak.upgrade() else { return };
                let meetings: Vec<MeetingId> = svc
                    .pacing
                    .lock()
                    .map(|s| s.iter().cloned().collect())
                    .unwrap_or_default();
                for m in meetings {
                    let now = proto::time::now_ms();
                    let mut emits = Vec::new();
                    let mut pending = false;
                    let _ = svc
                        .modify(&m, |rt| {
                            let ids: Vec<ParticipantId> = rt.participants.keys().cloned().collect();
                            for id in ids {
                                emits.extend(pump(rt, &id, now));
                            }
                            pending = rt.participants.values().any(|p| rt.announcing(p));
                            !emits.is_empty()
                        })
                        .await;
                    if !pending {
                        if let Ok(mut set) = svc.pacing.lock() {
                            set.remove(&m);
                        }
                    }
                    if !emits.is_empty() {
                        let _ = svc.background.send(Outcome {
                            emits,
                            ..Outcome::default()
                        });
                    }
                }
            }
        });
    }
}

/// `event` to one participant (nothing when there is none: it left meanwhile).
fn to_owner<T: serde::Serialize>(
    owner: Option<ParticipantId>,
    event: &'static str,
    payload: &T,
) -> Outcome {
    let Some(owner) = owner else {
        return Outcome::default();
    };
    Outcome {
        emits: vec![Emit::new(Target::Participants(vec![owner]), event, payload)],
        ..Outcome::default()
    }
}
