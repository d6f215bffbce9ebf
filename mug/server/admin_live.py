"""``/admin/live``: the matches of a deployment as they are now, for the admin page's live view.

The admin page (:func:`mug.server.page.admin_page`) loads ``static/admin.js``, which asks this
route every 2 seconds and redraws its tables without reloading the page. The
answer is JSON, one entry per multi-human scene, in the shape of ``matches.status()``::

    {scene_id: {"waiting": int,                # participants in the waitroom now
                "longest_wait_s": float,       # the longest of their waits so far
                "running": [{"match_id", "members": {agent: participant_id}, "episode", "step", "started"}],
                "finished": [{"match_id", "members", "ended", "reason"}]}}   # the last 50

(times are Unix seconds). Like ``/admin`` it needs the admin cookie or token; without: 403.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from typing import Any

import tornado.web

from mug.server.app import _AdminBase

__all__ = ["AdminLiveHandler", "MatchStatus", "no_matches"]

log = logging.getLogger("mug.server")

#: What a status provider returns: the live state per multi-human scene (shape in the module docstring).
MatchStatus = dict[str, dict[str, Any]]


def no_matches() -> dict[str, Any]:
    """One scene's status while nobody waits and no match has run."""
    return {"waiting": 0, "longest_wait_s": 0.0, "running": [], "finished": []}


class AdminLiveHandler(_AdminBase):
    """``/admin/live``: ``status()`` as JSON, for the admin (see the module docstring)."""

    def initialize(self, server: Any, status: Callable[[], MatchStatus]) -> None:  # type: ignore[override]
        super().initialize(server)
        self.status = status

    def get(self) -> None:
        if not self.authorized():
            return
        try:
            body = json.dumps(self.status(), default=str, allow_nan=False)
        except Exception:
            log.exception("reading the matches' status for the admin failed")
            raise tornado.web.HTTPError(500, reason="reading the matches' status failed; see the server log") from None
        self.set_header("Content-Type", "application/json; charset=utf-8")
        self.set_header("Cache-Control", "no-store")
        self.finish(body)
