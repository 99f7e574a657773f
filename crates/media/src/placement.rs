//! Where a meeting's media objects live when it outgrows one worker, and the pipes that carry its producers to the
//! other workers (mediasoup's `pipeToRouter` idea, in-process: `sfu::Core::pipe_producer`).
//!
//! A meeting's home worker (its id's hash) has its send transports and so its producers. Recv transports go there
//! too until [`MediaConfig::pipe_threshold`](crate::MediaConfig::pipe_threshold) of the meeting's are on it; the
//! next ones go to the least loaded worker. A consumer on another worker than its producer's gets the producer
//! through a pipe, set up on the first such consume and shared by every later consumer of that producer there.
//! The engine remembers each object's worker (a control-plane map, never touched per packet); objects it did not
//! create are taken to be on the meeting's home worker, as before.

use crate::{pipe_id, MediaEngine, MediaError};
use sfu::{ConsumerInfo, Direction, Kind, RtpCapabilities, RtpParameters, SfuError, TransportInfo};
use std::collections::HashMap;

struct TransportEntry {
    worker: usize,
    router: String,
    recv: bool,
}

#[derive(Default)]
pub(crate) struct Placement {
    transports: HashMap<String, TransportEntry>,
    /// Producer → (worker, transport).
    producers: HashMap<String, (usize, String)>,
    /// Consumer → (worker, transport).
    consumers: HashMap<String, (usize, String)>,
    /// (producer, far worker) → pipe.
    pipes: HashMap<(String, usize), u64>,
    /// A meeting's recv transports on each worker.
    recv: HashMap<String, Vec<usize>>,
    /// Transports placed on each worker (all meetings), counted at once: the workers' own counts are published
    /// once a second, too late for a burst of joins.
    per_worker: Vec<usize>,
    next_pipe: u64,
}

impl Placement {
    /// The worker for a new recv transport of `router`.
    fn place_recv(
        &mut self,
        router: &str,
        home: usize,
        loads: &[usize],
        threshold: usize,
    ) -> usize {
        let n = loads.len();
        if self.per_worker.len() < n {
            self.per_worker.resize(n, 0);
        }
        if threshold == 0 || n <= 1 {
            return home;
        }
        let counts = self
            .recv
            .entry(router.to_owned())
            .or_insert_with(|| vec![0; n]);
        if counts.get(home).is_some_and(|&c| c < threshold) {
            return home;
        }
        let load = |w: usize| loads[w].max(self.per_worker[w]);
        (0..n)
            .filter(|&w| counts[w] < threshold)
            .min_by_key(|&w| (load(w), counts[w]))
            .or_else(|| (0..n).min_by_key(|&w| (load(w), counts[w])))
            .unwrap_or(home)
    }

    fn add_transport(&mut self, id: String, router: &str, worker: usize, recv: bool) {
        if self.per_worker.len() <= worker {
            self.per_worker.resize(worker + 1, 0);
        }
        self.per_worker[worker] += 1;
        if recv {
            if let Some(c) = self
                .recv
                .get_mut(router)
                .and_then(|counts| counts.get_mut(worker))
            {
                *c += 1;
            }
        }
        self.transports.insert(
            id,
            TransportEntry {
                worker,
                router: router.to_owned(),
                recv,
            },
        );
    }

    /// A transport closed: it, its producers and its consumers are forgotten.
    pub(crate) fn forget_transport(&mut self, id: &str) {
        let Some(t) = self.transports.remove(id) else {
            return;
        };
        if let Some(c) = self.per_worker.get_mut(t.worker) {
            *c = c.saturating_sub(1);
        }
        if t.recv {
            let now_empty = match self.recv.get_mut(&t.router) {
                Some(counts) => {
                    if let Some(c) = counts.get_mut(t.worker) {
                        *c = c.saturating_sub(1);
                    }
                    counts.iter().all(|&c| c == 0)
                }
                None => false,
            };
            if now_empty {
                self.recv.remove(&t.router);
            }
        }
        self.consumers.retain(|_, (_, tr)| tr != id);
        let gone: Vec<String> = self
            .producers
            .iter()
            .filter(|(_, (_, tr))| tr == id)
            .map(|(p, _)| p.clone())
            .collect();
        for p in gone {
            self.forget_producer(&p);
        }
    }

