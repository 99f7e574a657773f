//! The client side of mediasoup-client's SDP handling, as a fake browser on str0m needs it: Chrome's numbering
//! ([`browser_config`]), what mediasoup-client signals for a send m-section of its own offer
//! ([`send_rtp_parameters`]), the answer its `RemoteSdp` builds for a send transport ([`publisher_answer`]) and the
//! remote offer it builds for a recv transport from consumers' `rtpParameters` ([`subscriber_offer`]).
//!
//! Not used by the server: shared by the scenario tests (`tests/common`) and the media load tool (`meet-load`).

use crate::ortc::{self, RtpCapabilities, RtpParameters};
use crate::Kind;
use serde_json::{json, Map, Value};
use std::net::IpAddr;
use str0m::format::{Codec, FormatParams};
use str0m::media::{Frequency, Pt};
use str0m::rtp::{Extension, ExtensionMap};
use str0m::RtcConfig;

// ---- str0m configuration of a "browser"

pub fn chrome_extensions() -> ExtensionMap {
    let mut e = ExtensionMap::empty();
    e.set(1, Extension::AudioLevel);
    e.set(2, Extension::AbsoluteSendTime);
    e.set(3, Extension::TransportSequenceNumber);
    e.set(4, Extension::RtpMid);
    e.set(10, Extension::RtpStreamId);
    e.set(11, Extension::RepairedRtpStreamId);
    e.set(13, Extension::VideoOrientation);
    e.set(14, Extension::TransmissionTimeOffset);
    e
}

pub fn browser_config() -> RtcConfig {
    let mut cfg = RtcConfig::new()
        .set_rtp_mode(true)
        .clear_codecs()
        .set_extension_map(chrome_extensions());
    let opus = FormatParams {
        min_p_time: Some(10),
        use_inband_fec: Some(true),
        ..FormatParams::default()
    };
    let h264 = FormatParams {
        level_asymmetry_allowed: Some(true),
        packetization_mode: Some(1),
        profile_level_id: Some(0x42e01f),
        ..FormatParams::default()
    };
    let codecs = cfg.codec_config();
    codecs.add_config(
        Pt::from(111),
        None,
        Codec::Opus,
        Frequency::FORTY_EIGHT_KHZ,
        Some(2),
        opus,
    );
    codecs.add_config(
        Pt::from(96),
        Some(Pt::from(97)),
        Codec::Vp8,
        Frequency::NINETY_KHZ,
        None,
        FormatParams::default(),
    );
    codecs.add_config(
        Pt::from(102),
        Some(Pt::from(103)),
        Codec::H264,
        Frequency::NINETY_KHZ,
        None,
        h264,
    );
    add_vp9(codecs);
    cfg
}

/// Chrome's VP9 (profile 0) under its numbering, 98 + RTX 99.
fn add_vp9(codecs: &mut str0m::format::CodecConfig) {
    codecs.add_config(
        Pt::from(98),
        Some(Pt::from(99)),
        Codec::Vp9,
        Frequency::NINETY_KHZ,
        None,
        FormatParams {
            profile_id: Some(0),
            ..FormatParams::default()
        },
    );
}

/// A fake browser whose only video codec is VP9 (its producers send VP9, as Chromium does when the app picks it).
pub fn browser_config_vp9() -> RtcConfig {
    let mut cfg = RtcConfig::new()
        .set_rtp_mode(true)
        .clear_codecs()
        .set_extension_map(chrome_extensions());
    add_vp9(cfg.codec_config());
    cfg
}

/// What `device.rtpCapabilities` of this fake browser looks like: the router's capabilities (router numbering)
/// reduced to the codecs the browser decodes (opus, VP8, H264, VP9 and their RTX).
pub fn device_caps() -> RtpCapabilities {
    let mut caps = ortc::router_capabilities();
    let media: Vec<u8> = caps
        .codecs
        .iter()
        .filter(|c| {
            let m = c.mime_type.to_ascii_lowercase();
            m == "audio/opus" || m == "video/vp8" || m == "video/h264" || m == "video/vp9"
        })
        .filter_map(|c| c.preferred_payload_type)
        .collect();
    caps.codecs.retain(|c| {
        if c.mime_type.to_ascii_lowercase().ends_with("/rtx") {
            c.parameters
                .get("apt")
                .and_then(Value::as_u64)
                .is_some_and(|apt| media.contains(&(apt as u8)))
        } else {
            c.preferred_payload_type
                .is_some_and(|pt| media.contains(&pt))
        }
    });
    caps
}

