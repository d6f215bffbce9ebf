"""The participant server: Tornado handlers, the frame ticker, and the admin view."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import logging
import mimetypes
import secrets
import sqlite3
import uuid
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import Any

import tornado.web
from tornado.ioloop import IOLoop

from mug.errors import ConfigError
from mug.scenes.gym_scene import GymScene
from mug.scenes.matching import FILL_MODEL_PREFIX
from mug.scenes.policies import file_sha256
from mug.scenes.stager import Stager
from mug.server import logs
from mug.server.export import stream_command
from mug.server.headers import security_headers, with_nonce
from mug.server.limits import AdmissionError, Admissions
from mug.server.matches.monitor import PING_EVERY_S
from mug.server.matches.signal import IceServers
from mug.server.page import admin_page, participant_page
from mug.server.participants import ParticipantRegistry
from mug.server.pybundle import BUNDLE_ROUTE
from mug.server.pyodide_files import PyodideHandler, package_origins, pyodide_files
from mug.server.store import Store
from mug.server.tab import PARTICIPANT_ID, ParticipantTab, same_secret
from mug.server.verify import MAX_BACKLOG_STEPS
from mug.server.websocket import SendBudget, upgrade
from mug.session.clock import FrameClock

__all__ = ["MugServer", "PARTICIPANT_ID", "ID_QUERY_KEYS"]

log = logging.getLogger("mug.server")
access_log = logging.getLogger("mug.access")
STATIC = Path(__file__).resolve().parent.parent / "static"
#: Query parameters that carry a participant id, in order of preference (Prolific, MTurk, generic).
ID_QUERY_KEYS = ("PROLIFIC_PID", "workerId", "participant_id", "participant")
#: A WebSocket message over this size closes the connection (code 1009); messages over the
#: ``max_message_bytes`` of :class:`MugServer` get an ``error`` reply instead.
MAX_FRAME_BYTES = 1 << 20
#: Seconds between sweeps for participants to drop from memory (see ``ParticipantRegistry.forget_idle``).
SWEEP_EVERY_S = 10.0
#: Seconds between the match room's checks (waitrooms, reconnect timeouts, monitoring, screening).
CHECK_EVERY_S = 0.25
#: Days an admin session (its signed cookie) lasts.
ADMIN_SESSION_DAYS = 7
mimetypes.add_type("application/wasm", ".wasm")
mimetypes.add_type("text/javascript", ".js")
mimetypes.add_type("text/javascript", ".mjs")


def _log_request(handler: tornado.web.RequestHandler) -> None:
    """Access log without query strings: they may hold tokens."""
    request = handler.request
    access_log.info("%d %s %s %.1fms", handler.get_status(), request.method, request.path, 1000 * request.request_time())


def _cookie_secret(data_dir: Path) -> str:
    """The data dir's secret for signing admin cookies (made once, readable by its owner only)."""
    path = data_dir / "cookie-secret"
    if not path.exists():
        path.touch(mode=0o600)
        path.write_text(secrets.token_urlsafe(32))
    return path.read_text().strip()


