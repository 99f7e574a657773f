//! Pipes between cores of one process (mediasoup's `pipeToRouter`, without the transport in between): a meeting
//! bigger than one worker keeps each producer on the core its client sends to, and gives the other cores a "pipe
//! producer" with the same id and RTP parameters, whose consumers are consumed like any local producer's.
//!
//! The real producer's core hands every received packet (after its own receive processing: SSRC resolved to a
//! spatial layer, wallclock from the sender report) to each pipe as a [`PipeOut::Rtp`], moved, not copied (a
//! second pipe of the same producer shares the payload). Pause and close follow as [`PipeOut::Paused`] and
//! [`PipeOut::Closed`]. The far core's consumers ask for keyframes and layers as usual; for a pipe producer those
//! come back as [`PipeBack`] and reach the real producer (its client gets the PLI; its `LayersNeeded` counts the
//! far consumers). Pipes are named by a `u64` the caller chooses, unique in the process: the packet path hashes no
//! string.
//!
//! The shell moves the queues: `poll_pipe_out` → the far core's `handle_pipe_out`, `poll_pipe_back` → the real
//! producer's core's `handle_pipe_back`.

use super::*;

/// What a far core needs to create a pipe producer ([`Core::create_pipe_producer`]), from
/// [`Core::pipe_producer`].
#[derive(Clone, Debug)]
pub struct PipeSource {
    /// The producer's id (the pipe producer has the same one) and router.
    pub producer: String,
    pub router: String,
    pub kind: Kind,
    pub paused: bool,
    mapping: ProducerMapping,
    codec: Codec,
    layered: bool,
    priority: allocator::Priority,
}

/// One RTP packet of a producer as its core received it: header and payload moved out of str0m's packet.
#[derive(Debug)]
pub struct PipedRtp {
    /// Extended sequence number.
    pub seq_no: u64,
    pub header: str0m::rtp::RtpHeader,
    pub payload: Arc<[u8]>,
    /// Its capture time on the sender's clock as an `Instant` (from the producer's sender reports), for the
    /// consumers' sender reports.
    pub wallclock: Instant,
}

/// From a real producer's core to a pipe producer's.
#[derive(Debug)]
#[allow(
    clippy::large_enum_variant,
    reason = "`Rtp` is nearly every message: boxing it would allocate per packet for the rare others' sake"
)]
pub enum PipeOut {
    Rtp {
        pipe: u64,
        layer: usize,
        pkt: PipedRtp,
    },
    Paused {
        pipe: u64,
        paused: bool,
    },
    /// The producer's place in estimate share-outs changed (`Core::set_producer_priority`).
    Priority {
        pipe: u64,
        priority: allocator::Priority,
    },
    /// The producer closed: so does the pipe producer, with its consumers.
    Closed {
        pipe: u64,
    },
}

impl PipeOut {
    pub fn pipe(&self) -> u64 {
        match *self {
            PipeOut::Rtp { pipe, .. }
            | PipeOut::Paused { pipe, .. }
            | PipeOut::Priority { pipe, .. }
            | PipeOut::Closed { pipe } => pipe,
        }
    }
}

/// From a pipe producer's core back to the real producer's.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PipeBack {
    /// A consumer of the pipe producer needs a keyframe of this spatial layer.
    Keyframe { pipe: u64, layer: usize },
    /// The spatial layers the pipe producer's consumers need (as `CoreEvent::LayersNeeded`).
    LayersNeeded { pipe: u64, spatial_layers: usize },
}

impl PipeBack {
    pub fn pipe(&self) -> u64 {
        match *self {
            PipeBack::Keyframe { pipe, .. } | PipeBack::LayersNeeded { pipe, .. } => pipe,
        }
    }
}

impl Core {
    /// Starts feeding `pipe` from a local producer; returns what the far core needs to create the pipe producer.
    /// The far side counts as needing only the lowest layer until it reports otherwise.
    pub fn pipe_producer(&mut self, producer_id: &str, pipe: u64) -> Result<PipeSource, SfuError> {
        if self.pipes_out_ids.contains_key(&pipe) || self.pipes_in.contains_key(&pipe) {
            return Err(SfuError::Invalid(format!("pipe {pipe} exists")));
        }
        let pk = self
            .producer_key(producer_id)
            .ok_or(SfuError::NotFound("producer"))?;
        let p = self
            .producers
            .get_mut(pk)
            .ok_or(SfuError::NotFound("producer"))?;
        if p.pipe_in.is_some() {
            return Err(SfuError::Invalid(
                "a pipe producer is piped from its own producer".into(),
            ));
        }
        p.pipes_out.push((pipe, 1));
        self.pipes_out_ids.insert(pipe, pk);
        Ok(PipeSource {
            producer: p.id.clone(),
            router: p.router.clone(),
            kind: p.mapping.kind,
            paused: p.paused,
            mapping: p.mapping.clone(),
            codec: p.codec,
            layered: p.layered,
            priority: p.priority,
        })
    }

