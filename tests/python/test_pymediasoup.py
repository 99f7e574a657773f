"""A mediasoup client nobody here wrote -- pymediasoup (Python, on aiortc) -- against the real meet-server.

Two participants (python-socketio over websocket for signaling, pymediasoup Devices loaded with the rtpCapabilities
of GET /meeting/{id}/webrtc-config) join one meeting and follow the integration guide's flow:
create-transport -> transport-created; the transport's 'connect' handler -> connect-transport; the send transport's
'produce' handler -> produce -> produced; new-producer -> consume -> subscribed -> recvTransport.consume() ->
resume-consumer. A sends a 400 Hz tone (Opus) and a synthetic colour picture (VP8); B must decode both: at least
MIN_VIDEO_FRAMES video frames of the size and colour A sent and MIN_AUDIO_FRAMES audio frames carrying the tone,
within MEDIA_DEADLINE_S.

Issue 7 item 1: pymediasoup signals in connect-transport only the last DTLS fingerprint aiortc lists (sha-512 with
aiortc 1.16), not sha-256. The test records the dtlsParameters each transport sends (in its connect handler) and
asserts they carry a non-sha-256 algorithm and that the transports carrying media (A's send, B's recv) still reach
"connected" -- the server checks the peer certificate against that fingerprint and closes the transport
(`transport:closed` dtls-failed) on a mismatch, which fails the test at once. The second test is the negative
control: the same client with one hex digit of its sha-512 fingerprint flipped must get `transport:closed`
dtls-failed.

Server: MEET_SERVER_BIN or <repo>/target/debug/meet-server, port 0, fresh SQLite in a temp dir, development mode,
a random HS256 secret the test signs its tokens with. MEET_TEST_RUST_LOG overrides RUST_LOG (warn);
MEET_TEST_SERVER_LOG=<file> appends every server log line to that file.
"""

import array
import asyncio
import collections
import fractions
import json
import math
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

import jwt
import pytest
import socketio
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack, VideoStreamTrack
from av import AudioFrame, VideoFrame
from pymediasoup import AiortcHandler, Device
from pymediasoup.rtp_parameters import RtpCapabilities, RtpParameters

REPO_ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
SERVER_BIN = os.environ.get("MEET_SERVER_BIN") or os.path.join(REPO_ROOT, "target", "debug", "meet-server")

# Time bounds: nothing here can hang. Each scenario has its asyncio deadline (a failure with diagnostics);
# pytest-timeout (pytest.ini) kills a test at 40 s; a watchdog ends the whole run, server included, at
# RUN_LIMIT_S after this module was imported. A passing run takes ~3 s.
RUN_LIMIT_S = 58
READY_TIMEOUT_S = 15  # the server prints its address (well under 1 s normally)
REQUEST_TIMEOUT_S = 10  # one socket.io request until its ack
MEDIA_DEADLINE_S = 15  # from B's first resume-consumer until both counts are reached
SCENARIO_TIMEOUT_S = 30  # the media scenario as a whole
MISMATCH_TIMEOUT_S = 12  # the wrong-fingerprint scenario as a whole
STOP_GRACE_S = 5  # SIGTERM, then SIGKILL
MIN_VIDEO_FRAMES = 20
MIN_AUDIO_FRAMES = 50

# What A sends, and B checks in what it decodes.
VIDEO_W, VIDEO_H = 320, 240
VIDEO_YUV = (170, 60, 190)  # a solid orange-ish picture (Y, U, V)
TONE_HZ, AUDIO_RATE, AUDIO_SAMPLES = 400, 48000, 960  # 20 ms frames; 960 = 8 whole periods of 400 Hz
TONE_AMPLITUDE = 8000
SHA256_ONLY = "sha-256"


# --------------------------------------------------------------------------------------------------------------
# the server


