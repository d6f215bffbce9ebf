"""``mug.deploy``: serve a study to participants; the ``Deployment`` handle."""

from __future__ import annotations

import asyncio
import errno
import gc
import logging
import re
import secrets
import signal
import socket
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import tornado.httpserver
import tornado.netutil

from mug.data import matches_frame, participants_frame, responses_frame, steps_frame
from mug.errors import ConfigError
from mug.scenes.base import Scene
from mug.scenes.stager import Stager
from mug.scenes.survey import SurveyScene
from mug.server.app import MAX_FRAME_BYTES, MugServer
from mug.server.headers import check_frame_ancestors
from mug.server.http import GuardedHTTPServer
from mug.server.matches.signal import IceServers, check_ice_servers
from mug.server.verify import MAX_BACKLOG_STEPS

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["Deployment", "deploy"]

log = logging.getLogger("mug.server")

#: What an admin token may hold: it travels in a URL and a header, so URL-safe characters only.
ADMIN_TOKEN = re.compile(r"^[A-Za-z0-9_.~-]{8,128}$")


class Deployment:
    """A running study server.

    Attributes:
        url: the participant link (add ``?PROLIFIC_PID=...`` or ``?participant=...``).
        admin_url: the admin view (needs the admin token: ``admin_url + "?token=" + admin_token``).
        data_dir: where ``mug.sqlite`` lives.
    """

    def __init__(
        self, server: MugServer, http: tornado.httpserver.HTTPServer, url: str, admin_token: str, data_dir: Path
    ) -> None:
        self._server, self._http = server, http
        self.url, self.admin_url, self.admin_token, self.data_dir = url, url + "admin", admin_token, data_dir
        self.stopped = False

    @property
    def participants(self) -> pd.DataFrame:
        """Every participant (a DataFrame, see :func:`mug.data.participants_frame`): id, start and last
        change (UTC datetimes), current scene, progress, step count, completed, completion code."""
        self._server.store.commit()
        return participants_frame(self._server.store.participants())

    @property
    def matches(self) -> pd.DataFrame:
        """Every match so far (a DataFrame, see :func:`mug.data.matches_frame`): id, scene, seats
        (agent -> participant id), formed / started / ended, end reason."""
        self._server.store.commit()
        return matches_frame(self._server.store.matches())

    def data(self, scene_id: str) -> pd.DataFrame:
        """Recorded data of one scene as a typed DataFrame (the columns of :func:`mug.load`): the survey
        responses of a survey scene, else every step (one typed column per agent for actions, sources, rewards;
        a match scene's steps once per match, with ``match_id`` and each human seat's participant in its source)."""
        scene = self._server.stager.scenes.get(scene_id)
        if scene is None:
            raise ConfigError(
                f"data: the study has no scene {scene_id!r}; scenes: {sorted(self._server.stager.scenes)}", field="scene_id"
            )
        self._server.store.commit()
        if isinstance(scene, SurveyScene):
            return responses_frame(self._server.store.responses(scene_id))
        return steps_frame(self._server.store.steps(scene_id))

    def stop(self) -> None:
        """Stop serving (on the loop that runs the server) and close the data file."""
        if self.stopped:
            return
        self.stopped = True
        self._server.stop_tickers()
        self._http.stop()
        for participant in self._server.registry.participants.values():
            if participant.connection is not None:
                participant.connection.close()
        self._server.store.close()

    def __repr__(self) -> str:
        return f"Deployment(url={self.url!r}, data_dir={str(self.data_dir)!r}, stopped={self.stopped})"


def _as_stager(study_or_scene: Any) -> Stager:
    if isinstance(study_or_scene, Stager):
        return study_or_scene
    if isinstance(study_or_scene, Scene):
        return Stager([study_or_scene])
    raise ConfigError(f"deploy: expected a mug.Stager or a scene, got {type(study_or_scene).__name__}", field="study")


def _in_running_loop() -> bool:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True


