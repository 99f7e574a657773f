//! The media core: a sans-IO SFU on str0m that speaks mediasoup's server-side shapes (router RTP capabilities,
//! WebRtcTransport parameters, producer/consumer RTP parameters) so the official mediasoup-client works against it
//! unchanged. No tokio, no clock, no sockets: see `media` for the I/O shell.

pub mod client_sdp;
pub mod core;
pub mod fingerprint;
pub mod ortc;
pub mod sdp;
pub mod vp8;

pub use crate::core::{
    ConsumerInfo, Core, CoreEvent, CoreStats, Direction, Liveness, SfuError, TransportInfo,
};
pub use ortc::{Kind, RtpCapabilities, RtpParameters};