// ---- SDP text helpers (what sdp-transform does for mediasoup-client)

#[derive(Clone, Debug)]
pub struct MSection {
    pub kind: String,
    pub pts: Vec<u8>,
    pub attrs: Vec<String>,
}

impl MSection {
    pub fn attr<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        let prefix = format!("a={name}:");
        self.attrs
            .iter()
            .filter_map(move |a| a.strip_prefix(prefix.as_str()))
    }

    pub fn mid(&self) -> Option<&str> {
        self.attr("mid").next()
    }
}

/// Session lines and m-sections of an SDP.
pub fn parse_sdp(sdp: &str) -> (Vec<String>, Vec<MSection>) {
    let mut session = Vec::new();
    let mut sections: Vec<MSection> = Vec::new();
    for line in sdp.split("\r\n").filter(|l| !l.is_empty()) {
        if let Some(m) = line.strip_prefix("m=") {
            let mut parts = m.split(' ');
            let kind = parts.next().unwrap_or_default().to_owned();
            let pts = parts.skip(2).filter_map(|p| p.parse().ok()).collect();
            sections.push(MSection {
                kind,
                pts,
                attrs: Vec::new(),
            });
        } else if let Some(s) = sections.last_mut() {
            s.attrs.push(line.to_owned());
        } else {
            session.push(line.to_owned());
        }
    }
    (session, sections)
}

/// sdp-transform's parseParams: `a=1;b=x` → `{a: 1, b: "x"}` (numbers stay numbers).
pub fn parse_fmtp(s: &str) -> Map<String, Value> {
    let mut m = Map::new();
    for kv in s.split(';').map(str::trim).filter(|kv| !kv.is_empty()) {
        let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
        let value = match v.parse::<i64>() {
            Ok(n) if n.to_string() == v => json!(n),
            _ => json!(v),
        };
        m.insert(k.to_owned(), value);
    }
    m
}

pub fn fmtp_text(params: &Map<String, Value>) -> String {
    params
        .iter()
        .map(|(k, v)| match v {
            Value::String(s) => format!("{k}={s}"),
            other => format!("{k}={other}"),
        })
        .collect::<Vec<_>>()
        .join(";")
}

/// A codec of an m-section in mediasoup's shape, with the section's PT numbering.
pub fn section_codec(s: &MSection, pt: u8) -> Option<Value> {
    let rtpmap = s
        .attr("rtpmap")
        .find_map(|a| a.strip_prefix(&format!("{pt} ")))?;
    let mut parts = rtpmap.split('/');
    let name = parts.next()?;
    let clock: u32 = parts.next()?.parse().ok()?;
    let channels: Option<u8> = parts.next().and_then(|c| c.parse().ok());
    let params = s
        .attr("fmtp")
        .find_map(|a| a.strip_prefix(&format!("{pt} ")))
        .map(parse_fmtp)
        .unwrap_or_default();
    let feedback: Vec<Value> = s
        .attr("rtcp-fb")
        .filter_map(|a| a.strip_prefix(&format!("{pt} ")))
        .map(|fb| match fb.split_once(' ') {
            Some((t, p)) => json!({"type": t, "parameter": p}),
            None => json!({"type": fb, "parameter": ""}),
        })
        .collect();
    let mut c = json!({
        "mimeType": format!("{}/{}", s.kind, name),
        "payloadType": pt,
        "clockRate": clock,
        "parameters": params,
        "rtcpFeedback": feedback,
    });
    if s.kind == "audio" {
        c["channels"] = json!(channels.unwrap_or(1));
    }
    Some(c)
}

/// The router codec a client codec maps to, if any.
pub fn router_has(codec: &Value) -> bool {
    let Ok(c) = serde_json::from_value::<ortc::RtpCodecParameters>(codec.clone()) else {
        return false;
    };
    let kind = if c.mime_type.starts_with("audio") {
        Kind::Audio
    } else {
        Kind::Video
    };
    // The router accepts it iff mapping a one-encoding producer with it succeeds.
    let rtp = RtpParameters {
        mid: Some("0".into()),
        codecs: vec![c],
        header_extensions: vec![],
        encodings: vec![ortc::RtpEncodingParameters {
            ssrc: Some(1),
            ..Default::default()
        }],
        rtcp: Default::default(),
    };
    ortc::map_producer(kind, &rtp).is_ok()
}

