//! [`RuntimeStore`] on Redis: one hash per meeting, written field by field under compare-and-set (the model is in
//! the parent module's doc, the field layout in [`super::codec`]).

use super::codec::{self, Diff};
use super::RedisState;
use crate::{MeetingRuntime, RuntimeStore, StateError};
use proto::MeetingId;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};
use tokio::sync::Mutex as AsyncMutex;

/// How many times `modify` reruns its closure on fresh state after losing a compare-and-set to another node.
pub const MAX_ATTEMPTS: u32 = 64;

/// A cached meeting nobody on this node touched for this long is dropped (its meeting may have been removed by
/// another node); the sweep runs at most every [`CACHE_SWEEP_EVERY`].
const CACHE_IDLE: Duration = Duration::from_secs(300);
const CACHE_SWEEP_EVERY: Duration = Duration::from_secs(30);

/// How many writes a meeting's change log keeps: a copy at most this many writes behind catches up from the log,
/// one further behind is read whole.
pub const LOG_LEN: usize = 1024;

/// The most fields one catch-up brings; a copy that missed changes to more fields is read whole (by then the full
/// read is hardly dearer, and a Lua script must not build huge answers).
pub const CATCH_UP_FIELDS: usize = 512;

/// KEYS[1] the meeting's hash, KEYS[2] the meetings set, KEYS[3] the meeting's change log. ARGV[1] the version
/// read ('' = the hash did not exist), ARGV[2] a fresh random epoch, ARGV[3] the meeting id, ARGV[4] how many
/// fields to set, then that many field/value pairs, then the fields to delete. Returns the new version, or false
/// when the version moved. A version is `{epoch}.{seq}`: the epoch is drawn when the hash is made (so a meeting
/// removed and made again never repeats a version), seq counts its writes. Each write appends the names of the
/// fields it touched to the log (one JSON array per write), trimmed to the last `LOG_LEN` writes: entry `seq` is
/// always the log's last, so a reader at `seq - k` needs the last k entries.
const WRITE: &str = r"
local cur = redis.call('HGET', KEYS[1], 'v')
if (cur or '') ~= ARGV[1] then return false end
local epoch, seq = string.match(cur or '', '^(.+)%.(%d+)$')
local v
if epoch then
  v = epoch .. '.' .. (tonumber(seq) + 1)
else
  v = ARGV[2] .. '.1'
  redis.call('DEL', KEYS[3])
