//! A meeting bigger than one worker (issue 8 item 3), through the real engine: two worker threads, real UDP on
//! loopback, real DTLS-SRTP (the sfu tests' fake mediasoup-client on str0m). With `pipe_threshold: 1` the meeting's
//! first subscriber is placed on its home worker with the publisher, the second on the other worker; both receive
//! the producer's media, the producer is piped once, and a PLI from the second subscriber reaches the publisher.

#[path = "../../sfu/tests/common/mod.rs"]
mod common;

use common::*;
use media::{MediaConfig, MediaEngine};
use sfu::{Direction, Kind};
use std::net::{SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

const MEETING: &str = "m-pipe-test";

/// One fake client and its real socket, talking to one worker.
struct Link {
    socket: UdpSocket,
    server: SocketAddr,
}

impl Link {
    fn new() -> Self {
        let socket = UdpSocket::bind("127.0.0.1:0").expect("client socket");
        socket.set_nonblocking(true).expect("nonblocking");
        Self {
            socket,
            server: "127.0.0.1:9".parse().expect("addr"),
        }
    }

    fn addr(&self) -> SocketAddr {
        self.socket.local_addr().expect("local addr")
    }

    /// The client's datagrams out, the worker's in.
    fn pump(&self, ep: &mut Endpoint, now: Instant) {
        ep.timeout(now);
        while let Some(d) = ep.out.pop_front() {
            let _ = self.socket.send_to(&d, self.server);
        }
        let mut buf = vec![0u8; 2048];
        while let Ok((n, from)) = self.socket.recv_from(&mut buf) {
            ep.receive(now, from, &buf[..n]);
            while let Some(d) = ep.out.pop_front() {
                let _ = self.socket.send_to(&d, self.server);
            }
        }
    }
}

struct Net {
    publisher: Publisher,
    pub_link: Link,
    subs: Vec<(Subscriber, Link)>,
    next_audio: Instant,
    next_video: Instant,
}

impl Net {
    /// Real time passes; the publisher sends audio every 20 ms and video every 33 ms once connected.
    async fn run(&mut self, d: Duration) {
        let end = Instant::now() + d;
        while Instant::now() < end {
            self.step();
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    }

    async fn run_until(&mut self, limit: Duration, done: impl Fn(&Net) -> bool) -> bool {
        let end = Instant::now() + limit;
        while Instant::now() < end {
            if done(self) {
                return true;
            }
            self.step();
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        done(self)
    }

    fn step(&mut self) {
        let now = Instant::now();
        self.pub_link.pump(&mut self.publisher.ep, now);
        for (s, l) in &mut self.subs {
            l.pump(&mut s.ep, now);
        }
        if self.publisher.ep.connected {
            if self.next_audio <= now {
                self.next_audio = now + Duration::from_millis(20);
                self.publisher.send_audio(now);
            }
            if self.next_video <= now {
                self.next_video = now + Duration::from_micros(33_333);
                self.publisher.send_video_frame(now);
            }
        }
    }
}

fn engine() -> MediaEngine {
    MediaEngine::start(&MediaConfig {
        listen_ip: "127.0.0.1".parse().expect("ip"),
        port_min: 46_000,
        port_max: 46_999,
        workers: 2,
        tcp: false,
        pipe_threshold: 1,
        ..MediaConfig::default()
    })
    .expect("media engine")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 1)]
async fn subscribers_on_two_workers_receive_one_producer() {
    let engine = engine();
    let home = engine.home_worker(MEETING);
    let addrs = engine.addresses();

    // The publisher: send transport (home), audio + video produced on its worker.
    let send = engine
        .create_transport(MEETING, Direction::Send)
        .await
        .expect("engine")
        .expect("send transport");
    assert_eq!(engine.transport_worker(MEETING, &send.id), home);
    let mut pub_link = Link::new();
    pub_link.server = addrs[home];
    let mut publisher = Publisher::new(Endpoint::new(pub_link.addr(), Instant::now()), send, 0);
    let (publisher_back, produced) = engine
        .call_on(home, move |core, _| {
            let a = publisher.produce(core, Kind::Audio, false);
            let v = publisher.produce(core, Kind::Video, false);
            (publisher, a.and_then(|a| v.map(|v| (a, v))))
        })
        .await
        .expect("engine");
    let publisher = publisher_back;
    let (audio, video) = produced.expect("produce");
    let mut net = Net {
        publisher,
        pub_link,
        subs: Vec::new(),
        next_audio: Instant::now(),
        next_video: Instant::now(),
    };
    assert!(
        net.run_until(Duration::from_secs(5), |n| n.publisher.ep.connected)
            .await,
        "publisher never connected"
    );

    // Two subscribers: the threshold (1) puts the first on home, the second on the other worker.
    let mut consumers = Vec::new();
    for s in 0..2 {
        let recv = engine
            .create_transport(MEETING, Direction::Recv)
            .await
            .expect("engine")
            .expect("recv transport");
        let worker = engine.transport_worker(MEETING, &recv.id);
        assert_eq!(worker == home, s == 0, "subscriber {s} on worker {worker}");
        let mut link = Link::new();
        link.server = addrs[worker];
        let mut sub = Subscriber::new(Endpoint::new(link.addr(), Instant::now()), recv);
        let mut infos = Vec::new();
        for p in [&audio, &video] {
            let info = engine
                .consume(MEETING, &sub.transport.id, p, device_caps())
                .await
                .expect("engine")
                .expect("consume");
            assert_eq!(engine.consumer_worker(MEETING, &info.id), worker);
            let (back, r) = engine
                .call_on(worker, {
                    let info = info.clone();
                    move |core, _| {
                        let r = sub.receive(core, info);
                        (sub, r)
                    }
                })
                .await
                .expect("engine");
            sub = back;
            r.expect("client consume");
            infos.push(info);
        }
        net.subs.push((sub, link));
        consumers.push((worker, infos));
    }
    assert_eq!(
        engine.pipes(),
        2,
        "audio and video piped once, to the far worker"
    );
    assert!(
        net.run_until(Duration::from_secs(5), |n| n
            .subs
            .iter()
            .all(|(s, _)| s.ep.connected))
            .await,
        "subscribers never connected"
    );
    for (worker, infos) in &consumers {
        for info in infos {
            let id = info.id.clone();
            engine
                .call_on(*worker, move |core, now| {
                    core.set_consumer_paused(&id, false, now)
                })
                .await
                .expect("engine")
                .expect("resume");
        }
    }
    net.run(Duration::from_secs(2)).await;
    for (s, (_, infos)) in consumers.iter().enumerate() {
        let sub = &net.subs[s].0;
        let a = sub.rtp_of(&infos[0]);
        let v = sub.rtp_of(&infos[1]);
        assert!(a.len() > 50, "subscriber {s}: {} audio packets", a.len());
        assert!(v.len() > 50, "subscriber {s}: {} video packets", v.len());
        assert!(
            is_vp8_keyframe(&v[0].payload),
            "subscriber {s} starts on a keyframe"
        );
    }
    let far_worker = consumers[1].0;
    let far_stats = engine
        .call_on(far_worker, |core, _| core.stats())
        .await
        .expect("engine");
    let home_stats = engine
        .call_on(home, |core, _| core.stats())
        .await
        .expect("engine");
    eprintln!("home worker: {home_stats:?}\nfar worker: {far_stats:?}");
    for (s, (_, infos)) in consumers.iter().enumerate() {
        let sub = &net.subs[s].0;
        eprintln!(
            "subscriber {s}: {} audio, {} video packets in 2 s",
            sub.rtp_of(&infos[0]).len(),
            sub.rtp_of(&infos[1]).len()
        );
    }
    assert!(
        far_stats.piped_in > 100,
        "far worker took {} piped packets",
        far_stats.piped_in
    );
    assert_eq!(far_stats.rtp_in, 0, "no publisher sends to the far worker");

    // A PLI from the far subscriber reaches the publisher (through the pipe, back to the home worker).
    net.run(Duration::from_millis(600)).await;
    let video_mid = net.publisher.tracks[1].mid;
    let before = net.publisher.ep.keyframe_requests_for(video_mid);
    net.subs[1].0.send_pli(&consumers[1].1[1]);
    assert!(
        net.run_until(Duration::from_secs(2), |n| n
            .publisher
            .ep
            .keyframe_requests_for(video_mid)
            > before)
            .await,
        "the far subscriber's PLI never reached the publisher"
    );

    // Closing the producer closes the far consumer too.
    let far_video = consumers[1].1[1].id.clone();
    engine
        .close_producer(MEETING, &video)
        .await
        .expect("close producer");
    net.run(Duration::from_millis(100)).await;
    let (gone, piped) = engine
        .call_on(far_worker, {
            let video = video.clone();
            move |core, _| {
                (
                    core.consumer_transport(&far_video).is_none(),
                    core.is_pipe_producer(&video),
                )
            }
        })
        .await
        .expect("engine");
    assert!(gone, "the far consumer closed with the producer");
    assert!(!piped, "the pipe producer closed");
    assert_eq!(engine.pipes(), 1, "only audio's pipe is left");
}
