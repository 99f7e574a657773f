//! [`MeetingRuntime`] as the fields of one Redis hash, and the field diff between two states.
//!
//! | field | value |
//! |---|---|
//! | `v` | version token: a fresh random token on every write (compare-and-set; never reused, so no ABA) |
//! | `n` | participant count (decimal): `totals` and `remove_if_empty` read it without decoding anything |
//! | `meta` | JSON of the scalar rest: ended, next_seq, layout, spotlight, screen_share, recording |
//! | `p:{participantId}` | JSON of its [`RuntimeParticipant`] |
//! | `po:{producerId}` / `co:{consumerId}` / `to:{transportId}` | the owner's participant id (the indexes) |
//! | `h:{userId}` | when that dropped participant's raised hand was recorded (ms, decimal) |
//! | `mm:{participantId}` | JSON of its moderator mutes ([`MutedKinds`]) |
//! | `a:{index}` | the producer id at that position of the announce log |
//!
//! The announce log is one field per entry, not part of `meta`: a new producer appends one field instead of
//! rewriting a list that grows with the meeting. The meeting id is the key, not a field.

use crate::{MeetingRuntime, MutedKinds, RuntimeParticipant, RuntimeRecording, ScreenShare};
use proto::{Layout, MeetingId, ParticipantId, UserId};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

pub(crate) const VERSION: &str = "v";
pub(crate) const COUNT: &str = "n";
const META: &str = "meta";
const PARTICIPANT: &str = "p:";
const PRODUCER_OWNER: &str = "po:";
const CONSUMER_OWNER: &str = "co:";
const TRANSPORT_OWNER: &str = "to:";
const DROPPED_HAND: &str = "h:";
const MODERATOR_MUTE: &str = "mm:";
const ANNOUNCE: &str = "a:";

/// The scalar part of a meeting's state (field `meta`).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
struct Meta {
    #[serde(default)]
    ended: bool,
    #[serde(default)]
    next_seq: u64,
    #[serde(default)]
    layout: Layout,
    #[serde(default)]
    spotlight: Option<UserId>,
    #[serde(default)]
    screen_share: Option<ScreenShare>,
    #[serde(default)]
    recording: Option<RuntimeRecording>,
    #[serde(default)]
    media_home: Option<String>,
}

impl Meta {
    fn put(self, rt: &mut MeetingRuntime) {
        rt.ended = self.ended;
        rt.next_seq = self.next_seq;
        rt.layout = self.layout;
        rt.spotlight = self.spotlight;
        rt.screen_share = self.screen_share;
        rt.recording = self.recording;
        rt.media_home = self.media_home;
    }

    fn of(rt: &MeetingRuntime) -> Self {
        Self {
            ended: rt.ended,
            next_seq: rt.next_seq,
            layout: rt.layout,
            spotlight: rt.spotlight.clone(),
            screen_share: rt.screen_share.clone(),
            recording: rt.recording.clone(),
            media_home: rt.media_home.clone(),
        }
    }
}

/// A decode failure: the field and why.
#[derive(Debug)]
pub(crate) struct Corrupt(pub String);

fn corrupt(field: &str, why: impl std::fmt::Display) -> Corrupt {
    Corrupt(format!("field {field:?} unreadable: {why}"))
}

fn text<'a>(field: &str, value: &'a [u8]) -> Result<&'a str, Corrupt> {
    std::str::from_utf8(value).map_err(|e| corrupt(field, e))
}

fn json<T: for<'de> Deserialize<'de>>(field: &str, value: &[u8]) -> Result<T, Corrupt> {
    serde_json::from_slice(value).map_err(|e| corrupt(field, e))
}

/// A meeting's state from its hash (`fields` as HGETALL returns them; the `v` and `n` fields are ignored here).
pub(crate) fn decode(
    meeting: &MeetingId,
    fields: &[(String, Vec<u8>)],
) -> Result<MeetingRuntime, Corrupt> {
    let mut rt = MeetingRuntime {
        meeting_id: Some(meeting.clone()),
        ..MeetingRuntime::default()
    };
    let mut announce = BTreeMap::new();
    for (field, value) in fields {
        set_field(&mut rt, field, value, &mut announce)?;
    }
    // Positions are written 0..len and cleared from the end, so they are contiguous; a gap would only drop an
    // entry from the order, never invent one.
    rt.announce_log = announce.into_values().collect::<Vec<_>>().into();
    rt.commit();
    Ok(rt)
}

