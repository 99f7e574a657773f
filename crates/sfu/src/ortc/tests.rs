//! The ORTC algebra against mediasoup's documented behaviour (`node/src/ortc.ts`, `supportedRtpCapabilities.ts`),
//! fed with what mediasoup-client 3.24 on Chrome actually signals. Where this module deliberately or knowingly
//! differs from mediasoup, the test pins the current behaviour and says so (`DEVIATION`).

use super::*;

// ---- fixtures: what mediasoup-client 3.24 sends from Chrome

const CHROME_VIDEO_FEEDBACK: &str = r#"[
    {"type": "goog-remb", "parameter": ""},
    {"type": "transport-cc", "parameter": ""},
    {"type": "ccm", "parameter": "fir"},
    {"type": "nack", "parameter": ""},
    {"type": "nack", "parameter": "pli"}
]"#;

fn rtp(v: Value) -> RtpParameters {
    serde_json::from_value(v).expect("rtpParameters deserialize")
}

fn caps(v: Value) -> RtpCapabilities {
    serde_json::from_value(v).expect("rtpCapabilities deserialize")
}

fn video_fb() -> Value {
    serde_json::from_str(CHROME_VIDEO_FEEDBACK).expect("feedback json")
}

fn chrome_video_exts() -> Value {
    json!([
        {"uri": URI_MID, "id": 4, "encrypt": false, "parameters": {}},
        {"uri": URI_RID, "id": 10, "encrypt": false, "parameters": {}},
        {"uri": URI_RRID, "id": 11, "encrypt": false, "parameters": {}},
        {"uri": URI_ABS_SEND_TIME, "id": 2, "encrypt": false, "parameters": {}},
        {"uri": URI_TWCC, "id": 3, "encrypt": false, "parameters": {}},
        {"uri": URI_VIDEO_ORIENTATION, "id": 13, "encrypt": false, "parameters": {}},
        {"uri": URI_TOFFSET, "id": 14, "encrypt": false, "parameters": {}}
    ])
}

/// `produce({track: mic})`: opus 111 with Chrome's extension ids.
fn chrome_opus() -> Value {
    json!({
        "codecs": [{
            "mimeType": "audio/opus", "payloadType": 111, "clockRate": 48000, "channels": 2,
            "parameters": {"minptime": 10, "useinbandfec": 1},
            "rtcpFeedback": [{"type": "transport-cc", "parameter": ""}]
        }],
        "headerExtensions": [
            {"uri": URI_MID, "id": 4, "encrypt": false, "parameters": {}},
            {"uri": URI_ABS_SEND_TIME, "id": 2, "encrypt": false, "parameters": {}},
            {"uri": URI_TWCC, "id": 3, "encrypt": false, "parameters": {}},
            {"uri": URI_AUDIO_LEVEL, "id": 1, "encrypt": false, "parameters": {}}
        ],
        "encodings": [{"ssrc": 2_938_128_811u32, "dtx": false}],
        "rtcp": {"cname": "Gk0Ss2oOnz0nvUTk", "reducedSize": true},
        "mid": "0",
        "msid": "b6c1f5 3a0c2e"
    })
}

fn vp8_codecs() -> Value {
    json!([
        {"mimeType": "video/VP8", "payloadType": 96, "clockRate": 90000, "parameters": {}, "rtcpFeedback": video_fb()},
        {"mimeType": "video/rtx", "payloadType": 97, "clockRate": 90000, "parameters": {"apt": 96}, "rtcpFeedback": []}
    ])
}

/// `produce({track: cam, encodings: [3 layers], codecOptions})`: simulcast, rids, no ssrcs, empty CNAME.
fn chrome_vp8_simulcast() -> Value {
    json!({
        "codecs": vp8_codecs(),
        "headerExtensions": chrome_video_exts(),
        "encodings": [
            {"active": true, "scalabilityMode": "L1T3", "rid": "r0", "scaleResolutionDownBy": 4.0, "maxBitrate": 150_000, "dtx": false},
            {"active": true, "scalabilityMode": "L1T3", "rid": "r1", "scaleResolutionDownBy": 2.0, "maxBitrate": 500_000, "dtx": false},
            {"active": true, "scalabilityMode": "L1T3", "rid": "r2", "scaleResolutionDownBy": 1.0, "maxBitrate": 1_200_000, "dtx": false}
        ],
        "rtcp": {"cname": "", "reducedSize": true},
        "mid": "1",
        "msid": "b6c1f5 0f5e77"
    })
}

/// `produce({track: cam})` without simulcast: one encoding with ssrc and rtx ssrc.
fn chrome_vp8_single() -> Value {
    json!({
        "codecs": vp8_codecs(),
        "headerExtensions": chrome_video_exts(),
        "encodings": [{"ssrc": 1_111_111_111u32, "rtx": {"ssrc": 1_111_111_112u32}, "dtx": false}],
        "rtcp": {"cname": "Gk0Ss2oOnz0nvUTk", "reducedSize": true},
        "mid": "2"
    })
}

fn chrome_video(mime: &str, pt: u8, parameters: Value) -> Value {
    json!({
        "codecs": [
            {"mimeType": mime, "payloadType": pt, "clockRate": 90000, "parameters": parameters, "rtcpFeedback": video_fb()},
            {"mimeType": "video/rtx", "payloadType": pt + 1, "clockRate": 90000, "parameters": {"apt": pt}, "rtcpFeedback": []}
        ],
        "headerExtensions": chrome_video_exts(),
        "encodings": [{"ssrc": 222_222, "rtx": {"ssrc": 222_223}}],
        "rtcp": {"cname": "c"},
        "mid": "3"
    })
}

fn h264(profile_level_id: &str, packetization_mode: u8) -> Value {
    chrome_video(
        "video/H264",
        108,
        json!({"level-asymmetry-allowed": 1, "packetization-mode": packetization_mode, "profile-level-id": profile_level_id}),
    )
}

