//! The RTP-parameter algebra, the mediasoup way (mediasoup `node/src/ortc.ts`, re-derived, not copied): router
//! capabilities, validating a producer's `rtpParameters` and mapping them to router numbering, the consumable
//! parameters, `canConsume`, and a consumer's parameters. Pure functions over serde types; every malformed input is
//! an [`OrtcError`], never a panic.

use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum OrtcError {
    #[error("invalid rtpParameters: {0}")]
    Invalid(String),
    #[error("unsupported codec: {0}")]
    Unsupported(String),
    #[error("cannot consume: {0}")]
    CannotConsume(String),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    Audio,
    Video,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Audio => "audio",
            Kind::Video => "video",
        }
    }
}

// ---- wire types (mediasoup's shapes; unknown fields are ignored)

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RtcpFeedback {
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parameter: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RtpCodecParameters {
    pub mime_type: String,
    pub payload_type: u8,
    pub clock_rate: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub channels: Option<u8>,
    #[serde(default)]
    pub parameters: Map<String, Value>,
    #[serde(default)]
    pub rtcp_feedback: Vec<RtcpFeedback>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RtpHeaderExtensionParameters {
    pub uri: String,
    pub id: u8,
    #[serde(default)]
    pub encrypt: bool,
    #[serde(default)]
    pub parameters: Map<String, Value>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RtxSsrc {
    pub ssrc: u32,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RtpEncodingParameters {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ssrc: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rid: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rtx: Option<RtxSsrc>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scalability_mode: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_bitrate: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scale_resolution_down_by: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dtx: Option<bool>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RtcpParameters {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cname: Option<String>,
    #[serde(default = "yes")]
    pub reduced_size: bool,
}

fn yes() -> bool {
    true
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RtpParameters {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mid: Option<String>,
    pub codecs: Vec<RtpCodecParameters>,
    #[serde(default)]
    pub header_extensions: Vec<RtpHeaderExtensionParameters>,
    #[serde(default)]
    pub encodings: Vec<RtpEncodingParameters>,
    #[serde(default)]
    pub rtcp: RtcpParameters,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RtpCodecCapability {
    pub kind: Kind,
    pub mime_type: String,
    #[serde(default)]
    pub preferred_payload_type: Option<u8>,
    pub clock_rate: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub channels: Option<u8>,
    #[serde(default)]
    pub parameters: Map<String, Value>,
    #[serde(default)]
    pub rtcp_feedback: Vec<RtcpFeedback>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RtpHeaderExtension {
    #[serde(default)]
    pub kind: Option<Kind>,
    pub uri: String,
    pub preferred_id: u8,
    #[serde(default)]
    pub preferred_encrypt: bool,
    #[serde(default)]
    pub direction: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RtpCapabilities {
    #[serde(default)]
    pub codecs: Vec<RtpCodecCapability>,
    #[serde(default)]
    pub header_extensions: Vec<RtpHeaderExtension>,
}

// ---- the router's table

pub const URI_MID: &str = "urn:ietf:params:rtp-hdrext:sdes:mid";
pub const URI_RID: &str = "urn:ietf:params:rtp-hdrext:sdes:rtp-stream-id";
pub const URI_RRID: &str = "urn:ietf:params:rtp-hdrext:sdes:repaired-rtp-stream-id";
pub const URI_ABS_SEND_TIME: &str = "http://www.webrtc.org/experiments/rtp-hdrext/abs-send-time";
pub const URI_TWCC: &str =
    "http://www.ietf.org/id/draft-holmer-rmcat-transport-wide-cc-extensions-01";
pub const URI_AUDIO_LEVEL: &str = "urn:ietf:params:rtp-hdrext:ssrc-audio-level";
pub const URI_VIDEO_ORIENTATION: &str = "urn:3gpp:video-orientation";
pub const URI_TOFFSET: &str = "urn:ietf:params:rtp-hdrext:toffset";

/// One codec of the router, in router numbering.
#[derive(Clone, Debug, PartialEq)]
pub struct RouterCodec {
    pub kind: Kind,
    pub mime_type: &'static str,
    pub payload_type: u8,
    pub rtx_payload_type: Option<u8>,
    pub clock_rate: u32,
    pub channels: Option<u8>,
    pub parameters: Map<String, Value>,
}

/// `(kind, uri, id, direction)` of the router's header extensions: mediasoup's ids, except transport-wide-cc is
/// `sendrecv` for audio too (str0m stamps it on audio it sends; a receiver that never reports it would look like
/// loss to the estimator).
pub const ROUTER_EXTENSIONS: [(Kind, &str, u8, &str); 12] = [
    (Kind::Audio, URI_MID, 1, "sendrecv"),
    (Kind::Video, URI_MID, 1, "sendrecv"),
    (Kind::Video, URI_RID, 2, "recvonly"),
    (Kind::Video, URI_RRID, 3, "recvonly"),
    (Kind::Audio, URI_ABS_SEND_TIME, 4, "sendrecv"),
    (Kind::Video, URI_ABS_SEND_TIME, 4, "sendrecv"),
    (Kind::Audio, URI_TWCC, 5, "sendrecv"),
    (Kind::Video, URI_TWCC, 5, "sendrecv"),
    (Kind::Audio, URI_AUDIO_LEVEL, 10, "sendrecv"),
    (Kind::Video, URI_VIDEO_ORIENTATION, 11, "sendrecv"),
    (Kind::Video, URI_TOFFSET, 12, "sendrecv"),
    (Kind::Audio, URI_TOFFSET, 12, "inactive"),
];

fn params(v: Value) -> Map<String, Value> {
    match v {
        Value::Object(m) => m,
        _ => Map::new(),
    }
}

/// The router's codecs: opus; VP8, VP9, H264 and AV1, each video codec with RTX.
pub fn router_codecs() -> Vec<RouterCodec> {
    let video = |mime, pt, rtx, p: Value| RouterCodec {
        kind: Kind::Video,
        mime_type: mime,
        payload_type: pt,
        rtx_payload_type: Some(rtx),
        clock_rate: 90_000,
        channels: None,
        parameters: params(p),
    };
    vec![
        RouterCodec {
            kind: Kind::Audio,
            mime_type: "audio/opus",
            payload_type: 100,
            rtx_payload_type: None,
            clock_rate: 48_000,
            channels: Some(2),
            parameters: params(json!({"minptime": 10, "useinbandfec": 1})),
        },
        video("video/VP8", 101, 102, json!({})),
        video("video/VP9", 103, 104, json!({"profile-id": 0})),
        video(
            "video/H264",
            105,
            106,
            json!({"packetization-mode": 1, "profile-level-id": "42e01f", "level-asymmetry-allowed": 1}),
        ),
        video("video/AV1", 107, 108, json!({})),
    ]
}

fn feedback(kind: Kind) -> Vec<RtcpFeedback> {
    let fb = |k: &str, p: Option<&str>| RtcpFeedback {
        kind: k.to_owned(),
        parameter: p.map(str::to_owned),
    };
    match kind {
        Kind::Audio => vec![fb("nack", None), fb("transport-cc", None)],
        Kind::Video => vec![
            fb("nack", None),
            fb("nack", Some("pli")),
            fb("ccm", Some("fir")),
            fb("goog-remb", None),
            fb("transport-cc", None),
        ],
    }
}

/// The router's RTP capabilities in mediasoup's shape (what `device.load({routerRtpCapabilities})` takes).
pub fn router_capabilities() -> RtpCapabilities {
    let mut codecs = Vec::new();
    for c in router_codecs() {
        codecs.push(RtpCodecCapability {
            kind: c.kind,
            mime_type: c.mime_type.to_owned(),
            preferred_payload_type: Some(c.payload_type),
            clock_rate: c.clock_rate,
            channels: c.channels,
            parameters: c.parameters.clone(),
            rtcp_feedback: feedback(c.kind),
        });
        if let Some(rtx) = c.rtx_payload_type {
            codecs.push(RtpCodecCapability {
                kind: c.kind,
                mime_type: format!("{}/rtx", c.kind.as_str()),
                preferred_payload_type: Some(rtx),
                clock_rate: c.clock_rate,
                channels: None,
                parameters: params(json!({"apt": c.payload_type})),
                rtcp_feedback: Vec::new(),
            });
        }
    }
    let header_extensions = ROUTER_EXTENSIONS
        .iter()
        .map(|(kind, uri, id, dir)| RtpHeaderExtension {
            kind: Some(*kind),
            uri: (*uri).to_owned(),
            preferred_id: *id,
            preferred_encrypt: false,
            direction: Some((*dir).to_owned()),
        })
        .collect();
    RtpCapabilities {
        codecs,
        header_extensions,
    }
}

// ---- matching

fn is_rtx(mime: &str) -> bool {
    mime.to_ascii_lowercase().ends_with("/rtx")
}

fn param_str(p: &Map<String, Value>, key: &str) -> Option<String> {
    match p.get(key)? {
        Value::String(s) => Some(s.to_ascii_lowercase()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

fn param_u64(p: &Map<String, Value>, key: &str) -> Option<u64> {
    match p.get(key)? {
        Value::Number(n) => n.as_u64(),
        Value::String(s) => s.parse().ok(),
        _ => None,
    }
}

/// mediasoup's codec match: mime, clock rate, channels (audio), and the parameters that select a different
/// decoder (H264 packetization-mode and profile; VP9 profile-id). Two codecs given field by field, since the three
/// codec shapes (parameters, capability, router table) share no type.
#[allow(clippy::too_many_arguments)]
fn codecs_match(
    a_mime: &str,
    a_clock: u32,
    a_channels: Option<u8>,
    a_params: &Map<String, Value>,
    b_mime: &str,
    b_clock: u32,
    b_channels: Option<u8>,
    b_params: &Map<String, Value>,
) -> bool {
    let mime = a_mime.to_ascii_lowercase();
    if mime != b_mime.to_ascii_lowercase() || a_clock != b_clock {
        return false;
    }
    if mime.starts_with("audio/") && a_channels.unwrap_or(1) != b_channels.unwrap_or(1) {
        return false;
    }
    match mime.as_str() {
        "video/h264" => {
            let mode = |p| param_u64(p, "packetization-mode").unwrap_or(0);
            // The level may differ. An absent profile-level-id is Baseline as str0m reads it (H264ProfileLevel::
            // FALLBACK); mediasoup and libwebrtc read Constrained Baseline, but str0m would then drop the codec.
            let profile = |p| {
                param_str(p, "profile-level-id")
                    .map_or(Some(H264Profile::Baseline), |s| h264_profile(&s))
            };
            let pa = profile(a_params);
            mode(a_params) == mode(b_params) && pa.is_some() && pa == profile(b_params)
        }
        "video/vp9" => {
            param_u64(a_params, "profile-id").unwrap_or(0)
                == param_u64(b_params, "profile-id").unwrap_or(0)
        }
        _ => true,
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum H264Profile {
    ConstrainedBaseline,
    Baseline,
    Main,
    ConstrainedHigh,
    High,
    PredictiveHigh444,
}

/// The profile of a `profile-level-id` (RFC 6184 §8.1; the table of libwebrtc, mediasoup and str0m):
/// profile_idc plus a bit pattern of profile-iop; None when malformed or the level is not a valid one.
fn h264_profile(plid: &str) -> Option<H264Profile> {
    use H264Profile::*;
    // (profile_idc, profile-iop mask, profile-iop value, profile)
    const TABLE: [(u8, u8, u8, H264Profile); 9] = [
        (0x42, 0x4f, 0x40, ConstrainedBaseline), // x1xx0000
        (0x4d, 0x8f, 0x80, ConstrainedBaseline), // 1xxx0000
        (0x58, 0xcf, 0xc0, ConstrainedBaseline), // 11xx0000
        (0x42, 0x4f, 0x00, Baseline),            // x0xx0000
        (0x58, 0xcf, 0x80, Baseline),            // 10xx0000
        (0x4d, 0xaf, 0x00, Main),                // 0x0x0000
        (0x64, 0xff, 0x00, High),                // 00000000
        (0x64, 0xff, 0x0c, ConstrainedHigh),     // 00001100
        (0xf4, 0xff, 0x00, PredictiveHigh444),   // 00000000
    ];
    const LEVELS: [u8; 16] = [
        10, 11, 12, 13, 20, 21, 22, 30, 31, 32, 40, 41, 42, 50, 51, 52,
    ];
    if plid.len() != 6 || !plid.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    let v = u32::from_str_radix(plid, 16).ok()?;
    let [_, idc, iop, level] = v.to_be_bytes();
    if !LEVELS.contains(&level) {
        return None;
    }
    TABLE
        .iter()
        .find(|(i, mask, value, _)| *i == idc && iop & mask == *value)
        .map(|t| t.3)
}

fn router_match<'a>(codecs: &'a [RouterCodec], c: &RtpCodecParameters) -> Option<&'a RouterCodec> {
    codecs.iter().find(|r| {
        codecs_match(
            &c.mime_type,
            c.clock_rate,
            c.channels,
            &c.parameters,
            r.mime_type,
            r.clock_rate,
            r.channels,
            &r.parameters,
        )
    })
}

// ---- producers

/// A validated producer, mapped to router numbering.
#[derive(Clone, Debug, PartialEq)]
pub struct ProducerMapping {
    pub kind: Kind,
    /// The producer's media codec as the client sent it (its own payload type) and the router's.
    pub codec: RtpCodecParameters,
    pub router_codec: RouterCodec,
    /// The client's RTX payload type for the media codec, if it sends RTX.
    pub rtx_payload_type: Option<u8>,
    /// Encodings in order (spatial layer 0 = the first = the lowest for mediasoup-client's simulcast).
    pub encodings: Vec<RtpEncodingParameters>,
    /// Temporal layers of each encoding (from `scalabilityMode` `LxTy`).
    pub temporal_layers: u8,
    /// Spatial layers inside the one encoding of an SVC producer (`L3T3`, `L3T3_KEY`); 1 otherwise.
    pub spatial_layers: u8,
    /// k-SVC (`…_KEY`, or `S` modes): upper spatial layers depend on lower ones only in keyframes.
    pub ksvc: bool,
    pub cname: String,
    pub mid: Option<String>,
    pub header_extensions: Vec<RtpHeaderExtensionParameters>,
    /// The whole codec list as the client sent it (the SDP offer of a send transport needs it).
    pub client_codecs: Vec<RtpCodecParameters>,
}

const MAX_ENCODINGS: usize = 4;

/// 1-256 printable ASCII characters without spaces: safe to write into an SDP line.
fn sdp_safe(s: &str) -> bool {
    !s.is_empty() && s.len() <= 256 && s.bytes().all(|b| b.is_ascii_graphic())
}

/// Validates `rtp` for `kind` and maps it to the router (mediasoup `getProducerRtpParametersMapping`).
pub fn map_producer(kind: Kind, rtp: &RtpParameters) -> Result<ProducerMapping, OrtcError> {
    let invalid = |m: &str| OrtcError::Invalid(m.to_owned());
    if rtp.codecs.is_empty() || rtp.codecs.len() > 16 {
        return Err(invalid("codecs must hold 1-16 entries"));
    }
    let first = &rtp.codecs[0];
    if is_rtx(&first.mime_type) {
        return Err(invalid("the first codec must be a media codec, not RTX"));
    }
    if !first
        .mime_type
        .to_ascii_lowercase()
        .starts_with(kind.as_str())
    {
        return Err(invalid(
            "the first codec's kind does not match the producer's kind",
        ));
    }
    let mut seen = std::collections::HashSet::new();
    for c in &rtp.codecs {
        if !seen.insert(c.payload_type) || c.payload_type > 127 {
            return Err(invalid("payload types must be unique and 0-127"));
        }
        // These strings are written into the rebuilt SDP offer: no spaces, no line breaks.
        let fb_ok = c.rtcp_feedback.iter().all(|f| {
            sdp_safe(&f.kind)
                && f.parameter
                    .as_deref()
                    .is_none_or(|p| p.is_empty() || sdp_safe(p))
        });
        let params_ok = c.parameters.iter().all(|(k, v)| {
            sdp_safe(k)
                && match v {
                    Value::String(s) => s.is_empty() || sdp_safe(s),
                    Value::Number(_) => true,
                    _ => false,
                }
        });
        if !sdp_safe(&c.mime_type) || !fb_ok || !params_ok {
            return Err(invalid("codec mimeType, parameters and rtcpFeedback must be printable ASCII without spaces"));
        }
    }
    let codecs = router_codecs();
    let router_codec = router_match(&codecs, first).cloned().ok_or_else(|| {
        OrtcError::Unsupported(format!(
            "{} is not supported by the router",
            first.mime_type
        ))
    })?;
    let rtx_payload_type = rtp
        .codecs
        .iter()
        .filter(|c| is_rtx(&c.mime_type))
        .find(|c| param_u64(&c.parameters, "apt") == Some(u64::from(first.payload_type)))
        .map(|c| c.payload_type);
    if rtp.encodings.is_empty() || rtp.encodings.len() > MAX_ENCODINGS {
        return Err(invalid("encodings must hold 1-4 entries"));
    }
    let with_rid = rtp.encodings.iter().filter(|e| e.rid.is_some()).count();
    if with_rid != 0 && with_rid != rtp.encodings.len() {
        return Err(invalid("either every encoding has a rid or none has"));
    }
    for e in &rtp.encodings {
        match (&e.rid, e.ssrc) {
            (None, None) => return Err(invalid("each encoding needs an ssrc or a rid")),
            (Some(rid), _)
                if rid.is_empty()
                    || rid.len() > 16
                    || !rid.bytes().all(|b| b.is_ascii_alphanumeric()) =>
            {
                return Err(invalid("rid must be 1-16 alphanumeric characters"))
            }
            _ => {}
        }
        if kind == Kind::Audio && rtp.encodings.len() > 1 {
            return Err(invalid("audio producers have one encoding"));
        }
    }
    let mode = rtp
        .encodings
        .first()
        .and_then(|e| e.scalability_mode.as_deref())
        .and_then(parse_scalability_mode);
    let temporal_layers = mode.map_or(1, |m| m.temporal);
    // Spatial layers inside one stream only mean SVC for a codec that has it (mediasoup: VP9; H264 SVC is not
    // forwarded by layer here).
    let svc_codec = router_codec.mime_type.eq_ignore_ascii_case("video/VP9");
    let (spatial_layers, ksvc) = match mode {
        Some(m) if rtp.encodings.len() == 1 && svc_codec => (m.spatial, m.ksvc),
        _ => (1, false),
    };
    for h in &rtp.header_extensions {
        if h.id == 0 || h.id > 14 || !sdp_safe(&h.uri) {
            return Err(invalid("header extension ids must be 1-14 with a uri"));
        }
    }
    if let Some(mid) = &rtp.mid {
        if mid.is_empty()
            || mid.len() > 32
            || !mid
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        {
            return Err(invalid("mid must be 1-32 characters of A-Z a-z 0-9 - _"));
        }
    }
    let cname = rtp.rtcp.cname.clone().unwrap_or_default();
    if cname.len() > 255 || cname.chars().any(char::is_control) {
        return Err(invalid("rtcp.cname is too long"));
    }
    Ok(ProducerMapping {
        kind,
        codec: first.clone(),
        router_codec,
        rtx_payload_type,
        encodings: rtp.encodings.clone(),
        temporal_layers,
        spatial_layers,
        ksvc,
        cname,
        mid: rtp.mid.clone(),
        header_extensions: rtp.header_extensions.clone(),
        client_codecs: rtp.codecs.clone(),
    })
}

/// A `scalabilityMode` (webrtc-svc): `L` or `S`, spatial layers, `T`, temporal layers, then an optional suffix
/// (`_KEY` = k-SVC, `h`, …); 1–4 layers of each (what Chromium encodes), anything else is not a mode.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ScalabilityMode {
    pub spatial: u8,
    pub temporal: u8,
    pub ksvc: bool,
}

pub fn parse_scalability_mode(mode: &str) -> Option<ScalabilityMode> {
    let b = mode.as_bytes();
    let simulcast = match b.first()? {
        b'L' => false,
        b'S' => true,
        _ => return None,
    };
    let digit = |c: Option<&u8>| c.filter(|c| (b'1'..=b'4').contains(c)).map(|c| c - b'0');
    let spatial = digit(b.get(1))?;
    if b.get(2) != Some(&b'T') {
        return None;
    }
    let temporal = digit(b.get(3))?;
    let rest = &mode[4..];
    if rest.starts_with(|c: char| c.is_ascii_digit()) {
        return None;
    }
    Some(ScalabilityMode {
        spatial,
        temporal,
        ksvc: simulcast || rest.starts_with("_KEY"),
    })
}

/// `canConsume`: the client can decode the producer's codec.
pub fn can_consume(producer: &ProducerMapping, caps: &RtpCapabilities) -> bool {
    matching_cap(producer, caps).is_some()
}

fn matching_cap<'a>(
    producer: &ProducerMapping,
    caps: &'a RtpCapabilities,
) -> Option<&'a RtpCodecCapability> {
    let r = &producer.router_codec;
    caps.codecs.iter().find(|c| {
        !is_rtx(&c.mime_type)
            && codecs_match(
                &c.mime_type,
                c.clock_rate,
                c.channels,
                &c.parameters,
                r.mime_type,
                r.clock_rate,
                r.channels,
                &r.parameters,
            )
    })
}

/// A consumer's RTP parameters (mediasoup `getConsumerRtpParameters` + the transport's mid and fresh SSRCs),
/// in router numbering, and its `type`.
pub fn consumer_parameters(
    producer: &ProducerMapping,
    caps: &RtpCapabilities,
    mid: &str,
    ssrc: u32,
    rtx_ssrc: Option<u32>,
) -> Result<(RtpParameters, &'static str), OrtcError> {
    let cap = matching_cap(producer, caps).ok_or_else(|| {
        OrtcError::CannotConsume(format!(
            "the client cannot decode {}",
            producer.router_codec.mime_type
        ))
    })?;
    let r = &producer.router_codec;
    let exts: Vec<RtpHeaderExtensionParameters> = ROUTER_EXTENSIONS
        .iter()
        .filter(|(k, _, _, dir)| *k == producer.kind && (*dir == "sendrecv" || *dir == "sendonly"))
        .filter(|(_, uri, id, _)| {
            caps.header_extensions.iter().any(|h| {
                h.uri == *uri && h.preferred_id == *id && h.kind.is_none_or(|k| k == producer.kind)
            })
        })
        .map(|(_, uri, id, _)| RtpHeaderExtensionParameters {
            uri: (*uri).to_owned(),
            id: *id,
            encrypt: false,
            parameters: Map::new(),
        })
        .collect();
    let has_twcc = exts.iter().any(|e| e.uri == URI_TWCC);
    let has_abs = exts.iter().any(|e| e.uri == URI_ABS_SEND_TIME);
    let with_rtx = producer.kind == Kind::Video
        && rtx_ssrc.is_some()
        && caps.codecs.iter().any(|c| {
            is_rtx(&c.mime_type)
                && param_u64(&c.parameters, "apt") == cap.preferred_payload_type.map(u64::from)
        });
    let rtcp_feedback: Vec<RtcpFeedback> = cap
        .rtcp_feedback
        .iter()
        .filter(|f| match f.kind.as_str() {
            "goog-remb" => !has_twcc && has_abs,
            "transport-cc" => has_twcc,
            "nack" if f.parameter.as_deref().is_none_or(str::is_empty) => {
                with_rtx || producer.kind == Kind::Audio
            }
            _ => true,
        })
        .cloned()
        .collect();
    let mut codecs = vec![RtpCodecParameters {
        mime_type: r.mime_type.to_owned(),
        payload_type: r.payload_type,
        clock_rate: r.clock_rate,
        channels: r.channels,
        parameters: producer.codec.parameters.clone(),
        rtcp_feedback,
    }];
    if let (true, Some(rtx_pt)) = (with_rtx, r.rtx_payload_type) {
        codecs.push(RtpCodecParameters {
            mime_type: format!("{}/rtx", producer.kind.as_str()),
            payload_type: rtx_pt,
            clock_rate: r.clock_rate,
            channels: None,
            parameters: params(json!({"apt": r.payload_type})),
            rtcp_feedback: Vec::new(),
        });
    }
    let layers = producer.encodings.len();
    let max_bitrate = producer
        .encodings
        .iter()
        .filter_map(|e| e.max_bitrate)
        .max();
    let encoding = RtpEncodingParameters {
        ssrc: Some(ssrc),
        rtx: if with_rtx {
            rtx_ssrc.map(|s| RtxSsrc { ssrc: s })
        } else {
            None
        },
        scalability_mode: Some(if layers == 1 && producer.spatial_layers > 1 {
            // mediasoup passes an SVC producer's mode on (`L3T3_KEY` stays k-SVC for the client); rebuilt from
            // what was parsed, so nothing else the publisher wrote reaches the subscriber.
            format!(
                "L{}T{}{}",
                producer.spatial_layers,
                producer.temporal_layers,
                if producer.ksvc { "_KEY" } else { "" }
            )
        } else {
            format!("L{}T{}", layers, producer.temporal_layers)
        }),
        max_bitrate,
        ..RtpEncodingParameters::default()
    };
    let kind = if layers > 1 {
        "simulcast"
    } else if producer.spatial_layers > 1
        || (producer.temporal_layers > 1
            && producer
                .router_codec
                .mime_type
                .eq_ignore_ascii_case("video/VP9"))
    {
        "svc"
    } else {
        "simple"
    };
    Ok((
        RtpParameters {
            mid: Some(mid.to_owned()),
            codecs,
            header_extensions: exts,
            encodings: vec![encoding],
            rtcp: RtcpParameters {
                cname: Some(producer.cname.clone()),
                reduced_size: true,
            },
        },
        kind,
    ))
}

#[cfg(test)]
mod tests;
