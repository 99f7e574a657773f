//! A worker's sockets besides its primary UDP one: ICE over TCP (passive candidates; RFC 4571 framing: every STUN,
//! DTLS or SRTP packet is sent as a 16-bit big-endian length and the packet) and UDP sockets on further addresses
//! (IPv6 next to IPv4, a private next to a public address). What arrives comes out of [`Extras::recv`] tagged
//! with the protocol, the local socket address and the peer; the core answers with
//! [`sfu::Transmit`]s that [`Extras::send`] writes to the matching socket or TCP connection.
//!
//! Runs inside the worker's current-thread runtime: one task per listener, per TCP connection (reader) and per
//! TCP connection (writer). Nothing here trusts the peer: frames are bounded by the 16-bit length, a connection's
//! outgoing queue is bounded (packets beyond it are dropped, as UDP would), connections per worker are capped, and
//! a connection with no frame for [`TCP_IDLE`] is closed (a browser checks consent every few seconds).

use sfu::{Protocol, Transmit};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::mpsc;

/// A TCP connection that carries no frame for this long is closed.
pub const TCP_IDLE: Duration = Duration::from_secs(30);
/// TCP connections open at once on one worker.
pub const MAX_TCP_CONNECTIONS: usize = 4_096;
/// Packets queued for one TCP connection; more are dropped (a stalled peer must not grow memory).
const TCP_QUEUE: usize = 512;
/// Packets received on the extra sockets, waiting for the worker loop.
const INCOMING_QUEUE: usize = 4_096;

/// One packet from an extra socket.
#[derive(Debug)]
pub struct Incoming {
    pub protocol: Protocol,
    pub local: SocketAddr,
    pub source: SocketAddr,
    pub data: Vec<u8>,
}

type Connections = Arc<Mutex<HashMap<(SocketAddr, SocketAddr), mpsc::Sender<Vec<u8>>>>>;

/// The extra sockets of one worker (see the module docs).
pub struct Extras {
    incoming: mpsc::Receiver<Incoming>,
    /// Keeps `recv` pending (never `None`) when there are no extra sockets.
    _keep: mpsc::Sender<Incoming>,
    udp: HashMap<SocketAddr, Arc<tokio::net::UdpSocket>>,
    tcp: Connections,
}

impl Extras {
    /// Starts the tasks; must run inside the worker's runtime.
    pub fn start(udp: Vec<std::net::UdpSocket>, tcp: Vec<std::net::TcpListener>) -> Self {
        let (tx, incoming) = mpsc::channel(INCOMING_QUEUE);
        let mut udp_map = HashMap::new();
        for s in udp {
            let Ok(local) = s.local_addr() else { continue };
            if s.set_nonblocking(true).is_err() {
                continue;
            }
            let Ok(s) = tokio::net::UdpSocket::from_std(s) else {
                continue;
            };
            let s = Arc::new(s);
            udp_map.insert(local, s.clone());
            tokio::spawn(udp_reader(s, local, tx.clone()));
        }
        let conns: Connections = Arc::default();
        for l in tcp {
            let Ok(local) = l.local_addr() else { continue };
            if l.set_nonblocking(true).is_err() {
                continue;
            }
            let Ok(l) = tokio::net::TcpListener::from_std(l) else {
                continue;
            };
            tokio::spawn(accept_loop(l, local, tx.clone(), conns.clone()));
        }
        Self {
            incoming,
            _keep: tx,
            udp: udp_map,
            tcp: conns,
        }
    }

    /// The next packet from any extra socket (pending forever when there is none).
    pub async fn recv(&mut self) -> Option<Incoming> {
        self.incoming.recv().await
    }

