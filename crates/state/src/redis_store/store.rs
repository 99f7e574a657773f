//! [`RuntimeStore`] on Redis: one hash per meeting, written field by field under compare-and-set (the model is in
//! the parent module's doc, the field layout in [`super::codec`]).

use super::codec::{self, Diff};
use super::RedisState;
use crate::{MeetingRuntime, RuntimeStore, StateError};
use proto::MeetingId;
use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};
use tokio::sync::Mutex as AsyncMutex;

/// How many times `modify` reruns its closure on fresh state after losing a compare-and-set to another node.
pub const MAX_ATTEMPTS: u32 = 64;

/// A cached meeting nobody on this node touched for this long is dropped (its meeting may have been removed by
/// another node); the sweep runs at most every [`CACHE_SWEEP_EVERY`].
const CACHE_IDLE: Duration = Duration::from_secs(300);
const CACHE_SWEEP_EVERY: Duration = Duration::from_secs(30);

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
    /// This node's copy of the meetings it read or wrote, with the version token of that copy. A copy is only
    /// trusted once Redis says the token is still current (a compare-and-set, or an `HGET v`), so a stale one
    /// costs a reread, never a wrong answer.
    cache: Arc<Mutex<Cache>>,
}

#[derive(Debug)]
struct Cache {
    entries: HashMap<MeetingId, Cached>,
    last_sweep: Instant,
}

#[derive(Debug)]
struct Cached {
    version: String,
    rt: Arc<MeetingRuntime>,
    used: Instant,
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

/// A meeting's state and the version token to write against (`None` and '' when it has no state).
struct Loaded {
    rt: Option<Arc<MeetingRuntime>>,
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
            cache: Arc::new(Mutex::new(Cache {
                entries: HashMap::new(),
                last_sweep: Instant::now(),
            })),
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
            self.forget(meeting);
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
        let rt = Arc::new(rt);
        self.remember(meeting, &version, &rt);
        Ok(Loaded {
            rt: Some(rt),
            version,
        })
    }

    /// The meeting's current state: the cached copy when its version token is still the one in Redis (one
    /// `HGET`), otherwise a full read.
    async fn fresh(&self, meeting: &MeetingId) -> Result<Loaded, StateError> {
        if let Some(cached) = self.cached(meeting) {
            if self.current_version(meeting).await?.as_deref() == Some(cached.version.as_str()) {
                return Ok(cached);
            }
        }
        self.load(meeting).await
    }

    async fn current_version(&self, meeting: &MeetingId) -> Result<Option<String>, StateError> {
        let mut conn = self.state.conn.clone();
        let key = self.meeting_key(meeting);
        self.state
            .call("HGET v", async move {
                redis::cmd("HGET")
                    .arg(key)
                    .arg(codec::VERSION)
                    .query_async(&mut conn)
                    .await
            })
            .await
    }

    fn cached(&self, meeting: &MeetingId) -> Option<Loaded> {
        let mut cache = lock(&self.cache);
        let c = cache.entries.get_mut(meeting)?;
        c.used = Instant::now();
        Some(Loaded {
            rt: Some(c.rt.clone()),
            version: c.version.clone(),
        })
    }

    fn remember(&self, meeting: &MeetingId, version: &str, rt: &Arc<MeetingRuntime>) {
        let now = Instant::now();
        let mut cache = lock(&self.cache);
        if now.duration_since(cache.last_sweep) >= CACHE_SWEEP_EVERY {
            cache.last_sweep = now;
            cache
                .entries
                .retain(|_, c| now.duration_since(c.used) < CACHE_IDLE);
        }
        cache.entries.insert(
            meeting.clone(),
            Cached {
                version: version.to_owned(),
                rt: rt.clone(),
                used: now,
            },
        );
    }

    fn forget(&self, meeting: &MeetingId) {
        lock(&self.cache).entries.remove(meeting);
    }

    /// How many meetings this node holds a copy of (tests: removed meetings are not kept).
    pub fn cached_meetings(&self) -> usize {
        lock(&self.cache).entries.len()
    }