def _check_data_dir_outside_assets(data_dir: Path, games: list[GymScene]) -> None:
    for game in games:
        root = game.asset_dir
        if root is not None and (data_dir == root or root in data_dir.parents):
            raise ConfigError(
                f"data_dir: {str(data_dir)!r} is inside the asset directory {str(root)!r} of scene {game.scene_id!r}; "
                "the data (participants' browser tokens included) must never sit next to files served to browsers. "
                "Put the data dir elsewhere (e.g. --data-dir ../mug-data) or the images in a folder of their own",
                field="data_dir",
            )


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
        max_new_participants: int = 0,
        participants_per_address: int = 0,
        frame_ancestors: tuple[str, ...] = (),
        max_unsent_bytes: int = 64 << 20,
        ice_servers: IceServers | None = None,
        verify_backlog_steps: int = MAX_BACKLOG_STEPS,
    ) -> None:
        self.stager, self.admin_token = stager, admin_token
        self.messages_per_second = messages_per_second
        self.games = [s for s in stager.scenes.values() if isinstance(s, GymScene)]
        for game in self.games:
            game.check_ready()
        data_path = Path(data_dir).resolve()
        _check_data_dir_outside_assets(data_path, self.games)
        try:
            self.store = Store(data_path)
            self.cookie_secret = _cookie_secret(data_path)
        except (OSError, sqlite3.Error) as exc:
            raise ConfigError(
                f"data_dir: cannot keep the study's data in {str(data_path)!r} ({exc}); "
                "check that it is a directory this user can write to",
                field="data_dir",
            ) from None
        self.registry = ParticipantRegistry(stager, self.store, max_message_bytes)
        self.registry.verifier.max_backlog_steps = verify_backlog_steps
        #: Waitrooms and matches; ``matches.status()`` is the admin's live view.
        self.matches = self.registry.matches
        self.matches.ice_servers = [] if ice_servers is None else ice_servers
        self.admissions = Admissions(max_new_participants, participants_per_address)
        self.frame_ancestors = frame_ancestors
        self.send_budget = SendBudget(max_unsent_bytes)
        #: Open WebSockets not (yet) attached to a participant.
        self.unattached: set[ParticipantTab] = set()
        #: Declared image files by (scene id, image name): all that ``/assets/`` serves.
        self.assets = {
            (g.scene_id, name): (g.asset_dir / rel).resolve()  # type: ignore[operator]
            for g in self.games
            for name, rel in g.images.items()
        }
        allow_eval = any(
            spec.config is not None and spec.config.custom_inference_fn is not None
            for g in self.games
            for spec in g.policy_specs.values()
        )
        #: Pyodide's core files, served under ``/pyodide/<sha16>/`` (see :mod:`mug.server.pyodide_files`).
        self.pyodide = pyodide_files(STATIC / "pyodide")
        in_browser = list(self.registry.browser.environment.values())
        if in_browser and not self.pyodide.present:
            raise ConfigError(
                f"a scene runs its environment in the browser, but Pyodide is not built in {str(STATIC / 'pyodide')!r}; "
                "run `make setup` (or `cd js && npm run build`)",
                field="environment",
            )
        self.headers = security_headers(
            frame_ancestors, allow_eval, package_origins(in_browser, self.pyodide.default_package_index())
        )
        self.models = {
            (g.scene_id, agent): Path(spec.config.onnx_path)
            for g in self.games
            for agent in g.browser_policies("deployment")
            for spec in [g.policy_specs[agent]]
            if spec.config is not None
        }
        for g in self.games:  # a P2P match's fill-in models run in the pages too (GymScene.fill_model_path)
            if g.multiplayer_options.mode == "p2p" and g.multiplayer_options.on_partner_loss == "ai":
                for agent, spec in g.fill_policies().items():
                    if spec.config is not None:
                        self.models[(g.scene_id, FILL_MODEL_PREFIX + agent)] = Path(spec.config.onnx_path)
        self._tickers: list[asyncio.Task] = []

    # -- ticking ------------------------------------------------------------------------

    def start_tickers(self) -> None:
        """One ticker task per frame rate used in the study, and the idle sweep (on the running event loop)."""
        loop = asyncio.get_running_loop()
        self._tickers = [loop.create_task(self._run_ticker(fps)) for fps in sorted({g.fps for g in self.games})]
        self._tickers.append(loop.create_task(self._sweep_idle()))
        self._tickers.append(loop.create_task(self._run_checks()))

    async def _run_checks(self) -> None:
        """The match room's checks a few times a second, and the pings that are due (see :meth:`ping_due`)."""
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(CHECK_EVERY_S)
            try:
                self.ping_due(loop.time())
                if self.store.failing_since is None:
                    self.matches.check()
                    self.registry.flush()
            except Exception:
                log.exception("match room check failed")

    def ping_due(self, now: float) -> None:
        """Ping each participant socket ``PING_EVERY_S`` after its own last ping (the first is at its attach), and
        those in entry screening at every check. Each socket keeps its own schedule, so the pings and pongs of
        many participants are spread over the interval instead of all landing between the same two frames.

        Args:
            now: the event loop's time (the clock of ``WebSocket.pinged_at``).
        """
        screening = self.matches.screening
        for participant in self.registry.participants.values():
            connection = participant.connection
            if connection is None:
                continue
            socket = connection.socket
            if participant.participant_id in screening or now - socket.pinged_at >= PING_EVERY_S:
                socket.ping()

    async def _sweep_idle(self) -> None:
        while True:
            await asyncio.sleep(SWEEP_EVERY_S)
            try:
                self.registry.forget_idle()
                self.admissions.forget()
            except Exception:
                log.exception("dropping idle participants failed")

    def stop_tickers(self) -> None:
        """Stop ticking (games pause where they are) and verifying browser-recorded episodes."""
        for ticker in self._tickers:
            ticker.cancel()
        self._tickers.clear()
        self.registry.verifier.close()

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
        if self.store.failing_since is None:
            self.matches.tick(fps)
        self.registry.flush()

    # -- application --------------------------------------------------------------------

    def application(self) -> tornado.web.Application:
        """The Tornado application."""
        from mug.server.admin_live import AdminLiveHandler  # it builds on this module's admin authorisation

        logs.install()
        routes: list[Any] = [
            (r"/", ParticipantPageHandler, {"server": self}),
            (r"/ws", ParticipantSocket, {"server": self}),
            (r"/static/(.*)", StaticFiles, {"path": str(STATIC)}),
            (r"/pyodide/([0-9a-f]{16})/([^/]+)", PyodideFileHandler, {"files": self.pyodide}),
            (r"/models/([A-Za-z0-9_-]+)/([^/]+)/([0-9a-f]{16})\.onnx", ModelHandler, {"server": self}),
            (BUNDLE_ROUTE, PyBundleHandler, {"server": self}),
            (r"/admin", AdminHandler, {"server": self}),
            (r"/admin/live", AdminLiveHandler, {"server": self, "status": self.matches.status}),
            (r"/admin/(steps|responses|participants|events|matches)\.csv", AdminExportHandler, {"server": self}),
            (r"/healthz", HealthHandler),
            (r"/assets/([^/]+)/([^/]+)", AssetHandler, {"server": self}),
        ]
        return tornado.web.Application(
            routes,
            log_function=_log_request,
            static_hash_cache=True,
            compress_response=True,
            default_handler_class=NotFound,
            cookie_secret=self.cookie_secret,
            mug_headers=self.headers,
        )


