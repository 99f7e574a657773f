//! Batched UDP I/O for a media worker: `recvmmsg(2)` and `sendmmsg(2)` through `nix` (safe wrappers; the workspace
//! forbids `unsafe`), up to [`BATCH`] datagrams per system call each way, on the worker's tokio socket.
//!
//! A fan-out of one packet to N subscribers leaves the core as N datagrams to N destinations, so GSO (one
//! destination per call) does not fit; `sendmmsg` does. Receiving in batches also lets the worker drain the
//! subscribers' transports once per batch instead of once per datagram.

use nix::errno::Errno;
use nix::sys::socket::{
    recvmmsg, sendmmsg, ControlMessage, MsgFlags, MultiHeaders, SockaddrStorage,
};
use std::io::{IoSlice, IoSliceMut};
use std::net::{SocketAddr, SocketAddrV4, SocketAddrV6};
use std::os::fd::AsRawFd;

/// Datagrams per system call.
pub const BATCH: usize = 32;
/// Receive buffer per datagram (a WebRTC datagram stays under the path MTU; a longer one is dropped).
pub const MAX_DATAGRAM: usize = 2048;

fn to_std(a: &SockaddrStorage) -> Option<SocketAddr> {
    if let Some(v4) = a.as_sockaddr_in() {
        return Some(SocketAddr::V4(SocketAddrV4::from(*v4)));
    }
    a.as_sockaddr_in6()
        .map(|v6| SocketAddr::V6(SocketAddrV6::from(*v6)))
}

/// Buffers for one `recvmmsg` call, reused.
pub struct Receiver {
    bufs: Vec<[u8; MAX_DATAGRAM]>,
    headers: MultiHeaders<SockaddrStorage>,
    /// (buffer index, length, source) of the last call's datagrams.
    got: Vec<(usize, usize, SocketAddr)>,
    /// Datagrams dropped for being too long, or without a usable source address.
    pub dropped: u64,
}

impl Default for Receiver {
    fn default() -> Self {
        Self {
            bufs: vec![[0u8; MAX_DATAGRAM]; BATCH],
            headers: MultiHeaders::preallocate(BATCH, None),
            got: Vec::with_capacity(BATCH),
            dropped: 0,
        }
    }
}

impl Receiver {
    /// Reads what is queued on the socket (up to [`BATCH`] datagrams) without blocking. `Ok(0)` never happens: an
    /// empty socket is `Err(WouldBlock)` (which clears tokio's readiness).
    pub fn recv(&mut self, socket: &tokio::net::UdpSocket) -> std::io::Result<usize> {
        let fd = socket.as_raw_fd();
        let Self {
            bufs,
            headers,
            got,
            dropped,
        } = self;
        got.clear();
        socket.try_io(tokio::io::Interest::READABLE, || {
            let mut iovs: Vec<[IoSliceMut<'_>; 1]> = bufs
                .iter_mut()
                .map(|b| [IoSliceMut::new(&mut b[..])])
                .collect();
            let results = recvmmsg(fd, headers, iovs.iter_mut(), MsgFlags::MSG_DONTWAIT, None)
                .map_err(std::io::Error::from)?;
            for (i, r) in results.enumerate() {
                let source = r.address.as_ref().and_then(to_std);
                match source {
                    Some(source) if !r.flags.contains(MsgFlags::MSG_TRUNC) => {
                        got.push((i, r.bytes, source));
                    }
                    _ => *dropped += 1,
                }
            }
            Ok(())
        })?;
        Ok(self.got.len())
    }

    /// The datagrams of the last [`Receiver::recv`]: `(source, bytes)`.
    pub fn datagrams(&self) -> impl Iterator<Item = (SocketAddr, &[u8])> + '_ {
        self.got.iter().filter_map(|&(i, len, source)| {
            self.bufs
                .get(i)
                .and_then(|b| b.get(..len))
                .map(|d| (source, d))
        })
    }
}

/// Sends datagrams with `sendmmsg`, [`BATCH`] per call.
pub struct Sender {
    headers: MultiHeaders<SockaddrStorage>,
    /// Datagrams the socket refused (buffer full, or an unusable destination).
    pub dropped: u64,
    /// System calls made.
    pub calls: u64,
}

impl Default for Sender {
    fn default() -> Self {
        Self {
            headers: MultiHeaders::preallocate(BATCH, None),
            dropped: 0,
            calls: 0,
        }
    }
}