/// `device.rtpCapabilities` of Chrome after `device.load(router capabilities)`: router numbering, the intersection of
/// feedback, the extensions the device can receive (rid/rrid are send-only for it).
fn chrome_device_caps() -> Value {
    let vfb = video_fb();
    let ext = |kind: &str, uri: &str, id: u8| json!({"kind": kind, "uri": uri, "preferredId": id, "preferredEncrypt": false, "direction": "sendrecv"});
    let rtx = |pt: u8, apt: u8| json!({"kind": "video", "mimeType": "video/rtx", "preferredPayloadType": pt, "clockRate": 90000, "parameters": {"apt": apt}, "rtcpFeedback": []});
    json!({
        "codecs": [
            {"kind": "audio", "mimeType": "audio/opus", "preferredPayloadType": 100, "clockRate": 48000, "channels": 2,
             "parameters": {"minptime": 10, "useinbandfec": 1}, "rtcpFeedback": [{"type": "nack", "parameter": ""}, {"type": "transport-cc", "parameter": ""}]},
            {"kind": "video", "mimeType": "video/VP8", "preferredPayloadType": 101, "clockRate": 90000, "parameters": {}, "rtcpFeedback": vfb},
            rtx(102, 101),
            {"kind": "video", "mimeType": "video/VP9", "preferredPayloadType": 103, "clockRate": 90000, "parameters": {"profile-id": 0}, "rtcpFeedback": vfb},
            rtx(104, 103),
            {"kind": "video", "mimeType": "video/H264", "preferredPayloadType": 105, "clockRate": 90000,
             "parameters": {"level-asymmetry-allowed": 1, "packetization-mode": 1, "profile-level-id": "42e01f"}, "rtcpFeedback": vfb},
            rtx(106, 105),
            {"kind": "video", "mimeType": "video/AV1", "preferredPayloadType": 107, "clockRate": 90000, "parameters": {}, "rtcpFeedback": vfb},
            rtx(108, 107)
        ],
        "headerExtensions": [
            ext("audio", URI_MID, 1),
            ext("video", URI_MID, 1),
            ext("audio", URI_ABS_SEND_TIME, 4),
            ext("video", URI_ABS_SEND_TIME, 4),
            ext("audio", URI_TWCC, 5),
            ext("video", URI_TWCC, 5),
            ext("audio", URI_AUDIO_LEVEL, 10),
            ext("video", URI_VIDEO_ORIENTATION, 11),
            ext("video", URI_TOFFSET, 12)
        ]
    })
}

fn device_caps() -> RtpCapabilities {
    caps(chrome_device_caps())
}

/// Chrome's caps with the codecs whose mime type matches `drop` removed (and their RTX).
fn device_caps_without(drop: &str) -> RtpCapabilities {
    let mut c = device_caps();
    let dropped: Vec<Option<u8>> = c
        .codecs
        .iter()
        .filter(|x| x.mime_type.eq_ignore_ascii_case(drop))
        .map(|x| x.preferred_payload_type)
        .collect();
    c.codecs.retain(|x| {
        let rtx_of_dropped = is_rtx(&x.mime_type)
            && dropped.contains(&param_u64(&x.parameters, "apt").map(|a| a as u8));
        !x.mime_type.eq_ignore_ascii_case(drop) && !rtx_of_dropped
    });
    c
}

fn map(kind: Kind, v: Value) -> Result<ProducerMapping, OrtcError> {
    map_producer(kind, &rtp(v))
}

fn mapped(kind: Kind, v: Value) -> ProducerMapping {
    map(kind, v).expect("producer maps")
}

fn is_invalid(r: Result<ProducerMapping, OrtcError>) -> bool {
    matches!(r, Err(OrtcError::Invalid(_)))
}

fn is_unsupported(r: Result<ProducerMapping, OrtcError>) -> bool {
    matches!(r, Err(OrtcError::Unsupported(_)))
}

fn fb(kind: &str, parameter: Option<&str>) -> RtcpFeedback {
    RtcpFeedback {
        kind: kind.to_owned(),
        parameter: parameter.map(str::to_owned),
    }
}

fn has_fb(list: &[RtcpFeedback], kind: &str, parameter: Option<&str>) -> bool {
    list.iter()
        .any(|f| f.kind == kind && f.parameter.as_deref().filter(|p| !p.is_empty()) == parameter)
}

fn ext_ids(p: &RtpParameters) -> Vec<(String, u8)> {
    p.header_extensions
        .iter()
        .map(|h| (h.uri.clone(), h.id))
        .collect()
}

// ---- router capabilities

#[test]
fn router_codecs_have_mediasoup_payload_types_and_rtx() {
    let c = router_capabilities();
    type Row<'a> = (Kind, &'a str, Option<u8>, u32, Option<u8>);
    let table: Vec<Row> = c
        .codecs
        .iter()
        .map(|x| {
            (
                x.kind,
                x.mime_type.as_str(),
                x.preferred_payload_type,
                x.clock_rate,
                x.channels,
            )
        })
        .collect();
    assert_eq!(
        table,
        vec![
            (Kind::Audio, "audio/opus", Some(100), 48_000, Some(2)),
            (Kind::Video, "video/VP8", Some(101), 90_000, None),
            (Kind::Video, "video/rtx", Some(102), 90_000, None),
            (Kind::Video, "video/VP9", Some(103), 90_000, None),
            (Kind::Video, "video/rtx", Some(104), 90_000, None),
            (Kind::Video, "video/H264", Some(105), 90_000, None),
            (Kind::Video, "video/rtx", Some(106), 90_000, None),
            (Kind::Video, "video/AV1", Some(107), 90_000, None),
            (Kind::Video, "video/rtx", Some(108), 90_000, None),
        ]
    );
    // Every RTX directly follows its media codec and points at it with a numeric apt, without feedback.
    for pair in c.codecs.windows(2) {
        if pair[1].mime_type == "video/rtx" {
            assert_eq!(
                pair[1].parameters.get("apt"),
                Some(&json!(pair[0].preferred_payload_type))
            );
            assert!(pair[1].rtcp_feedback.is_empty());
            assert!(!is_rtx(&pair[0].mime_type));
        }
    }
    let pts: std::collections::HashSet<_> =
        c.codecs.iter().map(|x| x.preferred_payload_type).collect();
    assert_eq!(
        pts.len(),
        c.codecs.len(),
        "preferred payload types are unique"
    );
}

#[test]
fn router_codec_parameters() {
    let c = router_capabilities();
    let find = |mime: &str| {
        c.codecs
            .iter()
            .find(|x| x.mime_type == mime)
            .expect("codec present")
    };
    assert_eq!(
        find("video/VP9").parameters.get("profile-id"),
        Some(&json!(0))
    );
    let h = &find("video/H264").parameters;
    assert_eq!(h.get("packetization-mode"), Some(&json!(1)));
    assert_eq!(h.get("profile-level-id"), Some(&json!("42e01f")));
    assert_eq!(h.get("level-asymmetry-allowed"), Some(&json!(1)));
    assert!(find("video/VP8").parameters.is_empty());
    assert!(find("video/AV1").parameters.is_empty());
    // router_codecs() and router_capabilities() agree.
    for r in router_codecs() {
        let cap = find(r.mime_type);
        assert_eq!(cap.preferred_payload_type, Some(r.payload_type));
        assert_eq!(cap.parameters, r.parameters);
        let rtx = c.codecs.iter().find(|x| {
            is_rtx(&x.mime_type)
                && param_u64(&x.parameters, "apt") == Some(u64::from(r.payload_type))
        });
        assert_eq!(
            rtx.and_then(|x| x.preferred_payload_type),
            r.rtx_payload_type
        );
    }
}

