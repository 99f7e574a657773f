//! The server under test: started here (release binary, temporary SQLite database, benchmark rate limits) or
//! attached to; its RSS; its REST API (a tiny HTTP/1.1 client); tokens for it.

use serde::Serialize;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio::process::{Child, Command};

/// What the server wrote to stdout/stderr after start-up: warnings and errors, counted, with a few samples.
#[derive(Default)]
pub struct LogStats {
    pub warnings: usize,
    pub errors: usize,
    pub samples: Vec<String>,
    /// The last lines, for a start-up failure message.
    pub tail: Vec<String>,
}

pub struct Server {
    child: Option<Child>,
    pub pid: u32,
    /// `host:port`
    pub addr: String,
    tmpdir: Option<PathBuf>,
    pub log: Arc<Mutex<LogStats>>,
}

/// Options for starting the server.
pub struct StartOptions<'a> {
    pub bin: &'a Path,
    pub secret: &'a str,
    pub log_level: &'a str,
    pub extra_env: &'a [(String, String)],
    pub timeout: Duration,
}

fn strip_ansi(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            for d in chars.by_ref() {
                if d.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

fn drain<R>(
    reader: R,
    log: Arc<Mutex<LogStats>>,
    ready: Option<tokio::sync::oneshot::Sender<String>>,
) where
    R: AsyncRead + Unpin + Send + 'static,
{
    tokio::spawn(async move {
        let mut ready = ready;
        let mut lines = BufReader::new(reader).lines();
        while let Ok(Some(line)) = lines.next_line().await {
            let line = strip_ansi(&line);
            if let Some(rest) = line.split("listening on http://").nth(1) {
                if let Some(tx) = ready.take() {
                    let _ = tx.send(rest.trim().to_owned());
                    continue;
                }
            }
            let Ok(mut log) = log.lock() else { return };
            let warn = line.contains(" WARN ");
            let err = line.contains(" ERROR ") || line.contains("panicked");
            if warn {
                log.warnings += 1;
            }
            if err {
                log.errors += 1;
            }
            if (warn || err) && log.samples.len() < 5 {
                log.samples.push(line.chars().take(300).collect());
            }
            if log.tail.len() >= 20 {
                log.tail.remove(0);
            }
            log.tail.push(line);
        }
    });
}

impl Server {
    /// Spawns the binary and waits for its `listening on` line. The child inherits this process's (raised)
    /// RLIMIT_NOFILE.
    pub async fn start(o: StartOptions<'_>) -> Result<Server, String> {
        if !o.bin.is_file() {
            return Err(format!(
                "server binary not found at {} (build it with `cargo build --release -p server`, or pass --server-bin)",
                o.bin.display()
            ));
        }
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0);
        let tmpdir = std::env::temp_dir().join(format!("meet-load-{}-{nanos}", std::process::id()));
        std::fs::create_dir_all(&tmpdir)
            .map_err(|e| format!("creating {}: {e}", tmpdir.display()))?;
        let mut cmd = Command::new(o.bin);
        for (k, _) in std::env::vars() {
            if k.starts_with("MEET_") {
                cmd.env_remove(k);
            }
        }
        cmd.env("MEET_HTTP__HOST", "127.0.0.1")
            .env("MEET_HTTP__PORT", "0")
            .env(
                "MEET_DATABASE__URL",
                format!("sqlite://{}/meet.db?mode=rwc", tmpdir.display()),
            )
            .env("MEET_AUTH__ALGORITHM", "HS256")
            .env("MEET_AUTH__SECRET", o.secret)
            .env("MEET_DEV_MODE", "true")
            .env("MEET_LIMITS__SEND_MESSAGE__COUNT", "1000000")
            .env("MEET_LIMITS__SEND_MESSAGE__WINDOW_MS", "60000")
            .env("RUST_LOG", o.log_level)
            .env("NO_COLOR", "1");
        for (k, v) in o.extra_env {
            cmd.env(k, v);
        }
        cmd.stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        let mut child = cmd
            .spawn()
            .map_err(|e| format!("starting {}: {e}", o.bin.display()))?;
        let pid = child.id().ok_or("the server exited at once")?;
        let log = Arc::new(Mutex::new(LogStats::default()));
        let (tx, rx) = tokio::sync::oneshot::channel();
        if let Some(out) = child.stdout.take() {
            drain(out, log.clone(), Some(tx));
        }
        if let Some(err) = child.stderr.take() {
            drain(err, log.clone(), None);
        }
        let mut server = Server {
            child: Some(child),
            pid,
            addr: String::new(),
            tmpdir: Some(tmpdir),
            log,
        };
        match tokio::time::timeout(o.timeout, rx).await {
            Ok(Ok(addr)) => {
                server.addr = addr;
                Ok(server)
            }
            Ok(Err(_)) | Err(_) => {
                // Give stderr a moment to arrive.
                tokio::time::sleep(Duration::from_millis(200)).await;
                let status = match server.child.as_mut().map(Child::try_wait) {
                    Some(Ok(Some(s))) => format!("exited with {s}"),
                    _ => format!("did not print `listening on` within {:?}", o.timeout),
                };
                let tail = server
                    .log
                    .lock()
                    .map(|l| l.tail.join("\n  "))
                    .unwrap_or_default();
                server.stop().await;
                Err(format!("meet-server {status}; its last output:\n  {tail}"))
            }
        }
    }

    /// A server someone else runs: `http://host:port` and its pid.
    pub fn attach(url: &str, pid: u32) -> Result<Server, String> {
        let addr = url
            .trim_start_matches("http://")
            .trim_end_matches('/')
            .to_owned();
        if addr.contains('/') || !addr.contains(':') {
            return Err(format!(
                "--url must look like http://127.0.0.1:3000, got {url}"
            ));
        }
        if rss_kb(pid).is_none() {
            return Err(format!(
                "cannot read /proc/{pid}/status (is --server-pid right?)"
            ));
        }
        Ok(Server {
            child: None,
            pid,
            addr,
            tmpdir: None,
            log: Arc::new(Mutex::new(LogStats::default())),
        })
    }

    /// Whether a server we started has exited.
    pub fn exited(&mut self) -> Option<String> {
        match self.child.as_mut().map(Child::try_wait) {
            Some(Ok(Some(s))) => Some(s.to_string()),
            _ => None,
        }
    }

    /// Kills a server we started and removes its database; a no-op when attached.
    pub async fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.start_kill();
            let _ = tokio::time::timeout(Duration::from_secs(5), child.wait()).await;
        }
        if let Some(dir) = self.tmpdir.take() {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

/// VmRSS of a process, in KiB.
pub fn rss_kb(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}

/// User + system CPU time of a process (all threads), in seconds. Assumes the usual USER_HZ of 100.
pub fn cpu_secs(pid: u32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the parenthesised command name: state is field 3, utime 14, stime 15.
    let rest = &stat[stat.rfind(')')? + 1..];
    let mut f = rest.split_whitespace().skip(11);
    let utime: u64 = f.next()?.parse().ok()?;
    let stime: u64 = f.next()?.parse().ok()?;
    Some((utime + stime) as f64 / 100.0)
}

#[derive(Serialize)]
struct Claims<'a> {
    user_id: &'a str,
    campus_id: &'a str,
    #[serde(rename = "userName")]
    user_name: &'a str,
    email: String,
    exp: u64,
}

/// Mints HS256 tokens for one campus.
pub struct Minter {
    key: jsonwebtoken::EncodingKey,
    header: jsonwebtoken::Header,
    campus: String,
    exp: u64,
}

impl Minter {
    pub fn new(secret: &str, campus: &str) -> Self {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        Minter {
            key: jsonwebtoken::EncodingKey::from_secret(secret.as_bytes()),
            header: jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
            campus: campus.to_owned(),
            exp: now + 6 * 3600,
        }
    }

    pub fn token(&self, user_id: &str) -> Result<String, String> {
        let claims = Claims {
            user_id,
            campus_id: &self.campus,
            user_name: user_id,
            email: format!("{user_id}@loadbench.invalid"),
            exp: self.exp,
        };
        jsonwebtoken::encode(&self.header, &claims, &self.key)
            .map_err(|e| format!("minting a token: {e}"))
    }
}

/// One HTTP/1.1 request on a fresh connection (`Connection: close`), read to the end, bounded in time.
async fn exchange(addr: &str, req: &str, what: &str) -> Result<String, String> {
    let io = async {
        let mut s = TcpStream::connect(addr)
            .await
            .map_err(|e| format!("REST connect: {e}"))?;
        s.write_all(req.as_bytes())
            .await
            .map_err(|e| format!("REST write: {e}"))?;
        let mut buf = Vec::new();
        s.read_to_end(&mut buf)
            .await
            .map_err(|e| format!("REST read: {e}"))?;
        Ok::<_, String>(String::from_utf8_lossy(&buf).into_owned())
    };
    tokio::time::timeout(Duration::from_secs(15), io)
        .await
        .map_err(|_| format!("{what} timed out"))?
}

/// `GET path` → the body (the server answers `Connection: close`; chunked bodies are joined).
pub async fn http_get(addr: &str, path: &str) -> Result<String, String> {
    let req = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    let resp = exchange(addr, &req, &format!("GET {path}")).await?;
    let (head, body) = resp.split_once("\r\n\r\n").unwrap_or((&resp, ""));
    if !head.contains("chunked") {
        return Ok(body.to_owned());
    }
    // Chunked: size line, data, CRLF, … 0.
    let mut out = String::new();
    let mut rest = body;
    while let Some((size, after)) = rest.split_once("\r\n") {
        let n = usize::from_str_radix(size.trim(), 16).map_err(|_| "bad chunk size".to_owned())?;
        if n == 0 || after.len() < n {
            break;
        }
        out.push_str(&after[..n]);
        rest = after[n..].trim_start_matches("\r\n");
    }
    Ok(out)
}

/// `/metrics`, each metric's samples summed over their labels.
pub async fn metrics(addr: &str) -> Result<std::collections::HashMap<String, f64>, String> {
    let text = http_get(addr, "/metrics").await?;
    let mut out = std::collections::HashMap::new();
    for line in text.lines().filter(|l| !l.starts_with('#')) {
        let Some((name_labels, value)) = line.rsplit_once(' ') else {
            continue;
        };
        let name = name_labels.split('{').next().unwrap_or(name_labels);
        if let Ok(v) = value.parse::<f64>() {
            *out.entry(name.to_owned()).or_insert(0.0) += v;
        }
    }
    Ok(out)
}

/// `POST /api/meetings` → the new meeting's id.
pub async fn create_meeting(addr: &str, token: &str, max: u32) -> Result<String, String> {
    create_meeting_with(addr, token, max, false).await
}

/// `POST /api/meetings`, with `recordingEnabled` as given → the new meeting's id.
pub async fn create_meeting_with(
    addr: &str,
    token: &str,
    max: u32,
    recording_enabled: bool,
) -> Result<String, String> {
    let body = serde_json::json!({
        "title": "loadbench",
        "maxParticipants": max,
        "recordingEnabled": recording_enabled,
    })
    .to_string();
    let req = format!(
        "POST /api/meetings HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {token}\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    let resp = exchange(addr, &req, "REST POST /api/meetings").await?;
    let status = resp.split(' ').nth(1).unwrap_or("?");
    // The body may be chunked; the JSON object is what lies between the first `{` and the last `}`.
    let json = match (resp.find("\r\n\r\n"), resp.rfind('}')) {
        (Some(h), Some(end)) => resp[h..=end].find('{').map(|s| &resp[h + s..=end]),
        _ => None,
    };
    if status != "201" {
        return Err(format!(
            "POST /api/meetings answered {status}: {}",
            json.unwrap_or("")
        ));
    }
    let v: serde_json::Value = serde_json::from_str(json.unwrap_or(""))
        .map_err(|e| format!("POST /api/meetings: bad JSON: {e}"))?;
    v.get("meetingId")
        .and_then(serde_json::Value::as_str)
        .map(str::to_owned)
        .ok_or_else(|| "POST /api/meetings: no meetingId in the answer".to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strips_ansi_and_reads_own_rss() {
        assert_eq!(strip_ansi("\u{1b}[33m WARN\u{1b}[0m x"), " WARN x");
        assert!(rss_kb(std::process::id()).is_some_and(|kb| kb > 0));
    }
}