/// mediasoup-client's choice for a send m-section: the first media codec the router supports, and its RTX.
pub fn chosen_codecs(s: &MSection) -> Vec<Value> {
    let all: Vec<Value> = s
        .pts
        .iter()
        .filter_map(|pt| section_codec(s, *pt))
        .collect();
    let is_rtx = |c: &Value| c["mimeType"].as_str().unwrap_or("").ends_with("/rtx");
    let Some(media) = all.iter().find(|c| !is_rtx(c) && router_has(c)).cloned() else {
        return Vec::new();
    };
    let pt = media["payloadType"].as_u64();
    let mut out = vec![media];
    if let Some(rtx) = all
        .iter()
        .find(|c| is_rtx(c) && c["parameters"]["apt"].as_u64() == pt)
    {
        out.push(rtx.clone());
    }
    out
}

/// The offer's extmaps the router knows for this kind (mediasoup-client's extended capabilities, `inactive` out).
pub fn chosen_extensions(s: &MSection) -> Vec<(u8, String)> {
    let kind = if s.kind == "audio" {
        Kind::Audio
    } else {
        Kind::Video
    };
    s.attr("extmap")
        .filter_map(|a| {
            let (id, uri) = a.split_once(' ')?;
            let id: u8 = id.split('/').next()?.parse().ok()?;
            let known = ortc::ROUTER_EXTENSIONS
                .iter()
                .any(|(k, u, _, dir)| *k == kind && *u == uri && *dir != "inactive");
            known.then(|| (id, uri.to_owned()))
        })
        .collect()
}

pub fn sdp_fingerprint(session: &[String], sections: &[MSection]) -> (String, String) {
    let line = session
        .iter()
        .filter_map(|l| l.strip_prefix("a=fingerprint:"))
        .chain(sections.iter().flat_map(|s| s.attr("fingerprint")))
        .next()
        .expect("a=fingerprint in local SDP")
        .to_owned();
    let (alg, value) = line
        .split_once(' ')
        .expect("fingerprint algorithm and value");
    (alg.to_owned(), value.to_owned())
}

/// Session and ICE/DTLS lines mediasoup-client's RemoteSdp writes from the transport parameters.
pub fn remote_session(params: &Value, version: u64, mids: &[String]) -> String {
    let fp = params["dtlsParameters"]["fingerprints"]
        .as_array()
        .and_then(|f| f.last())
        .expect("server fingerprint");
    format!(
        "v=0\r\no=mediasoup-client 10000 {version} IN IP4 0.0.0.0\r\ns=-\r\nt=0 0\r\na=ice-lite\r\n\
         a=fingerprint:{} {}\r\na=msid-semantic: WMS *\r\na=group:BUNDLE {}\r\n",
        fp["algorithm"].as_str().unwrap_or("sha-256"),
        fp["value"].as_str().unwrap_or_default(),
        mids.join(" ")
    )
}

pub fn remote_transport_lines(params: &Value, setup: &str) -> String {
    let ice = &params["iceParameters"];
    let mut s = format!(
        "a=ice-ufrag:{}\r\na=ice-pwd:{}\r\n",
        ice["usernameFragment"].as_str().unwrap_or_default(),
        ice["password"].as_str().unwrap_or_default()
    );
    for c in params["iceCandidates"].as_array().into_iter().flatten() {
        s.push_str(&format!(
            "a=candidate:{} 1 {} {} {} {} typ {}\r\n",
            c["foundation"].as_str().unwrap_or("f"),
            c["protocol"].as_str().unwrap_or("udp"),
            c["priority"],
            c["address"]
                .as_str()
                .or(c["ip"].as_str())
                .unwrap_or_default(),
            c["port"],
            c["type"].as_str().unwrap_or("host"),
        ));
    }
    s.push_str("a=end-of-candidates\r\na=ice-options:renomination\r\n");
    s.push_str(&format!("a=setup:{setup}\r\n"));
    s
}

