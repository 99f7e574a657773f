//! The runtime state of one meeting: plain data, serializable so a Redis implementation can store it.

use crate::tracked::{TrackedLog, TrackedMap};
use proto::{Layout, MeetingId, ParticipantId, Role, UserId};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct MeetingRuntime {
    pub meeting_id: Option<MeetingId>,
    /// Set when the meeting ends, so a join racing the end cannot slip in.
    pub ended: bool,
    /// In join order (participant ids are random, so order by `joined_seq`).
    pub participants: TrackedMap<ParticipantId, RuntimeParticipant>,
    pub next_seq: u64,
    pub layout: Layout,
    pub spotlight: Option<UserId>,
    pub screen_share: Option<ScreenShare>,
    /// Users whose connection dropped with a raised hand, and when (ms): a rejoin within the grace period gets the
    /// hand back (DESIGN §4). They keep an empty meeting's state alive for the grace period (so even a lone
    /// participant's hand comes back), then are pruned.
    #[serde(default)]
    pub raised_hands_of_dropped: TrackedMap<UserId, i64>,
    /// Moderator mutes, per participant session and kind (DESIGN §4): with `allowSelfUnmute` false they hold across
    /// `producer:pause`/`resume`, `producer:close` and a new `produce`, until a host/moderator lifts them. Keyed by
    /// participant id (ids are never reused, so a mute ends with its session); read through
    /// [`MeetingRuntime::moderator_muted`], which ignores sessions that left.
    #[serde(default)]
    pub moderator_mutes: TrackedMap<ParticipantId, MutedKinds>,
    /// Indexes of the media objects recorded on participants: producer / consumer / transport id → its owner, so
    /// finding an owner costs O(log n) instead of a scan of every participant. Kept by the methods below
    /// ([`MeetingRuntime::add_producer`], [`MeetingRuntime::remove_participant`], …), which every change of a
    /// participant's media goes through; [`MeetingRuntime::check_indexes`] verifies them (tests).
    #[serde(default)]
    pub producer_owners: TrackedMap<String, ParticipantId>,
    #[serde(default)]
    pub consumer_owners: TrackedMap<String, ParticipantId>,
    #[serde(default)]
    pub transport_owners: TrackedMap<String, ParticipantId>,
    /// Every producer of the meeting in the order it was created (closed ones until the next compaction): the
    /// shared `new-producer` announce queue. Each participant reads it from its own `announce_cursor`, so a new
    /// producer costs one push, not one per participant.
    #[serde(default)]
    pub announce_log: TrackedLog<String>,
    /// The running recording, if any (one at a time per meeting).
    #[serde(default)]
    pub recording: Option<RuntimeRecording>,
    /// Cluster mode: the node that hosts the meeting's media (its routers and every participant's transports),
    /// taken by the first media request; `None` on a single node and until media starts.
    #[serde(default)]
    pub media_home: Option<String>,
}

/// A meeting's running recording. Times are Unix ms.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RuntimeRecording {
    pub recording_id: String,
    pub started_at: i64,
    pub started_by_user_id: UserId,
    pub started_by_name: String,
    pub record_video: bool,
    pub record_audio: bool,
    pub record_chat: bool,
    /// Set while paused: when the pause began.
    pub paused_at: Option<i64>,
    /// Paused time before the current pause, ms.
    pub paused_ms: i64,
}

impl RuntimeRecording {
    /// Recorded time at `now`, paused spans left out (ms).
    pub fn recorded_ms(&self, now: i64) -> i64 {
        let end = self.paused_at.unwrap_or(now);
        (end - self.started_at - self.paused_ms).max(0)
    }
}

/// Which kinds of a participant's media a moderator muted.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MutedKinds {
    pub audio: bool,
    pub video: bool,
}

impl MutedKinds {
    /// `kind` is `audio` or `video`; anything else is never muted.
    pub fn get(&self, kind: &str) -> bool {
        match kind {
            "audio" => self.audio,
            "video" => self.video,
            _ => false,
        }
    }