class MeetServer:
    def __init__(self):
        self.secret = "pyclient-test-secret-" + secrets.token_hex(24)
        self.lines = collections.deque(maxlen=2000)
        self.url = None
        self.proc = None
        self.tmp = None
        self._ready = threading.Event()
        self._log_file = os.environ.get("MEET_TEST_SERVER_LOG")
        self._log_lock = threading.Lock()

    def _pump(self, stream, prefix):
        for raw in iter(stream.readline, b""):
            line = raw.decode("utf-8", "replace").rstrip("\n")
            self.lines.append(prefix + line)
            if self._log_file:
                with self._log_lock, open(self._log_file, "a") as f:
                    f.write(prefix + line + "\n")
            if prefix and not self.url and "meet-server listening on http://" in line:
                self.url = line.split("meet-server listening on ", 1)[1].strip()
                self._ready.set()
        if prefix:
            self._ready.set()  # stdout closed: exited

    def tail(self, n=60):
        state = (
            f"server EXITED (code {self.proc.returncode})"
            if self.proc and self.proc.poll() is not None
            else f"server running at {self.url}"
        )
        lines = list(self.lines)[-n:]
        return f"{state}; last {len(lines)} log lines:\n" + ("\n".join(lines) if lines else "(none)")

    def start(self):
        if not os.path.exists(SERVER_BIN):
            raise RuntimeError(f"meet-server binary not found at {SERVER_BIN} (cargo build -p server, or set MEET_SERVER_BIN)")
        self.tmp = tempfile.mkdtemp(prefix="meet-pyclient-")
        env = {k: v for k, v in os.environ.items() if not k.startswith("MEET_") and k != "RUST_LOG"}
        env.update(
            MEET_HTTP__HOST="127.0.0.1",
            MEET_HTTP__PORT="0",
            MEET_DATABASE__URL=f"sqlite://{self.tmp}/meet.db?mode=rwc",
            MEET_AUTH__SECRET=self.secret,
            MEET_DEV_MODE="true",
            RUST_LOG=os.environ.get("MEET_TEST_RUST_LOG", "warn"),
        )
        self.proc = subprocess.Popen(
            [SERVER_BIN], env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE
        )
        threading.Thread(target=self._pump, args=(self.proc.stdout, "[stdout] "), daemon=True).start()
        threading.Thread(target=self._pump, args=(self.proc.stderr, ""), daemon=True).start()
        if not self._ready.wait(READY_TIMEOUT_S) or not self.url:
            self.stop()
            raise RuntimeError(f"meet-server not ready within {READY_TIMEOUT_S} s\n{self.tail()}")
        return self

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(STOP_GRACE_S)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        if self.tmp:
            shutil.rmtree(self.tmp, ignore_errors=True)
            self.tmp = None

    def token(self, user_id, name):
        claims = {
            "user_id": user_id,
            "campus_id": "campus_py",
            "userName": name,
            "email": f"{user_id}@example.test",
            "exp": int(time.time()) + 600,
        }
        return jwt.encode(claims, self.secret, algorithm="HS256")


_IMPORTED_AT = time.monotonic()


@pytest.fixture(scope="module")
def server(pytestconfig):
    srv = MeetServer()

    def overrun():  # the last resort: no test run outlives RUN_LIMIT_S, and it takes its server with it
        if srv.proc:
            srv.proc.kill()
            try:
                srv.proc.wait(2)
            except subprocess.TimeoutExpired:
                pass
        captured = ""
        capman = pytestconfig.pluginmanager.getplugin("capturemanager")
        if capman is not None:  # show what the test printed so far, on the real stderr
            try:
                capman.suspend_global_capture(in_=True)
                out, err = capman.read_global_capture()
                captured = out + err
            except Exception as exc:
                captured = f"(could not read the captured output: {exc!r})\n"
        sys.stderr.write(f"{captured}\ntests/python: run exceeded {RUN_LIMIT_S} s; server killed\n{srv.tail()}\n")
        sys.stderr.flush()
        os._exit(3)

    watchdog = threading.Timer(max(1.0, RUN_LIMIT_S - (time.monotonic() - _IMPORTED_AT)), overrun)
    watchdog.daemon = True
    watchdog.start()
    try:
        srv.start()
        yield srv
    finally:
        srv.stop()
        watchdog.cancel()


# --------------------------------------------------------------------------------------------------------------
# synthetic media


