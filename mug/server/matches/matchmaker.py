"""Choosing groups and seats: first come first served, a researcher's matchmaker, kept groups, seat assignment.

A researcher's code never wedges the waitroom: a matchmaker or seats function
that raises or answers something unusable is logged (with what it returned)
and the default is used for that decision.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Callable, Sequence
from typing import Any

from mug.scenes.matching import Candidate

__all__ = ["choose_group", "assign_seats"]

log = logging.getLogger("mug.server")


def _fifo(candidates: Sequence[Candidate], seats: int) -> list[str] | None:
    return [c.participant_id for c in candidates[:seats]] if len(candidates) >= seats else None


def choose_group(
    candidates: Sequence[Candidate], seats: int, matchmaker: Callable[..., Any] | None, scene_id: str
) -> tuple[list[str] | None, str | None]:
    """A group of ``seats`` candidates to start now (or ``None`` to wait), and the matchmaker's error if it failed.

    ``candidates`` are oldest first. A custom ``matchmaker`` that raises or returns anything
    but ``None`` or ``seats`` distinct ids of candidates falls back to first come, first served.
    """
    if matchmaker is None:
        return _fifo(candidates, seats), None
    ids = {c.participant_id for c in candidates}
    try:
        answer = matchmaker(list(candidates), seats)
    except Exception as exc:
        problem = f"raised {type(exc).__name__}: {exc}"
    else:
        if answer is None:
            return None, None
        group = list(answer) if isinstance(answer, (list, tuple)) else None
        if (
            group is not None
            and all(isinstance(g, str) for g in group)  # e.g. not the Candidate objects themselves
            and len(group) == seats
            and len(set(group)) == seats
            and set(group) <= ids
        ):
            return group, None
        problem = f"returned {answer!r:.500}, not None or a list of {seats} distinct waiting participant ids (str)"
    log.error("scene %s: the matchmaker %s; the group is formed first come, first served", scene_id, problem)
    return _fifo(candidates, seats), problem


def assign_seats(
    group: Sequence[str], agents: Sequence[str], seed: int, match_id: str, seats_fn: Callable[..., Any] | None
) -> tuple[dict[str, str], str | None]:
    """``{agent: participant_id}`` for ``group`` among the Human ``agents`` (fewer members than agents leaves
    seats empty), and the seats function's error if it failed.

    Default: the agents shuffled by ``random.Random(f"{seed}:{match_id}")``; the members, sorted by id,
    take the first of them in turn. The same study seed and match id give the same seats.
    """
    if seats_fn is not None:
        try:
            answer = seats_fn(list(group), list(agents), seed)
        except Exception as exc:
            problem = f"raised {type(exc).__name__}: {exc}"
        else:
            if isinstance(answer, dict) and set(answer) <= set(agents) and sorted(map(str, answer.values())) == sorted(group):
                return {str(a): str(p) for a, p in answer.items()}, None
            problem = f"returned {answer!r}, not a dict of Human agent -> participant covering {sorted(group)}"
        log.error("the seats function %s; seats are assigned from the study seed", problem)
    else:
        problem = None
    order = list(agents)
    random.Random(f"{seed}:{match_id}").shuffle(order)
    return dict(zip(order, sorted(group))), problem
