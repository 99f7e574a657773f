//! A minimal Engine.IO v4 / Socket.IO v4 client over one websocket: just what the benchmark needs (default
//! namespace, JSON events with and without acks, answering the server's pings). One connection is one
//! `WebSocketStream` with small buffers, driven by the task that owns it.

use futures_util::{SinkExt, StreamExt};
use serde_json::Value;
use std::time::Duration;
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::{Message, Utf8Bytes};
use tokio_tungstenite::WebSocketStream;

/// Small buffers: thousands of these live at once. The read buffer grows on demand for large frames
/// (`meeting-state` of a big meeting); writes go out immediately.
fn ws_config() -> WebSocketConfig {
    WebSocketConfig::default()
        .read_buffer_size(4096)
        .write_buffer_size(0)
}

/// One Socket.IO packet, classified without parsing its JSON.
pub enum Packet<'a> {
    /// `42[...]`: the JSON array `["name", payload]`.
    Event(&'a str),
    /// `43<id>[...]`: the ack id and its JSON array.
    Ack(u64, &'a str),
    /// `40{...}`.
    Connected,
    /// `44{...}`: connect_error with its JSON object.
    ConnectError(&'a str),
    /// `41` or an Engine.IO close.
    Disconnect,
    Other,
}

pub fn classify(text: &str) -> Packet<'_> {
    let b = text.as_bytes();
    match (b.first(), b.get(1)) {
        (Some(b'4'), Some(b'2')) => Packet::Event(&text[2..]),
        (Some(b'4'), Some(b'3')) => {
            let rest = &text[2..];
            let end = rest
                .find(|c: char| !c.is_ascii_digit())
                .unwrap_or(rest.len());
            match rest[..end].parse() {
                Ok(id) => Packet::Ack(id, &rest[end..]),
                Err(_) => Packet::Other,
            }
        }
        (Some(b'4'), Some(b'0')) => Packet::Connected,
        (Some(b'4'), Some(b'4')) => Packet::ConnectError(&text[2..]),
        (Some(b'4'), Some(b'1')) | (Some(b'1'), _) => Packet::Disconnect,
        _ => Packet::Other,
    }
}

/// The event name of an `Event` packet's array, e.g. `new-message` for `["new-message",{...}]`.
pub fn event_name(array: &str) -> Option<&str> {
    let rest = array.strip_prefix("[\"")?;
    let end = rest.find('"')?;
    Some(&rest[..end])
}

pub struct Conn {
    ws: WebSocketStream<TcpStream>,
    next_ack: u64,
}

impl Conn {
    /// TCP connect, websocket upgrade, Engine.IO open, Socket.IO namespace connect with `{token}`.
    /// Errors are short, stable strings so they can be counted by kind.
    pub async fn connect(addr: &str, token: &str) -> Result<Self, String> {
        let tcp = TcpStream::connect(addr)
            .await
            .map_err(|e| format!("tcp connect: {e}"))?;
        let _ = tcp.set_nodelay(true);
        let url = format!("ws://{addr}/socket.io/?EIO=4&transport=websocket");
        let (ws, _) = tokio_tungstenite::client_async_with_config(url, tcp, Some(ws_config()))
            .await
            .map_err(|e| format!("websocket handshake: {e}"))?;
        let mut conn = Conn { ws, next_ack: 0 };
        let open = conn
            .recv()
            .await?
            .ok_or_else(|| "closed before the open packet".to_owned())?;
        if !open.starts_with('0') {
            return Err(format!("unexpected first packet {:.40}", open.as_str()));
        }
        conn.send(format!("40{{\"token\":\"{token}\"}}")).await?;
        loop {
            let text = conn
                .recv()
                .await?
                .ok_or_else(|| "closed during namespace connect".to_owned())?;
            match classify(&text) {
                Packet::Connected => return Ok(conn),
                Packet::ConnectError(body) => {
                    let msg = serde_json::from_str::<Value>(body)
                        .ok()
                        .and_then(|v| v.get("message").and_then(Value::as_str).map(str::to_owned))
                        .unwrap_or_else(|| body.to_owned());
                    return Err(format!("connect_error: {msg}"));
                }
                _ => {}
            }
        }
    }

    pub async fn send(&mut self, text: String) -> Result<(), String> {
        self.ws
            .send(Message::text(text))
            .await
            .map_err(|e| format!("send: {e}"))
    }

    /// Emits `42<id>["event",payload]` and returns the ack id.
    pub async fn emit_with_ack(&mut self, event: &str, payload: &Value) -> Result<u64, String> {
        let id = self.next_ack;
        self.next_ack += 1;
        self.send(format!("42{id}[\"{event}\",{payload}]")).await?;
        Ok(id)
    }

    /// The next text frame that is not an Engine.IO ping (pings are answered here). `None` when the connection
    /// closed.
    pub async fn recv(&mut self) -> Result<Option<Utf8Bytes>, String> {
        loop {
            match self.ws.next().await {
                None => return Ok(None),
                Some(Err(e)) => return Err(format!("read: {e}")),
                Some(Ok(Message::Text(t))) => {
                    if t.as_str() == "2" {
                        self.send("3".to_owned()).await?;
                        continue;
                    }
                    return Ok(Some(t));
                }
                Some(Ok(Message::Close(_))) => return Ok(None),
                Some(Ok(_)) => {}
            }
        }
    }

    /// `join-meeting`, then reads until its ack; everything else that arrives meanwhile (`meeting-state`,
    /// `participant-joined`) is dropped.
    pub async fn join(&mut self, meeting_id: &str) -> Result<(), String> {
        let id = self
            .emit_with_ack(
                "join-meeting",
                &serde_json::json!({ "meetingId": meeting_id }),
            )
            .await?;
        loop {
            let text = self
                .recv()
                .await?
                .ok_or_else(|| "closed while joining".to_owned())?;
            match classify(&text) {
                Packet::Ack(got, body) if got == id => return ack_result(body),
                Packet::Disconnect => return Err("disconnected while joining".to_owned()),
                _ => {}
            }
        }
    }

    /// Closes politely, bounded in time.
    pub async fn close(mut self) {
        let _ = tokio::time::timeout(Duration::from_secs(1), self.ws.close(None)).await;
    }
}

/// `[{"ok":true,...}]` → Ok; `[{"ok":false,"error":{"code":...}}]` → Err("CODE: message").
pub fn ack_result(body: &str) -> Result<(), String> {
    let v: Value = serde_json::from_str(body).map_err(|e| format!("bad ack JSON: {e}"))?;
    let first = v.get(0).unwrap_or(&Value::Null);
    if first.get("ok").and_then(Value::as_bool) == Some(true) {
        return Ok(());
    }
    let err = first.get("error").unwrap_or(&Value::Null);
    Err(format!(
        "{}: {}",
        err.get("code").and_then(Value::as_str).unwrap_or("?"),
        err.get("message").and_then(Value::as_str).unwrap_or("?")
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classifies_packets() {
        assert!(matches!(classify("40{\"sid\":\"x\"}"), Packet::Connected));
        assert!(matches!(
            classify("44{\"message\":\"m\"}"),
            Packet::ConnectError(_)
        ));
        assert!(matches!(
            classify("4312[{\"ok\":true}]"),
            Packet::Ack(12, "[{\"ok\":true}]")
        ));
        assert!(matches!(
            classify("42[\"a\",{}]"),
            Packet::Event("[\"a\",{}]")
        ));
        assert!(matches!(classify("41"), Packet::Disconnect));
        assert_eq!(event_name("[\"new-message\",{}]"), Some("new-message"));
        assert!(ack_result("[{\"a\":1,\"ok\":true}]").is_ok());
        assert_eq!(
            ack_result(
                "[{\"error\":{\"code\":\"MEETING_FULL\",\"message\":\"full\"},\"ok\":false}]"
            ),
            Err("MEETING_FULL: full".to_owned())
        );
    }
}
