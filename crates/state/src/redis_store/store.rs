//! [`RuntimeStore`] on Redis: one hash per meeting, written field by field under compare-and-set (the model is in
//! the parent module's doc, the field layout in [`super::codec`]).

use super::codec::{self, Diff};
use super::RedisState;
use crate::{MeetingRuntime, RuntimeStore, StateError};
use proto::MeetingId;
use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;
use tokio::sync::Mutex as AsyncMutex;

/// How many times `modify` reruns its closure on fresh state after losing a compare-and-set to another node.
pub const MAX_ATTEMPTS: u32 = 64;

/// KEYS[1] the meeting's hash, KEYS[2] the meetings set. ARGV[1] the version token read ('' = the hash did not
/// exist), ARGV[2] the new token, ARGV[3] the meeting id, ARGV[4] how many fields to set, then that many
/// field/value pairs, then the fields to delete. Returns 1 when written, 0 when the version moved.
const WRITE: &str = r"
local cur = redis.call('HGET', KEYS[1], 'v')
if (cur or '') ~= ARGV[1] then return 0 end
local i = 5
for _ = 1, tonumber(ARGV[4]) do
  redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 1])
  i = i + 2
end
while i <= #ARGV do
  redis.call('HDEL', KEYS[1], ARGV[i])
  i = i + 1
end
redis.call('HSET', KEYS[1], 'v', ARGV[2])
redis.call('SADD', KEYS[2], ARGV[3])
return 1
";

/// KEYS[1] the meeting's hash, KEYS[2] the meetings set, ARGV[1] the meeting id. Removes the meeting only when it
/// has no participant, has not ended and holds no dropped participant's hand (the local store's rule). Returns 1
/// when removed. With `n` = 0 the hash is small, so listing its fields is cheap.
const REMOVE_IF_EMPTY: &str = r"
if redis.call('EXISTS', KEYS[1]) == 0 then
  redis.call('SREM', KEYS[2], ARGV[1])
  return 0
end
local n = tonumber(redis.call('HGET', KEYS[1], 'n') or '0')
if n == nil or n > 0 then return 0 end
local meta = redis.call('HGET', KEYS[1], 'meta')
if meta then
  local ok, m = pcall(cjson.decode, meta)
  if not ok or m.ended then return 0 end
end
for _, f in ipairs(redis.call('HKEYS', KEYS[1])) do
  local kind = string.sub(f, 1, 2)
  if kind == 'p:' or kind == 'h:' then return 0 end
end
redis.call('DEL', KEYS[1])
redis.call('SREM', KEYS[2], ARGV[1])
return 1
";

/// KEYS[1] the meeting's hash, KEYS[2] the meetings set, ARGV[1] the meeting id.
const REMOVE: &str = r"
redis.call('DEL', KEYS[1])
redis.call('SREM', KEYS[2], ARGV[1])
return 1
";

/// The cluster-wide [`RuntimeStore`]. Cheap to clone (clones share the connection and the local locks).
#[derive(Clone, Debug)]
pub struct RedisRuntimeStore {
    state: RedisState,
    scripts: Arc<Scripts>,
    /// Per meeting being modified on this node: a lock its modifies queue on, so they do not race each other's
    /// compare-and-set (only other nodes can). Dropped when nobody holds or waits for it.
    local: Arc<Mutex<HashMap<MeetingId, Arc<AsyncMutex<()>>>>>,
}

#[derive(Debug)]
struct Scripts {
    write: redis::Script,
    remove_if_empty: redis::Script,
    remove: redis::Script,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// A claim on one meeting's local lock; on drop (also when the modify is cancelled) the lock is forgotten if
/// nobody else holds or waits for it (checked under the map's mutex, which every new holder also takes, so nobody
/// can pick it up in between).
struct LocalTurn<'a> {
    map: &'a Mutex<HashMap<MeetingId, Arc<AsyncMutex<()>>>>,
    meeting: MeetingId,
    lock: Arc<AsyncMutex<()>>,
}

