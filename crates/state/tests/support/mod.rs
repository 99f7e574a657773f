//! What the Redis tests share: a real `redis-server` of their own on a free port, and ways to build runtime state.
#![allow(dead_code)] // each test binary uses a part of it

use proto::{ParticipantId, Role, UserId};
use state::{RedisState, RuntimeParticipant};
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A `redis-server` process (Debian's package; `scripts/test` installs it), killed on drop.
pub struct RedisServer {
    pub port: u16,
    child: Option<Child>,
}

impl RedisServer {
    /// Starts one on a free port.
    pub fn start() -> Self {
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        Self::start_on(port)
    }

    /// Starts one on `port` and waits until it answers PING.
    pub fn start_on(port: u16) -> Self {
        let child = Command::new("redis-server")
            .args(["--port", &port.to_string()])
            .args(["--save", "", "--appendonly", "no", "--bind", "127.0.0.1"])
            .args(["--daemonize", "no"])
            .arg("--dir")
            .arg(std::env::temp_dir())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("redis-server must be installed (apt-get install redis-server; scripts/test does it)");
        let mut server = Self {
            port,
            child: Some(child),
        };
        server.wait_ready();
        server
    }

    fn wait_ready(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if ping(self.port) {
                return;
            }
            if let Some(c) = self.child.as_mut() {
                if let Ok(Some(status)) = c.try_wait() {
                    panic!("redis-server on port {} exited: {status}", self.port);
                }
            }
            assert!(Instant::now() < deadline, "redis-server did not start");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/", self.port)
    }

    /// A fresh connection to it.
    pub async fn state(&self, prefix: &str) -> RedisState {
        RedisState::connect(&self.url(), prefix)
            .await
            .expect("connect to the test redis")
    }

    /// A plain redis-rs connection to it, for looking at keys directly.
    #[allow(dead_code)] // not every test file uses it
    pub async fn conn(&self) -> redis::aio::MultiplexedConnection {
        redis::Client::open(self.url())
            .expect("url")
            .get_multiplexed_async_connection()
            .await
            .expect("connect to the test redis")
    }

    /// Sends it a signal (`STOP` freezes it: connections stay open but nothing answers; `CONT` thaws it).
    pub fn signal(&self, sig: &str) {
        let pid = self.child.as_ref().expect("running").id();
        let ok = Command::new("kill")
            .args([&format!("-{sig}"), &pid.to_string()])
            .status()
            .expect("kill")
            .success();
        assert!(ok, "kill -{sig} {pid}");
    }

    /// Kills it (SIGKILL) and waits until it is gone.
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.stop();
    }
}

fn ping(port: u16) -> bool {
    let Ok(mut s) = TcpStream::connect(("127.0.0.1", port)) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(Duration::from_millis(500)));
    let mut buf = [0u8; 7];
    s.write_all(b"PING\r\n").is_ok() && s.read_exact(&mut buf).is_ok() && &buf == b"+PONG\r\n"
}

pub fn participant(id: &str, seq: u64) -> RuntimeParticipant {
    RuntimeParticipant {
        participant_id: ParticipantId::new(id),
        user_id: UserId::new(format!("user_{id}")),
        user_name: format!("Name of {id}"),
        role: Role::Participant,
        hand_raised: false,
        joined_at: 1_700_000_000_000 + seq as i64,
        joined_seq: seq,
        send_transport: None,
        recv_transport: None,
        producers: Vec::new(),
        consumers: Vec::new(),
        announce_cursor: 0,
        announced_at: None,
        node: None,
    }
}