/// Brings a decoded copy up to date with what changed in the hash since: `set` the current value of each changed
/// field, `del` the changed fields that no longer exist (a catch-up answer). The result is what [`decode`] would
/// make of the current hash; an answer that cannot be (an announce log with a gap) is reported, so the caller
/// reads the hash whole instead.
pub(crate) fn apply(
    rt: &mut MeetingRuntime,
    set: &[(String, Vec<u8>)],
    del: &[String],
) -> Result<(), Corrupt> {
    let mut announce = BTreeMap::new();
    let mut cut = None::<usize>;
    for field in del {
        let (kind, id) = split(field);
        match kind {
            PARTICIPANT => {
                rt.participants.remove(&ParticipantId::new(id));
            }
            PRODUCER_OWNER => {
                rt.producer_owners.remove(id);
            }
            CONSUMER_OWNER => {
                rt.consumer_owners.remove(id);
            }
            TRANSPORT_OWNER => {
                rt.transport_owners.remove(id);
            }
            DROPPED_HAND => {
                rt.raised_hands_of_dropped.remove(&UserId::new(id));
            }
            MODERATOR_MUTE => {
                rt.moderator_mutes.remove(&ParticipantId::new(id));
            }
            ANNOUNCE => {
                let i = id.parse::<usize>().map_err(|e| corrupt(field, e))?;
                cut = Some(cut.map_or(i, |c| c.min(i)));
            }
            // `meta`, `v` and `n` are never deleted while the hash exists; unknown fields are not decoded.
            _ => {}
        }
    }
    for (field, value) in set {
        set_field(rt, field, value, &mut announce)?;
    }
    // The log's positions are contiguous in the hash, and shrink from the end: the deleted ones are its tail.
    if let Some(cut) = cut {
        rt.announce_log.truncate(cut);
    }
    for (i, producer) in announce {
        match i.cmp(&rt.announce_log.len()) {
            std::cmp::Ordering::Less => rt.announce_log.set(i, producer),
            std::cmp::Ordering::Equal => rt.announce_log.push(producer),
            std::cmp::Ordering::Greater => {
                return Err(Corrupt(format!(
                    "announce log: position {i} changed past its end ({})",
                    rt.announce_log.len()
                )))
            }
        }
    }
    rt.commit();
    Ok(())
}

fn split(field: &str) -> (&str, &str) {
    match field.find(':') {
        Some(i) => field.split_at(i + 1),
        None => (field, ""),
    }
}

/// Sets one field of the hash on the decoded state; announce-log positions are collected in `announce`.
fn set_field(
    rt: &mut MeetingRuntime,
    field: &str,
    value: &[u8],
    announce: &mut BTreeMap<usize, String>,
) -> Result<(), Corrupt> {
    let (kind, id) = split(field);
    match kind {
        META => {
            let m: Meta = json(field, value)?;
            m.put(rt);
        }
        VERSION | COUNT => {}
        PARTICIPANT => {
            let p: RuntimeParticipant = json(field, value)?;
            rt.participants.insert(ParticipantId::new(id), p);
        }
        PRODUCER_OWNER | CONSUMER_OWNER | TRANSPORT_OWNER => {
            let owner = ParticipantId::new(text(field, value)?);
            let index = match kind {
                PRODUCER_OWNER => &mut rt.producer_owners,
                CONSUMER_OWNER => &mut rt.consumer_owners,
                _ => &mut rt.transport_owners,
            };
            index.insert(id.to_owned(), owner);
        }
        DROPPED_HAND => {
            let at = text(field, value)?
                .parse::<i64>()
                .map_err(|e| corrupt(field, e))?;
            rt.raised_hands_of_dropped.insert(UserId::new(id), at);
        }
        MODERATOR_MUTE => {
            let m: MutedKinds = json(field, value)?;
            rt.moderator_mutes.insert(ParticipantId::new(id), m);
        }
        ANNOUNCE => {
            let i = id.parse::<usize>().map_err(|e| corrupt(field, e))?;
            announce.insert(i, text(field, value)?.to_owned());
        }
        // A field this version does not know (a newer node wrote it): kept as it is, since a diff never
        // deletes what it did not decode.
        _ => {}
    }
    Ok(())
}