    pub fn set(&mut self, kind: &str, muted: bool) {
        match kind {
            "audio" => self.audio = muted,
            "video" => self.video = muted,
            _ => {}
        }
    }

    pub fn is_empty(&self) -> bool {
        !self.audio && !self.video
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RuntimeParticipant {
    pub participant_id: ParticipantId,
    pub user_id: UserId,
    pub user_name: String,
    pub role: Role,
    pub hand_raised: bool,
    pub joined_at: i64,
    pub joined_seq: u64,
    /// Media plane: this participant's transports, producers and consumers.
    #[serde(default)]
    pub send_transport: Option<String>,
    #[serde(default)]
    pub recv_transport: Option<String>,
    #[serde(default)]
    pub producers: Vec<RuntimeProducer>,
    #[serde(default)]
    pub consumers: Vec<RuntimeConsumer>,
    /// Position in the meeting's `announce_log` of the next producer to announce with `new-producer`, one at a
    /// time (the guide's client tells concurrent `subscribed` replies apart only by order); and when the
    /// outstanding one was sent. Reset to 0 when a recv transport is created (late joiners get every producer).
    #[serde(default)]
    pub announce_cursor: usize,
    #[serde(default)]
    pub announced_at: Option<i64>,
    /// Cluster mode: the node whose socket this session is on (a node found dead takes its sessions with it).
    #[serde(default)]
    pub node: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RuntimeProducer {
    pub producer_id: String,
    pub kind: String,
    /// mic | camera | screen
    pub source: String,
    pub paused: bool,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RuntimeConsumer {
    pub consumer_id: String,
    pub producer_id: String,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ScreenShare {
    pub participant_id: ParticipantId,
    pub user_id: UserId,
    pub user_name: String,
    pub started_at: i64,
}

impl MeetingRuntime {
    /// Forgets the record of what changed (see [`crate::tracked`]): the state as it is becomes the reference. A
    /// store calls it once a change is kept (written, or in place), so the record never outgrows one change.
    pub fn commit(&mut self) {
        self.participants.commit();
        self.raised_hands_of_dropped.commit();
        self.moderator_mutes.commit();
        self.producer_owners.commit();
        self.consumer_owners.commit();
        self.transport_owners.commit();
        self.announce_log.commit();
    }

    /// Undoes every change of the collections since the last commit (the scalar fields are the caller's).
    pub fn revert(&mut self) {
        self.participants.revert();
        self.raised_hands_of_dropped.revert();
        self.moderator_mutes.revert();
        self.producer_owners.revert();
        self.consumer_owners.revert();
        self.transport_owners.revert();
        self.announce_log.revert();
    }

    /// Participants in the order they joined.
    pub fn in_join_order(&self) -> Vec<&RuntimeParticipant> {
        let mut v: Vec<_> = self.participants.values().collect();
        v.sort_by_key(|p| p.joined_seq);
        v
    }

    /// Every participant session of one user.
    pub fn sessions_of<'a>(
        &'a self,
        user: &'a UserId,
    ) -> impl Iterator<Item = &'a RuntimeParticipant> + 'a {
        self.participants
            .values()
            .filter(move |p| &p.user_id == user)
    }

    pub fn has_user(&self, user: &UserId) -> bool {
        self.sessions_of(user).next().is_some()
    }

    /// The participant producing `producer_id`.
    pub fn producer_owner(&self, producer_id: &str) -> Option<&RuntimeParticipant> {
        self.participants
            .get(self.producer_owners.get(producer_id)?)
    }

    /// A producer and its owner.
    pub fn producer(&self, producer_id: &str) -> Option<(&RuntimeParticipant, &RuntimeProducer)> {
        let owner = self.producer_owner(producer_id)?;
        let p = owner
            .producers
            .iter()
            .find(|x| x.producer_id == producer_id)?;
        Some((owner, p))
    }

    /// The participant whose send or recv transport `transport_id` is.
    pub fn transport_owner(&self, transport_id: &str) -> Option<&RuntimeParticipant> {
        self.participants
            .get(self.transport_owners.get(transport_id)?)
    }

    /// Whether a moderator muted `kind` of this participant session (false once it left).
    pub fn moderator_muted(&self, participant: &ParticipantId, kind: &str) -> bool {
        self.participants.contains_key(participant)
            && self
                .moderator_mutes
                .get(participant)
                .is_some_and(|m| m.get(kind))
    }

    /// Sets or lifts a moderator mute of a present participant session; returns whether that changed anything
    /// (and changes nothing otherwise). A change also forgets the mutes of sessions that left.
    pub fn set_moderator_muted(
        &mut self,
        participant: &ParticipantId,
        kind: &str,
        muted: bool,
    ) -> bool {
        if !self.participants.contains_key(participant)
            || self.moderator_muted(participant, kind) == muted
            || !matches!(kind, "audio" | "video")
        {
            return false;
        }
        let present = &self.participants;
        self.moderator_mutes
            .retain(|p, m| present.contains_key(p) && !m.is_empty());
        let entry = self.moderator_mutes.entry(participant.clone()).or_default();
        entry.set(kind, muted);
        if entry.is_empty() {
            self.moderator_mutes.remove(participant);
        }
        true
    }

    /// The participant consuming through `consumer_id`.
    pub fn consumer_owner(&self, consumer_id: &str) -> Option<&RuntimeParticipant> {
        self.participants
            .get(self.consumer_owners.get(consumer_id)?)
    }

    /// Records a new producer of `owner` (and appends it to the announce log); false if `owner` is not here.
    pub fn add_producer(&mut self, owner: &ParticipantId, producer: RuntimeProducer) -> bool {
        let Some(p) = self.participants.get_mut(owner) else {
            return false;
        };
        self.producer_owners
            .insert(producer.producer_id.clone(), owner.clone());
        self.announce_log.push(producer.producer_id.clone());
        p.producers.push(producer);
        true
    }

    /// Forgets a producer; returns its owner and record. Its entry in the announce log stays until
    /// [`MeetingRuntime::compact_announce_log`] (pumping skips producers that are gone).
    pub fn remove_producer(
        &mut self,
        producer_id: &str,
    ) -> Option<(ParticipantId, RuntimeProducer)> {
        let owner = self.producer_owners.remove(producer_id)?;
        let p = self.participants.get_mut(&owner)?;
        let i = p
            .producers
            .iter()
            .position(|x| x.producer_id == producer_id)?;
        Some((owner, p.producers.remove(i)))
    }

    /// Records a new consumer of `owner`; false if `owner` is not here.
    pub fn add_consumer(&mut self, owner: &ParticipantId, consumer: RuntimeConsumer) -> bool {
        let Some(p) = self.participants.get_mut(owner) else {
            return false;
        };
        self.consumer_owners
            .insert(consumer.consumer_id.clone(), owner.clone());
        p.consumers.push(consumer);
        true
    }

    /// Forgets a consumer; returns its owner and record.
    pub fn remove_consumer(
        &mut self,
        consumer_id: &str,
    ) -> Option<(ParticipantId, RuntimeConsumer)> {
        let owner = self.consumer_owners.remove(consumer_id)?;
        let p = self.participants.get_mut(&owner)?;
        let i = p
            .consumers
            .iter()
            .position(|x| x.consumer_id == consumer_id)?;
        Some((owner, p.consumers.remove(i)))
    }

    /// Sets (or clears, with `None`) `owner`'s send or recv transport; false if `owner` is not here. A new recv
    /// transport starts its announcements from the beginning of the log (every producer already in the meeting);
    /// clearing it drops the outstanding one.
    pub fn set_transport(&mut self, owner: &ParticipantId, send: bool, id: Option<String>) -> bool {
        let Some(p) = self.participants.get_mut(owner) else {
            return false;
        };
        let slot = if send {
            &mut p.send_transport
        } else {
            &mut p.recv_transport
        };
        if let Some(old) = slot.take() {
            self.transport_owners.remove(&old);
        }
        if let Some(new) = &id {
            self.transport_owners.insert(new.clone(), owner.clone());
        }
        *slot = id;
        if !send {
            p.announce_cursor = 0;
            p.announced_at = None;
        }
        true
    }

    /// Adds a participant session (without media).
    pub fn insert_participant(&mut self, p: RuntimeParticipant) {
        self.participants.insert(p.participant_id.clone(), p);
    }

    /// Removes a participant session and every index entry of its media.
    pub fn remove_participant(&mut self, id: &ParticipantId) -> Option<RuntimeParticipant> {
        let p = self.participants.remove(id)?;
        self.unindex(&p);
        if self.participants.is_empty() {
            self.announce_log.clear();
        }
        Some(p)
    }

    /// Removes every participant (the meeting ended).
    pub fn take_participants(&mut self) -> Vec<RuntimeParticipant> {
        self.producer_owners.clear();
        self.consumer_owners.clear();
        self.transport_owners.clear();
        self.announce_log.clear();
        self.participants.take().into_values().collect()
    }

    fn unindex(&mut self, p: &RuntimeParticipant) {
        for x in &p.producers {
            self.producer_owners.remove(&x.producer_id);
        }
        for x in &p.consumers {
            self.consumer_owners.remove(&x.consumer_id);
        }
        for t in p.send_transport.iter().chain(p.recv_transport.iter()) {
            self.transport_owners.remove(t);
        }
    }

    /// The next producer `pid` is to be told about, moving its cursor past it (and past closed producers and its
    /// own): the producer's owner and record. Amortized O(1): every log entry is passed once per recv transport.
    pub fn next_announcement(
        &mut self,
        pid: &ParticipantId,
    ) -> Option<(&RuntimeParticipant, &RuntimeProducer)> {
        let mut cursor = self.participants.get(pid)?.announce_cursor;
        let mut found = None;
        while let Some(id) = self.announce_log.get(cursor) {
            cursor += 1;
            if self.producer_owners.get(id).is_some_and(|o| o != pid) {
                found = Some(id.clone());
                break;
            }
        }
        if let Some(p) = self.participants.get_mut(pid) {
            p.announce_cursor = cursor;
        }
        self.producer(&found?)
    }

    /// Whether `p` has producers left to be told about (or one outstanding).
    pub fn announcing(&self, p: &RuntimeParticipant) -> bool {
        p.recv_transport.is_some()
            && (p.announce_cursor < self.announce_log.len() || p.announced_at.is_some())
    }

    /// Drops closed producers from the announce log once they are more than half of it (each participant's
    /// cursor is moved to the same live entry): O(log + participants), amortized over the closes that made it due.
    pub fn compact_announce_log(&mut self) {
        let live = self.producer_owners.len();
        if self.announce_log.len() <= 2 * live + 32 {
            return;
        }
        // before[i] = live entries in log[..i]
        let mut before = Vec::with_capacity(self.announce_log.len() + 1);
        let mut n = 0;
        before.push(0);
        for id in &self.announce_log {
            if self.producer_owners.contains_key(id) {
                n += 1;
            }
            before.push(n);
        }
        for p in self.participants.values_mut() {
            p.announce_cursor = before.get(p.announce_cursor).copied().unwrap_or(n);
        }
        let owners = &self.producer_owners;
        self.announce_log.retain(|id| owners.contains_key(id));
    }

    /// Checks that the indexes match the participants' records exactly (tests and debugging).
    pub fn check_indexes(&self) -> Result<(), String> {
        let mut producers = BTreeMap::new();
        let mut consumers = BTreeMap::new();
        let mut transports = BTreeMap::new();
        for (id, p) in &self.participants {
            for x in &p.producers {
                if producers
                    .insert(x.producer_id.clone(), id.clone())
                    .is_some()
                {
                    return Err(format!("producer {} recorded twice", x.producer_id));
                }
            }
            for x in &p.consumers {
                if consumers
                    .insert(x.consumer_id.clone(), id.clone())
                    .is_some()
                {
                    return Err(format!("consumer {} recorded twice", x.consumer_id));
                }
            }
            for t in p.send_transport.iter().chain(p.recv_transport.iter()) {
                transports.insert(t.clone(), id.clone());
            }
            if p.announce_cursor > self.announce_log.len() {
                return Err(format!("cursor of {id} past the announce log"));
            }
        }
        if producers != *self.producer_owners {
            return Err(format!(
                "producer index {:?} != {:?}",
                self.producer_owners, producers
            ));
        }
        if consumers != *self.consumer_owners {
            return Err(format!(
                "consumer index {:?} != {:?}",
                self.consumer_owners, consumers
            ));
        }
        if transports != *self.transport_owners {
            return Err(format!(
                "transport index {:?} != {:?}",
                self.transport_owners, transports
            ));
        }
        if let Some(missing) = self
            .producer_owners
            .keys()
            .find(|id| !self.announce_log.contains(id))
        {
            return Err(format!("producer {missing} missing from the announce log"));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with(ids: &[&str]) -> MeetingRuntime {
        let mut rt = MeetingRuntime::default();
        for (i, id) in ids.iter().enumerate() {
            let pid = ParticipantId::new(*id);
            rt.participants.insert(
                pid.clone(),
                RuntimeParticipant {
                    participant_id: pid,
                    user_id: UserId::new(format!("user_{id}")),
                    user_name: (*id).to_owned(),
                    role: Role::Participant,
                    hand_raised: false,
                    joined_at: 0,
                    joined_seq: i as u64,
                    send_transport: None,
                    recv_transport: None,
                    producers: Vec::new(),
                    consumers: Vec::new(),
                    announce_cursor: 0,
                    announced_at: None,
                    node: None,
                },
            );
        }
        rt
    }

    #[test]
    fn moderator_mutes_are_per_kind_and_end_with_the_session() {
        let mut rt = with(&["a", "b"]);
        let (a, b) = (ParticipantId::new("a"), ParticipantId::new("b"));
        assert!(rt.set_moderator_muted(&a, "audio", true));
        assert!(!rt.set_moderator_muted(&a, "audio", true), "no change");
        assert!(rt.moderator_muted(&a, "audio"));
        assert!(!rt.moderator_muted(&a, "video"));
        assert!(!rt.set_moderator_muted(&a, "screen", true), "not a kind");
        assert!(!rt.set_moderator_muted(&ParticipantId::new("gone"), "audio", true));
        // a leaves: its mute no longer counts, and the next change forgets it
        rt.participants.remove(&a);
        assert!(!rt.moderator_muted(&a, "audio"));
        assert!(rt.set_moderator_muted(&b, "video", true));
        assert_eq!(rt.moderator_mutes.keys().collect::<Vec<_>>(), vec![&b]);
        assert!(rt.set_moderator_muted(&b, "video", false));
        assert!(rt.moderator_mutes.is_empty(), "an empty entry is dropped");
    }

    fn prod(id: &str) -> RuntimeProducer {
        RuntimeProducer {
            producer_id: id.to_owned(),
            kind: "audio".into(),
            source: "mic".into(),
            paused: false,
        }
    }

    #[test]
    fn indexes_follow_every_change_and_survive_serialization() {
        let mut rt = with(&["a", "b"]);
        let (a, b) = (ParticipantId::new("a"), ParticipantId::new("b"));
        assert!(rt.set_transport(&a, true, Some("ta".into())));
        assert!(rt.set_transport(&b, false, Some("tb".into())));
        assert!(rt.add_producer(&a, prod("p1")));
        assert!(!rt.add_producer(&ParticipantId::new("gone"), prod("px")));
        assert!(rt.add_consumer(
            &b,
            RuntimeConsumer {
                consumer_id: "c1".into(),
                producer_id: "p1".into()
            }
        ));
        rt.check_indexes().expect("consistent");
        assert_eq!(rt.producer_owner("p1").map(|p| &p.participant_id), Some(&a));
        assert_eq!(rt.consumer_owner("c1").map(|p| &p.participant_id), Some(&b));
        assert_eq!(
            rt.transport_owner("tb").map(|p| &p.participant_id),
            Some(&b)
        );
        // a new send transport replaces the old one in the index
        rt.set_transport(&a, true, Some("ta2".into()));
        assert!(rt.transport_owner("ta").is_none());
        rt.check_indexes().expect("consistent");
        // serde keeps them (a Redis store writes the whole state)
        let back: MeetingRuntime =
            serde_json::from_value(serde_json::to_value(&rt).expect("ser")).expect("de");
        assert_eq!(back, rt);
        // a participant leaving takes its entries with it
        let gone = rt.remove_participant(&a).expect("a");
        assert_eq!(gone.producers.len(), 1);
        assert!(rt.producer_owner("p1").is_none());
        assert!(rt.transport_owner("ta2").is_none());
        rt.remove_consumer("c1").expect("c1");
        rt.check_indexes().expect("consistent");
        let all = rt.take_participants();
        assert_eq!(all.len(), 1);
        assert!(rt.transport_owners.is_empty() && rt.announce_log.is_empty());
    }

    #[test]
    fn announcements_read_one_shared_log_and_compaction_keeps_every_cursor_in_place() {
        let mut rt = with(&["a", "b", "c"]);
        let (a, b, c) = (
            ParticipantId::new("a"),
            ParticipantId::new("b"),
            ParticipantId::new("c"),
        );
        rt.set_transport(&b, false, Some("tb".into()));
        rt.set_transport(&c, false, Some("tc".into()));
        for i in 0..100 {
            rt.add_producer(&a, prod(&format!("p{i}")));
        }
        rt.add_producer(&b, prod("own"));
        // b reads p0, p1; c reads nothing yet
        assert_eq!(
            rt.next_announcement(&b).map(|(_, p)| p.producer_id.clone()),
            Some("p0".into())
        );
        assert_eq!(
            rt.next_announcement(&b).map(|(_, p)| p.producer_id.clone()),
            Some("p1".into())
        );
        // p0..p89 close: the log is compacted, cursors move to the same live entry
        for i in 0..90 {
            rt.remove_producer(&format!("p{i}")).expect("live");
        }
        rt.compact_announce_log();
        assert_eq!(rt.announce_log.len(), 11, "closed producers dropped");
        rt.check_indexes().expect("consistent");
        let mut seen_b = Vec::new();
        while let Some((_, p)) = rt.next_announcement(&b) {
            seen_b.push(p.producer_id.clone());
        }
        let mut seen_c = Vec::new();
        while let Some((_, p)) = rt.next_announcement(&c) {
            seen_c.push(p.producer_id.clone());
        }
        let live: Vec<String> = (90..100).map(|i| format!("p{i}")).collect();
        assert_eq!(seen_b, live, "b skips its own producer");
        let mut with_own = live.clone();
        with_own.push("own".into());
        assert_eq!(seen_c, with_own);
        assert!(!rt.announcing(&rt.participants[&c]));
        // a new recv transport starts from the beginning again
        rt.set_transport(&c, false, Some("tc2".into()));
        assert!(rt.announcing(&rt.participants[&c]));
        assert_eq!(
            rt.next_announcement(&c).map(|(_, p)| p.producer_id.clone()),
            Some("p90".into())
        );
    }

    #[test]
    fn runtime_state_without_mutes_still_deserializes() {
        let json = serde_json::json!({"meeting_id": null, "ended": false, "participants": {}, "next_seq": 0,
            "layout": "grid", "spotlight": null, "screen_share": null});
        let rt: MeetingRuntime = serde_json::from_value(json).expect("old shape");
        assert!(rt.moderator_mutes.is_empty());
    }
}