#[test]
fn router_feedback_per_kind() {
    let c = router_capabilities();
    let opus = &c.codecs[0];
    assert_eq!(
        opus.rtcp_feedback,
        vec![fb("nack", None), fb("transport-cc", None)]
    );
    for v in c
        .codecs
        .iter()
        .filter(|x| x.kind == Kind::Video && !is_rtx(&x.mime_type))
    {
        assert_eq!(
            v.rtcp_feedback,
            vec![
                fb("nack", None),
                fb("nack", Some("pli")),
                fb("ccm", Some("fir")),
                fb("goog-remb", None),
                fb("transport-cc", None)
            ],
            "{}",
            v.mime_type
        );
    }
}

#[test]
fn router_header_extensions() {
    let c = router_capabilities();
    let get = |kind: Kind, uri: &str| {
        c.header_extensions
            .iter()
            .find(|h| h.kind == Some(kind) && h.uri == uri)
            .map(|h| (h.preferred_id, h.direction.as_deref().unwrap_or("")))
    };
    assert_eq!(get(Kind::Audio, URI_MID), Some((1, "sendrecv")));
    assert_eq!(get(Kind::Video, URI_MID), Some((1, "sendrecv")));
    assert_eq!(get(Kind::Video, URI_RID), Some((2, "recvonly")));
    assert_eq!(get(Kind::Video, URI_RRID), Some((3, "recvonly")));
    assert_eq!(get(Kind::Audio, URI_RID), None);
    assert_eq!(get(Kind::Audio, URI_ABS_SEND_TIME), Some((4, "sendrecv")));
    assert_eq!(get(Kind::Video, URI_ABS_SEND_TIME), Some((4, "sendrecv")));
    // DEVIATION (deliberate, see ROUTER_EXTENSIONS): mediasoup has transport-wide-cc `recvonly` for audio.
    assert_eq!(get(Kind::Audio, URI_TWCC), Some((5, "sendrecv")));
    assert_eq!(get(Kind::Video, URI_TWCC), Some((5, "sendrecv")));
    assert_eq!(get(Kind::Audio, URI_AUDIO_LEVEL), Some((10, "sendrecv")));
    assert_eq!(
        get(Kind::Video, URI_VIDEO_ORIENTATION),
        Some((11, "sendrecv"))
    );
    assert_eq!(get(Kind::Video, URI_TOFFSET), Some((12, "sendrecv")));
    // DEVIATION: an extra audio toffset entry (inactive) that mediasoup does not list.
    assert_eq!(get(Kind::Audio, URI_TOFFSET), Some((12, "inactive")));
    assert!(c
        .header_extensions
        .iter()
        .all(|h| !h.preferred_encrypt && h.kind.is_some()));
    // One id per URI, the same for both kinds.
    for h in &c.header_extensions {
        assert!(c
            .header_extensions
            .iter()
            .filter(|o| o.uri == h.uri)
            .all(|o| o.preferred_id == h.preferred_id));
    }
}

#[test]
fn router_capabilities_wire_shape() {
    let v = serde_json::to_value(router_capabilities()).expect("serialize");
    let opus = &v["codecs"][0];
    assert_eq!(opus["kind"], "audio");
    assert_eq!(opus["mimeType"], "audio/opus");
    assert_eq!(opus["preferredPayloadType"], 100);
    assert_eq!(opus["clockRate"], 48000);
    assert_eq!(opus["channels"], 2);
    assert_eq!(opus["rtcpFeedback"][1]["type"], "transport-cc");
    let vp8 = &v["codecs"][1];
    assert!(
        vp8.get("channels").is_none(),
        "video codecs carry no channels"
    );
    assert_eq!(
        vp8["rtcpFeedback"][1],
        json!({"type": "nack", "parameter": "pli"})
    );
    assert_eq!(v["codecs"][2]["parameters"], json!({"apt": 101}));
    let ext = &v["headerExtensions"][2];
    assert_eq!(
        ext,
        &json!({"kind": "video", "uri": URI_RID, "preferredId": 2, "preferredEncrypt": false, "direction": "recvonly"})
    );
    // It round-trips (what a client echoes back parses).
    let back: RtpCapabilities = serde_json::from_value(v).expect("deserialize");
    assert_eq!(back, router_capabilities());
}

// ---- map_producer: what Chrome sends

#[test]
fn map_chrome_opus() {
    let m = mapped(Kind::Audio, chrome_opus());
    assert_eq!(m.kind, Kind::Audio);
    assert_eq!(m.codec.payload_type, 111);
    assert_eq!(m.router_codec.payload_type, 100);
    assert_eq!(m.router_codec.mime_type, "audio/opus");
    assert_eq!(m.rtx_payload_type, None);
    assert_eq!(m.encodings.len(), 1);
    assert_eq!(m.encodings[0].ssrc, Some(2_938_128_811));
    assert_eq!(m.encodings[0].dtx, Some(false));
    assert_eq!(m.temporal_layers, 1);
    assert_eq!(m.cname, "Gk0Ss2oOnz0nvUTk");
    assert_eq!(m.mid.as_deref(), Some("0"));
    // The producer keeps the browser's extension ids (the rebuilt SDP offer needs them).
    let ids: Vec<(&str, u8)> = m
        .header_extensions
        .iter()
        .map(|h| (h.uri.as_str(), h.id))
        .collect();
    assert_eq!(
        ids,
        vec![
            (URI_MID, 4),
            (URI_ABS_SEND_TIME, 2),
            (URI_TWCC, 3),
            (URI_AUDIO_LEVEL, 1)
        ]
    );
    assert_eq!(m.client_codecs.len(), 1);
}

#[test]
fn map_chrome_vp8_simulcast() {
    let m = mapped(Kind::Video, chrome_vp8_simulcast());
    assert_eq!(m.codec.payload_type, 96);
    assert_eq!(m.router_codec.payload_type, 101);
    assert_eq!(m.router_codec.rtx_payload_type, Some(102));
    assert_eq!(m.rtx_payload_type, Some(97));
    let rids: Vec<_> = m.encodings.iter().map(|e| e.rid.as_deref()).collect();
    assert_eq!(rids, vec![Some("r0"), Some("r1"), Some("r2")]);
    assert!(m
        .encodings
        .iter()
        .all(|e| e.ssrc.is_none() && e.rtx.is_none()));
    assert_eq!(m.encodings[2].max_bitrate, Some(1_200_000));
    assert_eq!(m.encodings[0].scale_resolution_down_by, Some(4.0));
    assert_eq!(m.temporal_layers, 3);
    assert_eq!(
        m.cname, "",
        "mediasoup-client sends an empty CNAME for simulcast; Core::produce replaces it"
    );
    assert_eq!(m.mid.as_deref(), Some("1"));
    assert_eq!(m.header_extensions.len(), 7);
    assert_eq!(m.client_codecs.len(), 2);
}