    /// A producer closed (its pipe producers close with it, on their workers).
    pub(crate) fn forget_producer(&mut self, id: &str) {
        self.producers.remove(id);
        self.pipes.retain(|(p, _), _| p != id);
    }
}

impl MediaEngine {
    fn placement(&self) -> std::sync::MutexGuard<'_, Placement> {
        // A panic while the lock was held leaves a map that is still consistent enough to route by.
        self.placement
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The worker of a transport created through [`MediaEngine::create_transport`]; else the meeting's home.
    pub fn transport_worker(&self, router: &str, transport: &str) -> usize {
        let known = self.placement().transports.get(transport).map(|t| t.worker);
        known.unwrap_or_else(|| self.home_worker(router))
    }

    /// The worker of a producer created through [`MediaEngine::produce`]; else the meeting's home.
    pub fn producer_worker(&self, router: &str, producer: &str) -> usize {
        let known = self.placement().producers.get(producer).map(|p| p.0);
        known.unwrap_or_else(|| self.home_worker(router))
    }

    /// The worker of a consumer created through [`MediaEngine::consume`]; else the meeting's home.
    pub fn consumer_worker(&self, router: &str, consumer: &str) -> usize {
        let known = self.placement().consumers.get(consumer).map(|c| c.0);
        known.unwrap_or_else(|| self.home_worker(router))
    }

    /// Forgets closed objects (closed through `call`/`call_on` rather than the engine's close methods).
    pub fn forget(&self, transports: &[String], producers: &[String], consumers: &[String]) {
        let mut p = self.placement();
        for t in transports {
            p.forget_transport(t);
        }
        for id in producers {
            p.forget_producer(id);
        }
        for c in consumers {
            p.consumers.remove(c);
        }
    }

    /// Pipes open (a producer to another worker each).
    pub fn pipes(&self) -> usize {
        self.placement().pipes.len()
    }

    /// Creates a transport of `router`: a send transport on its home worker; a recv transport there too until the
    /// meeting has [`MediaConfig::pipe_threshold`](crate::MediaConfig::pipe_threshold) of them on it, then on the
    /// least loaded worker.
    pub async fn create_transport(
        &self,
        router: &str,
        direction: Direction,
    ) -> Result<Result<TransportInfo, SfuError>, MediaError> {
        let home = self.home_worker(router);
        let recv = direction == Direction::Recv;
        let worker = if recv {
            let loads: Vec<usize> = self
                .workers
                .iter()
                .map(|w| w.transports.load(std::sync::atomic::Ordering::Relaxed))
                .collect();
            self.placement()
                .place_recv(router, home, &loads, self.pipe_threshold)
        } else {
            home
        };
        let r = router.to_owned();
        let info = self
            .call_on(worker, move |core, now| {
                core.create_transport(&r, direction, now)
            })
            .await?;
        if let Ok(info) = &info {
            if worker != home {
                tracing::debug!(
                    meeting = router,
                    worker,
                    home,
                    "transport placed off its home worker"
                );
            }
            self.placement()
                .add_transport(info.id.clone(), router, worker, recv);
        }
        Ok(info)
    }

    /// `produce` on the transport's worker; the producer is remembered there.
    pub async fn produce(
        &self,
        router: &str,
        transport: &str,
        kind: Kind,
        rtp: RtpParameters,
    ) -> Result<Result<String, SfuError>, MediaError> {
        let worker = self.transport_worker(router, transport);
        let t = transport.to_owned();
        let id = self
            .call_on(worker, move |core, _| core.produce(&t, kind, &rtp))
            .await?;
        if let Ok(id) = &id {
            self.placement()
                .producers
                .insert(id.clone(), (worker, transport.to_owned()));
        }
        Ok(id)
    }

    /// `consume` on the transport's worker; when the producer is on another worker, it is piped there first (once
    /// per producer and worker).
    pub async fn consume(
        &self,
        router: &str,
        transport: &str,
        producer: &str,
        caps: RtpCapabilities,
    ) -> Result<Result<ConsumerInfo, SfuError>, MediaError> {
        let worker = self.transport_worker(router, transport);
        let home = self.producer_worker(router, producer);
        if worker != home {
            if let Err(e) = self.pipe(producer, home, worker).await? {
                return Ok(Err(e));
            }
        }
        let (t, p) = (transport.to_owned(), producer.to_owned());
        let info = self
            .call_on(worker, move |core, _| core.consume(&t, &p, &caps))
            .await?;
        if let Ok(info) = &info {
            self.placement()
                .consumers
                .insert(info.id.clone(), (worker, transport.to_owned()));
        }
        Ok(info)
    }