    /// Sends one packet the core produced; dropped (logged at debug) when its socket or connection is gone.
    pub fn send(&self, tx: Transmit) {
        match tx.protocol {
            Protocol::Udp => match self.udp.get(&tx.local) {
                Some(s) => {
                    if let Err(e) = s.try_send_to(&tx.data, tx.destination) {
                        tracing::debug!(error = %e, dest = %tx.destination, "udp send");
                    }
                }
                None => tracing::debug!(local = %tx.local, "no socket for this address"),
            },
            _ => {
                let sender = self
                    .tcp
                    .lock()
                    .ok()
                    .and_then(|m| m.get(&(tx.local, tx.destination)).cloned());
                match sender {
                    Some(s) => {
                        if s.try_send(tx.data).is_err() {
                            metrics::counter!("meet_media_tcp_dropped_total").increment(1);
                        }
                    }
                    None => {
                        tracing::debug!(dest = %tx.destination, "no TCP connection to this peer")
                    }
                }
            }
        }
    }

    /// TCP connections open now.
    pub fn tcp_connections(&self) -> usize {
        self.tcp.lock().map_or(0, |m| m.len())
    }
}

async fn udp_reader(
    socket: Arc<tokio::net::UdpSocket>,
    local: SocketAddr,
    tx: mpsc::Sender<Incoming>,
) {
    let mut buf = vec![0u8; 2048];
    loop {
        match socket.recv_from(&mut buf).await {
            Ok((n, source)) => {
                let packet = Incoming {
                    protocol: Protocol::Udp,
                    local,
                    source,
                    data: buf[..n].to_vec(),
                };
                if tx.send(packet).await.is_err() {
                    return;
                }
            }
            Err(e) => tracing::debug!(error = %e, %local, "udp receive"),
        }
    }
}