#[test]
fn map_chrome_vp8_single_encoding() {
    let m = mapped(Kind::Video, chrome_vp8_single());
    assert_eq!(m.router_codec.payload_type, 101);
    assert_eq!(m.rtx_payload_type, Some(97));
    assert_eq!(m.encodings.len(), 1);
    assert_eq!(m.encodings[0].ssrc, Some(1_111_111_111));
    assert_eq!(
        m.encodings[0].rtx,
        Some(RtxSsrc {
            ssrc: 1_111_111_112
        })
    );
    assert_eq!(m.encodings[0].rid, None);
    assert_eq!(m.temporal_layers, 1);
}

#[test]
fn map_without_rtx() {
    let mut v = chrome_vp8_single();
    v["codecs"].as_array_mut().expect("array").truncate(1);
    v["encodings"][0]["rtx"] = Value::Null;
    let m = mapped(Kind::Video, v);
    assert_eq!(m.rtx_payload_type, None);
    assert_eq!(m.encodings[0].rtx, None);
}

#[test]
fn map_ignores_unknown_fields_and_defaults_missing_ones() {
    // Only mimeType, payloadType and clockRate are mandatory per codec; mid, headerExtensions and rtcp are optional.
    let m = mapped(
        Kind::Video,
        json!({
            "codecs": [{"mimeType": "video/vp8", "payloadType": 120, "clockRate": 90000, "futureField": [1, 2]}],
            "encodings": [{"ssrc": 5, "codecPayloadType": 120, "priority": "high"}],
            "extra": {"x": 1}
        }),
    );
    assert_eq!(
        m.router_codec.payload_type, 101,
        "mime types match case-insensitively"
    );
    assert_eq!(m.mid, None);
    assert_eq!(m.cname, "");
    assert!(m.header_extensions.is_empty());
    assert!(m.codec.rtcp_feedback.is_empty());
}

#[test]
fn map_rtx_is_found_by_apt_not_by_position() {
    let v = json!({
        "codecs": [
            {"mimeType": "video/VP8", "payloadType": 96, "clockRate": 90000},
            {"mimeType": "video/rtx", "payloadType": 99, "clockRate": 90000, "parameters": {"apt": 98}},
            {"mimeType": "video/rtx", "payloadType": 97, "clockRate": 90000, "parameters": {"apt": 96}}
        ],
        "encodings": [{"ssrc": 1}],
        "mid": "0"
    });
    // DEVIATION: mediasoup throws for an RTX whose apt names no codec of the producer; this module ignores it.
    assert_eq!(mapped(Kind::Video, v).rtx_payload_type, Some(97));
}

#[test]
fn map_h264_constrained_baseline() {
    let m = mapped(Kind::Video, h264("42e01f", 1));
    assert_eq!(m.codec.payload_type, 108);
    assert_eq!(m.router_codec.payload_type, 105);
    assert_eq!(m.rtx_payload_type, Some(109));
    // Another level of the same profile matches (mediasoup would also rewrite the level for the answer).
    assert!(map(Kind::Video, h264("42e034", 1)).is_ok());
    assert!(
        map(Kind::Video, h264("42E01F", 1)).is_ok(),
        "hex case does not matter"
    );
}

#[test]
fn map_h264_other_profiles_are_unsupported() {
    // Main (4d001f) and Baseline (42001f) are other profiles than Constrained Baseline, as in mediasoup.
    assert!(is_unsupported(map(Kind::Video, h264("4d001f", 1))));
    assert!(is_unsupported(map(Kind::Video, h264("42001f", 1))));
    assert!(is_unsupported(map(Kind::Video, h264("640c1f", 1))));
    // packetization-mode must equal the router's (1).
    assert!(is_unsupported(map(Kind::Video, h264("42e01f", 0))));
}

#[test]
fn map_h264_profile_matching_follows_rfc_6184() {
    // As in mediasoup (h264-profile-level-id): 42c01f, 4de01f and 58c01f are Constrained Baseline too.
    assert!(map(Kind::Video, h264("42c01f", 1)).is_ok());
    assert!(map(Kind::Video, h264("4de01f", 1)).is_ok());
    assert!(map(Kind::Video, h264("58c01f", 1)).is_ok());
    // DEVIATION (kept for str0m, whose fallback is Baseline): without profile-level-id mediasoup reads 42e01f and
    // matches; here it is Baseline and does not.
    let mut v = h264("42e01f", 1);
    v["codecs"][0]["parameters"]
        .as_object_mut()
        .expect("object")
        .remove("profile-level-id");
    assert!(is_unsupported(map(Kind::Video, v)));
    // Malformed ids or levels match nothing.
    for bad in ["42e0zz", "42e0", "42e01f00", "42e0ff"] {
        assert!(is_unsupported(map(Kind::Video, h264(bad, 1))), "{bad}");
    }
}

#[test]
fn reject_strings_that_would_break_the_sdp_offer() {
    let mut v = chrome_vp8_single();
    v["codecs"][1]["mimeType"] =
        json!("video/x\r\na=ice-lite\r\nm=audio 9 UDP/TLS/RTP/SAVPF 97\r\na=rtpmap:97 rtx");
    assert!(is_invalid(map(Kind::Video, v)));
    let mut v = chrome_vp8_single();
    v["codecs"][0]["parameters"]["x"] = json!("1\r\na=sendrecv");
    assert!(is_invalid(map(Kind::Video, v)));
    let mut v = chrome_vp8_single();
    v["codecs"][0]["parameters"]["x"] = json!({"nested": true});
    assert!(is_invalid(map(Kind::Video, v)));
    let mut v = chrome_vp8_single();
    v["codecs"][0]["rtcpFeedback"][0]["parameter"] = json!("pli fir");
    assert!(is_invalid(map(Kind::Video, v)));
    let mut v = chrome_vp8_single();
    v["headerExtensions"][0]["uri"] =
        json!("urn:x\r\na=extmap:4 urn:ietf:params:rtp-hdrext:sdes:mid");
    assert!(is_invalid(map(Kind::Video, v)));
}

#[test]
fn map_vp9_profiles() {
    assert_eq!(
        mapped(
            Kind::Video,
            chrome_video("video/VP9", 98, json!({"profile-id": 0}))
        )
        .router_codec
        .payload_type,
        103
    );
    assert!(
        map(Kind::Video, chrome_video("video/VP9", 98, json!({}))).is_ok(),
        "absent profile-id is 0"
    );
    assert!(is_unsupported(map(
        Kind::Video,
        chrome_video("video/VP9", 100, json!({"profile-id": 2}))
    )));
    assert!(is_unsupported(map(
        Kind::Video,
        chrome_video("video/VP9", 100, json!({"profile-id": 1}))
    )));
}