def _bind(host: str, port: int) -> list[socket.socket]:
    """The listening sockets; ``ConfigError`` saying what to change when the address cannot be had."""
    try:
        return tornado.netutil.bind_sockets(port, address=host, backlog=1024)
    except socket.gaierror as exc:
        raise ConfigError(
            f"host: cannot listen on {host!r} ({exc.strerror}); use an address of this machine, e.g. 127.0.0.1", field="host"
        ) from None
    except OSError as exc:
        if exc.errno == errno.EADDRINUSE:
            raise ConfigError(
                f"port: {port} on {host} is already in use (another server?); stop it, or choose another port (0 picks a free one)",
                field="port",
            ) from None
        if exc.errno == errno.EACCES:
            raise ConfigError(
                f"port: {port} needs special rights on this machine; choose a port from 1024 up", field="port"
            ) from None
        if exc.errno == errno.EADDRNOTAVAIL:
            raise ConfigError(
                f"host: {host!r} is not an address of this machine; use e.g. 127.0.0.1 or 0.0.0.0", field="host"
            ) from None
        raise ConfigError(f"cannot listen on {host} port {port}: {exc.strerror}", field="port") from None


def _start(stager: Stager, host: str, port: int, data_path: Path, token: str, options: dict[str, Any]) -> Deployment:
    """Start serving on the running event loop (``options``: ``MugServer``'s limits, and ``trust_proxy``).

    The port is taken before anything is written: a mistake leaves nothing on disk.
    """
    trust_proxy = options.pop("trust_proxy")
    sockets = _bind(host, port)
    try:
        server = MugServer(stager, data_path, token, **options)
    except BaseException:
        for sock in sockets:
            sock.close()
        raise
    http = GuardedHTTPServer(server.application(), xheaders=trust_proxy)
    http.add_sockets(sockets)
    bound = sockets[0].getsockname()[1]
    shown_host = f"[{host}]" if ":" in host else host
    handle = Deployment(server, http, f"http://{shown_host}:{bound}/", token, data_path)
    server.start_tickers()
    print(f"MUG study: {handle.url}\nadmin: {handle.admin_url}?token={token}\ndata: {data_path}", flush=True)
    return handle


def _check_admin_token(token: Any) -> None:
    """``ConfigError`` for a token that would break the admin URL (it is not echoed: it is a secret)."""
    if isinstance(token, str) and ADMIN_TOKEN.match(token):
        return
    if not isinstance(token, str):
        problem = f"got a {type(token).__name__}"
    elif bad := sorted({repr(c) for c in token if not ADMIN_TOKEN.match(c * 8)}):
        problem = f"the one given contains {', '.join(bad)}"
    else:
        problem = f"the one given has {len(token)} characters"
    raise ConfigError(
        f"deploy: admin_token must be 8-128 letters, digits, '_', '.', '~' or '-' (it goes into a URL); {problem}",
        field="admin_token",
    )