async fn accept_loop(
    listener: tokio::net::TcpListener,
    local: SocketAddr,
    tx: mpsc::Sender<Incoming>,
    conns: Connections,
) {
    loop {
        let (stream, peer) = match listener.accept().await {
            Ok(c) => c,
            Err(e) => {
                tracing::debug!(error = %e, %local, "tcp accept");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let (out_tx, out_rx) = mpsc::channel::<Vec<u8>>(TCP_QUEUE);
        {
            let Ok(mut map) = conns.lock() else { return };
            if map.len() >= MAX_TCP_CONNECTIONS {
                metrics::counter!("meet_media_tcp_refused_total").increment(1);
                continue; // dropping the stream closes it
            }
            map.insert((local, peer), out_tx);
        }
        let _ = stream.set_nodelay(true);
        metrics::counter!("meet_media_tcp_connections_total").increment(1);
        tracing::debug!(%local, %peer, "ICE-TCP connection");
        let (reader, writer) = stream.into_split();
        let conns2 = conns.clone();
        let tx2 = tx.clone();
        tokio::spawn(async move {
            let writer_task = tokio::spawn(write_frames(writer, out_rx));
            if let Err(e) = read_frames(reader, local, peer, &tx2).await {
                tracing::debug!(error = %e, %local, %peer, "ICE-TCP connection closed");
            }
            if let Ok(mut map) = conns2.lock() {
                map.remove(&(local, peer));
            }
            writer_task.abort();
        });
    }
}

/// Reads RFC 4571 frames until the peer closes, errs, or stays quiet for [`TCP_IDLE`].
async fn read_frames(
    mut reader: tokio::net::tcp::OwnedReadHalf,
    local: SocketAddr,
    peer: SocketAddr,
    tx: &mpsc::Sender<Incoming>,
) -> std::io::Result<()> {
    let mut len = [0u8; 2];
    loop {
        let data = tokio::time::timeout(TCP_IDLE, async {
            reader.read_exact(&mut len).await?;
            let n = usize::from(u16::from_be_bytes(len));
            let mut data = vec![0u8; n];
            reader.read_exact(&mut data).await?;
            Ok::<_, std::io::Error>(data)
        })
        .await
        .map_err(|_| std::io::Error::new(std::io::ErrorKind::TimedOut, "idle"))??;
        if data.is_empty() {
            continue;
        }
        let packet = Incoming {
            protocol: Protocol::Tcp,
            local,
            source: peer,
            data,
        };
        if tx.send(packet).await.is_err() {
            return Ok(());
        }
    }
}

async fn write_frames(
    mut writer: tokio::net::tcp::OwnedWriteHalf,
    mut rx: mpsc::Receiver<Vec<u8>>,
) {
    let mut out = Vec::with_capacity(4096);
    while let Some(first) = rx.recv().await {
        out.clear();
        frame(&mut out, &first);
        // Coalesce what is already queued into one write.
        while out.len() < 64 * 1024 {
            match rx.try_recv() {
                Ok(more) => frame(&mut out, &more),
                Err(_) => break,
            }
        }
        if writer.write_all(&out).await.is_err() {
            return;
        }
    }
}

/// Appends one RFC 4571 frame (packets over 65535 bytes cannot be framed and are dropped).
pub fn frame(out: &mut Vec<u8>, packet: &[u8]) {
    let Ok(n) = u16::try_from(packet.len()) else {
        return;
    };
    out.extend_from_slice(&n.to_be_bytes());
    out.extend_from_slice(packet);
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncWriteExt;

    #[test]
    fn frames_carry_a_big_endian_length() {
        let mut out = Vec::new();
        frame(&mut out, &[1, 2, 3]);
        frame(&mut out, &[]);
        frame(&mut out, &vec![7u8; 300]);
        assert_eq!(&out[..5], &[0, 3, 1, 2, 3]);
        assert_eq!(&out[5..7], &[0, 0]);
        assert_eq!(&out[7..9], &[1, 44]);
        assert_eq!(out.len(), 9 + 300);
        let mut none = Vec::new();
        frame(&mut none, &vec![0u8; 70_000]);
        assert!(none.is_empty());
    }

    #[tokio::test]
    async fn tcp_frames_in_and_out_split_and_coalesced_and_a_closed_peer_is_forgotten() {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let local = l.local_addr().unwrap();
        let mut extras = Extras::start(Vec::new(), vec![l]);
        let mut c = tokio::net::TcpStream::connect(local).await.unwrap();
        let me = c.local_addr().unwrap();
        // Two frames in one write, then one frame split across writes.
        let mut bytes = Vec::new();
        frame(&mut bytes, b"hello");
        frame(&mut bytes, b"x");
        c.write_all(&bytes).await.unwrap();
        let mut third = Vec::new();
        frame(&mut third, b"split frame");
        c.write_all(&third[..4]).await.unwrap();
        c.flush().await.unwrap();
        tokio::time::sleep(Duration::from_millis(20)).await;
        c.write_all(&third[4..]).await.unwrap();
        for want in [&b"hello"[..], b"x", b"split frame"] {
            let got = extras.recv().await.unwrap();
            assert_eq!(got.protocol, Protocol::Tcp);
            assert_eq!((got.local, got.source), (local, me));
            assert_eq!(got.data, want);
        }
        assert_eq!(extras.tcp_connections(), 1);
        extras.send(Transmit {
            protocol: Protocol::Tcp,
            local,
            destination: me,
            data: b"answer".to_vec(),
        });
        let mut got = [0u8; 8];
        c.read_exact(&mut got).await.unwrap();
        assert_eq!(&got, b"\x00\x06answer");
        drop(c);
        for _ in 0..100 {
            if extras.tcp_connections() == 0 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert_eq!(extras.tcp_connections(), 0);
    }

    #[tokio::test]
    async fn udp_on_another_address() {
        let s = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let local = s.local_addr().unwrap();
        let mut extras = Extras::start(vec![s], Vec::new());
        let peer = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
        peer.send_to(b"ping", local).await.unwrap();
        let got = extras.recv().await.unwrap();
        assert_eq!(
            (got.protocol, got.local, got.source, &got.data[..]),
            (
                Protocol::Udp,
                local,
                peer.local_addr().unwrap(),
                &b"ping"[..]
            )
        );
        extras.send(Transmit {
            protocol: Protocol::Udp,
            local,
            destination: peer.local_addr().unwrap(),
            data: b"pong".to_vec(),
        });
        let mut buf = [0u8; 16];
        let (n, from) = peer.recv_from(&mut buf).await.unwrap();
        assert_eq!((&buf[..n], from), (&b"pong"[..], local));
    }
}
