//! Rebuilding a client send transport's SDP offer from what mediasoup-client signalled (see
//! `../shared/research/producer-sdp-route.md`): the browser picks payload types and header-extension ids per
//! PeerConnection, and str0m learns them only through SDP negotiation. The server never sees the browser's SDP;
//! this offer is built from the producers' `rtpParameters`, applied with `accept_offer`, and its answer dropped.

use crate::ortc::{Kind, ProducerMapping};
use std::fmt::Write;

/// The ICE password placed in rebuilt offers. An ICE-lite agent never sends checks, so the browser's real password
/// is never needed; it must only stay constant (a change would look like an ICE restart to str0m).
pub const PLACEHOLDER_ICE_PWD: &str = "placeholderplaceholderplaceholder";

/// One m-line of the offer: an open producer, or a closed one kept as an inactive line so mids keep their slots.
#[derive(Clone, Debug)]
pub struct Section {
    pub mid: String,
    pub mapping: ProducerMapping,
    pub closed: bool,
}

fn codec_name(mime: &str) -> &str {
    mime.split_once('/').map_or(mime, |(_, n)| n)
}

/// The whole offer for `sections`, or None when there is nothing to offer.
pub fn build_offer(
    sections: &[Section],
    remote_ufrag: &str,
    remote_fingerprint: &str,
    version: u64,
) -> Option<String> {
    // With every section closed there is nothing to receive, and str0m refuses an offer without a BUNDLE group:
    // keep the last applied state until a producer opens a section again.
    if sections.iter().all(|x| x.closed) {
        return None;
    }
    let mut s = String::with_capacity(1024 * sections.len());
    let open: Vec<&str> = sections
        .iter()
        .filter(|x| !x.closed)
        .map(|x| x.mid.as_str())
        .collect();
    let _ = write!(
        s,
        "v=0\r\no=- 4611731400430051336 {version} IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\n"
    );
    if !open.is_empty() {
        let _ = write!(s, "a=group:BUNDLE {}\r\n", open.join(" "));
    }
    s.push_str("a=msid-semantic: WMS *\r\n");
    for sec in sections {
        let m = &sec.mapping;
        let media_pt = m.codec.payload_type;
        let codecs: Vec<_> = m
            .client_codecs
            .iter()
            .filter(|c| c.payload_type == media_pt || Some(c.payload_type) == m.rtx_payload_type)
            .collect();
        let pts: Vec<String> = codecs.iter().map(|c| c.payload_type.to_string()).collect();
        let port = if sec.closed { 0 } else { 9 };
        let _ = write!(
            s,
            "m={} {port} UDP/TLS/RTP/SAVPF {}\r\nc=IN IP4 0.0.0.0\r\na=rtcp:9 IN IP4 0.0.0.0\r\n",
            m.kind.as_str(),
            pts.join(" ")
        );
        let _ = write!(
            s,
            "a=ice-ufrag:{remote_ufrag}\r\na=ice-pwd:{PLACEHOLDER_ICE_PWD}\r\na=fingerprint:{remote_fingerprint}\r\na=setup:active\r\na=mid:{}\r\n",
            sec.mid
        );
        for h in &m.header_extensions {
            let _ = write!(s, "a=extmap:{} {}\r\n", h.id, h.uri);
        }
        s.push_str(if sec.closed {
            "a=inactive\r\n"
        } else {
            "a=sendonly\r\n"
        });
        s.push_str("a=rtcp-mux\r\na=rtcp-rsize\r\n");
        for c in &codecs {
            match c.channels {
                Some(ch) if m.kind == Kind::Audio && ch > 1 => {
                    let _ = write!(
                        s,
                        "a=rtpmap:{} {}/{}/{ch}\r\n",
                        c.payload_type,
                        codec_name(&c.mime_type),
                        c.clock_rate
                    );
                }
                _ => {
                    let _ = write!(
                        s,
                        "a=rtpmap:{} {}/{}\r\n",
                        c.payload_type,
                        codec_name(&c.mime_type),
                        c.clock_rate
                    );
                }
            }
            for fb in &c.rtcp_feedback {
                match &fb.parameter {
                    Some(p) if !p.is_empty() => {
                        let _ = write!(s, "a=rtcp-fb:{} {} {p}\r\n", c.payload_type, fb.kind);
                    }
                    _ => {
                        let _ = write!(s, "a=rtcp-fb:{} {}\r\n", c.payload_type, fb.kind);
                    }
                }
            }
            if !c.parameters.is_empty() {
                let fmtp: Vec<String> = c
                    .parameters
                    .iter()
                    .map(|(k, v)| match v {
                        serde_json::Value::String(x) => format!("{k}={x}"),
                        other => format!("{k}={other}"),
                    })
                    .collect();
                let _ = write!(s, "a=fmtp:{} {}\r\n", c.payload_type, fmtp.join(";"));
            }
        }
        if sec.closed {
            continue;
        }
        let cname = if m.cname.is_empty() {
            "meet"
        } else {
            m.cname.as_str()
        };
        let rids: Vec<&str> = m
            .encodings
            .iter()
            .filter_map(|e| e.rid.as_deref())
            .collect();
        if !rids.is_empty() {
            for r in &rids {
                let _ = write!(s, "a=rid:{r} send\r\n");
            }
            let _ = write!(s, "a=simulcast:send {}\r\n", rids.join(";"));
        } else {
            for e in &m.encodings {
                let Some(ssrc) = e.ssrc else { continue };
                if let Some(rtx) = &e.rtx {
                    let _ = write!(s, "a=ssrc-group:FID {ssrc} {}\r\n", rtx.ssrc);
                    let _ = write!(
                        s,
                        "a=ssrc:{ssrc} cname:{cname}\r\na=ssrc:{} cname:{cname}\r\n",
                        rtx.ssrc
                    );
                } else {
                    let _ = write!(s, "a=ssrc:{ssrc} cname:{cname}\r\n");
                }
            }
        }
    }
    Some(s)
}
