//! The soak phase (`--soak-secs N`): participants join, set up media at the signaling level (send and recv
//! transports, `connect-transport`, an audio producer, consumers of what the others publish), stay a moment and go —
//! half with `leave-meeting`, half by dropping the connection — over and over for N seconds, with some of them
//! ending their meeting as host now and then. It prints the server's memory over time and fails the run unless,
//! once everyone has gone, the server holds no transport, producer, consumer or participant (`/metrics`).
//!
//! No DTLS here (the media load tool of the scale issue does real ICE/DTLS); what is soaked is the life cycle of
//! every media object and the domain's state, which is where leaks hide (objects made for a participant who left
//! meanwhile, meeting state left behind).

use crate::server::{self, Minter};
use crate::sio::{classify, Conn, Packet};
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub struct Soak {
    pub addr: Arc<str>,
    pub pid: u32,
    pub minter: Arc<Minter>,
    pub clients: usize,
    pub meeting_size: usize,
    pub duration: Duration,
}

/// What the phase measured.
pub struct SoakFigures {
    pub cycles: u64,
    pub errors: BTreeMap<String, u64>,
    /// (seconds since start, server RSS kB, open transports)
    pub samples: Vec<(f64, u64, u64)>,
    /// Open transports, producers, consumers and participants once everyone has gone.
    pub left: [u64; 4],
}

