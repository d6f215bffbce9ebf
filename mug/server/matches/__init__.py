"""Matches: participants playing one game together (waitroom, matchmaking, seats, partner loss, monitoring).

- :mod:`~mug.server.matches.room`: :class:`MatchRoom`, every waitroom and match of a deployment,
  their ticking, restart handling and the admin's live :meth:`MatchRoom.status`;
- :mod:`~mug.server.matches.waitroom`: waiting, timeouts, forming groups;
- :mod:`~mug.server.matches.matchmaker`: groups (first come first served or the researcher's) and seats;
- :mod:`~mug.server.matches.match`: one match, its members, partner loss and exclusion;
- :mod:`~mug.server.matches.session`: the engine's game with seats that change hands;
- :mod:`~mug.server.matches.monitor`: what the server measures per participant (round trips, visibility).

The engine does not learn about waitrooms; the study flow learns only that a scene is
played in a match (``GymScene.is_match``).
"""

from mug.server.matches.match import Match
from mug.server.matches.monitor import Monitor
from mug.server.matches.room import MatchRoom
from mug.server.matches.session import MatchSession

__all__ = ["Match", "MatchRoom", "MatchSession", "Monitor"]
