//! The pub/sub driver under socketioxide's Redis adapter in cluster mode.
//!
//! Why not socketioxide-redis's own `RedisDriver`: it holds one `MultiplexedConnection`, which never reconnects, so
//! after a Redis restart a node would stop hearing the other nodes until it is restarted itself (issue 9 item 7
//! asks that it recovers by itself). This driver is the same four calls over redis-rs's `ConnectionManager`, which
//! reconnects with backoff and re-subscribes every channel after a reconnect; a one-second PING keeps a node that
//! only listens noticing a dead connection (the manager reconnects on a failed command).

use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{AsyncCommands, FromRedisValue, PushInfo, PushKind};
use socketioxide_redis::drivers::{ChanItem, Driver, MessageStream};
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;
use tokio::sync::mpsc;

type Handlers = Arc<RwLock<HashMap<String, mpsc::Sender<ChanItem>>>>;

/// A Redis pub/sub driver that survives Redis restarts.
#[derive(Clone)]
pub struct ResilientDriver {
    conn: ConnectionManager,
    handlers: Handlers,
    /// Whether the last keep-alive PING was answered (readiness).
    healthy: Arc<AtomicBool>,
}

/// The driver's errors (redis-rs's, wrapped: the adapter wants an `std::error::Error` of the driver's own).
#[derive(Debug, thiserror::Error)]
#[error("redis: {0}")]
pub struct DriverError(#[from] redis::RedisError);

fn message(info: PushInfo) -> Option<(String, Vec<u8>)> {
    if !matches!(info.kind, PushKind::Message) {
        return None;
    }
    let mut data = info.data.into_iter();
    let chan = String::from_redis_value(data.next()?).ok()?;
    let payload = Vec::<u8>::from_redis_value(data.next()?).ok()?;
    Some((chan, payload))
}

fn lock_read(
    h: &Handlers,
) -> std::sync::RwLockReadGuard<'_, HashMap<String, mpsc::Sender<ChanItem>>> {
    h.read().unwrap_or_else(|p| p.into_inner())
}

fn lock_write(
    h: &Handlers,
) -> std::sync::RwLockWriteGuard<'_, HashMap<String, mpsc::Sender<ChanItem>>> {
    h.write().unwrap_or_else(|p| p.into_inner())
}

impl ResilientDriver {
    /// Connects (RESP3: the URL must ask for it, see `resp3_url`) and starts the keep-alive.
    pub async fn connect(client: redis::Client) -> Result<Self, DriverError> {
        let handlers: Handlers = Arc::default();
        let push = handlers.clone();
        let config = ConnectionManagerConfig::new()
            .set_push_sender(move |info: PushInfo| {
                if let Some((chan, payload)) = message(info) {
                    if let Some(tx) = lock_read(&push).get(&chan) {
                        if tx.try_send((chan, payload)).is_err() {
                            tracing::warn!("socket.io adapter: a cross-node message was dropped (channel full)");
                        }
                    }
                }
                Ok::<(), std::convert::Infallible>(())
            })
            .set_automatic_resubscription()
            .set_connection_timeout(Some(Duration::from_secs(2)))
            .set_response_timeout(Some(Duration::from_secs(2)))
            .set_min_delay(Duration::from_millis(100))
            .set_max_delay(Duration::from_secs(1));
        let conn = ConnectionManager::new_with_config(client, config).await?;
        let driver = Self {
            conn,
            handlers,
            healthy: Arc::new(AtomicBool::new(true)),
        };
        driver.spawn_keepalive();
        Ok(driver)
    }

    /// Whether Redis answered the last keep-alive.
    pub fn healthy(&self) -> bool {
        self.healthy.load(Ordering::Acquire)
    }

    fn spawn_keepalive(&self) {
        let mut conn = self.conn.clone();
        let healthy = Arc::downgrade(&self.healthy);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(1));
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                let Some(flag) = healthy.upgrade() else {
                    return; // the driver is gone
                };
                let ok = redis::cmd("PING")
                    .query_async::<String>(&mut conn)
                    .await
                    .is_ok();
                if flag.swap(ok, Ordering::AcqRel) != ok {
                    if ok {
                        tracing::info!("Redis is reachable again: cross-node events resume");
                    } else {
                        tracing::warn!(
                            "Redis is unreachable: cross-node events stop until it is back"
                        );
                    }
                }
            }
        });
    }
}

impl Driver for ResilientDriver {
    type Error = DriverError;

    async fn publish(&self, chan: String, val: Vec<u8>) -> Result<(), Self::Error> {
        self.conn
            .clone()
            .publish::<_, _, redis::Value>(chan, val)
            .await?;
        Ok(())
    }

    async fn subscribe(
        &self,
        chan: String,
        size: usize,
    ) -> Result<MessageStream<ChanItem>, Self::Error> {
        // The handler first, so a message that arrives right after SUBSCRIBE finds it.
        let (tx, rx) = mpsc::channel(size);
        lock_write(&self.handlers).insert(chan.clone(), tx);
        if let Err(e) = self.conn.clone().subscribe(chan.as_str()).await {
            lock_write(&self.handlers).remove(&chan);
            return Err(e.into());
        }
        Ok(MessageStream::new(rx))
    }

    async fn unsubscribe(&self, chan: String) -> Result<(), Self::Error> {
        lock_write(&self.handlers).remove(&chan);
        self.conn.clone().unsubscribe(chan).await?;
        Ok(())
    }

    async fn num_serv(&self, chan: &str) -> Result<u16, Self::Error> {
        let (_, count): (String, u16) = redis::cmd("PUBSUB")
            .arg("NUMSUB")
            .arg(chan)
            .query_async(&mut self.conn.clone())
            .await?;
        Ok(count)
    }
}