impl Sender {
    /// Sends every datagram of `out` (and empties it). A full socket buffer drops what is left of the batch, as a
    /// single `send_to` would have (RTP is loss-tolerant; str0m retransmits on NACK); a datagram the kernel refuses
    /// (its destination) is skipped alone.
    pub fn send(&mut self, socket: &tokio::net::UdpSocket, out: &mut Vec<(SocketAddr, Vec<u8>)>) {
        let fd = socket.as_raw_fd();
        let mut start = 0;
        while start < out.len() {
            let end = (start + BATCH).min(out.len());
            let chunk = &out[start..end];
            let iovs: Vec<[IoSlice<'_>; 1]> =
                chunk.iter().map(|(_, d)| [IoSlice::new(d)]).collect();
            let addrs: Vec<Option<SockaddrStorage>> = chunk
                .iter()
                .map(|(a, _)| Some(SockaddrStorage::from(*a)))
                .collect();
            let no_cmsgs: [ControlMessage<'_>; 0] = [];
            self.calls += 1;
            match sendmmsg(
                fd,
                &mut self.headers,
                &iovs,
                &addrs,
                no_cmsgs,
                MsgFlags::MSG_DONTWAIT,
            ) {
                Ok(results) => {
                    let sent = results.count();
                    // Zero sent without an error should not happen; step over the first so the loop ends.
                    start += sent.max(1);
                    if sent == 0 {
                        self.dropped += 1;
                    }
                }
                Err(Errno::EAGAIN) => {
                    self.dropped += (out.len() - start) as u64;
                    tracing::debug!(dropped = out.len() - start, "udp send buffer full");
                    break;
                }
                Err(e) => {
                    tracing::debug!(error = %e, dest = %chunk[0].0, "udp send");
                    self.dropped += 1;
                    start += 1;
                }
            }
        }
        out.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_batch_goes_out_in_one_call_and_comes_back_in_order_with_its_sources() {
        let a = tokio::net::UdpSocket::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let b = tokio::net::UdpSocket::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let to = b.local_addr().expect("addr");
        let mut out: Vec<(SocketAddr, Vec<u8>)> = (0..40u8)
            .map(|i| (to, vec![i; 100 + usize::from(i)]))
            .collect();
        let mut tx = Sender::default();
        tx.send(&a, &mut out);
        assert!(out.is_empty());
        assert_eq!(
            (tx.calls, tx.dropped),
            (2, 0),
            "40 datagrams: two calls of ≤ 32"
        );
        let mut rx = Receiver::default();
        let mut seen = Vec::new();
        while seen.len() < 40 {
            b.readable().await.expect("readable");
            match rx.recv(&b) {
                Ok(n) => {
                    assert!(n <= BATCH);
                    for (source, d) in rx.datagrams() {
                        assert_eq!(source, a.local_addr().expect("addr"));
                        seen.push((d[0], d.len()));
                    }
                }
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                Err(e) => panic!("recv: {e}"),
            }
        }
        let want: Vec<(u8, usize)> = (0..40u8).map(|i| (i, 100 + usize::from(i))).collect();
        assert_eq!(seen, want);
    }

    #[tokio::test]
    async fn an_oversized_datagram_is_dropped_not_truncated() {
        let a = tokio::net::UdpSocket::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let b = tokio::net::UdpSocket::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let to = b.local_addr().expect("addr");
        let mut out = vec![(to, vec![1u8; MAX_DATAGRAM + 1]), (to, vec![2u8; 10])];
        Sender::default().send(&a, &mut out);
        let mut rx = Receiver::default();
        let mut got = Vec::new();
        while got.is_empty() {
            b.readable().await.expect("readable");
            if rx.recv(&b).is_ok() {
                got.extend(rx.datagrams().map(|(_, d)| d.to_vec()));
            }
        }
        assert_eq!(got, vec![vec![2u8; 10]]);
        assert_eq!(rx.dropped, 1);
    }

    #[tokio::test]
    async fn an_empty_socket_would_block() {
        let b = tokio::net::UdpSocket::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let mut rx = Receiver::default();
        let e = rx.recv(&b).expect_err("nothing queued");
        assert_eq!(e.kind(), std::io::ErrorKind::WouldBlock);
    }
}
