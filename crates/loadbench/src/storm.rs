//! Join storm: N clients, all connected first, send `join-meeting` into one meeting at the same instant. Every
//! client must learn of every participant — those before it from its `meeting-state`, the others from
//! `participant-joined` — and the figure is the time from the start signal until the last client knows all N.

use crate::server::{self, Minter};
use crate::sio::{classify, event_name, Conn, Packet};
use serde_json::Value;
use std::collections::HashSet;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::{watch, Semaphore};

pub struct Storm {
    pub addr: Arc<str>,
    pub minter: Arc<Minter>,
    pub clients: usize,
    pub concurrency: usize,
    pub op_timeout: Duration,
    /// Bound on the storm itself (joins + deliveries).
    pub timeout: Duration,
}

#[derive(Debug, Default)]
pub struct StormFigures {
    pub connected: usize,
    /// Clients whose join was acked ok.
    pub joined: usize,
    /// Clients that learned of all N participants.
    pub complete: usize,
    /// From the start signal: the last join ack, the last client complete.
    pub last_ack: Duration,
    pub last_complete: Duration,
    /// Presence events (`participant-joined`) received, and the participants known from snapshots.
    pub presence_events: u64,
    pub errors: Vec<String>,
}

struct Outcome {
    ack: Option<Duration>,
    complete: Option<Duration>,
    events: u64,
    error: Option<String>,
}

fn participant_ids_of_state(array: &str, into: &mut HashSet<String>) -> Result<(), String> {
    let v: Value = serde_json::from_str(array).map_err(|e| format!("bad meeting-state: {e}"))?;
    let list = v
        .get(1)
        .and_then(|s| s.get("participants"))
        .and_then(Value::as_array)
        .ok_or_else(|| "meeting-state without participants".to_owned())?;
    for p in list {
        if let Some(id) = p.get("participantId").and_then(Value::as_str) {
            into.insert(id.to_owned());
        }
    }
    Ok(())
}

fn participant_id_of_event(array: &str) -> Option<String> {
    let v: Value = serde_json::from_str(array).ok()?;
    v.get(1)?.get("participantId")?.as_str().map(str::to_owned)
}

async fn client(
    mut conn: Conn,
    meeting: Arc<str>,
    n: usize,
    mut go: watch::Receiver<Option<Instant>>,
    deadline: Duration,
) -> Outcome {
    let mut out = Outcome {
        ack: None,
        complete: None,
        events: 0,
        error: None,
    };
    let start = loop {
        if let Some(t) = *go.borrow() {
            break t;
        }
        if go.changed().await.is_err() {
            out.error = Some("start signal lost".into());
            return out;
        }
    };
    let payload = serde_json::json!({ "meetingId": &*meeting });
    let id = match conn.emit_with_ack("join-meeting", &payload).await {
        Ok(id) => id,
        Err(e) => {
            out.error = Some(e);
            return out;
        }
    };
    let mut known: HashSet<String> = HashSet::with_capacity(n);
    let until = start + deadline;
    while out.complete.is_none() || out.ack.is_none() {
        let text = match tokio::time::timeout_at(until.into(), conn.recv()).await {
            Err(_) => {
                out.error = Some(format!(
                    "timed out knowing {} of {n} participants",
                    known.len()
                ));
                break;
            }
            Ok(Ok(Some(t))) => t,
            Ok(Ok(None)) => {
                out.error = Some("closed".into());
                break;
            }
            Ok(Err(e)) => {
                out.error = Some(e);
                break;
            }
        };
        match classify(&text) {
            Packet::Ack(got, body) if got == id => {
                if let Err(e) = crate::sio::ack_result(body) {
                    out.error = Some(format!("join: {e}"));
                    break;
                }
                out.ack = Some(start.elapsed());
            }
            Packet::Event(array) => match event_name(array) {
                Some("meeting-state") => {
                    if let Err(e) = participant_ids_of_state(array, &mut known) {
                        out.error = Some(e);
                        break;
                    }
                }
                Some("participant-joined") => {
                    out.events += 1;
                    if let Some(pid) = participant_id_of_event(array) {
                        known.insert(pid);
                    }
                }
                _ => {}
            },
            Packet::Disconnect => {
                out.error = Some("disconnected".into());
                break;
            }
            _ => {}
        }
        if out.complete.is_none() && known.len() >= n {
            out.complete = Some(start.elapsed());
        }
    }
    conn.close().await;
    out
}

pub async fn run(s: Storm) -> Result<StormFigures, String> {
    let host = s.minter.token("lb-storm-host")?;
    let max = u32::try_from(s.clients).unwrap_or(u32::MAX);
    let meeting: Arc<str> = Arc::from(server::create_meeting(&s.addr, &host, max).await?);
    let (go_tx, go_rx) = watch::channel(None::<Instant>);
    let gate = Arc::new(Semaphore::new(s.concurrency.max(1)));
    let connected = Arc::new(AtomicUsize::new(0));
    let mut figures = StormFigures::default();
    let mut connecting = Vec::with_capacity(s.clients);
    for i in 0..s.clients {
        let token = s.minter.token(&format!("lb-storm-{i}"))?;
        let (addr, gate, op) = (s.addr.clone(), gate.clone(), s.op_timeout);
        let connected = connected.clone();
        connecting.push(tokio::spawn(async move {
            let _permit = gate.acquire_owned().await.map_err(|e| e.to_string())?;
            let c = tokio::time::timeout(op, Conn::connect(&addr, &token))
                .await
                .map_err(|_| "connect timed out".to_owned())??;
            connected.fetch_add(1, Ordering::Relaxed);
            Ok::<Conn, String>(c)
        }));
    }
    let mut tasks = Vec::with_capacity(s.clients);
    for h in connecting {
        match h.await {
            Ok(Ok(conn)) => {
                figures.connected += 1;
                tasks.push(tokio::spawn(client(
                    conn,
                    meeting.clone(),
                    s.clients,
                    go_rx.clone(),
                    s.timeout,
                )));
            }
            Ok(Err(e)) => figures.errors.push(e),
            Err(e) => figures.errors.push(e.to_string()),
        }
    }
    println!(
        "[storm] {} of {} connected; all join {meeting} now",
        figures.connected, s.clients
    );
    let _ = go_tx.send(Some(Instant::now()));
    for t in tasks {
        let Ok(o) = t.await else {
            figures.errors.push("client task panicked".into());
            continue;
        };
        figures.presence_events += o.events;
        if let Some(a) = o.ack {
            figures.joined += 1;
            figures.last_ack = figures.last_ack.max(a);
        }
        if let Some(c) = o.complete {
            figures.complete += 1;
            figures.last_complete = figures.last_complete.max(c);
        }
        if let Some(e) = o.error {
            figures.errors.push(e);
        }
    }
    Ok(figures)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_participants_from_state_and_events() {
        let mut known = HashSet::new();
        participant_ids_of_state(
            r#"["meeting-state",{"participants":[{"participantId":"a"},{"participantId":"b"}]}]"#,
            &mut known,
        )
        .expect("state");
        assert_eq!(known.len(), 2);
        assert_eq!(
            participant_id_of_event(r#"["participant-joined",{"participantId":"c"}]"#),
            Some("c".to_owned())
        );
        assert!(participant_ids_of_state(r#"["meeting-state",{}]"#, &mut known).is_err());
    }
}
