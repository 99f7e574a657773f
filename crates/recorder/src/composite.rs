//! The composite: one file a person can watch — a grid of the video tracks and all audio mixed — made after the stop
//! by Debian's `ffmpeg` as a child process (H.264 + AAC in MP4), each track placed at its start offset on the
//! recording's timeline, the whole as long as the recording. Progress goes to the logs.

use std::path::{Path, PathBuf};
use tokio::io::AsyncBufReadExt;

pub struct Input {
    pub file: PathBuf,
    pub video: bool,
    pub offset_ms: i64,
}

#[derive(Debug)]
pub enum Error {
    /// ffmpeg could not be started (not installed).
    Missing(String),
    Failed(String),
}

/// Cells of the grid: columns × rows for `n` videos.
pub fn grid(n: usize) -> (usize, usize) {
    let cols = (1..=n.max(1)).find(|c| c * c >= n).unwrap_or(1);
    let rows = n.max(1).div_ceil(cols);
    (cols, rows)
}

const CELL_W: usize = 640;
const CELL_H: usize = 360;

/// The `-filter_complex` graph: a black canvas as long as the recording, each video scaled into its cell and
/// overlaid from its offset (and gone when it ends); audio delayed to its offset and mixed (silence when none).
pub fn filter_graph(inputs: &[Input], duration_ms: i64) -> String {
    let videos: Vec<(usize, &Input)> = inputs.iter().enumerate().filter(|(_, i)| i.video).collect();
    let audios: Vec<(usize, &Input)> = inputs
        .iter()
        .enumerate()
        .filter(|(_, i)| !i.video)
        .collect();
    let (cols, rows) = grid(videos.len());
    let secs = duration_ms.max(1) as f64 / 1000.0;
    let mut g = format!(
        "color=c=black:s={}x{}:r=25:d={secs:.3}[base0]",
        cols * CELL_W,
        rows * CELL_H
    );
    for (k, (idx, inp)) in videos.iter().enumerate() {
        let off = inp.offset_ms.max(0) as f64 / 1000.0;
        g.push_str(&format!(
            ";[{idx}:v]scale={CELL_W}:{CELL_H}:force_original_aspect_ratio=decrease,pad={CELL_W}:{CELL_H}:(ow-iw)/2:(oh-ih)/2,setsar=1,setpts=PTS-STARTPTS+{off:.3}/TB[v{k}]"
        ));
        let (x, y) = ((k % cols) * CELL_W, (k / cols) * CELL_H);
        g.push_str(&format!(
            ";[base{k}][v{k}]overlay=x={x}:y={y}:eof_action=pass[base{}]",
            k + 1
        ));
    }
    g.push_str(&format!(";[base{}]format=yuv420p[vout]", videos.len()));
    if audios.is_empty() {
        g.push_str(&format!(
            ";anullsrc=r=48000:cl=stereo,atrim=duration={secs:.3}[aout]"
        ));
    } else {
        for (k, (idx, inp)) in audios.iter().enumerate() {
            let off = inp.offset_ms.max(0);
            g.push_str(&format!(
                ";[{idx}:a]aresample=48000,adelay={off}:all=1[a{k}]"
            ));
        }
        g.push(';');
        for k in 0..audios.len() {
            g.push_str(&format!("[a{k}]"));
        }
        g.push_str(&format!(
            "amix=inputs={}:duration=longest:normalize=0,apad,atrim=duration={secs:.3}[aout]",
            audios.len()
        ));
    }
    g
}