class _Guarded(tornado.web.RequestHandler):
    """Every handler: the security headers (see :mod:`mug.server.headers`), plain-text errors,
    and exceptions logged with the path only (a query string may hold a token)."""

    def set_default_headers(self) -> None:
        for name, value in self.settings["mug_headers"].items():
            self.set_header(name, value)

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        self.set_header("Content-Type", "text/plain; charset=utf-8")
        self.finish(f"{status_code} {self._reason}\n")

    def log_exception(self, typ: type[BaseException] | None, value: BaseException | None, tb: TracebackType | None) -> None:
        request = self.request
        if isinstance(value, tornado.web.HTTPError):
            if value.log_message:
                log.warning("%d %s %s: %s", value.status_code, request.method, request.path, value.get_message())
        else:
            log.error("uncaught exception in %s %s", request.method, request.path, exc_info=(typ, value, tb))


class _Handler(_Guarded):
    def initialize(self, server: MugServer) -> None:
        self.server = server


class NotFound(_Guarded):
    """Any URL no route serves."""

    def prepare(self) -> None:
        raise tornado.web.HTTPError(404)


class StaticFiles(_Guarded, tornado.web.StaticFileHandler):
    """``/static/``: the client bundle and ONNX Runtime's wasm."""

    async def get(self, path: str, include_body: bool = True) -> None:
        if "\x00" in path:  # os.path would raise on it
            raise tornado.web.HTTPError(404)
        await super().get(path, include_body)


class PyodideFileHandler(_Guarded, PyodideHandler):
    """``/pyodide/<sha16>/<file>``: Pyodide's core files, for environments that run in the browser."""


class AssetHandler(_Handler):
    """``/assets/<scene>/<image name>``: exactly the image files scenes declare in ``assets(...)``, nothing else."""

    def get(self, scene_id: str, name: str) -> None:
        path = self.server.assets.get((scene_id, name))
        if path is None:
            raise tornado.web.HTTPError(404, reason="no such image")
        self.set_header("Content-Type", mimetypes.guess_type(path.name)[0] or "application/octet-stream")
        self.set_header("Cache-Control", "no-cache")
        self.finish(path.read_bytes())


def participant_id_from(handler: tornado.web.RequestHandler) -> str | None:
    """The participant id in the query string (first of ``ID_QUERY_KEYS``), or ``None``."""
    for key in ID_QUERY_KEYS:
        value = handler.get_query_argument(key, None)
        if value is not None:
            return value
    return None


def _cookie_name(participant_id: str) -> str:
    return f"mug_{participant_id}"


