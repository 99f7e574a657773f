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
}
