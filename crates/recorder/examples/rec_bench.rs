//! What one recorded track costs the recording thread: synthetic VP8 (30 fps, 4 packets of 1100 B per frame, a
//! keyframe every 3 s) and Opus (50 packets/s of 120 B) RTP through the real recording thread (reorder,
//! depacketize, WebM write) into a temp dir. Prints CPU µs per packet, per track-second, and the disk write rate.
//!
//! Run: `cargo run --release -p recorder --example rec_bench` (`REC_BENCH_SECS`, default 60 s of media per track;
//! `REC_BENCH_TRACKS`, default 10 tracks: half video, half audio).

use sfu::record::{RecordMsg, RecordedCodec, RecordedPacket};
use std::sync::Arc;
use std::time::Instant;

fn main() {
    let secs: u32 = std::env::var("REC_BENCH_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(60);
    let tracks: u32 = std::env::var("REC_BENCH_TRACKS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(10);
    let dir = std::env::temp_dir().join(format!("rec-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let start_ms = 1_700_000_000_000i64;
    let (tx, rx) = std::sync::mpsc::sync_channel(1 << 16);
    let (ctl, ctl_rx) = std::sync::mpsc::channel();
    let worker = recorder::bench_thread(dir.clone(), start_ms);
    for t in 1..=tracks {
        let video = t % 2 == 1;
        ctl.send(recorder::bench_add_track(
            t,
            RecordedCodec {
                mime_type: if video { "video/VP8" } else { "audio/opus" }.to_owned(),
                clock_rate: if video { 90_000 } else { 48_000 },
                channels: if video { 1 } else { 2 },
            },
            format!("{t:02}.webm"),
        ))
        .expect("ctl");
    }
    // Pre-built packets (their making is not measured).
    let mut packets = Vec::new();
    let mut seq = vec![0u64; tracks as usize + 1];
    for ms in (0..secs * 1000).step_by(10) {
        for t in 1..=tracks {
            let video = t % 2 == 1;
            let wall = (start_ms + i64::from(ms)) * 1000;
            if video && ms % 30 == 0 {
                let key = ms % 3000 == 0;
                for i in 0..4u8 {
                    let mut p = vec![if i == 0 { 0x10 } else { 0x00 }];
                    let mut frame = vec![0u8; 1100];
                    if i == 0 {
                        frame[0] = if key { 0x00 } else { 0x01 };
                        frame[3..6].copy_from_slice(&[0x9d, 0x01, 0x2a]);
                        frame[6..10].copy_from_slice(&[0x80, 0x02, 0xe0, 0x01]);
                    }
                    p.extend_from_slice(&frame);
                    seq[t as usize] += 1;
                    packets.push(RecordMsg::Packet(RecordedPacket {
                        track: t,
                        epoch: 1,
                        seq: seq[t as usize],
                        rtp_ts: ms * 90,
                        marker: i == 3,
                        keyframe: key && i == 0,
                        wallclock_us: wall,
                        payload: Arc::from(p),
                    }));
                }
            } else if !video && ms % 20 == 0 {
                seq[t as usize] += 1;
                packets.push(RecordMsg::Packet(RecordedPacket {
                    track: t,
                    epoch: 1,
                    seq: seq[t as usize],
                    rtp_ts: ms * 48,
                    marker: false,
                    keyframe: false,
                    wallclock_us: wall,
                    payload: Arc::from(vec![0x78u8; 120]),
                }));
            }
        }
    }
    let n = packets.len();
    let handle = std::thread::spawn(move || {
        let cpu0 = thread_cpu();
        let t0 = Instant::now();
        let out = worker.run(rx, ctl_rx);
        (out, thread_cpu() - cpu0, t0.elapsed())
    });
    for p in packets {
        tx.send(p).expect("send");
    }
    ctl.send(recorder::bench_stop(start_ms + i64::from(secs) * 1000))
        .expect("stop");
    let (out, cpu, wall) = handle.join().expect("thread");
    let bytes: u64 = std::fs::read_dir(&dir)
        .map(|d| {
            d.flatten()
                .filter_map(|e| e.metadata().ok())
                .map(|m| m.len())
                .sum()
        })
        .unwrap_or(0);
    let frames: u64 = out.iter().map(|r| r.frames).sum();
    let cpu_s = cpu.as_secs_f64();
    println!("recording thread: {tracks} tracks ({} VP8 30 fps ~1 Mbps, {} Opus), {secs} s of media each", tracks.div_ceil(2), tracks / 2);
    println!("  packets {n}, frames written {frames}, file bytes {bytes}");
    println!(
        "  thread CPU {:.3} s (wall {:.3} s): {:.2} µs/packet",
        cpu_s,
        wall.as_secs_f64(),
        cpu_s * 1e6 / n as f64
    );
    println!(
        "  CPU per recorded track: {:.3} % of one core (media-second per track costs {:.1} µs)",
        cpu_s / f64::from(secs) / f64::from(tracks) * 100.0,
        cpu_s * 1e6 / f64::from(secs) / f64::from(tracks)
    );
    println!(
        "  disk write rate at real time: {:.1} KB/s per track, {:.1} KB/s for all {tracks}",
        bytes as f64 / 1024.0 / f64::from(secs) / f64::from(tracks),
        bytes as f64 / 1024.0 / f64::from(secs)
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// This thread's CPU time (Linux: /proc/thread-self/stat utime + stime, in clock ticks of 10 ms).
fn thread_cpu() -> std::time::Duration {
    let s = std::fs::read_to_string("/proc/thread-self/stat").unwrap_or_default();
    let rest = s.rsplit(')').next().unwrap_or("");
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| f.get(i).and_then(|x| x.parse::<u64>().ok()).unwrap_or(0);
    std::time::Duration::from_millis((ticks(11) + ticks(12)) * 10)
}