def _cookie_options(handler: _Handler) -> dict[str, Any]:
    """``SameSite=Lax`` (a participant coming back through a recruitment site's link keeps the cookie), ``Secure``
    under https (behind a proxy: with ``trust_proxy``, from ``X-Forwarded-Proto``); a study other sites may frame
    gets ``SameSite=None`` under https, which browsers need to send the cookie inside an iframe."""
    secure = handler.request.protocol == "https"
    framed = secure and bool(handler.server.frame_ancestors)
    return {"httponly": True, "secure": secure, "samesite": "None" if framed else "Lax"}


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
        if not known:
            try:
                self.server.admissions.admit(self.request.remote_ip or "")
            except AdmissionError as exc:
                raise tornado.web.HTTPError(exc.status, reason=exc.reason) from None
        participant = registry.get_or_create(participant_id)
        if not known:
            self.set_cookie(_cookie_name(participant_id), participant.token, expires_days=30, **_cookie_options(self))
        elif not same_secret(self.get_cookie(_cookie_name(participant_id)), participant.token):
            raise tornado.web.HTTPError(403, reason="this participant id is already in use in another browser")
        # only the participant's own browser (checked above) sets what matchmaking and screening read
        participant.link(
            {k: v[-1].decode(errors="replace")[:256] for k, v in list(self.request.query_arguments.items())[:32]},
            self.request.headers.get("User-Agent", "")[:1024],
        )
        nonce = secrets.token_urlsafe(16)
        self.set_header("Content-Security-Policy", with_nonce(self.server.headers["Content-Security-Policy"], nonce))
        self.set_header("Cache-Control", "no-store")
        self.finish(participant_page(participant_id, nonce))


class ParticipantSocket(_Handler):
    """``/ws?participant=ID``: the WebSocket of one participant tab (see :mod:`mug.server.websocket`)."""

    async def get(self) -> None:
        participant_id = self.get_query_argument("participant", "")
        cookie = self.get_cookie(_cookie_name(participant_id)) if PARTICIPANT_ID.match(participant_id) else None
        socket = await upgrade(self, MAX_FRAME_BYTES, self.server.send_budget)
        if socket is None:
            return
        tab = ParticipantTab(self.server, socket)
        try:
            tab.open(participant_id, cookie, self.request.headers.get("User-Agent", "")[:1024])
        except Exception:  # a bug of ours: the socket must not stay open unattached
            log.exception("opening a websocket failed")
            tab.close_with({"type": "error", "code": "server_error", "message": "the server failed; reload", "fatal": True})


class ModelHandler(_Handler):
    """``/models/<scene>/<agent>/<sha256[:16]>.onnx``: browser-side policies' model files, at URLs named by
    their content (``GymScene.model_path``), so each can be cached for good; a URL of a model file that
    has changed since is a 404 (a page from before a redeploy reloads rather than run the old model)."""

    async def get(self, scene_id: str, agent: str, digest: str) -> None:
        path = self.server.models.get((scene_id, agent))  # ``agent``: the URL's percent-escapes already undone
        if path is None:
            raise tornado.web.HTTPError(404, reason=f"no browser-side model for scene {scene_id!r}, agent {agent!r}")
        data = await IOLoop.current().run_in_executor(None, path.read_bytes)  # a big model must not stall the games
        if file_sha256(path)[:16] != digest:
            raise tornado.web.HTTPError(404, reason="this model file has changed since the page was loaded; reload the page")
        self.set_header("Content-Type", "application/octet-stream")
        self.set_header("Cache-Control", "public, max-age=31536000, immutable")
        self.finish(data)


class PyBundleHandler(_Handler):
    """``/pybundle/<sha16>.zip``: a Python bundle of a browser-side scene (:mod:`mug.server.pybundle`); only
    those the study declares, named by their content, so cached for good."""

    def get(self, digest: str) -> None:
        bundle = self.server.registry.browser.bundles.get(digest)
        if bundle is None:
            raise tornado.web.HTTPError(404)
        self.set_header("Content-Type", "application/octet-stream" if bundle.name else "application/zip")
        self.set_header("Cache-Control", "public, max-age=31536000, immutable")
        self.finish(bundle.data)


class _AdminBase(_Handler):
    def authorized(self) -> bool:
        """Whether the request is the admin's: a signed session cookie (set when the admin URL with its token is
        opened: a changed token ends old sessions) or the token in an ``X-MUG-Admin-Token`` header."""
        token = self.server.admin_token
        session = hashlib.sha256(b"mug admin session " + token.encode()).hexdigest()
        if same_secret(self.get_query_argument("token", None), token):
            self.set_signed_cookie("mug_admin", session, expires_days=ADMIN_SESSION_DAYS, **_cookie_options(self))
            self.redirect(self.request.path)
            return False
        cookie = self.get_signed_cookie("mug_admin", max_age_days=ADMIN_SESSION_DAYS)  # None unless signed by us
        by_cookie = cookie is not None and hmac.compare_digest(cookie, session.encode())
        if not by_cookie and not same_secret(self.request.headers.get("X-MUG-Admin-Token"), token):
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
    """``/admin/<table>.csv``: download steps, responses, participants, events or matches, streamed.

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


class HealthHandler(_Guarded):
    """``/healthz``: the server is up."""

    def get(self) -> None:
        self.finish("ok")