/// The writes that turn the stored `before` into `after`: fields to set and fields to delete. `before` is `None`
/// for a meeting that has no hash yet (everything is written). Only fields whose value changed are written, so a
/// change to one participant writes that participant's field (and the index entries of what it changed).
#[derive(Debug, Default, PartialEq)]
pub(crate) struct Diff {
    pub set: Vec<(String, Vec<u8>)>,
    pub del: Vec<String>,
}

impl Diff {
    pub fn is_empty(&self) -> bool {
        self.set.is_empty() && self.del.is_empty()
    }

    /// Announce-log positions from `from` on: `old` and `new` are the entries from there, before and after.
    fn log(&mut self, from: usize, old: &[String], new: &[String]) {
        for j in 0..old.len().max(new.len()) {
            let i = from + j;
            match (old.get(j), new.get(j)) {
                (Some(a), Some(b)) if a == b => {}
                (_, Some(b)) => self
                    .set
                    .push((format!("{ANNOUNCE}{i}"), b.clone().into_bytes())),
                (Some(_), None) => self.del.push(format!("{ANNOUNCE}{i}")),
                (None, None) => {}
            }
        }
    }

    /// The changed keys of a tracked map: (key, value before, value now).
    fn changed<'a, K: 'a, V: PartialEq + 'a>(
        &mut self,
        prefix: &str,
        changes: impl Iterator<Item = (&'a K, Option<&'a V>, Option<&'a V>)>,
        key: impl Fn(&K) -> &str,
        encode: impl Fn(&V) -> Result<Vec<u8>, serde_json::Error>,
    ) -> Result<(), serde_json::Error> {
        for (k, old, new) in changes {
            match (old, new) {
                (Some(a), Some(b)) if a == b => {}
                (_, Some(b)) => self.set.push((format!("{prefix}{}", key(k)), encode(b)?)),
                (Some(_), None) => self.del.push(format!("{prefix}{}", key(k))),
                (None, None) => {}
            }
        }
        Ok(())
    }

    fn map<K: Ord, V: PartialEq>(
        &mut self,
        prefix: &str,
        before: Option<&BTreeMap<K, V>>,
        after: &BTreeMap<K, V>,
        key: impl Fn(&K) -> &str,
        encode: impl Fn(&V) -> Result<Vec<u8>, serde_json::Error>,
    ) -> Result<(), serde_json::Error> {
        for (k, v) in after {
            if before.and_then(|b| b.get(k)) != Some(v) {
                self.set.push((format!("{prefix}{}", key(k)), encode(v)?));
            }
        }
        for k in before.into_iter().flat_map(|b| b.keys()) {
            if !after.contains_key(k) {
                self.del.push(format!("{prefix}{}", key(k)));
            }
        }
        Ok(())
    }
}

fn to_json<T: Serialize>(v: &T) -> Result<Vec<u8>, serde_json::Error> {
    serde_json::to_vec(v)
}