    /// Stops feeding `pipe` (its far side is gone); the pipe producer is not told. False when there is no such pipe.
    pub fn unpipe_producer(&mut self, pipe: u64) -> bool {
        let Some(pk) = self.pipes_out_ids.remove(&pipe) else {
            return false;
        };
        if let Some(p) = self.producers.get_mut(pk) {
            p.pipes_out.retain(|&(x, _)| x != pipe);
        }
        self.update_needed_layers(pk);
        true
    }

    /// Creates the pipe producer of `pipe` on this core: consumable here like a local producer of its router.
    pub fn create_pipe_producer(&mut self, src: PipeSource, pipe: u64) -> Result<(), SfuError> {
        if self.producer_ids.contains_key(&src.producer) {
            return Err(SfuError::Invalid(format!(
                "producer {} exists on this core",
                src.producer
            )));
        }
        if self.pipes_in.contains_key(&pipe) || self.pipes_out_ids.contains_key(&pipe) {
            return Err(SfuError::Invalid(format!("pipe {pipe} exists")));
        }
        let layers = src.mapping.encodings.len();
        let pk = self.producers.insert(Producer {
            id: src.producer.clone(),
            router: src.router,
            transport: TransportKey::default(),
            mid: String::new(),
            mapping: src.mapping,
            codec: src.codec,
            paused: src.paused,
            consumers: Vec::new(),
            layer_ssrcs: vec![None; layers],
            last_keyframe_request: vec![None; layers],
            last_packet: vec![None; layers],
            // What the real producer assumed of this pipe: a resumed consumer reports more.
            needed_layers: 1,
            rates: allocator::LayerRates::default(),
            temporal_rates: allocator::LayerRates::default(),
            layered: src.layered,
            svc_last_packet: Vec::new(),
            tap: None,
            priority: src.priority,
            pipe_in: Some(pipe),
            pipes_out: Vec::new(),
        });
        self.producer_ids.insert(src.producer, pk);
        self.pipes_in.insert(pipe, pk);
        Ok(())
    }

    /// Whether this core has the pipe producer of `producer_id` (or the real one: false).
    pub fn is_pipe_producer(&self, producer_id: &str) -> bool {
        self.producer_key(producer_id)
            .and_then(|pk| self.producers.get(pk))
            .is_some_and(|p| p.pipe_in.is_some())
    }

    /// The next message for a pipe producer's core.
    pub fn poll_pipe_out(&mut self) -> Option<PipeOut> {
        self.pipe_out.pop_front()
    }

    /// The next message for a real producer's core.
    pub fn poll_pipe_back(&mut self) -> Option<PipeBack> {
        self.pipe_back.pop_front()
    }

    /// A message from a real producer's core. Unknown pipes (closed here already) are ignored.
    pub fn handle_pipe_out(&mut self, now: Instant, msg: PipeOut) {
        let Some(&pk) = self.pipes_in.get(&msg.pipe()) else {
            return;
        };
        match msg {
            PipeOut::Rtp { layer, pkt, .. } => {
                self.stats.piped_in += 1;
                if self
                    .producers
                    .get(pk)
                    .is_some_and(|p| layer < p.layer_ssrcs.len().max(1))
                {
                    self.on_producer_rtp(pk, layer, pkt, now);
                }
            }
            PipeOut::Paused { paused, .. } => {
                if let Some(id) = self.producers.get(pk).map(|p| p.id.clone()) {
                    let _ = self.set_producer_paused(&id, paused, now);
                }
            }
            PipeOut::Priority { priority, .. } => {
                if let Some(p) = self.producers.get_mut(pk) {
                    p.priority = priority;
                }
            }
            PipeOut::Closed { .. } => {
                self.close_producer_key(pk);
            }
        }
    }

    /// A message from a pipe producer's core. Unknown pipes (the producer closed) are ignored.
    pub fn handle_pipe_back(&mut self, now: Instant, msg: PipeBack) {
        let Some(&pk) = self.pipes_out_ids.get(&msg.pipe()) else {
            return;
        };
        match msg {
            PipeBack::Keyframe { layer, .. } => self.request_keyframe(pk, layer, now),
            PipeBack::LayersNeeded {
                pipe,
                spatial_layers,
            } => {
                if let Some(p) = self.producers.get_mut(pk) {
                    for entry in p.pipes_out.iter_mut().filter(|(x, _)| *x == pipe) {
                        entry.1 = spatial_layers;
                    }
                }
                self.update_needed_layers(pk);
            }
        }
    }

    /// Hands a packet to the producer's pipes: moved into the last, the others share its payload.
    pub(super) fn pipe_packet(&mut self, pk: ProducerKey, layer: usize, pkt: PipedRtp) {
        let Some(p) = self.producers.get(pk) else {
            return;
        };
        let Some((&(last, _), rest)) = p.pipes_out.split_last() else {
            return;
        };
        for &(pipe, _) in rest {
            self.pipe_out.push_back(PipeOut::Rtp {
                pipe,
                layer,
                pkt: PipedRtp {
                    seq_no: pkt.seq_no,
                    header: pkt.header.clone(),
                    payload: pkt.payload.clone(),
                    wallclock: pkt.wallclock,
                },
            });
        }
        self.pipe_out.push_back(PipeOut::Rtp {
            pipe: last,
            layer,
            pkt,
        });
        self.stats.piped_out += p.pipes_out.len() as u64;
    }
}