    /// Makes sure `producer` (on `home`) has a pipe producer on `far`.
    async fn pipe(
        &self,
        producer: &str,
        home: usize,
        far: usize,
    ) -> Result<Result<(), SfuError>, MediaError> {
        let _one_at_a_time = self.pipe_setup.lock().await;
        let key = (producer.to_owned(), far);
        let pipe = {
            let mut p = self.placement();
            if p.pipes.contains_key(&key) {
                return Ok(Ok(()));
            }
            p.next_pipe += 1;
            pipe_id(p.next_pipe, home, far)
        };
        let id = producer.to_owned();
        let src = match self
            .call_on(home, move |core, _| core.pipe_producer(&id, pipe))
            .await?
        {
            Ok(src) => src,
            Err(e) => return Ok(Err(e)),
        };
        if let Err(e) = self
            .call_on(far, move |core, _| core.create_pipe_producer(src, pipe))
            .await?
        {
            self.call_on(home, move |core, _| core.unpipe_producer(pipe))
                .await?;
            return Ok(Err(e));
        }
        // A close at home between the two calls sent its `Closed` before the far side knew the pipe: look again. A
        // close from now on reaches the pipe producer (it exists before the check runs).
        let id = producer.to_owned();
        let alive = self
            .call_on(home, move |core, _| core.producer_kind(&id).is_some())
            .await?;
        if !alive {
            let id = producer.to_owned();
            self.call_on(far, move |core, _| core.close_producer(&id))
                .await?;
            return Ok(Err(SfuError::NotFound("producer")));
        }
        tracing::debug!(producer, home, far, pipe, "producer piped");
        self.placement().pipes.insert(key, pipe);
        Ok(Ok(()))
    }

    /// Closes a producer on its worker (its pipe producers close with their consumers, on theirs); returns the
    /// consumers closed on its own worker.
    pub async fn close_producer(
        &self,
        router: &str,
        producer: &str,
    ) -> Result<Vec<String>, MediaError> {
        let worker = self.producer_worker(router, producer);
        let p = producer.to_owned();
        let closed = self
            .call_on(worker, move |core, _| core.close_producer(&p))
            .await?;
        self.placement().forget_producer(producer);
        Ok(closed)
    }

    /// Closes a consumer on its worker.
    pub async fn close_consumer(&self, router: &str, consumer: &str) -> Result<(), MediaError> {
        let worker = self.consumer_worker(router, consumer);
        let c = consumer.to_owned();
        self.call_on(worker, move |core, _| core.close_consumer(&c))
            .await?;
        self.placement().consumers.remove(consumer);
        Ok(())
    }

    /// Closes a transport on its worker: `(closed producers, closed consumers)` of that worker.
    pub async fn close_transport(
        &self,
        router: &str,
        transport: &str,
    ) -> Result<(Vec<String>, Vec<String>), MediaError> {
        let worker = self.transport_worker(router, transport);
        let t = transport.to_owned();
        let closed = self
            .call_on(worker, move |core, _| core.close_transport(&t))
            .await?;
        self.placement().forget_transport(transport);
        Ok(closed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recv_transports_spill_to_the_least_loaded_worker_past_the_threshold() {
        let mut p = Placement::default();
        let loads = [0, 0, 0];
        // Home is worker 1; threshold 2.
        for i in 0..2 {
            let w = p.place_recv("m", 1, &loads, 2);
            assert_eq!(w, 1);
            p.add_transport(format!("t{i}"), "m", w, true);
        }
        let w = p.place_recv("m", 1, &loads, 2);
        assert_ne!(w, 1, "past the threshold");
        p.add_transport("t2".into(), "m", w, true);
        let w2 = p.place_recv("m", 1, &loads, 2);
        assert_ne!(w2, 1);
        assert_ne!(w2, w, "the least loaded, not the one just used");
        // A closed transport on home makes room there again.
        p.forget_transport("t0");
        assert_eq!(p.place_recv("m", 1, &loads, 2), 1);
        // Threshold 0: always home.
        assert_eq!(p.place_recv("other", 2, &loads, 0), 2);
    }
}