#[test]
fn map_av1_and_unknown_codecs() {
    let m = mapped(
        Kind::Video,
        chrome_video(
            "video/AV1",
            45,
            json!({"level-idx": 5, "profile": 0, "tier": 0}),
        ),
    );
    assert_eq!(
        (m.router_codec.payload_type, m.rtx_payload_type),
        (107, Some(46))
    );
    assert!(is_unsupported(map(
        Kind::Video,
        chrome_video("video/H265", 49, json!({}))
    )));
    let mut v = chrome_video("video/VP8", 96, json!({}));
    v["codecs"][0]["clockRate"] = json!(48_000);
    assert!(is_unsupported(map(Kind::Video, v)), "clock rate differs");
}

#[test]
fn map_opus_channels_and_clock_rate_must_match() {
    let mut v = chrome_opus();
    v["codecs"][0]["channels"] = json!(1);
    assert!(is_unsupported(map(Kind::Audio, v.clone())));
    v["codecs"][0]
        .as_object_mut()
        .expect("object")
        .remove("channels");
    assert!(
        is_unsupported(map(Kind::Audio, v)),
        "absent channels means 1, as in mediasoup"
    );
    let mut v = chrome_opus();
    v["codecs"][0]["clockRate"] = json!(16000);
    assert!(is_unsupported(map(Kind::Audio, v)));
    let mut v = chrome_opus();
    v["codecs"][0]["mimeType"] = json!("audio/G722");
    assert!(is_unsupported(map(Kind::Audio, v)));
}

// ---- map_producer: rejections

#[test]
fn reject_empty_or_too_many_codecs() {
    let mut v = chrome_opus();
    v["codecs"] = json!([]);
    assert!(is_invalid(map(Kind::Audio, v)));
    let mut v = chrome_opus();
    let many: Vec<Value> = (0..17)
        .map(|i| json!({"mimeType": "audio/opus", "payloadType": 96 + i, "clockRate": 48000, "channels": 2}))
        .collect();
    v["codecs"] = json!(many);
    assert!(is_invalid(map(Kind::Audio, v)));
}

#[test]
fn reject_rtx_first() {
    let mut v = chrome_vp8_single();
    v["codecs"].as_array_mut().expect("array").reverse();
    assert!(is_invalid(map(Kind::Video, v.clone())));
    v["codecs"][0]["mimeType"] = json!("video/RTX");
    assert!(
        is_invalid(map(Kind::Video, v)),
        "rtx detection is case-insensitive"
    );
}

#[test]
fn reject_kind_mismatch() {
    assert!(is_invalid(map(Kind::Video, chrome_opus())));
    assert!(is_invalid(map(Kind::Audio, chrome_vp8_single())));
    assert!(is_invalid(map(Kind::Audio, chrome_vp8_simulcast())));
}

#[test]
fn reject_duplicate_and_out_of_range_payload_types() {
    let mut v = chrome_vp8_single();
    v["codecs"][1]["payloadType"] = json!(96);
    assert!(is_invalid(map(Kind::Video, v)));
    for pt in [128, 200, 255] {
        let mut v = chrome_opus();
        v["codecs"][0]["payloadType"] = json!(pt);
        assert!(is_invalid(map(Kind::Audio, v)), "pt {pt}");
    }
    let mut v = chrome_vp8_single();
    v["codecs"][1]["payloadType"] = json!(128);
    assert!(
        is_invalid(map(Kind::Video, v)),
        "an RTX payload type is checked too"
    );
    // Out of u8 range does not even deserialize.
    let mut v = chrome_opus();
    v["codecs"][0]["payloadType"] = json!(256);
    assert!(serde_json::from_value::<RtpParameters>(v).is_err());
}

#[test]
fn reject_bad_encodings() {
    let mut v = chrome_vp8_simulcast();
    v["encodings"] = json!([]);
    assert!(is_invalid(map(Kind::Video, v)));
    let mut v = chrome_vp8_simulcast();
    v["encodings"] = json!([{"rid": "a"}, {"rid": "b"}, {"rid": "c"}, {"rid": "d"}, {"rid": "e"}]);
    assert!(is_invalid(map(Kind::Video, v)));
    let mut v = chrome_vp8_simulcast();
    v["encodings"] = json!([{"rid": "a"}, {"rid": "b"}, {"rid": "c"}, {"rid": "d"}]);
    assert!(map(Kind::Video, v).is_ok(), "four encodings are allowed");
    let mut v = chrome_vp8_simulcast();
    v["encodings"] = json!([{"rid": "r0"}, {"ssrc": 1}]);
    assert!(is_invalid(map(Kind::Video, v)), "mixed rid and non-rid");
    let mut v = chrome_vp8_simulcast();
    v["encodings"] = json!([{"ssrc": 1}, {"rid": "r1", "ssrc": 2}]);
    assert!(is_invalid(map(Kind::Video, v)), "mixed rid and non-rid");
    let mut v = chrome_vp8_single();
    v["encodings"] = json!([{"dtx": false}]);
    assert!(is_invalid(map(Kind::Video, v)), "neither ssrc nor rid");
    let mut v = chrome_opus();
    v["encodings"] = json!([{"ssrc": 1}, {"ssrc": 2}]);
    assert!(is_invalid(map(Kind::Audio, v)), "audio has one encoding");
    let mut v = chrome_vp8_single();
    v["encodings"] = json!([{"ssrc": 1}, {"ssrc": 3}]);
    assert!(map(Kind::Video, v).is_ok(), "SSRC simulcast");
}

#[test]
fn reject_bad_rids() {
    for rid in ["", "r-0", "r 0", "r_0", "r0\r\n", "ü", "abcdefghijklmnopq"] {
        let mut v = chrome_vp8_simulcast();
        v["encodings"][1]["rid"] = json!(rid);
        assert!(is_invalid(map(Kind::Video, v)), "rid {rid:?}");
    }
    let mut v = chrome_vp8_simulcast();
    v["encodings"][1]["rid"] = json!("abcdefghijklmnop");
    assert!(map(Kind::Video, v).is_ok(), "16 alphanumerics");
}

#[test]
fn reject_bad_mids() {
    let long = "m".repeat(33);
    for mid in ["", "a b", "0\r\na=ice-lite", "ü", "a:b", long.as_str()] {
        let mut v = chrome_opus();
        v["mid"] = json!(mid);
        assert!(is_invalid(map(Kind::Audio, v)), "mid {mid:?}");
    }
    for mid in ["0", "audio", "a-b_C9", &"m".repeat(32)] {
        let mut v = chrome_opus();
        v["mid"] = json!(mid);
        assert!(map(Kind::Audio, v).is_ok(), "mid {mid:?}");
    }
}