/// Runs ffmpeg; `Missing` when it cannot be started.
pub async fn run(
    ffmpeg: &str,
    inputs: &[Input],
    duration_ms: i64,
    out: &Path,
    label: &str,
) -> Result<(), Error> {
    let mut cmd = tokio::process::Command::new(ffmpeg);
    cmd.arg("-nostdin")
        .arg("-hide_banner")
        .arg("-v")
        .arg("error")
        .arg("-y");
    for i in inputs {
        cmd.arg("-i").arg(&i.file);
    }
    let secs = duration_ms.max(1) as f64 / 1000.0;
    cmd.arg("-filter_complex")
        .arg(filter_graph(inputs, duration_ms))
        .args(["-map", "[vout]", "-map", "[aout]"])
        .args([
            "-c:v", "libx264", "-preset", "veryfast", "-pix_fmt", "yuv420p",
        ])
        .args(["-c:a", "aac", "-b:a", "128k"])
        .arg("-t")
        .arg(format!("{secs:.3}"))
        .args(["-movflags", "+faststart", "-progress", "pipe:1", "-nostats"])
        .arg(out)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true);
    let started = std::time::Instant::now();
    tracing::info!(
        recording = label,
        inputs = inputs.len(),
        "composite started"
    );
    let mut child = cmd.spawn().map_err(|e| Error::Missing(e.to_string()))?;
    let stdout = child.stdout.take();
    let stderr = child.stderr.take();
    let label_owned = label.to_owned();
    let progress = tokio::spawn(async move {
        let Some(out) = stdout else { return };
        let mut lines = tokio::io::BufReader::new(out).lines();
        let mut last_log = std::time::Instant::now();
        while let Ok(Some(l)) = lines.next_line().await {
            if let Some(t) = l.strip_prefix("out_time_ms=") {
                if last_log.elapsed() >= std::time::Duration::from_secs(2) {
                    let done_ms = t.trim().parse::<i64>().unwrap_or(0) / 1000;
                    tracing::info!(recording = %label_owned, done_ms, of_ms = duration_ms, "composite progress");
                    last_log = std::time::Instant::now();
                }
            }
        }
    });
    let errors = tokio::spawn(async move {
        let mut text = String::new();
        if let Some(err) = stderr {
            let mut lines = tokio::io::BufReader::new(err).lines();
            while let Ok(Some(l)) = lines.next_line().await {
                if text.len() < 2000 {
                    text.push_str(&l);
                    text.push('\n');
                }
            }
        }
        text
    });
    let status = child
        .wait()
        .await
        .map_err(|e| Error::Failed(e.to_string()))?;
    let _ = progress.await;
    let errors = errors.await.unwrap_or_default();
    if status.success() {
        tracing::info!(
            recording = label,
            ms = started.elapsed().as_millis() as u64,
            "composite ready"
        );
        Ok(())
    } else {
        let why = format!("ffmpeg exited with {status}: {}", errors.trim());
        tracing::error!(recording = label, "{why}");
        Err(Error::Failed(why))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn graph_places_videos_and_mixes_audio() {
        let i = |video, offset_ms| Input {
            file: PathBuf::from("x.webm"),
            video,
            offset_ms,
        };
        let g = filter_graph(&[i(true, 0), i(false, 0), i(true, 2500)], 10_000);
        assert!(
            g.starts_with("color=c=black:s=1280x360:r=25:d=10.000[base0];[0:v]scale="),
            "{g}"
        );
        assert!(g.contains("setpts=PTS-STARTPTS+2.500/TB[v1]"), "{g}");
        assert!(
            g.contains(
                ";[base1][v1]overlay=x=640:y=0:eof_action=pass[base2];[base2]format=yuv420p[vout]"
            ),
            "{g}"
        );
        assert!(g.ends_with(";[1:a]aresample=48000,adelay=0:all=1[a0];[a0]amix=inputs=1:duration=longest:normalize=0,apad,atrim=duration=10.000[aout]"), "{g}");
        let silent = filter_graph(&[i(true, 0)], 4_000);
        assert!(
            silent.ends_with(";anullsrc=r=48000:cl=stereo,atrim=duration=4.000[aout]"),
            "{silent}"
        );
    }

    #[test]
    fn grid_sizes() {
        assert_eq!(grid(1), (1, 1));
        assert_eq!(grid(2), (2, 1));
        assert_eq!(grid(3), (2, 2));
        assert_eq!(grid(5), (3, 2));
    }
}