/// Fails only if a value cannot be serialized (these plain structs, without maps keyed by non-strings, always
/// can; the error is passed on rather than written as an empty value).
pub(crate) fn diff(
    before: Option<&MeetingRuntime>,
    after: &MeetingRuntime,
) -> Result<Diff, serde_json::Error> {
    let mut d = Diff::default();
    let meta = Meta::of(after);
    if before.map(Meta::of).as_ref() != Some(&meta) {
        d.set.push((META.to_owned(), to_json(&meta)?));
    }
    if before.map(|b| b.participants.len()) != Some(after.participants.len()) {
        d.set.push((
            COUNT.to_owned(),
            after.participants.len().to_string().into_bytes(),
        ));
    }
    d.map(
        PARTICIPANT,
        before.map(|b| &*b.participants),
        &after.participants,
        ParticipantId::as_str,
        to_json,
    )?;
    let owner = |p: &ParticipantId| Ok(p.as_str().as_bytes().to_vec());
    d.map(
        PRODUCER_OWNER,
        before.map(|b| &*b.producer_owners),
        &after.producer_owners,
        String::as_str,
        owner,
    )?;
    d.map(
        CONSUMER_OWNER,
        before.map(|b| &*b.consumer_owners),
        &after.consumer_owners,
        String::as_str,
        owner,
    )?;
    d.map(
        TRANSPORT_OWNER,
        before.map(|b| &*b.transport_owners),
        &after.transport_owners,
        String::as_str,
        owner,
    )?;
    d.map(
        DROPPED_HAND,
        before.map(|b| &*b.raised_hands_of_dropped),
        &after.raised_hands_of_dropped,
        UserId::as_str,
        |at| Ok(at.to_string().into_bytes()),
    )?;
    d.map(
        MODERATOR_MUTE,
        before.map(|b| &*b.moderator_mutes),
        &after.moderator_mutes,
        ParticipantId::as_str,
        to_json,
    )?;
    let old_log = before.map(|b| b.announce_log.as_slice()).unwrap_or(&[]);
    d.log(0, old_log, &after.announce_log);
    Ok(d)
}

/// What a change made in place must write: the scalars and the count from before it, and the record the tracked
/// collections keep (see [`crate::tracked`]). [`Snapshot::restore`] undoes the change.
pub(crate) struct Snapshot {
    meta: Meta,
    count: usize,
}

impl Snapshot {
    /// Taken before a change; the collections' records must be empty (committed).
    pub fn of(rt: &MeetingRuntime) -> Self {
        Self {
            meta: Meta::of(rt),
            count: rt.participants.len(),
        }
    }

    /// Puts the state back as it was when the snapshot was taken.
    pub fn restore(self, rt: &mut MeetingRuntime) {
        rt.revert();
        self.meta.put(rt);
    }