#[test]
fn reject_bad_header_extension_ids() {
    for id in [0, 15, 16, 255] {
        let mut v = chrome_opus();
        v["headerExtensions"][1]["id"] = json!(id);
        assert!(is_invalid(map(Kind::Audio, v)), "id {id}");
    }
    for id in [1, 14] {
        let mut v = chrome_opus();
        v["headerExtensions"] = json!([{"uri": URI_AUDIO_LEVEL, "id": id}]);
        assert!(map(Kind::Audio, v).is_ok(), "id {id}");
    }
    let mut v = chrome_opus();
    v["headerExtensions"][0]["uri"] = json!("");
    assert!(is_invalid(map(Kind::Audio, v)));
    let mut v = chrome_opus();
    v["headerExtensions"][0]["uri"] = json!("u".repeat(257));
    assert!(is_invalid(map(Kind::Audio, v)));
}

#[test]
fn reject_bad_cnames() {
    let mut v = chrome_opus();
    v["rtcp"]["cname"] = json!("c".repeat(256));
    assert!(is_invalid(map(Kind::Audio, v)));
    let mut v = chrome_opus();
    v["rtcp"]["cname"] = json!("a\r\nb");
    assert!(is_invalid(map(Kind::Audio, v)));
    let mut v = chrome_opus();
    v["rtcp"]["cname"] = json!("c".repeat(255));
    assert!(map(Kind::Audio, v).is_ok());
}

#[test]
fn temporal_layers_from_scalability_mode() {
    let layers = |mode: Option<&str>| {
        let mut v = chrome_vp8_simulcast();
        for e in v["encodings"].as_array_mut().expect("array") {
            e["scalabilityMode"] = mode.map_or(Value::Null, |m| json!(m));
        }
        mapped(Kind::Video, v).temporal_layers
    };
    assert_eq!(layers(Some("L1T3")), 3);
    assert_eq!(layers(Some("L1T2")), 2);
    assert_eq!(layers(Some("L1T1")), 1);
    assert_eq!(layers(Some("S3T3")), 3);
    assert_eq!(layers(Some("L3T3_KEY")), 3);
    assert_eq!(layers(None), 1);
    assert_eq!(layers(Some("garbage")), 1);
    assert_eq!(layers(Some("L1T0")), 1);
    assert_eq!(
        layers(Some("L1T99")),
        1,
        "out-of-range temporal layers fall back to 1"
    );
}

// ---- can_consume

#[test]
fn can_consume_with_chrome_caps() {
    let caps = device_caps();
    assert!(can_consume(&mapped(Kind::Audio, chrome_opus()), &caps));
    assert!(can_consume(
        &mapped(Kind::Video, chrome_vp8_simulcast()),
        &caps
    ));
    assert!(can_consume(
        &mapped(Kind::Video, chrome_vp8_single()),
        &caps
    ));
    assert!(can_consume(&mapped(Kind::Video, h264("42e01f", 1)), &caps));
    assert!(can_consume(
        &mapped(
            Kind::Video,
            chrome_video("video/VP9", 98, json!({"profile-id": 0}))
        ),
        &caps
    ));
    assert!(can_consume(
        &mapped(Kind::Video, chrome_video("video/AV1", 45, json!({}))),
        &caps
    ));
}

#[test]
fn cannot_consume_without_the_codec() {
    let no_vp8 = device_caps_without("video/VP8");
    assert!(
        no_vp8
            .codecs
            .iter()
            .all(|c| c.preferred_payload_type != Some(102)),
        "VP8's RTX went too"
    );
    assert!(!can_consume(
        &mapped(Kind::Video, chrome_vp8_simulcast()),
        &no_vp8
    ));
    assert!(can_consume(&mapped(Kind::Audio, chrome_opus()), &no_vp8));
    assert!(can_consume(
        &mapped(Kind::Video, h264("42e01f", 1)),
        &no_vp8
    ));
    assert!(!can_consume(
        &mapped(Kind::Audio, chrome_opus()),
        &device_caps_without("audio/opus")
    ));
    assert!(!can_consume(
        &mapped(Kind::Video, chrome_vp8_single()),
        &RtpCapabilities {
            codecs: vec![],
            header_extensions: vec![]
        }
    ));
}

#[test]
fn can_consume_uses_strict_codec_matching() {
    let producer = mapped(Kind::Video, h264("42e01f", 1));
    let mut c = device_caps();
    let h = c
        .codecs
        .iter_mut()
        .find(|x| x.mime_type == "video/H264")
        .expect("h264");
    h.parameters.insert("packetization-mode".into(), json!(0));
    assert!(!can_consume(&producer, &c), "packetization-mode differs");
    let mut c = device_caps();
    let h = c
        .codecs
        .iter_mut()
        .find(|x| x.mime_type == "video/H264")
        .expect("h264");
    h.parameters
        .insert("profile-level-id".into(), json!("4d001f"));
    assert!(!can_consume(&producer, &c), "profile differs");
    let mut c = device_caps();
    let h = c
        .codecs
        .iter_mut()
        .find(|x| x.mime_type == "video/H264")
        .expect("h264");
    h.parameters
        .insert("profile-level-id".into(), json!("42e034"));
    assert!(can_consume(&producer, &c), "level may differ");
    let mut c = device_caps();
    let v = c
        .codecs
        .iter_mut()
        .find(|x| x.mime_type == "video/VP9")
        .expect("vp9");
    v.parameters.insert("profile-id".into(), json!(2));
    assert!(!can_consume(
        &mapped(Kind::Video, chrome_video("video/VP9", 98, json!({}))),
        &c
    ));
    // An RTX alone is never consumable.
    let rtx_only = RtpCapabilities {
        codecs: device_caps()
            .codecs
            .into_iter()
            .filter(|x| is_rtx(&x.mime_type))
            .collect(),
        header_extensions: vec![],
    };
    assert!(!can_consume(
        &mapped(Kind::Video, chrome_vp8_single()),
        &rtx_only
    ));
}

// ---- consumer_parameters

#[test]
fn consumer_of_vp8_simulcast() {
    let producer = mapped(Kind::Video, chrome_vp8_simulcast());
    let (p, kind) =
        consumer_parameters(&producer, &device_caps(), "3", 1000, Some(1001)).expect("consumable");
    assert_eq!(kind, "simulcast");
    assert_eq!(p.mid.as_deref(), Some("3"));
    let codecs: Vec<(&str, u8)> = p
        .codecs
        .iter()
        .map(|c| (c.mime_type.as_str(), c.payload_type))
        .collect();
    assert_eq!(codecs, vec![("video/VP8", 101), ("video/rtx", 102)]);
    assert_eq!(p.codecs[1].parameters.get("apt"), Some(&json!(101)));
    assert_eq!(p.codecs[0].clock_rate, 90_000);
    assert_eq!(p.codecs[0].channels, None);
    assert_eq!(p.encodings.len(), 1);
    let e = &p.encodings[0];
    assert_eq!(e.ssrc, Some(1000));
    assert_eq!(e.rtx, Some(RtxSsrc { ssrc: 1001 }));
    assert_eq!(e.rid, None);
    assert_eq!(e.scalability_mode.as_deref(), Some("L3T3"));
    assert_eq!(
        e.max_bitrate,
        Some(1_200_000),
        "the highest maxBitrate of any encoding"
    );
    // Only the router's video extensions a consumer may send, that the device has with the same id: no rid/rrid.
    assert_eq!(
        ext_ids(&p),
        vec![
            (URI_MID.to_owned(), 1),
            (URI_ABS_SEND_TIME.to_owned(), 4),
            (URI_TWCC.to_owned(), 5),
            (URI_VIDEO_ORIENTATION.to_owned(), 11),
            (URI_TOFFSET.to_owned(), 12)
        ]
    );
    let f = &p.codecs[0].rtcp_feedback;
    assert!(!has_fb(f, "goog-remb", None), "transport-cc wins over REMB");
    assert!(has_fb(f, "transport-cc", None));
    assert!(has_fb(f, "nack", None));
    assert!(has_fb(f, "nack", Some("pli")));
    assert!(has_fb(f, "ccm", Some("fir")));
    assert!(p.codecs[1].rtcp_feedback.is_empty());
    assert_eq!(
        p.rtcp.cname.as_deref(),
        Some(""),
        "the producer's CNAME is carried as is"
    );
    assert!(p.rtcp.reduced_size);
}

