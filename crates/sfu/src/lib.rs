//! The media core: a sans-IO SFU on str0m that speaks mediasoup's server-side shapes (router RTP capabilities,
//! WebRtcTransport parameters, producer/consumer RTP parameters) so the official mediasoup-client works against it
//! unchanged. No tokio, no clock, no sockets: see `media` for the I/O shell.

pub mod allocator;
pub mod client_sdp;
pub mod core;
pub mod fingerprint;
pub mod layers;
pub mod ortc;
pub mod quality;
pub mod record;
pub mod sdp;
pub mod speaker;
pub mod vp8;

pub use crate::core::{
    ConsumerInfo, Core, CoreEvent, CoreStats, Direction, Liveness, SfuError, TransportInfo,
};
pub use crate::core::{ListenAddr, PipeBack, PipeOut, PipeSource, PipedRtp, Transmit};
pub use ortc::{Kind, RtpCapabilities, RtpParameters};
pub use str0m::net::Protocol;

/// HMAC-SHA1 (the crypto provider str0m uses for STUN): the TURN REST credential is base64 of it.
pub fn hmac_sha1(key: &[u8], data: &[u8]) -> [u8; 20] {
    str0m::crypto::from_feature_flags()
        .sha1_hmac_provider
        .sha1_hmac(key, &[data])
}