end
local names = {}
local i = 5
for _ = 1, tonumber(ARGV[4]) do
  redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 1])
  names[#names + 1] = ARGV[i]
  i = i + 2
end
while i <= #ARGV do
  redis.call('HDEL', KEYS[1], ARGV[i])
  names[#names + 1] = ARGV[i]
  i = i + 1
end
redis.call('HSET', KEYS[1], 'v', v)
redis.call('SADD', KEYS[2], ARGV[3])
if #names == 0 then
  redis.call('RPUSH', KEYS[3], '[]')
else
  redis.call('RPUSH', KEYS[3], cjson.encode(names))
end
redis.call('LTRIM', KEYS[3], -LOG_LEN, -1)
return v
";

/// The write script with [`LOG_LEN`] in place.
fn write_script() -> String {
    WRITE.replace("LOG_LEN", &LOG_LEN.to_string())
}

/// KEYS[1] the meeting's hash, KEYS[2] its change log. ARGV[1] the version of the caller's copy, ARGV[2] the most
/// fields to return. Answers `{0}` when the meeting is gone, `{1}` when the copy is current, `{3}` when the copy
/// cannot catch up from the log (another epoch, too far behind, too many fields), and otherwise
/// `{2, version, nset, f1, v1, …, fn, vn, deleted…}`: the current value of every field changed since the copy
/// (`nset` pairs), then the changed fields that no longer exist. Hash and log are read in one script, so the
/// answer is one consistent state.
const CATCH_UP: &str = r"
local cur = redis.call('HGET', KEYS[1], 'v')
if not cur then return {0} end
if cur == ARGV[1] then return {1} end
local ce, cs = string.match(cur, '^(.+)%.(%d+)$')
local me, ms = string.match(ARGV[1], '^(.+)%.(%d+)$')
if not ce or not me or ce ~= me then return {3} end
local behind = tonumber(cs) - tonumber(ms)
if behind <= 0 or behind > redis.call('LLEN', KEYS[2]) then return {3} end
local most = tonumber(ARGV[2])
local seen, names = {}, {}
for _, entry in ipairs(redis.call('LRANGE', KEYS[2], -behind, -1)) do
  local ok, list = pcall(cjson.decode, entry)
  if not ok or type(list) ~= 'table' then return {3} end
  for _, f in ipairs(list) do
    if not seen[f] then
      seen[f] = true
      names[#names + 1] = f
      if #names > most then return {3} end
    end
  end
end
local out = {2, cur, 0}
local gone = {}
if #names > 0 then
  local values = redis.call('HMGET', KEYS[1], unpack(names))
  for i, f in ipairs(names) do
    if values[i] then
      out[#out + 1] = f
      out[#out + 1] = values[i]
      out[3] = out[3] + 1
    else
      gone[#gone + 1] = f
    end
  end
end
for _, f in ipairs(gone) do out[#out + 1] = f end
return out
";

/// KEYS[1] the meeting's hash, KEYS[2] the meetings set, KEYS[3] its change log, ARGV[1] the meeting id. Removes
/// the meeting (and its log) only when it has no participant, has not ended and holds no dropped participant's
/// hand (the local store's rule). Returns 1 when removed. With `n` = 0 the hash is small, so listing its fields is cheap.
const REMOVE_IF_EMPTY: &str = r"
if redis.call('EXISTS', KEYS[1]) == 0 then
  redis.call('DEL', KEYS[3])
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
redis.call('DEL', KEYS[1], KEYS[3])
redis.call('SREM', KEYS[2], ARGV[1])
return 1
";

/// KEYS[1] the meeting's hash, KEYS[2] the meetings set, KEYS[3] its change log, ARGV[1] the meeting id.
const REMOVE: &str = r"
redis.call('DEL', KEYS[1], KEYS[3])
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
    reads: Arc<ReadCounts>,
}

/// How this store has read meetings from Redis: whole (HGETALL) or by catching up from the change log.
#[derive(Debug, Default)]
struct ReadCounts {
    whole: AtomicU64,
    catch_up: AtomicU64,
}

/// A catch-up answer (see [`CATCH_UP`]).
#[derive(Debug, PartialEq)]
enum CatchUp {
    Gone,
    Current,
    Changes {
        version: String,
        set: Vec<(String, Vec<u8>)>,
        del: Vec<String>,
    },
    TooFar,
}

impl CatchUp {
    /// Parses the script's answer; anything malformed is an error (the caller then reads the hash whole).
    fn parse(answer: Vec<redis::Value>) -> Result<Self, String> {
        fn int(v: Option<&redis::Value>) -> Result<i64, String> {
            match v {
                Some(redis::Value::Int(i)) => Ok(*i),
                other => Err(format!("expected an integer, got {other:?}")),
            }
        }
        fn bytes(v: Option<&redis::Value>) -> Result<Vec<u8>, String> {
            match v {
                Some(redis::Value::BulkString(b)) => Ok(b.clone()),
                Some(redis::Value::SimpleString(t)) => Ok(t.clone().into_bytes()),
                other => Err(format!("expected a string, got {other:?}")),
            }
        }
        fn string(v: Option<&redis::Value>) -> Result<String, String> {
            String::from_utf8(bytes(v)?).map_err(|e| e.to_string())
        }
        let mut it = answer.iter();
        match int(it.next())? {
            0 => Ok(Self::Gone),
            1 => Ok(Self::Current),
            3 => Ok(Self::TooFar),
            2 => {
                let version = string(it.next())?;
                let nset = usize::try_from(int(it.next())?).map_err(|e| e.to_string())?;
                let mut set = Vec::with_capacity(nset.min(CATCH_UP_FIELDS));
                for _ in 0..nset {
                    set.push((string(it.next())?, bytes(it.next())?));
                }
                let del = it.map(|v| string(Some(v))).collect::<Result<_, _>>()?;
                Ok(Self::Changes { version, set, del })
            }
            other => Err(format!("unknown catch-up answer {other}")),
        }
    }
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
    catch_up: redis::Script,
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
                write: redis::Script::new(&write_script()),
                catch_up: redis::Script::new(CATCH_UP),
                remove_if_empty: redis::Script::new(REMOVE_IF_EMPTY),
                remove: redis::Script::new(REMOVE),
            }),
            local: Arc::default(),
            cache: Arc::new(Mutex::new(Cache {
                entries: HashMap::new(),
                last_sweep: Instant::now(),
            })),
            reads: Arc::default(),
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

    /// The key of a meeting's change log (see [`WRITE`]).
    pub fn log_key(&self, meeting: &MeetingId) -> String {
        self.state.key(&["ml", meeting.as_str()])
    }

    /// How many times this store read a meeting whole and how many times it caught up from the change log
    /// (tests and benchmarks: another node's change should cost a catch-up, not a whole read).
    pub fn read_counts(&self) -> (u64, u64) {
        (
            self.reads.whole.load(Ordering::Relaxed),
            self.reads.catch_up.load(Ordering::Relaxed),
        )
    }

    fn meetings_key(&self) -> String {
        self.state.key(&["meetings"])
    }

    async fn load(&self, meeting: &MeetingId) -> Result<Loaded, StateError> {
        self.reads.whole.fetch_add(1, Ordering::Relaxed);
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

    /// The meeting's current state: the cached copy brought up to date from the change log (one script that
    /// answers "current", or the fields changed since the copy), or a full read when there is no copy or it is
    /// too far behind.
    async fn fresh_locked(&self, meeting: &MeetingId) -> Result<Loaded, StateError> {
        let Some(Loaded {
            rt: Some(copy),
            version,
        }) = self.cached(meeting)
        else {
            return self.load(meeting).await;
        };
        let (new_version, set, del) = match self.catch_up(meeting, &version).await? {
            CatchUp::Current => {
                return Ok(Loaded {
                    rt: Some(copy),
                    version,
                })
            }
            CatchUp::Gone => {
                self.forget(meeting);
                return Ok(Loaded {
                    rt: None,
                    version: String::new(),
                });
            }
            CatchUp::TooFar => return self.load(meeting).await,
            CatchUp::Changes { version, set, del } => (version, set, del),
        };
        self.reads.catch_up.fetch_add(1, Ordering::Relaxed);
        // Take the copy out of the cache if it is still the one caught up from, so it is changed in place rather
        // than cloned (it is cloned only while a reader still holds it).
        let taken = {
            let mut cache = lock(&self.cache);
            match cache.entries.get(meeting) {
                Some(c) if c.version == version => cache.entries.remove(meeting).map(|c| c.rt),
                _ => None,
            }
        };
        let mut rt = match taken {
            Some(rt) => {
                drop(copy);
                rt
            }
            None => copy,
        };
        if let Err(e) = codec::apply(Arc::make_mut(&mut rt), &set, &del) {
            tracing::warn!(meeting = %meeting, error = %e.0, "redis state: catch-up refused, reading the meeting whole");
            return self.load(meeting).await;
        }
        self.remember(meeting, &new_version, &rt);
        Ok(Loaded {
            rt: Some(rt),
            version: new_version,
        })
    }

    async fn catch_up(&self, meeting: &MeetingId, version: &str) -> Result<CatchUp, StateError> {
        let mut inv = self.scripts.catch_up.key(self.meeting_key(meeting));
        inv.key(self.log_key(meeting))
            .arg(version)
            .arg(CATCH_UP_FIELDS);
        let mut conn = self.state.conn.clone();
        let answer: Vec<redis::Value> = self
            .state
            .call("catch-up", inv.invoke_async(&mut conn))
            .await?;
        Ok(CatchUp::parse(answer).unwrap_or_else(|e| {
            tracing::warn!(meeting = %meeting, error = %e, "redis state: unreadable catch-up answer");
            CatchUp::TooFar
        }))
    }

    /// [`Self::fresh_locked`] under the meeting's local lock: a catch-up changes the copy in place, and a modify
    /// takes it out of the cache while it runs; both happen one at a time per meeting on this node.
    async fn fresh(&self, meeting: &MeetingId) -> Result<Loaded, StateError> {
        let turn = self.local_lock(meeting);
        let _held = turn.lock.lock().await;
        self.fresh_locked(meeting).await
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

    /// Applies `diff` if the meeting's version is still `version`, and returns the new version; `None` when
    /// another writer came first.
    async fn write(
        &self,
        meeting: &MeetingId,
        version: &str,
        diff: &Diff,
    ) -> Result<Option<String>, StateError> {
        let epoch = format!("{:016x}", rand::random::<u64>());
        let mut inv = self.scripts.write.key(self.meeting_key(meeting));
        inv.key(self.meetings_key())
            .key(self.log_key(meeting))
            .arg(version)
            .arg(&epoch)
            .arg(meeting.as_str())
            .arg(diff.set.len());
        for (f, v) in &diff.set {
            inv.arg(f).arg(v.as_slice());
        }
        for f in &diff.del {
            inv.arg(f);
        }
        let mut conn = self.state.conn.clone();
        self.state.call("write", inv.invoke_async(&mut conn)).await
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

    /// The first attempt starts from this node's cached copy without reading (a write checks the version anyway);
    /// when the closure wants no write, the copy is confirmed first (a catch-up), since what it decided must hold
    /// on the current state. After a lost compare-and-set the copy catches up from the change log (a whole read
    /// only when it is too far behind) and the closure reruns.
    ///
    /// The closure runs on the copy itself, not a clone: the copy is out of the cache meanwhile (readers of this
    /// meeting wait on the same local lock), its tracked collections record what changed, the diff is made from
    /// that record, and a refused or lost change is undone from it — all in time that grows with the change, not
    /// with the meeting.
    async fn modify_locked(
        &self,
        meeting: &MeetingId,
        f: &mut (dyn for<'r> FnMut(&'r mut MeetingRuntime) -> bool + Send),
    ) -> Result<(), StateError> {
        let mut start = self.cached(meeting);
        let mut confirmed = false;
        let mut conflicts = 0;
        while conflicts < MAX_ATTEMPTS {
            let Loaded { rt, version } = match start.take() {
                Some(copy) => copy,
                None => {
                    confirmed = true;
                    self.fresh_locked(meeting).await?
                }
            };
            // Out of the cache while it changes, so the copy is changed in place (cloned only if a reader that
            // got it before the lock still holds it).
            self.forget(meeting);
            let existed = rt.is_some();
            let mut rt = rt.unwrap_or_else(|| {
                Arc::new(MeetingRuntime {
                    meeting_id: Some(meeting.clone()),
                    ..MeetingRuntime::default()
                })
            });
            let next = Arc::make_mut(&mut rt);
            next.commit();
            let before = codec::Snapshot::of(next);
            let wants_write = f(next);
            let diff = match (wants_write, existed) {
                (false, _) => Ok(Diff::default()),
                (true, true) => before.diff(next),
                (true, false) => codec::diff(None, next),
            }
            .map_err(|e| {
                StateError::Backend(format!("meeting {meeting}: cannot encode its state: {e}"))
            });
            let diff = match diff {
                Ok(d) => d,
                Err(e) => {
                    before.restore(next);
                    return Err(e);
                }
            };
            if !wants_write || (existed && diff.is_empty()) {
                before.restore(next);
                if existed {
                    self.remember(meeting, &version, &rt);
                }
                if confirmed {
                    return Ok(());
                }
                // Decided on an unconfirmed copy: rerun on the current state unless the copy was current.
                let current = self.fresh_locked(meeting).await?;
                if current.version == version {
                    return Ok(());
                }
                start = Some(current);
                confirmed = true;
                continue;
            }
            match self.write(meeting, &version, &diff).await {
                Ok(Some(new_version)) => {
                    next.commit();
                    self.remember(meeting, &new_version, &rt);
                    return Ok(());
                }
                Ok(None) => {
                    // Lost to another node: undo, back off a little (jittered, growing to ~32 ms), catch up.
                    before.restore(next);
                    if existed {
                        self.remember(meeting, &version, &rt);
                    }
                    conflicts += 1;
                    let cap = 1u64 << conflicts.min(5);
                    tokio::time::sleep(Duration::from_micros(rand::random_range(0..=cap * 1000)))
                        .await;
                }
                Err(e) => {
                    // The write may or may not have been applied: the copy (already out of the cache) is dropped.
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
        inv.key(self.meetings_key())
            .key(self.log_key(meeting))
            .arg(meeting.as_str());
        let mut conn = self.state.conn.clone();
        let removed: Result<i64, _> = self.state.call("remove", inv.invoke_async(&mut conn)).await;
        self.forget(meeting);
        removed.map(|_| ())
    }

    async fn remove_if_empty(&self, meeting: &MeetingId) -> Result<(), StateError> {
        let mut inv = self.scripts.remove_if_empty.key(self.meeting_key(meeting));
        inv.key(self.meetings_key())
            .key(self.log_key(meeting))
            .arg(meeting.as_str());
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

#[cfg(test)]
mod tests {
    use super::*;
    use redis::Value;

    fn s(t: &str) -> Value {
        Value::BulkString(t.as_bytes().to_vec())
    }

    #[test]
    fn catch_up_answers_are_parsed_or_refused() {
        assert_eq!(CatchUp::parse(vec![Value::Int(0)]), Ok(CatchUp::Gone));
        assert_eq!(CatchUp::parse(vec![Value::Int(1)]), Ok(CatchUp::Current));
        assert_eq!(CatchUp::parse(vec![Value::Int(3)]), Ok(CatchUp::TooFar));
        assert_eq!(
            CatchUp::parse(vec![
                Value::Int(2),
                s("e.7"),
                Value::Int(1),
                s("p:a"),
                s("{}"),
                s("p:b"),
                s("to:t"),
            ]),
            Ok(CatchUp::Changes {
                version: "e.7".into(),
                set: vec![("p:a".into(), b"{}".to_vec())],
                del: vec!["p:b".into(), "to:t".into()],
            })
        );
        for bad in [
            vec![],
            vec![Value::Int(9)],
            vec![s("2")],
            vec![Value::Int(2), s("e.7"), Value::Int(2), s("p:a"), s("{}")],
            vec![Value::Int(2), s("e.7"), Value::Int(-1)],
            vec![Value::Int(2), s("e.7"), Value::Int(0), Value::Int(5)],
        ] {
            assert!(CatchUp::parse(bad.clone()).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn the_write_script_keeps_log_len_writes() {
        let script = write_script();
        assert!(script.contains(&format!("LTRIM', KEYS[3], -{LOG_LEN}, -1")));
        assert!(!script.contains("LOG_LEN"));
    }
}