#[test]
fn consumer_of_single_encoding() {
    let producer = mapped(Kind::Video, chrome_vp8_single());
    let (p, kind) =
        consumer_parameters(&producer, &device_caps(), "0", 7, Some(8)).expect("consumable");
    assert_eq!(kind, "simple");
    assert_eq!(p.encodings[0].scalability_mode.as_deref(), Some("L1T1"));
    assert_eq!(p.encodings[0].ssrc, Some(7));
    assert_eq!(p.encodings[0].rtx, Some(RtxSsrc { ssrc: 8 }));
    assert_eq!(p.encodings[0].max_bitrate, None);
    assert_eq!(p.rtcp.cname.as_deref(), Some("Gk0Ss2oOnz0nvUTk"));
    // DEVIATION: mediasoup's producer (hence consumer) type for one VP8 encoding with temporal layers (L1T3) is
    // 'simulcast'; here it is 'simple'.
    let mut v = chrome_vp8_single();
    v["encodings"][0]["scalabilityMode"] = json!("L1T3");
    let (p, kind) = consumer_parameters(&mapped(Kind::Video, v), &device_caps(), "0", 7, Some(8))
        .expect("consumable");
    assert_eq!(kind, "simple");
    assert_eq!(p.encodings[0].scalability_mode.as_deref(), Some("L1T3"));
}

#[test]
fn consumer_rtx_only_when_the_device_has_it() {
    let producer = mapped(Kind::Video, chrome_vp8_single());
    // The device has RTX for VP8 but the caller gives no RTX SSRC.
    let (p, _) = consumer_parameters(&producer, &device_caps(), "0", 7, None).expect("consumable");
    assert_eq!(p.codecs.len(), 1);
    assert_eq!(p.encodings[0].rtx, None);
    // The device lacks an RTX whose apt is VP8 (it still has RTX for other codecs).
    let mut caps = device_caps();
    caps.codecs
        .retain(|c| c.preferred_payload_type != Some(102));
    let (p, _) = consumer_parameters(&producer, &caps, "0", 7, Some(8)).expect("consumable");
    assert_eq!(p.codecs.len(), 1);
    assert_eq!(p.codecs[0].payload_type, 101);
    assert_eq!(p.encodings[0].rtx, None);
    assert!(has_fb(&p.codecs[0].rtcp_feedback, "nack", Some("pli")));
    // DEVIATION: mediasoup keeps plain NACK for video whatever the device supports (enableRtx defaults to true).
    assert!(!has_fb(&p.codecs[0].rtcp_feedback, "nack", None));
    for c in caps.codecs.iter_mut() {
        for f in c
            .rtcp_feedback
            .iter_mut()
            .filter(|f| f.parameter.as_deref() == Some(""))
        {
            f.parameter = None;
        }
    }
    let (p, _) = consumer_parameters(&producer, &caps, "0", 7, Some(8)).expect("consumable");
    assert!(
        !has_fb(&p.codecs[0].rtcp_feedback, "nack", None),
        "with `parameter` absent too"
    );
    assert!(has_fb(&p.codecs[0].rtcp_feedback, "nack", Some("pli")));
}

#[test]
fn consumer_of_opus() {
    let producer = mapped(Kind::Audio, chrome_opus());
    let (p, kind) =
        consumer_parameters(&producer, &device_caps(), "1", 42, Some(43)).expect("consumable");
    assert_eq!(kind, "simple");
    assert_eq!(p.codecs.len(), 1, "no RTX for audio");
    let c = &p.codecs[0];
    assert_eq!(
        (
            c.mime_type.as_str(),
            c.payload_type,
            c.clock_rate,
            c.channels
        ),
        ("audio/opus", 100, 48_000, Some(2))
    );
    assert_eq!(
        c.parameters, producer.codec.parameters,
        "the producer's fmtp is kept"
    );
    assert_eq!(p.encodings[0].ssrc, Some(42));
    assert_eq!(p.encodings[0].rtx, None);
    assert_eq!(
        ext_ids(&p),
        vec![
            (URI_MID.to_owned(), 1),
            (URI_ABS_SEND_TIME.to_owned(), 4),
            (URI_TWCC.to_owned(), 5),
            (URI_AUDIO_LEVEL.to_owned(), 10)
        ]
    );
    assert!(has_fb(&c.rtcp_feedback, "transport-cc", None));
    // DEVIATION: mediasoup consumes audio with enableRtx=false, which strips plain NACK; it is kept here.
    assert!(has_fb(&c.rtcp_feedback, "nack", None));
    // DEVIATION: mediasoup leaves scalabilityMode unset when the producer has none; here it is always L1T1.
    assert_eq!(p.encodings[0].scalability_mode.as_deref(), Some("L1T1"));
}

#[test]
fn consumer_of_h264_keeps_producer_fmtp() {
    let producer = mapped(Kind::Video, h264("42e01f", 1));
    let (p, _) =
        consumer_parameters(&producer, &device_caps(), "5", 9, Some(10)).expect("consumable");
    assert_eq!(
        (p.codecs[0].payload_type, p.codecs[1].payload_type),
        (105, 106)
    );
    assert_eq!(
        p.codecs[0].parameters.get("profile-level-id"),
        Some(&json!("42e01f"))
    );
    assert_eq!(
        p.codecs[0].parameters.get("packetization-mode"),
        Some(&json!(1))
    );
    assert_eq!(p.codecs[1].parameters.get("apt"), Some(&json!(105)));
}