pub fn codec_lines(codecs: &[Value]) -> String {
    let mut s = String::new();
    for c in codecs {
        let pt = &c["payloadType"];
        let mime = c["mimeType"].as_str().unwrap_or_default();
        let name = mime.split_once('/').map_or(mime, |(_, n)| n);
        match c["channels"].as_u64() {
            Some(ch) if ch > 1 => {
                s.push_str(&format!("a=rtpmap:{pt} {name}/{}/{ch}\r\n", c["clockRate"]))
            }
            _ => s.push_str(&format!("a=rtpmap:{pt} {name}/{}\r\n", c["clockRate"])),
        }
        for fb in c["rtcpFeedback"].as_array().into_iter().flatten() {
            match fb["parameter"].as_str() {
                Some(p) if !p.is_empty() => s.push_str(&format!(
                    "a=rtcp-fb:{pt} {} {p}\r\n",
                    fb["type"].as_str().unwrap_or_default()
                )),
                _ => s.push_str(&format!(
                    "a=rtcp-fb:{pt} {}\r\n",
                    fb["type"].as_str().unwrap_or_default()
                )),
            }
        }
        if let Some(p) = c["parameters"].as_object().filter(|p| !p.is_empty()) {
            s.push_str(&format!("a=fmtp:{pt} {}\r\n", fmtp_text(p)));
        }
    }
    s
}

/// A client codec (client PT) with the router's parameters and feedback, as in mediasoup's answer.
pub fn router_view(c: &Value) -> Value {
    let caps = ortc::router_capabilities();
    let mime = c["mimeType"]
        .as_str()
        .unwrap_or_default()
        .to_ascii_lowercase();
    let mut out = c.clone();
    if mime.ends_with("/rtx") {
        return out;
    }
    if let Some(r) = caps
        .codecs
        .iter()
        .find(|r| r.mime_type.to_ascii_lowercase() == mime)
    {
        out["rtcpFeedback"] = serde_json::to_value(&r.rtcp_feedback).unwrap_or_default();
        out["parameters"] = Value::Object(r.parameters.clone());
    }
    out
}

/// The `rtpParameters` mediasoup-client sends for one m-section of its own offer.
pub fn send_rtp_parameters(s: &MSection, simulcast: bool) -> Value {
    let codecs = chosen_codecs(s);
    let exts: Vec<Value> = chosen_extensions(s)
        .into_iter()
        .map(|(id, uri)| json!({"uri": uri, "id": id, "encrypt": false, "parameters": {}}))
        .collect();
    let cname = s
        .attr("ssrc")
        .find_map(|a| a.split_once(" cname:").map(|(_, c)| c.to_owned()))
        .unwrap_or_default();
    let rids: Vec<&str> = s
        .attr("rid")
        .filter_map(|r| r.strip_suffix(" send"))
        .collect();
    let (encodings, cname) = if simulcast && !rids.is_empty() {
        let e: Vec<Value> = rids
            .iter()
            .map(|r| json!({"rid": r, "active": true, "scalabilityMode": "L1T3"}))
            .collect();
        // mediasoup-client sends an empty CNAME for simulcast video.
        (e, String::new())
    } else {
        let fid = s
            .attr("ssrc-group")
            .find_map(|g| g.strip_prefix("FID "))
            .map(|g| {
                let v: Vec<u32> = g.split(' ').filter_map(|x| x.parse().ok()).collect();
                (v[0], v[1])
            });
        let e = match fid {
            Some((ssrc, rtx)) => json!([{"ssrc": ssrc, "rtx": {"ssrc": rtx}}]),
            None => {
                let ssrc: u32 = s
                    .attr("ssrc")
                    .find_map(|a| a.split(' ').next()?.parse().ok())
                    .expect("a=ssrc in the offer");
                json!([{ "ssrc": ssrc }])
            }
        };
        (e.as_array().cloned().unwrap_or_default(), cname)
    };
    json!({
        "mid": s.mid(),
        "codecs": codecs,
        "headerExtensions": exts,
        "encodings": encodings,
        "rtcp": {"cname": cname, "reducedSize": true},
    })
}

