"""The participant server: Tornado handlers, the frame ticker, and the admin view."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import logging
import mimetypes
import re
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import tornado.web
from tornado.ioloop import IOLoop

from mug.scenes.gym_scene import GymScene
from mug.scenes.stager import Stager
from mug.server.export import stream_command
from mug.server.page import admin_page, participant_page
from mug.server.participants import Participant, ParticipantRegistry
from mug.server.store import Store
from mug.server.websocket import WebSocket, upgrade
from mug.session.clock import FrameClock
from mug.session.messages import encode_envelope

__all__ = ["MugServer", "PARTICIPANT_ID", "ID_QUERY_KEYS"]

log = logging.getLogger("mug.server")
access_log = logging.getLogger("mug.access")
STATIC = Path(__file__).resolve().parent.parent / "static"
PARTICIPANT_ID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
#: Query parameters that carry a participant id, in order of preference (Prolific, MTurk, generic).
ID_QUERY_KEYS = ("PROLIFIC_PID", "workerId", "participant_id", "participant")
#: A WebSocket message over this size closes the connection (code 1009); messages over the
#: ``max_message_bytes`` of :class:`MugServer` get an ``error`` reply instead.
MAX_FRAME_BYTES = 1 << 20
#: Seconds between sweeps for participants to drop from memory (see ``ParticipantRegistry.forget_idle``).
SWEEP_EVERY_S = 10.0
mimetypes.add_type("application/wasm", ".wasm")
mimetypes.add_type("text/javascript", ".js")
mimetypes.add_type("text/javascript", ".mjs")


def _log_request(handler: tornado.web.RequestHandler) -> None:
    """Access log without query strings: they may hold tokens."""
    request = handler.request
    access_log.info("%d %s %s %.1fms", handler.get_status(), request.method, request.path, 1000 * request.request_time())


class RateLimit:
    """Token bucket: ``rate`` messages a second, bursts up to ``burst``."""

    def __init__(self, rate: float, burst: float) -> None:
        self.rate, self.burst, self.tokens, self.last = rate, burst, burst, time.monotonic()

    def allow(self) -> bool:
        now = time.monotonic()
        self.tokens = min(self.burst, self.tokens + (now - self.last) * self.rate)
        self.last = now
        if self.tokens < 1:
            return False
        self.tokens -= 1
        return True


class MugServer:
    """Everything one deployment serves: participants, store, tickers, handlers."""

    def __init__(
        self,
        stager: Stager,
        data_dir: str | Path,
        admin_token: str,
        *,
        max_message_bytes: int = 256 * 1024,
        messages_per_second: float = 120.0,
    ) -> None:
        self.stager, self.admin_token = stager, admin_token
        self.messages_per_second = messages_per_second
        self.store = Store(data_dir)
        self.registry = ParticipantRegistry(stager, self.store, max_message_bytes)
        self.games = [s for s in stager.scenes.values() if isinstance(s, GymScene)]
        for game in self.games:
            game.check_ready()
        self.models = {
            (g.scene_id, agent): Path(spec.config.onnx_path)
            for g in self.games
            for agent, spec in g.policy_specs.items()
            if spec.kind == "model" and spec.where == "client" and spec.config is not None
        }
        self._tickers: list[asyncio.Task] = []

    # -- ticking ------------------------------------------------------------------------

    def start_tickers(self) -> None:
        """One ticker task per frame rate used in the study, and the idle sweep (on the running event loop)."""
        loop = asyncio.get_running_loop()
        self._tickers = [loop.create_task(self._run_ticker(fps)) for fps in sorted({g.fps for g in self.games})]
        self._tickers.append(loop.create_task(self._sweep_idle()))

    async def _sweep_idle(self) -> None:
        while True:
            await asyncio.sleep(SWEEP_EVERY_S)
            try:
                self.registry.forget_idle()
            except Exception:
                log.exception("dropping idle participants failed")

    def stop_tickers(self) -> None:
        """Stop ticking (games pause where they are)."""
        for ticker in self._tickers:
            ticker.cancel()
        self._tickers.clear()

    async def _run_ticker(self, fps: int) -> None:
        loop = asyncio.get_running_loop()
        clock = FrameClock(loop.time(), max_behind=1.0 / fps)  # a late frame is sent late, not dropped
        while True:
            try:
                self.tick(fps)
            except Exception:  # a bug of ours must not stop every game
                log.exception("frame tick at %d fps failed", fps)
            await asyncio.sleep(clock.wait(1.0 / fps, loop.time()))

    def tick(self, fps: int) -> None:
        """Step every connected game running at ``fps``, commit, then send the frames."""
        for participant in self.registry.games():
            if participant.game.scene.fps == fps:  # type: ignore[union-attr]
                participant.game.tick()  # type: ignore[union-attr]
        self.registry.flush()

    # -- application --------------------------------------------------------------------

    def application(self) -> tornado.web.Application:
        """The Tornado application."""
        routes: list[Any] = [
            (r"/", ParticipantPageHandler, {"server": self}),
            (r"/ws", ParticipantSocket, {"server": self}),
            (r"/static/(.*)", tornado.web.StaticFileHandler, {"path": str(STATIC)}),
            (r"/models/([A-Za-z0-9_-]+)/([A-Za-z0-9_.-]+)/([0-9a-f]{16})\.onnx", ModelHandler, {"server": self}),
            (r"/admin", AdminHandler, {"server": self}),
            (r"/admin/(steps|responses|participants|events)\.csv", AdminExportHandler, {"server": self}),
            (r"/healthz", HealthHandler),
        ]
        for game in self.games:
            if game.asset_dir is not None:
                routes.append((rf"/assets/{game.scene_id}/(.*)", tornado.web.StaticFileHandler, {"path": str(game.asset_dir)}))
        return tornado.web.Application(
            routes,
            log_function=_log_request,
            static_hash_cache=True,
            compress_response=True,
        )


class _Handler(tornado.web.RequestHandler):
    def initialize(self, server: MugServer) -> None:
        self.server = server

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        self.set_header("Content-Type", "text/plain; charset=utf-8")
        self.finish(f"{status_code} {self._reason}\n")


def participant_id_from(handler: tornado.web.RequestHandler) -> str | None:
    """The participant id in the query string (first of ``ID_QUERY_KEYS``), or ``None``."""
    for key in ID_QUERY_KEYS:
        value = handler.get_query_argument(key, None)
        if value is not None:
            return value
    return None


def _cookie_name(participant_id: str) -> str:
    return f"mug_{participant_id}"


class ParticipantPageHandler(_Handler):
    """``/``: the participant page. No id in the URL: a new one, by redirect (so a reload keeps it)."""

    def get(self) -> None:
        participant_id = participant_id_from(self)
        if participant_id is None:
            self.redirect(f"/?participant={uuid.uuid4().hex}")
            return
        if not PARTICIPANT_ID.match(participant_id):
            raise tornado.web.HTTPError(400, reason="participant id must be 1-64 letters, digits, '_' or '-'")
        registry = self.server.registry
        known = participant_id in registry.participants or self.server.store.participant(participant_id) is not None
        participant = registry.get_or_create(participant_id)
        cookie = self.get_cookie(_cookie_name(participant_id))
        if not known:
            self.set_cookie(_cookie_name(participant_id), participant.token, httponly=True, samesite="Strict", expires_days=30)
        elif cookie is None or not hmac.compare_digest(cookie, participant.token):
            raise tornado.web.HTTPError(403, reason="this participant id is already in use in another browser")
        self.set_header("Cache-Control", "no-store")
        self.finish(participant_page(participant_id))


class ParticipantSocket(_Handler):
    """``/ws?participant=ID``: the WebSocket of one participant tab (see :mod:`mug.server.websocket`)."""

    async def get(self) -> None:
        participant_id = self.get_query_argument("participant", "")
        cookie = self.get_cookie(_cookie_name(participant_id)) if PARTICIPANT_ID.match(participant_id) else None
        socket = await upgrade(self, MAX_FRAME_BYTES)
        if socket is not None:
            ParticipantTab(self.server, socket).open(participant_id, cookie)


class ParticipantTab:
    """One open participant tab: its socket, its participant, its message rate limit. Binary envelopes both ways."""

    def __init__(self, server: MugServer, socket: WebSocket) -> None:
        self.server, self.socket = server, socket
        self.participant: Participant | None = None
        self.limit = RateLimit(server.messages_per_second, 2 * server.messages_per_second)
        socket.on_messages, socket.on_close = self.on_messages, self.on_close

    def open(self, participant_id: str, cookie: str | None) -> None:
        """Attach the tab to its participant, or tell it why not and close."""
        registry = self.server.registry
        if not PARTICIPANT_ID.match(participant_id) or (
            participant_id not in registry.participants and self.server.store.participant(participant_id) is None
        ):
            self.close_with(
                {
                    "type": "error",
                    "code": "unknown_participant",
                    "message": "unknown participant id; open the study link again",
                    "fatal": True,
                }
            )
            return
        participant = registry.get_or_create(participant_id)
        if cookie is None or not hmac.compare_digest(cookie, participant.token):
            log.warning("websocket for participant %s without its browser token refused", participant_id)
            self.close_with(
                {"type": "error", "code": "forbidden", "message": "this participant id belongs to another browser", "fatal": True}
            )
            return
        self.participant = participant
        participant.attach(self)
        registry.flush()

    def on_messages(self, messages: list[bytes | str]) -> None:
        """Messages that arrived together: each handled in turn, then one commit and delivery."""
        participant = self.participant
        if participant is None:
            return
        for message in messages:
            if participant.connection is not self:
                return
            if not self.limit.allow():
                participant.send(
                    {"type": "error", "code": "rate_limited", "message": "too many messages; slow down", "fatal": False}
                )
                continue
            try:
                participant.receive(message)
            except Exception:  # a bug of ours must not take the server down; the participant is told
                log.exception("participant %s: error handling a message", participant.participant_id)
                participant.send(
                    {
                        "type": "error",
                        "code": "server_error",
                        "message": "the server failed to handle that message",
                        "fatal": False,
                    }
                )
        self.server.registry.flush()

    def on_close(self) -> None:
        if self.participant is not None:
            self.participant.detach(self)

    def deliver(self, frames: list[bytes]) -> None:
        """Send queued envelopes (dropped if the socket has closed)."""
        for frame in frames:
            self.socket.send(frame)

    def close(self) -> None:
        """Close without a message (the server is stopping: the page reconnects by itself when it is back)."""
        self.socket.close(code=1001, reason="server stopping")

    def close_with(self, message: dict[str, Any]) -> None:
        """Send one last message, then close."""
        self.deliver([encode_envelope(message)])
        self.socket.close(code=4000 + (403 if message.get("code") == "forbidden" else 409), reason=message.get("code", ""))


class ModelHandler(_Handler):
    """``/models/<scene>/<agent>/<sha256[:16]>.onnx``: browser-side policies' model files, at URLs named by
    their content (``GymScene.model_path``), so each can be cached for good; a URL of a model file that
    has changed since is a 404 (a page from before a redeploy reloads rather than run the old model)."""

    def get(self, scene_id: str, agent: str, digest: str) -> None:
        path = self.server.models.get((scene_id, agent))
        if path is None:
            raise tornado.web.HTTPError(404, reason=f"no browser-side model for scene {scene_id!r}, agent {agent!r}")
        data = path.read_bytes()
        if hashlib.sha256(data).hexdigest()[:16] != digest:
            raise tornado.web.HTTPError(404, reason="this model file has changed since the page was loaded; reload the page")
        self.set_header("Content-Type", "application/octet-stream")
        self.set_header("Cache-Control", "public, max-age=31536000, immutable")
        self.finish(data)


class _AdminBase(_Handler):
    def authorized(self) -> bool:
        token = self.get_query_argument("token", None)
        if token is not None and hmac.compare_digest(token, self.server.admin_token):
            self.set_cookie("mug_admin", token, httponly=True, samesite="Strict")
            self.redirect(self.request.path)
            return False
        cookie = self.get_cookie("mug_admin") or self.request.headers.get("X-MUG-Admin-Token")
        if cookie is None or not hmac.compare_digest(cookie, self.server.admin_token):
            raise tornado.web.HTTPError(403, reason="admin token required: open the admin URL printed at start")
        return True


def _read(data_dir: Path, query: Callable[[Store], Any]) -> Any:
    """Run ``query`` on a read-only store of its own (in a worker thread: the games keep ticking)."""
    store = Store(data_dir, readonly=True)
    try:
        return query(store)
    finally:
        store.close()


class AdminHandler(_AdminBase):
    """``/admin``: participants, their scene, progress, step counts and completion codes (read in a worker thread)."""

    async def get(self) -> None:
        if self.authorized():
            rows = await IOLoop.current().run_in_executor(None, _read, self.server.store.data_dir, Store.participants)
            self.set_header("Cache-Control", "no-store")
            self.finish(admin_page(rows))


async def _failure(child: asyncio.subprocess.Process) -> str | None:
    """Wait for a finished export child; the last line of its error output if it failed, else ``None``."""
    errors = (await child.stderr.read()).decode(errors="replace").strip().splitlines()  # type: ignore[union-attr]
    if await child.wait() == 0:
        return None
    return errors[-1] if errors else f"exit status {child.returncode}"


class AdminExportHandler(_AdminBase):
    """``/admin/<table>.csv``: download steps, responses, participants or events, streamed.

    A child process at lower priority (``mug.server.export.stream_command``) reads the table in
    batches and writes CSV (gzipped when the browser takes it); each chunk is sent and flushed
    before the next is read, so memory stays bounded and the games keep their frame rate whatever
    the size of the table. A download cut short ends without its last chunk (never a silently
    truncated file).
    """

    async def get(self, table: str) -> None:
        if not self.authorized():
            return
        gzip = "gzip" in self.request.headers.get("Accept-Encoding", "")
        child = await asyncio.create_subprocess_exec(
            *stream_command(self.server.store.data_dir, table, gzip),
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        assert child.stdout is not None and child.stderr is not None
        try:
            first = await child.stdout.read(1 << 16)
            if not first and (problem := await _failure(child)):
                log.error("admin download of %s failed: %s", table, problem)
                raise tornado.web.HTTPError(500, reason=f"reading the {table} table failed; see the server log")
            self.set_header("Content-Type", "text/csv; charset=utf-8")
            self.set_header("Content-Disposition", f'attachment; filename="{table}.csv"')
            self.set_header("Cache-Control", "no-store")
            if gzip:
                self.set_header("Content-Encoding", "gzip")  # compressed by the child, so Tornado does not on the loop
            chunk = first
            while chunk:
                self.write(chunk)
                await self.flush()
                chunk = await child.stdout.read(1 << 16)
            if problem := await _failure(child):
                log.error("admin download of %s broke off: %s", table, problem)
                self.request.connection.close()  # type: ignore[union-attr]
                return
        finally:
            if child.returncode is None:
                child.kill()
                await child.wait()
        self.finish()


class HealthHandler(tornado.web.RequestHandler):
    """``/healthz``: the server is up."""

    def get(self) -> None:
        self.finish("ok")