    /// The writes that store the change made since the snapshot: the same as [`diff`] of the state before and
    /// after, in time that grows with the change (the changed keys), not with the meeting.
    pub fn diff(&self, rt: &MeetingRuntime) -> Result<Diff, serde_json::Error> {
        let mut d = Diff::default();
        let meta = Meta::of(rt);
        if meta != self.meta {
            d.set.push((META.to_owned(), to_json(&meta)?));
        }
        if rt.participants.len() != self.count {
            d.set.push((
                COUNT.to_owned(),
                rt.participants.len().to_string().into_bytes(),
            ));
        }
        d.changed(
            PARTICIPANT,
            rt.participants.changes(),
            ParticipantId::as_str,
            to_json,
        )?;
        let owner = |p: &ParticipantId| Ok(p.as_str().as_bytes().to_vec());
        d.changed(
            PRODUCER_OWNER,
            rt.producer_owners.changes(),
            String::as_str,
            owner,
        )?;
        d.changed(
            CONSUMER_OWNER,
            rt.consumer_owners.changes(),
            String::as_str,
            owner,
        )?;
        d.changed(
            TRANSPORT_OWNER,
            rt.transport_owners.changes(),
            String::as_str,
            owner,
        )?;
        d.changed(
            DROPPED_HAND,
            rt.raised_hands_of_dropped.changes(),
            UserId::as_str,
            |at| Ok(at.to_string().into_bytes()),
        )?;
        d.changed(
            MODERATOR_MUTE,
            rt.moderator_mutes.changes(),
            ParticipantId::as_str,
            to_json,
        )?;
        if let Some((from, old_tail)) = rt.announce_log.changes() {
            d.log(
                from,
                old_tail,
                &rt.announce_log[from.min(rt.announce_log.len())..],
            );
        }
        Ok(d)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{RuntimeConsumer, RuntimeProducer};
    use proto::Role;

    fn participant(id: &str, seq: u64) -> RuntimeParticipant {
        RuntimeParticipant {
            participant_id: ParticipantId::new(id),
            user_id: UserId::new(format!("u_{id}")),
            user_name: id.to_owned(),
            role: Role::Participant,
            hand_raised: false,
            joined_at: 1_000,
            joined_seq: seq,
            send_transport: None,
            recv_transport: None,
            producers: Vec::new(),
            consumers: Vec::new(),
            announce_cursor: 0,
            announced_at: None,
            node: None,
        }
    }

    fn apply(hash: &mut BTreeMap<String, Vec<u8>>, d: &Diff) {
        for (f, v) in &d.set {
            hash.insert(f.clone(), v.clone());
        }
        for f in &d.del {
            hash.remove(f);
        }
    }

    fn fields(hash: &BTreeMap<String, Vec<u8>>) -> Vec<(String, Vec<u8>)> {
        hash.iter().map(|(k, v)| (k.clone(), v.clone())).collect()
    }

    /// A camera producer `q{i}`.
    fn camera(i: usize) -> RuntimeProducer {
        RuntimeProducer {
            producer_id: format!("q{i}"),
            kind: "video".into(),
            source: "camera".into(),
            paused: false,
        }
    }

    fn full() -> MeetingRuntime {
        let m = MeetingId::new("m:1");
        let mut rt = MeetingRuntime {
            meeting_id: Some(m),
            ..MeetingRuntime::default()
        };
        for (i, id) in ["a", "b:c", "d"].iter().enumerate() {
            rt.insert_participant(participant(id, i as u64));
        }
        let (a, b) = (ParticipantId::new("a"), ParticipantId::new("b:c"));
        rt.set_transport(&a, true, Some("t1".into()));
        rt.set_transport(&b, false, Some("t2".into()));
        rt.add_producer(
            &a,
            RuntimeProducer {
                producer_id: "p1".into(),
                kind: "audio".into(),
                source: "mic".into(),
                paused: false,
            },
        );
        rt.add_consumer(
            &b,
            RuntimeConsumer {
                consumer_id: "c1".into(),
                producer_id: "p1".into(),
            },
        );
        rt.set_moderator_muted(&a, "audio", true);
        rt.raised_hands_of_dropped.insert(UserId::new("gone"), 77);
        rt.ended = true;
        rt.next_seq = 3;
        rt.layout = Layout::Speaker;
        rt.spotlight = Some(UserId::new("u_a"));
        rt
    }

    #[test]
    fn every_part_survives_the_round_trip() {
        let rt = full();
        let mut hash = BTreeMap::new();
        apply(&mut hash, &diff(None, &rt).expect("diff"));
        assert_eq!(hash.get(COUNT).map(Vec::as_slice), Some(&b"3"[..]));
        let back = decode(&MeetingId::new("m:1"), &fields(&hash)).expect("decode");
        assert_eq!(back, rt);
        back.check_indexes().expect("indexes");
        assert!(
            diff(Some(&rt), &back).expect("diff").is_empty(),
            "nothing to write"
        );
    }

    #[test]
    fn one_participant_change_writes_only_its_field() {
        let before = full();
        let mut after = before.clone();
        if let Some(p) = after.participants.get_mut(&ParticipantId::new("d")) {
            p.hand_raised = true;
        }
        let d = diff(Some(&before), &after).expect("diff");
        assert_eq!(d.set.len(), 1);
        assert_eq!(d.set[0].0, "p:d");
        assert!(d.del.is_empty());
    }

    #[test]
    fn a_leave_deletes_its_fields_and_the_log_shrinks_from_the_end() {
        let before = full();
        let mut after = before.clone();
        after.remove_participant(&ParticipantId::new("a"));
        let d = diff(Some(&before), &after).expect("diff");
        let mut del = d.del.clone();
        del.sort();
        assert_eq!(del, vec!["p:a", "po:p1", "to:t1"]);
        let mut set: Vec<_> = d.set.iter().map(|(f, _)| f.as_str()).collect();
        set.sort();
        assert_eq!(set, vec!["n"]);
        // the meeting ends: everything but the meta goes
        let mut hash = BTreeMap::new();
        apply(&mut hash, &diff(None, &before).expect("diff"));
        apply(&mut hash, &d);
        let mut ended = after.clone();
        ended.take_participants();
        ended.raised_hands_of_dropped.clear();
        apply(&mut hash, &diff(Some(&after), &ended).expect("diff"));
        let mut left: Vec<_> = hash.keys().map(String::as_str).collect();
        left.sort();
        assert_eq!(left, vec!["meta", "mm:a", "n"]);
        let back = decode(&MeetingId::new("m:1"), &fields(&hash)).expect("decode");
        assert_eq!(back, ended);
    }

    /// What a catch-up brings (the diff's fields with their new values, and the deleted ones) turns the old copy
    /// into exactly the new state: participants, indexes, meta and the announce log growing and shrinking.
    #[test]
    fn a_copy_caught_up_from_the_changed_fields_equals_the_new_state() {
        let start = full();
        let mut states = vec![start.clone()];
        let mut s = start.clone();
        s.remove_participant(&ParticipantId::new("a"));
        states.push(s.clone());
        for i in 0..5 {
            s.add_producer(&ParticipantId::new("d"), camera(i));
        }
        states.push(s.clone());
        for i in 0..4 {
            s.remove_producer(&format!("q{i}"));
        }
        s.compact_announce_log();
        s.layout = Layout::Grid;
        states.push(s.clone());
        s.take_participants();
        states.push(s.clone());
        for (i, before) in states.iter().enumerate() {
            for (j, after) in states.iter().enumerate() {
                let d = diff(Some(before), after).expect("diff");
                let mut copy = before.clone();
                super::apply(&mut copy, &d.set, &d.del).expect("apply");
                assert_eq!(&copy, after, "state {i} caught up to state {j}");
            }
        }
        // a change past the log's end is refused, so the caller reads the hash whole
        let mut copy = start.clone();
        let e = super::apply(&mut copy, &[("a:9".into(), b"p9".to_vec())], &[]).expect_err("gap");
        assert!(e.0.contains("position 9"), "{}", e.0);
    }

    /// A change made in place writes exactly what the diff of the states before and after would (from the
    /// tracked record, not a comparison of everything), and `restore` puts the state back.
    #[test]
    fn the_tracked_diff_is_the_full_diff_and_restore_undoes_it() {
        type Change = fn(&mut MeetingRuntime);
        let changes: Vec<(&str, Change)> = vec![
            ("hand", |rt| {
                if let Some(p) = rt.participants.get_mut(&ParticipantId::new("d")) {
                    p.hand_raised = true;
                }
            }),
            ("leave", |rt| {
                rt.remove_participant(&ParticipantId::new("a"));
            }),
            ("produce", |rt| {
                for i in 0..3 {
                    rt.add_producer(&ParticipantId::new("d"), camera(i));
                }
            }),
            ("end", |rt| {
                rt.take_participants();
                rt.raised_hands_of_dropped.clear();
                rt.ended = false;
                rt.layout = Layout::Grid;
            }),
            ("nothing", |rt| {
                // touched but left as it was: nothing to write
                let _ = rt.participants.get_mut(&ParticipantId::new("d"));
            }),
        ];
        let sorted = |mut d: Diff| {
            d.set.sort();
            d.del.sort();
            d
        };
        for (name, change) in changes {
            let before = full();
            let mut rt = before.clone();
            rt.commit();
            let snap = Snapshot::of(&rt);
            change(&mut rt);
            let tracked = sorted(snap.diff(&rt).expect("diff"));
            let whole = sorted(diff(Some(&before), &rt).expect("diff"));
            assert_eq!(tracked, whole, "{name}");
            snap.restore(&mut rt);
            assert_eq!(rt, before, "{name}: restored");
        }
    }

    #[test]
    fn unreadable_fields_are_reported_not_panicked_on() {
        let m = MeetingId::new("m");
        for (f, v) in [
            ("meta", &b"{"[..]),
            ("p:x", b"[]"),
            ("h:u", b"soon"),
            ("a:one", b"p1"),
            ("po:p", b"\xff"),
        ] {
            let e = decode(&m, &[(f.to_owned(), v.to_vec())]).expect_err(f);
            assert!(e.0.contains(f), "{}", e.0);
        }
        // unknown fields are left alone
        let rt = decode(&m, &[("future:x".to_owned(), b"1".to_vec())]).expect("ok");
        assert_eq!(rt.meeting_id, Some(m));
    }
}