#[test]
fn consumer_header_extensions_need_the_same_id() {
    let producer = mapped(Kind::Video, chrome_vp8_simulcast());
    let mut caps = device_caps();
    for h in caps
        .header_extensions
        .iter_mut()
        .filter(|h| h.uri == URI_TWCC)
    {
        h.preferred_id = 7;
    }
    let (p, _) = consumer_parameters(&producer, &caps, "0", 1, Some(2)).expect("consumable");
    assert!(!ext_ids(&p).iter().any(|(u, _)| u == URI_TWCC));
    // With abs-send-time only: REMB stays, transport-cc goes.
    let f = &p.codecs[0].rtcp_feedback;
    assert!(has_fb(f, "goog-remb", None));
    assert!(!has_fb(f, "transport-cc", None));
    // With neither: both go.
    caps.header_extensions
        .retain(|h| h.uri != URI_ABS_SEND_TIME);
    let (p, _) = consumer_parameters(&producer, &caps, "0", 1, Some(2)).expect("consumable");
    let f = &p.codecs[0].rtcp_feedback;
    assert!(!has_fb(f, "goog-remb", None));
    assert!(!has_fb(f, "transport-cc", None));
    assert!(has_fb(f, "nack", Some("pli")));
    // No extensions at all.
    caps.header_extensions.clear();
    let (p, _) = consumer_parameters(&producer, &caps, "0", 1, Some(2)).expect("consumable");
    assert!(p.header_extensions.is_empty());
}

#[test]
fn consumer_feedback_comes_from_the_device() {
    let producer = mapped(Kind::Video, chrome_vp8_single());
    let mut caps = device_caps();
    let vp8 = caps
        .codecs
        .iter_mut()
        .find(|c| c.mime_type == "video/VP8")
        .expect("vp8");
    vp8.rtcp_feedback.retain(|f| f.kind != "ccm");
    let (p, _) = consumer_parameters(&producer, &caps, "0", 1, Some(2)).expect("consumable");
    assert!(!has_fb(&p.codecs[0].rtcp_feedback, "ccm", Some("fir")));
}

#[test]
fn consumer_refused_without_the_codec() {
    let producer = mapped(Kind::Video, chrome_vp8_simulcast());
    let r = consumer_parameters(
        &producer,
        &device_caps_without("video/VP8"),
        "0",
        1,
        Some(2),
    );
    assert!(matches!(r, Err(OrtcError::CannotConsume(_))));
}

#[test]
fn consumer_parameters_wire_shape() {
    let producer = mapped(Kind::Video, chrome_vp8_simulcast());
    let (p, _) =
        consumer_parameters(&producer, &device_caps(), "3", 1000, Some(1001)).expect("consumable");
    let v = serde_json::to_value(&p).expect("serialize");
    assert_eq!(v["mid"], "3");
    assert_eq!(v["codecs"][0]["mimeType"], "video/VP8");
    assert_eq!(v["codecs"][0]["payloadType"], 101);
    assert_eq!(v["codecs"][0]["clockRate"], 90000);
    assert!(v["codecs"][0]["rtcpFeedback"].is_array());
    assert_eq!(
        v["encodings"][0],
        json!({"ssrc": 1000, "rtx": {"ssrc": 1001}, "scalabilityMode": "L3T3", "maxBitrate": 1_200_000})
    );
    assert_eq!(
        v["headerExtensions"][0],
        json!({"uri": URI_MID, "id": 1, "encrypt": false, "parameters": {}})
    );
    assert_eq!(v["rtcp"], json!({"cname": "", "reducedSize": true}));
    // What the client echoes back parses to the same thing.
    assert_eq!(rtp(v), p);
}

#[test]
fn scalability_modes_parse_as_webrtc_svc_names_them() {
    let m = |s: &str| parse_scalability_mode(s).map(|m| (m.spatial, m.temporal, m.ksvc));
    assert_eq!(m("L1T3"), Some((1, 3, false)));
    assert_eq!(m("L3T3"), Some((3, 3, false)));
    assert_eq!(m("L3T3_KEY"), Some((3, 3, true)));
    assert_eq!(m("L2T2_KEY_SHIFT"), Some((2, 2, true)));
    assert_eq!(m("S3T3"), Some((3, 3, true)));
    assert_eq!(m("L1T2h"), Some((1, 2, false)));
    for bad in [
        "", "L", "L3", "L3T", "L0T1", "L3T0", "L5T1", "L1T33", "X1T1", "l1t1",
    ] {
        assert_eq!(m(bad), None, "{bad}");
    }
    // A suffix is free text (only the layer counts are read), even one that is not ASCII: no panic.
    assert_eq!(m("L3T3\u{e9}"), Some((3, 3, false)));
    assert_eq!(m("L\u{e9}"), None);
}

/// mediasoup's SvcConsumer: a VP9 producer with one `L3T3_KEY` encoding is consumed as `svc` with that mode (what
/// mediasoup-client passes to Chromium's receiver); VP8 with the same mode is not SVC (one spatial layer).
#[test]
fn a_vp9_svc_producer_gives_svc_consumers_with_its_mode() {
    let mut v = chrome_video("video/VP9", 98, json!({"profile-id": 0}));
    v["encodings"][0]["scalabilityMode"] = json!("L3T3_KEY");
    let producer = mapped(Kind::Video, v.clone());
    assert_eq!(
        (
            producer.spatial_layers,
            producer.temporal_layers,
            producer.ksvc
        ),
        (3, 3, true)
    );
    let (p, kind) =
        consumer_parameters(&producer, &device_caps(), "0", 7, Some(8)).expect("consumable");
    assert_eq!(kind, "svc");
    assert_eq!(p.encodings[0].scalability_mode.as_deref(), Some("L3T3_KEY"));
    v["encodings"][0]["scalabilityMode"] = json!("L3T3");
    let (p, kind) = consumer_parameters(
        &mapped(Kind::Video, v.clone()),
        &device_caps(),
        "0",
        7,
        Some(8),
    )
    .expect("consumable");
    assert_eq!(
        (kind, p.encodings[0].scalability_mode.as_deref()),
        ("svc", Some("L3T3"))
    );
    // VP9 with temporal layers only is SVC too (mediasoup); without a mode it is simple.
    v["encodings"][0]["scalabilityMode"] = json!("L1T3");
    let (p, kind) = consumer_parameters(
        &mapped(Kind::Video, v.clone()),
        &device_caps(),
        "0",
        7,
        Some(8),
    )
    .expect("consumable");
    assert_eq!(
        (kind, p.encodings[0].scalability_mode.as_deref()),
        ("svc", Some("L1T3"))
    );
    v["encodings"][0]["scalabilityMode"] = Value::Null;
    let (_, kind) = consumer_parameters(&mapped(Kind::Video, v), &device_caps(), "0", 7, Some(8))
        .expect("consumable");
    assert_eq!(kind, "simple");
    let mut vp8 = chrome_vp8_single();
    vp8["encodings"][0]["scalabilityMode"] = json!("L3T3_KEY");
    let producer = mapped(Kind::Video, vp8);
    assert_eq!(producer.spatial_layers, 1);
}