/// One request, answered: its ack (`[{ok,…}]` → the object) and the events that came meanwhile.
pub(crate) async fn request(
    c: &mut Conn,
    event: &str,
    payload: Value,
    events: &mut Vec<(String, Value)>,
) -> Result<Value, String> {
    let id = c.emit_with_ack(event, &payload).await?;
    let wait = async {
        loop {
            let text = c
                .recv()
                .await?
                .ok_or_else(|| format!("closed during {event}"))?;
            match classify(&text) {
                Packet::Ack(got, body) if got == id => {
                    let v: Value =
                        serde_json::from_str(body).map_err(|e| format!("bad ack: {e}"))?;
                    let ack = v.get(0).cloned().unwrap_or(Value::Null);
                    if ack.get("ok").and_then(Value::as_bool) == Some(true) {
                        return Ok(ack);
                    }
                    let code = ack
                        .pointer("/error/code")
                        .and_then(Value::as_str)
                        .unwrap_or("?");
                    return Err(format!("{event}: {code}"));
                }
                Packet::Event(array) => {
                    if let Ok(Value::Array(mut a)) = serde_json::from_str::<Value>(array) {
                        if let (Some(Value::String(name)), Some(p)) = (a.first().cloned(), a.pop())
                        {
                            events.push((name, p));
                        }
                    }
                }
                Packet::Disconnect => return Err(format!("disconnected during {event}")),
                _ => {}
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(15), wait)
        .await
        .map_err(|_| format!("{event}: no ack in 15 s"))?
}

/// What mediasoup-client sends for Chrome's microphone.
fn opus(ssrc: u32) -> Value {
    json!({
        "mid": "0",
        "codecs": [{"mimeType": "audio/opus", "payloadType": 111, "clockRate": 48000, "channels": 2,
            "parameters": {"minptime": 10, "useinbandfec": 1}, "rtcpFeedback": [{"type": "transport-cc", "parameter": ""}]}],
        "headerExtensions": [
            {"uri": "urn:ietf:params:rtp-hdrext:ssrc-audio-level", "id": 1, "encrypt": false, "parameters": {}},
            {"uri": "urn:ietf:params:rtp-hdrext:sdes:mid", "id": 4, "encrypt": false, "parameters": {}}],
        "encodings": [{"ssrc": ssrc, "dtx": false}],
        "rtcp": {"cname": "soak", "reducedSize": true},
    })
}

fn dtls() -> Value {
    let value: Vec<String> = (0..32u8)
        .map(|i| format!("{:02X}", i.wrapping_mul(37)))
        .collect();
    json!({"role": "client", "fingerprints": [{"algorithm": "sha-256", "value": value.join(":")}]})
}

/// One participant's visit: join, media set-up, a short stay, and a leave or a dropped connection.
async fn visit(
    s: &Soak,
    meeting: &str,
    user: &str,
    caps: &Value,
    cycle: u64,
    host: bool,
) -> Result<(), String> {
    let token = s.minter.token(user)?;
    let mut c = Conn::connect(&s.addr, &token).await?;
    let mut ev = Vec::new();
    let joined = request(
        &mut c,
        "join-meeting",
        json!({"meetingId": meeting}),
        &mut ev,
    )
    .await;
    if let Err(e) = joined {
        c.close().await;
        // A host may have ended it a moment ago: the next cycle uses a fresh meeting.
        return if e.ends_with("MEETING_ENDED") {
            Ok(())
        } else {
            Err(e)
        };
    }
    let steps = async {
        let send = request(
            &mut c,
            "create-transport",
            json!({"meetingId": meeting, "direction": "send"}),
            &mut ev,
        )
        .await?;
        request(
            &mut c,
            "create-transport",
            json!({"meetingId": meeting, "direction": "recv"}),
            &mut ev,
        )
        .await?;
        let tid = send
            .pointer("/params/id")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_owned();
        request(
            &mut c,
            "connect-transport",
            json!({"transportId": tid, "dtlsParameters": dtls()}),
            &mut ev,
        )
        .await?;
        let ssrc = 10_000_000 + (cycle % 1_000_000) as u32;
        request(
            &mut c,
            "produce",
            json!({"meetingId": meeting, "kind": "audio", "rtpParameters": opus(ssrc), "appData": {"source": "mic"}}),
            &mut ev,
        )
        .await?;
        // Consume what was announced (one at a time, as the server paces them), for a short stay.
        let stay = Instant::now() + Duration::from_millis(150 + (cycle * 37) % 400);
        let mut consumed = 0;
        while Instant::now() < stay && consumed < 4 {
            let next = ev
                .iter()
                .position(|(n, _)| n == "new-producer")
                .map(|i| ev.remove(i));
            match next {
                Some((_, p)) => {
                    let producer = p.get("producerId").cloned().unwrap_or(Value::Null);
                    // The producer may be gone already (its owner left): that is part of the soak.
                    let _ = request(
                        &mut c,
                        "consume",
                        json!({"meetingId": meeting, "producerId": producer, "rtpCapabilities": caps}),
                        &mut ev,
                    )
                    .await;
                    consumed += 1;
                }
                None => {
                    let _ =
                        request(&mut c, "hand:raise", json!({"meetingId": meeting}), &mut ev).await;
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            }
        }
        if host && cycle.is_multiple_of(7) {
            request(
                &mut c,
                "meeting:end",
                json!({"meetingId": meeting}),
                &mut ev,
            )
            .await?;
        } else if cycle.is_multiple_of(2) {
            request(
                &mut c,
                "leave-meeting",
                json!({"meetingId": meeting}),
                &mut ev,
            )
            .await?;
        }
        Ok::<_, String>(())
    };
    let r = steps.await;
    if cycle.is_multiple_of(2) {
        c.close().await;
    } else {
        drop(c); // the connection just goes (a closed tab, a lost network)
    }
    r
}

pub async fn run(s: Soak) -> Result<SoakFigures, String> {
    let caps = server::http_get(&s.addr, "/meeting/x/webrtc-config")
        .await
        .and_then(|b| serde_json::from_str::<Value>(&b).map_err(|e| e.to_string()))?
        .get("rtpCapabilities")
        .cloned()
        .ok_or("webrtc-config has no rtpCapabilities")?;
    let caps = Arc::new(caps);
    let s = Arc::new(s);
    let cycles = Arc::new(AtomicU64::new(0));
    let errors: Arc<Mutex<BTreeMap<String, u64>>> = Arc::default();
    let stop = Arc::new(AtomicBool::new(false));
    let groups = s.clients.div_ceil(s.meeting_size.max(1));
    let mut tasks = Vec::new();
    for g in 0..groups {
        // One meeting per group, replaced by a fresh one when its host ends it.
        let host = format!("soak_host_{g}");
        let first = server::create_meeting(&s.addr, &s.minter.token(&host)?, 100).await?;
        let meeting = Arc::new(Mutex::new(first));
        for k in 0..s.meeting_size.min(s.clients - g * s.meeting_size) {
            let (s, caps, cycles, errors, stop, meeting, host) = (
                s.clone(),
                caps.clone(),
                cycles.clone(),
                errors.clone(),
                stop.clone(),
                meeting.clone(),
                host.clone(),
            );
            tasks.push(tokio::spawn(async move {
                let mut n = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    n += 1;
                    let cycle = cycles.fetch_add(1, Ordering::Relaxed);
                    let is_host = k == 0;
                    let user = if is_host {
                        host.clone()
                    } else {
                        format!("soak_{g}_{k}_{n}")
                    };
                    let m = meeting.lock().map(|m| m.clone()).unwrap_or_default();
                    if let Err(e) = visit(&s, &m, &user, &caps, cycle, is_host).await {
                        if let Ok(mut map) = errors.lock() {
                            *map.entry(e).or_insert(0) += 1;
                        }
                    }
                    if is_host && cycle.is_multiple_of(7) {
                        if let Ok(token) = s.minter.token(&host) {
                            if let Ok(fresh) = server::create_meeting(&s.addr, &token, 100).await {
                                if let Ok(mut m) = meeting.lock() {
                                    *m = fresh;
                                }
                            }
                        }
                    }
                }
            }));
        }
    }
    let start = Instant::now();
    let mut samples = Vec::new();
    while start.elapsed() < s.duration {
        tokio::time::sleep(Duration::from_secs(5).min(s.duration)).await;
        let m = server::metrics(&s.addr).await.unwrap_or_default();
        let rss = server::rss_kb(s.pid).unwrap_or(0);
        let transports = m.get("meet_media_transports").copied().unwrap_or(0.0) as u64;
        let t = start.elapsed().as_secs_f64();
        println!(
            "soak {t:5.0} s: {} cycles, server RSS {:.1} MB, {transports} transports, {} participants",
            cycles.load(Ordering::Relaxed),
            rss as f64 / 1024.0,
            m.get("meet_participants").copied().unwrap_or(0.0)
        );
        samples.push((t, rss, transports));
    }
    stop.store(true, Ordering::Relaxed);
    for t in tasks {
        let _ = tokio::time::timeout(Duration::from_secs(30), t).await;
    }
    // Leaves are handled in order per socket and the workers publish their counts every second.
    let mut left = [u64::MAX; 4];
    let until = Instant::now() + Duration::from_secs(10);
    while Instant::now() < until {
        tokio::time::sleep(Duration::from_millis(1500)).await;
        let m = server::metrics(&s.addr).await.unwrap_or_default();
        let get = |k: &str| m.get(k).copied().unwrap_or(f64::NAN) as u64;
        left = [
            get("meet_media_transports"),
            get("meet_media_producers"),
            get("meet_media_consumers"),
            get("meet_participants"),
        ];
        if left == [0; 4] {
            break;
        }
    }
    let errors = errors.lock().map(|m| m.clone()).unwrap_or_default();
    Ok(SoakFigures {
        cycles: cycles.load(Ordering::Relaxed),
        errors,
        samples,
        left,
    })
}
