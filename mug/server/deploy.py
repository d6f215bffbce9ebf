"""``mug.deploy``: serve a study to participants; the ``Deployment`` handle."""

from __future__ import annotations

import asyncio
import gc
import logging
import secrets
import signal
from pathlib import Path
from typing import TYPE_CHECKING, Any

import tornado.httpserver
import tornado.netutil

from mug.data import participants_frame, responses_frame, steps_frame
from mug.errors import ConfigError
from mug.scenes.base import Scene
from mug.scenes.stager import Stager
from mug.scenes.survey import SurveyScene
from mug.server.app import MAX_FRAME_BYTES, MugServer

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["Deployment", "deploy"]

log = logging.getLogger("mug.server")


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

    def data(self, scene_id: str) -> pd.DataFrame:
        """Recorded data of one scene as a typed DataFrame (the columns of :func:`mug.load`): the survey
        responses of a survey scene, else every step (one typed column per agent for actions, sources, rewards)."""
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


def _start(stager: Stager, host: str, port: int, data_path: Path, token: str, limits: dict[str, Any]) -> Deployment:
    """Start serving on the running event loop (``limits``: ``MugServer``'s message limits)."""
    server = MugServer(stager, data_path, token, **limits)
    sockets = tornado.netutil.bind_sockets(port, address=host, backlog=1024)
    http = tornado.httpserver.HTTPServer(server.application())
    http.add_sockets(sockets)
    bound = sockets[0].getsockname()[1]
    shown_host = f"[{host}]" if ":" in host else host
    handle = Deployment(server, http, f"http://{shown_host}:{bound}/", token, data_path)
    server.start_tickers()
    gc.freeze()  # what start-up made is long-lived: keep full collections short while serving
    print(f"MUG study: {handle.url}\nadmin: {handle.admin_url}?token={token}\ndata: {data_path}", flush=True)
    return handle


def deploy(
    study_or_scene: Any,
    host: str = "127.0.0.1",
    port: int = 8000,
    data_dir: str | Path = "mug-data",
    admin_token: str | None = None,
    max_message_bytes: int = 256 * 1024,
    messages_per_second: float = 120.0,
) -> Deployment:
    """Serve a study (a ``Stager``, or one scene) to participants.

    Inside a running event loop (a Jupyter kernel) the server runs on that
    loop and this returns the :class:`Deployment` at once. From a script it
    serves until interrupted (Ctrl-C or SIGTERM), then returns the stopped
    handle. ``port=0`` picks a free port. The admin token is random unless
    given; the admin link is printed, never logged.

    ``max_message_bytes`` caps one message from a participant's page (larger
    ones get an ``error`` reply; raise it for browser-side policies with large
    state tensors: each act carries them), and ``messages_per_second`` is each
    tab's sustained rate (bursts of twice that are allowed; a 60 fps scene
    sends 60 acts a second).
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
    limits = {"max_message_bytes": max_message_bytes, "messages_per_second": float(messages_per_second)}
    token = admin_token or secrets.token_urlsafe(16)
    data_path = Path(data_dir).resolve()
    if _in_running_loop():
        return _start(stager, host, port, data_path, token, limits)
    handles: list[Deployment] = []

    async def serve() -> None:
        handle = _start(stager, host, port, data_path, token, limits)
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