/// The answer mediasoup-client's `RemoteSdp` builds for a send transport's whole offer: per m-section the chosen
/// codec (+ RTX) under the client's PTs with the router's parameters and feedback, the extensions the router knows,
/// `recvonly`, `setup:passive`, and the simulcast rids received. `params` are the transport's parameters
/// (`iceParameters`, `iceCandidates`, `dtlsParameters`); `ip` goes on the `c=` lines.
pub fn publisher_answer(params: &Value, version: u64, offer_text: &str, ip: IpAddr) -> String {
    let (_, sections) = parse_sdp(offer_text);
    let mids: Vec<String> = sections
        .iter()
        .filter_map(|s| s.mid().map(str::to_owned))
        .collect();
    let mut sdp = remote_session(params, version, &mids);
    for s in &sections {
        let codecs = chosen_codecs(s);
        // The router's codec parameters and feedback under the client's PTs.
        let codecs: Vec<Value> = codecs.into_iter().map(|c| router_view(&c)).collect();
        let pts: Vec<String> = codecs
            .iter()
            .map(|c| c["payloadType"].to_string())
            .collect();
        sdp.push_str(&format!(
            "m={} 7 UDP/TLS/RTP/SAVPF {}\r\nc=IN IP4 {ip}\r\n",
            s.kind,
            pts.join(" ")
        ));
        sdp.push_str(&remote_transport_lines(params, "passive"));
        sdp.push_str(&format!(
            "a=mid:{}\r\na=recvonly\r\n",
            s.mid().unwrap_or("")
        ));
        sdp.push_str(&codec_lines(&codecs));
        for (id, uri) in chosen_extensions(s) {
            sdp.push_str(&format!("a=extmap:{id} {uri}\r\n"));
        }
        sdp.push_str("a=rtcp-mux\r\na=rtcp-rsize\r\n");
        let rids: Vec<&str> = s
            .attr("rid")
            .filter_map(|r| r.strip_suffix(" send"))
            .collect();
        if !rids.is_empty() {
            for r in &rids {
                sdp.push_str(&format!("a=rid:{r} recv\r\n"));
            }
            sdp.push_str(&format!("a=simulcast:recv {}\r\n", rids.join(";")));
        }
    }
    sdp
}

/// One consumer as a recv transport's remote offer needs it.
pub struct OfferedConsumer<'a> {
    pub id: &'a str,
    pub kind: Kind,
    pub rtp_parameters: &'a RtpParameters,
}

/// The remote offer mediasoup-client's `RemoteSdp` builds for a recv transport from its consumers (router PTs and
/// extension ids, ssrc + rtx ssrc, the consumer's mid), `setup:actpass`.
pub fn subscriber_offer(
    params: &Value,
    version: u64,
    consumers: &[OfferedConsumer<'_>],
    ip: IpAddr,
) -> String {
    let mids: Vec<String> = consumers
        .iter()
        .filter_map(|c| c.rtp_parameters.mid.clone())
        .collect();
    let mut sdp = remote_session(params, version, &mids);
    for c in consumers {
        let rtp = c.rtp_parameters;
        let codecs: Vec<Value> = rtp
            .codecs
            .iter()
            .map(|c| serde_json::to_value(c).unwrap_or_default())
            .collect();
        let pts: Vec<String> = rtp
            .codecs
            .iter()
            .map(|c| c.payload_type.to_string())
            .collect();
        let mid = rtp.mid.clone().unwrap_or_default();
        sdp.push_str(&format!(
            "m={} 7 UDP/TLS/RTP/SAVPF {}\r\nc=IN IP4 {ip}\r\n",
            c.kind.as_str(),
            pts.join(" ")
        ));
        sdp.push_str(&remote_transport_lines(params, "actpass"));
        let stream = format!("stream-{}", c.id);
        let track = format!("track-{}", c.id);
        sdp.push_str(&format!(
            "a=mid:{mid}\r\na=msid:{stream} {track}\r\na=sendonly\r\n"
        ));
        sdp.push_str(&codec_lines(&codecs));
        for h in &rtp.header_extensions {
            sdp.push_str(&format!("a=extmap:{} {}\r\n", h.id, h.uri));
        }
        sdp.push_str("a=rtcp-mux\r\na=rtcp-rsize\r\n");
        let cname = rtp.rtcp.cname.clone().unwrap_or_default();
        for e in &rtp.encodings {
            let Some(ssrc) = e.ssrc else { continue };
            if let Some(rtx) = &e.rtx {
                sdp.push_str(&format!("a=ssrc-group:FID {ssrc} {}\r\n", rtx.ssrc));
            }
            sdp.push_str(&format!(
                "a=ssrc:{ssrc} cname:{cname}\r\na=ssrc:{ssrc} msid:{stream} {track}\r\n"
            ));
            if let Some(rtx) = &e.rtx {
                sdp.push_str(&format!(
                    "a=ssrc:{0} cname:{cname}\r\na=ssrc:{0} msid:{stream} {track}\r\n",
                    rtx.ssrc
                ));
            }
        }
    }
    sdp
}

/// The `dtlsParameters` mediasoup-client's `connect` sends: the fingerprint of its local SDP, role client.
pub fn dtls_parameters(local_sdp: &str) -> Value {
    let (session, sections) = parse_sdp(local_sdp);
    let (algorithm, value) = sdp_fingerprint(&session, &sections);
    json!({"role": "client", "fingerprints": [{"algorithm": algorithm, "value": value}]})
}