def _check_count(name: str, value: Any, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= high:
        raise ConfigError(f"deploy: {name} must be an integer from 0 (no limit) to {high}, got {value!r}", field=name)
    return value


def _check_backlog(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 10**9:
        raise ConfigError(
            f"deploy: verify_backlog_steps must be an integer from 0 (no verification while serving) to 10**9, got {value!r}",
            field="verify_backlog_steps",
        )
    return value


def deploy(
    study_or_scene: Any,
    host: str = "127.0.0.1",
    port: int = 8000,
    data_dir: str | Path = "mug-data",
    admin_token: str | None = None,
    max_message_bytes: int = 256 * 1024,
    messages_per_second: float = 120.0,
    max_new_participants: int = 10_000,
    participants_per_address: int = 100,
    trust_proxy: bool = False,
    frame_ancestors: Iterable[str] | None = None,
    ice_servers: IceServers | None = None,
    verify_backlog_steps: int = MAX_BACKLOG_STEPS,
) -> Deployment:
    """Serve a study (a ``Stager``, or one scene) to participants.

    Inside a running event loop (a Jupyter kernel) the server runs on that
    loop and this returns the :class:`Deployment` at once. From a script it
    serves until interrupted (Ctrl-C or SIGTERM), then returns the stopped
    handle. ``port=0`` picks a free port. The admin token is random unless
    given (8-128 letters, digits, ``_ . ~ -``); the admin link is printed,
    never logged.

    ``max_message_bytes`` caps one message from a participant's page (larger
    ones get an ``error`` reply; raise it for browser-side policies with large
    state tensors: each act carries them), and ``messages_per_second`` is each
    tab's sustained rate (bursts of twice that are allowed; a 60 fps scene
    sends 60 acts a second).

    ``max_new_participants`` is how many new participants this deployment
    starts (then new ids get 503), ``participants_per_address`` how many one
    network address may start an hour (then 429; a lab whose machines share
    one address may need more); ``0`` turns either off. Behind a reverse
    proxy set ``trust_proxy=True``: the client's address and scheme then come
    from the proxy's ``X-Forwarded-For``/``X-Real-Ip`` and
    ``X-Forwarded-Proto`` headers (cookies get ``Secure`` under https), else
    every participant seems to come from the proxy. Only with a proxy in
    front: a direct client could send those headers itself.
    ``frame_ancestors`` lists the origins (``"https://host"``) that may show
    the study in an iframe; by default no site may.

    ``ice_servers`` are the STUN/TURN servers (``RTCIceServer`` dicts: ``{"urls": "turn:host:3478",
    "username": ..., "credential": ...}``) the pages of a peer-to-peer match use, or a callable of the
    participant id returning them, called for each page that opens the mesh (for short-lived TURN
    credentials, e.g. the HMAC of the TURN REST scheme; it runs on the server's event loop, so it must
    return at once: no network calls; keep secrets out of the study's code). By default none: peers find each other on the
    same machine or network only, and a pair that does not connect plays through this server (relay).

    ``verify_backlog_steps``: how many recorded steps of browser-side episodes may wait for their verification
    (a CPython re-simulation in a child process at low priority) before further episodes are stored unverified,
    each with a ``verification_skipped`` event (``mug verify DATA_DIR`` verifies them later); this bounds the
    memory of a server with more sessions than its spare CPU verifies. ``0``: no verification while serving.
    """
    stager = _as_stager(study_or_scene)
    if (
        isinstance(max_message_bytes, bool)
        or not isinstance(max_message_bytes, int)
        or not 1024 <= max_message_bytes <= MAX_FRAME_BYTES
    ):
        raise ConfigError(
            f"deploy: max_message_bytes must be an integer from 1024 to {MAX_FRAME_BYTES}, got {max_message_bytes!r}",
            field="max_message_bytes",
        )
    if (
        isinstance(messages_per_second, bool)
        or not isinstance(messages_per_second, (int, float))
        or not 1 <= messages_per_second <= 10_000
    ):
        raise ConfigError(
            f"deploy: messages_per_second must be a number from 1 to 10000, got {messages_per_second!r}",
            field="messages_per_second",
        )
    if admin_token is not None:
        _check_admin_token(admin_token)
    if not isinstance(trust_proxy, bool):
        raise ConfigError(f"deploy: trust_proxy must be True or False, got {trust_proxy!r}", field="trust_proxy")
    options = {
        "max_message_bytes": max_message_bytes,
        "messages_per_second": float(messages_per_second),
        "max_new_participants": _check_count("max_new_participants", max_new_participants, 10**9),
        "participants_per_address": _check_count("participants_per_address", participants_per_address, 10**9),
        "frame_ancestors": check_frame_ancestors(frame_ancestors),
        "trust_proxy": trust_proxy,
        "ice_servers": ice_servers if ice_servers is None or callable(ice_servers) else check_ice_servers(ice_servers),
        "verify_backlog_steps": _check_backlog(verify_backlog_steps),
    }
    token = admin_token or secrets.token_urlsafe(16)
    data_path = Path(data_dir).resolve()
    if _in_running_loop():  # a notebook kernel: the researcher's heap is theirs, no gc.freeze() here
        return _start(stager, host, port, data_path, token, options)
    handles: list[Deployment] = []

    async def serve() -> None:
        handle = _start(stager, host, port, data_path, token, options)
        gc.freeze()  # a process of its own: what start-up made is long-lived; keep full collections short
        handles.append(handle)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        try:
            await stop.wait()
        finally:
            handle.stop()  # on the loop: open tabs get a close frame
            await asyncio.sleep(0.1)

    try:
        asyncio.run(serve())
    finally:
        if handles:
            handles[0].stop()
            print("stopped", flush=True)
    return handles[0]