class ToneTrack(MediaStreamTrack):
    """A 400 Hz sine, 48 kHz mono s16, in 20 ms frames paced in real time."""

    kind = "audio"

    def __init__(self):
        super().__init__()
        self._pcm = array.array(
            "h",
            (round(TONE_AMPLITUDE * math.sin(2 * math.pi * TONE_HZ * i / AUDIO_RATE)) for i in range(AUDIO_SAMPLES)),
        ).tobytes()
        self._start = None
        self._ts = 0

    async def recv(self):
        if self.readyState != "live":
            raise MediaStreamError
        if self._start is None:
            self._start = time.time()
        else:
            self._ts += AUDIO_SAMPLES
            await asyncio.sleep(self._start + self._ts / AUDIO_RATE - time.time())
        frame = AudioFrame(format="s16", layout="mono", samples=AUDIO_SAMPLES)
        plane = frame.planes[0]
        plane.update(self._pcm + bytes(plane.buffer_size - len(self._pcm)))
        frame.pts = self._ts
        frame.sample_rate = AUDIO_RATE
        frame.time_base = fractions.Fraction(1, AUDIO_RATE)
        return frame


class ColourTrack(VideoStreamTrack):
    """A solid-colour 320x240 picture at aiortc's 30 fps clock."""

    def __init__(self):
        super().__init__()
        self._planes = None

    async def recv(self):
        pts, time_base = await self.next_timestamp()
        frame = VideoFrame(width=VIDEO_W, height=VIDEO_H, format="yuv420p")
        if self._planes is None:
            self._planes = [bytes([v]) * p.buffer_size for p, v in zip(frame.planes, VIDEO_YUV)]
        for p, data in zip(frame.planes, self._planes):
            p.update(data)
        frame.pts = pts
        frame.time_base = time_base
        return frame


def centre_value(plane, width, height):
    """Mean of a 9x9 block in the middle of a decoded plane."""
    buf = memoryview(plane).cast("B")
    stride = plane.line_size
    cx, cy = width // 2, height // 2
    vals = [buf[y * stride + x] for y in range(cy - 4, cy + 5) for x in range(cx - 4, cx + 5)]
    return sum(vals) / len(vals)


def audio_peak(frame):
    pcm = array.array("h")
    pcm.frombytes(bytes(frame.planes[0])[: frame.samples * len(frame.layout.channels) * 2])
    return max((abs(s) for s in pcm), default=0)


# --------------------------------------------------------------------------------------------------------------
# a participant: socket.io signaling + a pymediasoup Device


class RequestFailed(AssertionError):
    pass