    /// Applies `diff` if the meeting's version is still `version`, and returns the new version token; `None`
    /// when another writer came first.
    async fn write(
        &self,
        meeting: &MeetingId,
        version: &str,
        diff: &Diff,
    ) -> Result<Option<String>, StateError> {
        let token = format!("{:032x}", rand::random::<u128>());
        let mut inv = self.scripts.write.key(self.meeting_key(meeting));
        inv.key(self.meetings_key())
            .arg(version)
            .arg(&token)
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
        Ok((written == 1).then_some(token))
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

    /// The first attempt starts from this node's cached copy without reading (a write checks the version token
    /// anyway); the copy is confirmed with one `HGET` only when the closure wants no write, since what it decided
    /// must hold on the current state. Any doubt (a lost compare-and-set, a stale copy) rereads the whole meeting.
    async fn modify_locked(
        &self,
        meeting: &MeetingId,
        f: &mut (dyn for<'r> FnMut(&'r mut MeetingRuntime) -> bool + Send),
    ) -> Result<(), StateError> {
        let mut from_cache = self.cached(meeting);
        for attempt in 0..MAX_ATTEMPTS {
            if attempt > 0 {
                // Lost to another node: back off a little (jittered, growing to ~32 ms) before rereading.
                let cap = 1u64 << attempt.min(5);
                tokio::time::sleep(Duration::from_micros(rand::random_range(0..=cap * 1000))).await;
            }
            let unconfirmed = from_cache.is_some();
            let Loaded { rt, version } = match from_cache.take() {
                Some(cached) => cached,
                None => self.load(meeting).await?,
            };
            let mut next = rt.as_deref().cloned().unwrap_or_else(|| MeetingRuntime {
                meeting_id: Some(meeting.clone()),
                ..MeetingRuntime::default()
            });
            let wants_write = f(&mut next);
            let diff = if wants_write {
                codec::diff(rt.as_deref(), &next).map_err(|e| {
                    StateError::Backend(format!("meeting {meeting}: cannot encode its state: {e}"))
                })?
            } else {
                Diff::default()
            };
            if !wants_write || (rt.is_some() && diff.is_empty()) {
                if !unconfirmed
                    || self.current_version(meeting).await?.as_deref() == Some(version.as_str())
                {
                    return Ok(());
                }
                continue;
            }
            match self.write(meeting, &version, &diff).await {
                Ok(Some(token)) => {
                    self.remember(meeting, &token, &Arc::new(next));
                    return Ok(());
                }
                Ok(None) => {}
                Err(e) => {
                    // The write may or may not have been applied: the copy can no longer be trusted.
                    self.forget(meeting);
                    return Err(e);
                }
            }
        }
        Err(StateError::Backend(format!(
            "meeting {meeting}: gave up after {MAX_ATTEMPTS} conflicting writes"
        )))
    }
}

#[async_trait::async_trait]
impl RuntimeStore for RedisRuntimeStore {
    async fn ping(&self) -> Result<(), StateError> {
        RedisRuntimeStore::ping(self).await
    }

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
        let loaded = self.fresh(meeting).await?;
        f(loaded.rt.as_deref());
        Ok(())
    }

    async fn get(&self, meeting: &MeetingId) -> Result<Option<MeetingRuntime>, StateError> {
        Ok(self.fresh(meeting).await?.rt.map(|rt| (*rt).clone()))
    }

    async fn remove(&self, meeting: &MeetingId) -> Result<(), StateError> {
        let mut inv = self.scripts.remove.key(self.meeting_key(meeting));
        inv.key(self.meetings_key()).arg(meeting.as_str());
        let mut conn = self.state.conn.clone();
        let removed: Result<i64, _> = self.state.call("remove", inv.invoke_async(&mut conn)).await;
        self.forget(meeting);
        removed.map(|_| ())
    }

    async fn remove_if_empty(&self, meeting: &MeetingId) -> Result<(), StateError> {
        let mut inv = self.scripts.remove_if_empty.key(self.meeting_key(meeting));
        inv.key(self.meetings_key()).arg(meeting.as_str());
        let mut conn = self.state.conn.clone();
        let removed: i64 = self
            .state
            .call("remove_if_empty", inv.invoke_async(&mut conn))
            .await?;
        if removed == 1 {
            self.forget(meeting);
        }
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

    async fn meeting_ids(&self) -> Result<Vec<MeetingId>, StateError> {
        let mut conn = self.state.conn.clone();
        let set = self.meetings_key();
        let ids: Vec<String> = self
            .state
            .call("SMEMBERS", async move {
                redis::cmd("SMEMBERS").arg(set).query_async(&mut conn).await
            })
            .await?;
        Ok(ids.into_iter().map(MeetingId::new).collect())
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