impl Drop for LocalTurn<'_> {
    fn drop(&mut self) {
        let mut map = lock(self.map);
        if Arc::strong_count(&self.lock) == 2
            && map
                .get(&self.meeting)
                .is_some_and(|l| Arc::ptr_eq(l, &self.lock))
        {
            map.remove(&self.meeting);
        }
    }
}

/// What one read of a meeting found: its state and the version token to write against.
struct Loaded {
    rt: Option<MeetingRuntime>,
    version: String,
}

impl RedisRuntimeStore {
    pub fn new(state: RedisState) -> Self {
        Self {
            state,
            scripts: Arc::new(Scripts {
                write: redis::Script::new(WRITE),
                remove_if_empty: redis::Script::new(REMOVE_IF_EMPTY),
                remove: redis::Script::new(REMOVE),
            }),
            local: Arc::default(),
        }
    }

    /// Connects (see [`RedisState::connect`]).
    pub async fn connect(url: &str, prefix: &str) -> Result<Self, StateError> {
        Ok(Self::new(RedisState::connect(url, prefix).await?))
    }

    /// Whether Redis answers, for `/readyz`.
    pub async fn ping(&self) -> Result<(), StateError> {
        self.state.ping().await
    }

    /// The key of a meeting's hash (tests look at its fields).
    pub fn meeting_key(&self, meeting: &MeetingId) -> String {
        self.state.key(&["m", meeting.as_str()])
    }

    fn meetings_key(&self) -> String {
        self.state.key(&["meetings"])
    }

    async fn load(&self, meeting: &MeetingId) -> Result<Loaded, StateError> {
        let mut conn = self.state.conn.clone();
        let key = self.meeting_key(meeting);
        let fields: Vec<(String, Vec<u8>)> = self
            .state
            .call("HGETALL", async move {
                redis::cmd("HGETALL").arg(key).query_async(&mut conn).await
            })
            .await?;
        if fields.is_empty() {
            return Ok(Loaded {
                rt: None,
                version: String::new(),
            });
        }
        let version = fields
            .iter()
            .find(|(f, _)| f == codec::VERSION)
            .map(|(_, v)| String::from_utf8_lossy(v).into_owned())
            .unwrap_or_default();
        let rt = codec::decode(meeting, &fields)
            .map_err(|e| StateError::Backend(format!("meeting {meeting} in redis: {}", e.0)))?;
        Ok(Loaded {
            rt: Some(rt),
            version,
        })
    }

    /// Applies `diff` if the meeting's version is still `version`; false when another writer came first.
    async fn write(
        &self,
        meeting: &MeetingId,
        version: &str,
        diff: &Diff,
    ) -> Result<bool, StateError> {
        let mut inv = self.scripts.write.key(self.meeting_key(meeting));
        inv.key(self.meetings_key())
            .arg(version)
            .arg(format!("{:032x}", rand::random::<u128>()))
            .arg(meeting.as_str())
            .arg(diff.set.len());
        for (f, v) in &diff.set {
            inv.arg(f).arg(v.as_slice());
        }
        for f in &diff.del {
            inv.arg(f);
        }
        let mut conn = self.state.conn.clone();
        let written: i64 = self
            .state
            .call("write", inv.invoke_async(&mut conn))
            .await?;
        Ok(written == 1)
    }

    fn local_lock(&self, meeting: &MeetingId) -> LocalTurn<'_> {
        let held = lock(&self.local)
            .entry(meeting.clone())
            .or_default()
            .clone();
        LocalTurn {
            map: &self.local,
            meeting: meeting.clone(),
            lock: held,
        }
    }

    async fn modify_locked(
        &self,
        meeting: &MeetingId,
        f: &mut (dyn for<'r> FnMut(&'r mut MeetingRuntime) -> bool + Send),
    ) -> Result<(), StateError> {
        for attempt in 0..MAX_ATTEMPTS {
            if attempt > 0 {
                // Lost to another node: back off a little (jittered, growing to ~32 ms) before rereading.
                let cap = 1u64 << attempt.min(5);
                tokio::time::sleep(Duration::from_micros(rand::random_range(0..=cap * 1000))).await;
            }
            let Loaded { rt, version } = self.load(meeting).await?;
            let mut next = rt.clone().unwrap_or_else(|| MeetingRuntime {
                meeting_id: Some(meeting.clone()),
                ..MeetingRuntime::default()
            });
            if !f(&mut next) {
                return Ok(());
            }
            let diff = codec::diff(rt.as_ref(), &next).map_err(|e| {
                StateError::Backend(format!("meeting {meeting}: cannot encode its state: {e}"))
            })?;
            if rt.is_some() && diff.is_empty() {
                return Ok(());
            }
            if self.write(meeting, &version, &diff).await? {
                return Ok(());
            }
        }
        Err(StateError::Backend(format!(
            "meeting {meeting}: gave up after {MAX_ATTEMPTS} conflicting writes"
        )))
    }
}

