//! The runtime state of one meeting: plain data, serializable so a Redis implementation can store it.

use proto::{Layout, MeetingId, ParticipantId, Role, UserId};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct MeetingRuntime {
    pub meeting_id: Option<MeetingId>,
    /// Set when the meeting ends, so a join racing the end cannot slip in.
    pub ended: bool,
    /// In join order (participant ids are random, so order by `joined_seq`).
    pub participants: BTreeMap<ParticipantId, RuntimeParticipant>,
    pub next_seq: u64,
    pub layout: Layout,
    pub spotlight: Option<UserId>,
    pub screen_share: Option<ScreenShare>,
    /// Users whose connection dropped with a raised hand, and when (ms): a rejoin within the grace period gets the
    /// hand back (DESIGN §4). They keep an empty meeting's state alive for the grace period (so even a lone
    /// participant's hand comes back), then are pruned.
    #[serde(default)]
    pub raised_hands_of_dropped: BTreeMap<UserId, i64>,
    /// Moderator mutes, per participant session and kind (DESIGN §4): with `allowSelfUnmute` false they hold across
    /// `producer:pause`/`resume`, `producer:close` and a new `produce`, until a host/moderator lifts them. Keyed by
    /// participant id (ids are never reused, so a mute ends with its session); read through
    /// [`MeetingRuntime::moderator_muted`], which ignores sessions that left.
    #[serde(default)]
    pub moderator_mutes: BTreeMap<ParticipantId, MutedKinds>,
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
    /// Producers still to announce with `new-producer`, one at a time (the guide's client tells concurrent
    /// `subscribed` replies apart only by order), and when the outstanding one was sent.
    #[serde(default)]
    pub announce_queue: std::collections::VecDeque<String>,
    #[serde(default)]
    pub announced_at: Option<i64>,
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
            .values()
            .find(|p| p.producers.iter().any(|x| x.producer_id == producer_id))
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
            .values()
            .find(|p| p.consumers.iter().any(|x| x.consumer_id == consumer_id))
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
                    announce_queue: Default::default(),
                    announced_at: None,
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

    #[test]
    fn runtime_state_without_mutes_still_deserializes() {
        let json = serde_json::json!({"meeting_id": null, "ended": false, "participants": {}, "next_seq": 0,
            "layout": "grid", "spotlight": null, "screen_share": null});
        let rt: MeetingRuntime = serde_json::from_value(json).expect("old shape");
        assert!(rt.moderator_mutes.is_empty());
    }
}