class Participant:
    def __init__(self, name, server, meeting_id, rtp_capabilities, log, corrupt_fingerprint=False):
        self.name = name
        self.server = server
        self.meeting_id = meeting_id
        self.user_id = f"py_{name.lower()}_{secrets.token_hex(4)}"
        self.log = lambda msg: log(f"[{name}] {msg}")
        self.sio = socketio.AsyncClient(reconnection=False)
        self.device = Device(handlerFactory=AiortcHandler.createFactory())
        self.rtp_capabilities = rtp_capabilities
        self.send_transport = None
        self.recv_transport = None
        self.sent_dtls = {}  # direction -> dtlsParameters as sent in connect-transport
        self.connected = {}  # direction -> asyncio.Event set when the transport reaches "connected"
        self.failures = []  # transport:closed, error events, handler exceptions
        self.failed = asyncio.Event()
        self.new_producers = asyncio.Queue()
        self.corrupt_fingerprint = corrupt_fingerprint  # the negative control: a fingerprint not of aiortc's cert
        self.transport_closed = asyncio.Queue()  # with corrupt_fingerprint, transport:closed is expected

        @self.sio.on("new-producer")
        async def on_new_producer(data):
            self.log(f"new-producer {data}")
            self.new_producers.put_nowait(data)

        @self.sio.on("transport:closed")
        async def on_transport_closed(data):
            if self.corrupt_fingerprint:
                self.log(f"transport:closed {data}")
                self.transport_closed.put_nowait(data)
            else:
                self.fail(f"transport:closed {data}")

        @self.sio.on("error")
        async def on_error(data):
            self.fail(f"error event {data}")

    def fail(self, what):
        self.log(f"FAILURE {what}")
        self.failures.append(what)
        self.failed.set()

    async def connect(self):
        await self.sio.connect(
            self.server.url,
            transports=["websocket"],
            auth={"token": self.server.token(self.user_id, f"Py {self.name}")},
            wait_timeout=REQUEST_TIMEOUT_S,
        )
        await self.device.load(RtpCapabilities(**self.rtp_capabilities))

    async def request(self, event, payload):
        ack = await self.sio.call(event, payload, timeout=REQUEST_TIMEOUT_S)
        if not isinstance(ack, dict) or ack.get("ok") is not True:
            raise RequestFailed(f"{self.name}: {event} failed: {ack!r}")
        return ack

    async def join(self):
        ack = await self.request("join-meeting", {"meetingId": self.meeting_id})
        self.log(f"joined as {ack['you']['role']}")

    async def create_transport(self, direction):
        ack = await self.request("create-transport", {"meetingId": self.meeting_id, "direction": direction})
        assert ack["direction"] == direction, ack
        params = ack["params"]
        self.log(f"transport-created {direction} {params['id']} server fingerprints {params['dtlsParameters']['fingerprints']}")
        factory = self.device.createSendTransport if direction == "send" else self.device.createRecvTransport
        transport = factory(
            id=params["id"],
            iceParameters=params["iceParameters"],
            iceCandidates=params["iceCandidates"],
            dtlsParameters=params["dtlsParameters"],
            sctpParameters=params.get("sctpParameters"),
        )
        self.connected[direction] = asyncio.Event()

        @transport.on("connect")
        async def on_connect(dtlsParameters):
            # The wrap the test is about: record exactly what pymediasoup sends.
            sent = dtlsParameters.model_dump(exclude_none=True)
            if self.corrupt_fingerprint:  # flip the last hex digit: well-formed, but not aiortc's certificate
                fp = sent["fingerprints"][-1]
                fp["value"] = fp["value"][:-1] + ("0" if fp["value"][-1] != "0" else "1")
            self.sent_dtls[direction] = sent
            self.log(f"connect-transport {direction}: pymediasoup sends {sent}")
            try:
                await self.request("connect-transport", {"transportId": transport.id, "dtlsParameters": sent})
            except Exception as exc:  # pyee runs this as a task: report, don't lose it
                self.fail(f"connect-transport {direction}: {exc!r}")

        @transport.on("connectionstatechange")
        def on_state(state):
            self.log(f"{direction} transport {state}")
            if state == "connected":
                self.connected[direction].set()
            elif state in ("failed", "closed"):
                self.fail(f"{direction} transport {state}")

        @transport.on("error")
        def on_transport_error(exc):
            self.fail(f"{direction} transport handler error {exc!r}")

        if direction == "send":

            @transport.on("produce")
            async def on_produce(kind, rtpParameters, appData):
                ack = await self.request(
                    "produce",
                    {
                        "meetingId": self.meeting_id,
                        "kind": kind,
                        "rtpParameters": rtpParameters.model_dump(exclude_none=True),
                        "appData": appData,
                    },
                )
                self.log(f"produced {kind} {ack}")
                return ack["producerId"]

            self.send_transport = transport
        else:
            self.recv_transport = transport
        return transport

    async def consume(self, announced):
        ack = await self.request(
            "consume",
            {
                "meetingId": self.meeting_id,
                "producerId": announced["producerId"],
                "rtpCapabilities": self.device.rtpCapabilities.model_dump(exclude_none=True),
            },
        )
        self.log(f"subscribed {ack['kind']} consumer {ack['id']} of producer {ack['producerId']} ({ack.get('type')})")
        consumer = await self.recv_transport.consume(
            id=ack["id"],
            producerId=ack["producerId"],
            kind=ack["kind"],
            rtpParameters=RtpParameters(**ack["rtpParameters"]),
        )
        await self.request("resume-consumer", {"consumerId": consumer.id})
        return consumer

    async def close(self):
        for t in (self.send_transport, self.recv_transport):
            if t is not None:
                try:
                    await asyncio.wait_for(t.close(), 5)
                except Exception as exc:
                    self.log(f"closing a transport: {exc!r}")
        if self.sio.connected:
            await asyncio.wait_for(self.sio.disconnect(), 5)