#[async_trait::async_trait]
impl RuntimeStore for RedisRuntimeStore {
    /// Unlike the local store, a meeting with no state stays without one when `f` returns false (nothing is
    /// written), so a refused join leaves nothing behind.
    async fn modify(
        &self,
        meeting: &MeetingId,
        f: &mut (dyn for<'r> FnMut(&'r mut MeetingRuntime) -> bool + Send),
    ) -> Result<(), StateError> {
        let turn = self.local_lock(meeting);
        let _held = turn.lock.lock().await;
        self.modify_locked(meeting, f).await
    }

    async fn read(
        &self,
        meeting: &MeetingId,
        f: &mut (dyn for<'r> FnMut(Option<&'r MeetingRuntime>) + Send),
    ) -> Result<(), StateError> {
        let loaded = self.load(meeting).await?;
        f(loaded.rt.as_ref());
        Ok(())
    }

    async fn get(&self, meeting: &MeetingId) -> Result<Option<MeetingRuntime>, StateError> {
        Ok(self.load(meeting).await?.rt)
    }

    async fn remove(&self, meeting: &MeetingId) -> Result<(), StateError> {
        let mut inv = self.scripts.remove.key(self.meeting_key(meeting));
        inv.key(self.meetings_key()).arg(meeting.as_str());
        let mut conn = self.state.conn.clone();
        let _: i64 = self
            .state
            .call("remove", inv.invoke_async(&mut conn))
            .await?;
        Ok(())
    }

    async fn remove_if_empty(&self, meeting: &MeetingId) -> Result<(), StateError> {
        let mut inv = self.scripts.remove_if_empty.key(self.meeting_key(meeting));
        inv.key(self.meetings_key()).arg(meeting.as_str());
        let mut conn = self.state.conn.clone();
        let _: i64 = self
            .state
            .call("remove_if_empty", inv.invoke_async(&mut conn))
            .await?;
        Ok(())
    }

    /// One SMEMBERS and one pipeline of `HGET n` per meeting: O(meetings), for a metrics scrape.
    async fn totals(&self) -> Result<(usize, usize), StateError> {
        let mut conn = self.state.conn.clone();
        let set = self.meetings_key();
        let ids: Vec<String> = self
            .state
            .call("SMEMBERS", async {
                redis::cmd("SMEMBERS").arg(set).query_async(&mut conn).await
            })
            .await?;
        if ids.is_empty() {
            return Ok((0, 0));
        }
        let mut pipe = redis::pipe();
        for id in &ids {
            pipe.cmd("HGET")
                .arg(self.meeting_key(&MeetingId::new(id.as_str())))
                .arg(codec::COUNT);
        }
        let counts: Vec<Option<String>> = self
            .state
            .call("totals", pipe.query_async(&mut conn))
            .await?;
        let (mut live, mut participants) = (0, 0);
        for n in counts.into_iter().flatten() {
            let n: usize = n.parse().map_err(|e| {
                StateError::Backend(format!("participant count {n:?} in redis: {e}"))
            })?;
            live += usize::from(n > 0);
            participants += n;
        }
        Ok((live, participants))
    }

    async fn held(&self) -> Result<usize, StateError> {
        let mut conn = self.state.conn.clone();
        let set = self.meetings_key();
        self.state
            .call("SCARD", async move {
                redis::cmd("SCARD").arg(set).query_async(&mut conn).await
            })
            .await
    }
}