# --------------------------------------------------------------------------------------------------------------
# the test


def fetch_webrtc_config(url, meeting_id):
    with urllib.request.urlopen(f"{url}/meeting/{meeting_id}/webrtc-config", timeout=REQUEST_TIMEOUT_S) as res:
        assert res.status == 200
        return json.load(res)["rtpCapabilities"]


async def read_frames(track, kind, counts, samples):
    """Count what B decodes from one consumer track; keep the first few frames' measurements."""
    while True:
        try:
            frame = await track.recv()
        except MediaStreamError:
            return
        counts[kind] += 1
        if kind == "video":
            if len(samples["video"]) < 5 or counts[kind] % 30 == 0:
                samples["video"].append(
                    (
                        frame.width,
                        frame.height,
                        frame.format.name,
                        round(centre_value(frame.planes[0], frame.width, frame.height)),
                        round(centre_value(frame.planes[1], frame.width // 2, frame.height // 2)),
                        round(centre_value(frame.planes[2], frame.width // 2, frame.height // 2)),
                    )
                )
        else:
            samples["audio_peak"] = max(samples["audio_peak"], audio_peak(frame))
            samples["audio_rate"] = frame.sample_rate


async def scenario(server, log):
    meeting_id = "py-" + secrets.token_hex(6)
    rtp_caps = fetch_webrtc_config(server.url, meeting_id)
    log(f"webrtc-config codecs: {[c['mimeType'] for c in rtp_caps['codecs']]}")

    a = Participant("A", server, meeting_id, rtp_caps, log)
    b = Participant("B", server, meeting_id, rtp_caps, log)
    readers = []
    tracks = []
    try:
        await a.connect()
        await b.connect()
        await a.join()
        await b.join()

        # B: send + recv transports (the guide's flow; B's send transport only connects if it produces, so it is
        # created but stays "new").
        await b.create_transport("send")
        await b.create_transport("recv")

        # A: send + recv transports, then the tone and the picture.
        await a.create_transport("send")
        await a.create_transport("recv")
        audio, video = ToneTrack(), ColourTrack()
        tracks += [audio, video]
        p_audio = await a.send_transport.produce(track=audio, appData={"source": "mic"})
        p_video = await a.send_transport.produce(track=video, appData={"source": "camera"})
        log(f"A produces audio {p_audio.id} ({p_audio.rtpParameters.codecs[0].mimeType}), video {p_video.id} ({p_video.rtpParameters.codecs[0].mimeType})")

        # B: one consumer per announced producer of A.
        counts = {"audio": 0, "video": 0}
        samples = {"video": [], "audio_peak": 0, "audio_rate": None}
        consumed = {}
        while len(consumed) < 2:
            announced = await asyncio.wait_for(b.new_producers.get(), REQUEST_TIMEOUT_S)
            if announced["producerId"] not in (p_audio.id, p_video.id) or announced["producerId"] in consumed:
                continue
            consumer = await b.consume(announced)
            assert consumer.kind == announced["kind"]
            consumed[announced["producerId"]] = consumer
            readers.append(asyncio.ensure_future(read_frames(consumer.track, consumer.kind, counts, samples)))

        # Media: both counts within MEDIA_DEADLINE_S, or a failure event ends it early.
        started = time.monotonic()
        deadline = started + MEDIA_DEADLINE_S
        while time.monotonic() < deadline and not (a.failed.is_set() or b.failed.is_set()):
            if counts["video"] >= MIN_VIDEO_FRAMES and counts["audio"] >= MIN_AUDIO_FRAMES:
                break
            await asyncio.sleep(0.1)
        elapsed = time.monotonic() - started
        log(f"B decoded {counts['video']} video and {counts['audio']} audio frames in {elapsed:.1f} s")
        log(f"B video samples (w, h, format, Y, U, V at the centre): {samples['video']}")
        log(f"B audio: peak {samples['audio_peak']}, sample rate {samples['audio_rate']}")

        failures = a.failures + b.failures
        assert not failures, f"failures: {failures}"

        # Issue 7 item 1: what pymediasoup signalled, and that DTLS came up with it.
        for who, direction in ((a, "send"), (b, "recv")):
            assert who.connected[direction].is_set(), f"{who.name} {direction} transport never connected"
            pc = (who.send_transport if direction == "send" else who.recv_transport).handler.pc
            listed = sorted({l.split()[0] for l in pc.localDescription.sdp.splitlines() if l.startswith("a=fingerprint:")})
            log(f"{who.name} {direction}: aiortc's SDP lists fingerprints {listed}")
            fps = who.sent_dtls[direction]["fingerprints"]
            algorithms = [fp["algorithm"] for fp in fps]
            log(f"{who.name} {direction}: connect-transport fingerprints {algorithms}, role {who.sent_dtls[direction].get('role')}")
            assert algorithms and all(alg != SHA256_ONLY for alg in algorithms), (
                f"expected pymediasoup to signal a non-sha-256 fingerprint (issue 7 item 1), got {algorithms}"
            )

        assert counts["video"] >= MIN_VIDEO_FRAMES, f"only {counts['video']} video frames in {MEDIA_DEADLINE_S} s"
        assert counts["audio"] >= MIN_AUDIO_FRAMES, f"only {counts['audio']} audio frames in {MEDIA_DEADLINE_S} s"
        w, h, _, y, u, v = samples["video"][-1]
        assert (w, h) == (VIDEO_W, VIDEO_H), f"decoded {w}x{h}, sent {VIDEO_W}x{VIDEO_H}"
        for got, sent in zip((y, u, v), VIDEO_YUV):
            assert abs(got - sent) <= 12, f"decoded colour {(y, u, v)} is not the one sent {VIDEO_YUV}"
        assert samples["audio_peak"] >= TONE_AMPLITUDE // 4, f"audio peak {samples['audio_peak']}: not the tone"
        return counts
    finally:
        for r in readers:
            r.cancel()
        for t in tracks:
            t.stop()
        for p in (b, a):
            try:
                await p.close()
            except Exception as exc:
                log(f"[{p.name}] close: {exc!r}")


def test_pymediasoup_two_participants_audio_and_video(server):
    t0 = time.monotonic()

    def log(msg):
        print(f"{time.monotonic() - t0:6.2f}s {msg}", flush=True)

    log(f"server {SERVER_BIN} at {server.url}")
    try:
        asyncio.run(asyncio.wait_for(scenario(server, log), SCENARIO_TIMEOUT_S))
    except BaseException:
        print(server.tail(), flush=True)
        raise
    log("done")


async def mismatch_scenario(server, log):
    meeting_id = "py-" + secrets.token_hex(6)
    rtp_caps = fetch_webrtc_config(server.url, meeting_id)
    a = Participant("A", server, meeting_id, rtp_caps, log, corrupt_fingerprint=True)
    audio = ToneTrack()
    try:
        await a.connect()
        await a.join()
        await a.create_transport("send")
        await a.send_transport.produce(track=audio, appData={"source": "mic"})
        closed = await asyncio.wait_for(a.transport_closed.get(), REQUEST_TIMEOUT_S)
        assert closed["transportId"] == a.send_transport.id, closed
        assert closed["direction"] == "send", closed
        assert closed["reason"] == "dtls-failed", closed
        assert a.sent_dtls["send"]["fingerprints"][-1]["algorithm"] != SHA256_ONLY, a.sent_dtls
        assert not a.failures, a.failures
    finally:
        audio.stop()
        await a.close()


def test_pymediasoup_wrong_fingerprint_is_refused(server):
    """The negative control: the same client with one hex digit of its sha-512 fingerprint flipped gets its
    transport closed (`transport:closed` dtls-failed), so the passing test above means the server really checked
    aiortc's certificate against the sha-512 fingerprint."""
    t0 = time.monotonic()

    def log(msg):
        print(f"{time.monotonic() - t0:6.2f}s {msg}", flush=True)

    try:
        asyncio.run(asyncio.wait_for(mismatch_scenario(server, log), MISMATCH_TIMEOUT_S))
    except BaseException:
        print(server.tail(), flush=True)
        raise
    log("done")
