"""A study's data as typed pandas DataFrames: ``mug.load(data_dir)``.

The tables (one row per recorded step, survey response, participant, event):

* ``steps``: ``participant_id``, ``session_id``, ``scene_id`` (text), ``episode``,
  ``step``, ``decision`` (integers), ``time`` (UTC datetime), ``match_id`` (text; missing
  for one-participant games), then per agent
  ``action_<agent>`` (integer for discrete actions, float, or a list of numbers for
  vector actions), ``source_<agent>`` (text: ``human``, ``policy``, ``default``, ...;
  in a match a human seat's source names its participant, ``human:<participant_id>`` or
  ``default:<participant_id>``, and a match's rows have the match id as ``participant_id``),
  ``reward_<agent>`` (float, NaN stays NaN), ``terminated_<agent>`` and
  ``truncated_<agent>`` (booleans); a cell is missing (``<NA>``/NaN) where the agent
  did not act in that step. Where recorded, ``logits_<agent>``,
  ``state_<agent>_<name>`` (each recurrent state output, flattened in C order) and
  ``observation_<agent>`` are float64 arrays (an observation that is not one array,
  such as a dict observation, is JSON text), ``infos`` is JSON text (free-form), and
  ``verified`` (boolean) says whether a CPython re-simulation of a browser-side
  scene's episode gave this step's observation, rewards and terminations (true),
  or not (false); it is missing where nothing was verified (server-side scenes,
  episodes not verified yet: see ``mug verify``).
* ``responses``: ``participant_id``, ``scene_id``, ``time``, then ``answer_<question>``
  per question (numbers, text, or lists for multiple choice).
* ``participants``: ``participant_id``, ``created``, ``updated`` (datetimes),
  ``scene_id``, ``completed``, ``scene_index``, ``scenes``, ``steps``, ``completion_code``.
* ``events``: ``participant_id``, ``session_id``, ``scene_id``, ``kind``, ``time``,
  ``data`` (JSON text: scene and episode boundaries, sessions, errors, ...; for matches
  ``waitroom_joined``, ``waitroom_left`` {reason, waited_s}, ``waitroom_timeout``
  {waited_s, on_timeout}, ``matched`` {match_id, agent, waited_s}, ``partner_lost``,
  ``seat_ai``, ``seat_returned``, ``excluded`` {reason, values}, ``hidden_warning``,
  ``visibility`` {hidden}, ``screening`` {passed, values}, ``interrupted``).
* ``matches``: ``match_id``, ``scene_id`` (text), ``seats`` (JSON text: Human agent ->
  participant id; seats played by ``fill_with`` from the start are absent), ``formed``,
  ``started``, ``ended`` (UTC datetimes; ``ended`` missing while running) and ``end_reason``
  (``done``, ``partner_lost``, ``abandoned``, ``error``, ``interrupted``).

The Parquet export (``mug export --format parquet``) writes the same columns
with the same types. Needs pandas (``pip install 'mug[data]'``).
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from mug.errors import MugError

if TYPE_CHECKING:
    import pandas as pd
    import pyarrow as pa

__all__ = [
    "StudyData",
    "StepSchema",
    "load",
    "steps_frame",
    "responses_frame",
    "participants_frame",
    "events_frame",
    "matches_frame",
]

STEP_KEYS = ("participant_id", "session_id", "scene_id", "episode", "step", "decision", "time", "match_id")
#: Per-agent step columns: the column prefix and the record field it comes from.
PER_AGENT = (
    ("action", "actions"),
    ("source", "sources"),
    ("reward", "rewards"),
    ("terminated", "terminated"),
    ("truncated", "truncated"),
)


def _pandas() -> Any:
    try:
        import pandas as pd
    except ImportError as exc:
        raise MugError("typed data needs pandas: pip install 'mug[data]'") from exc
    return pd


def json_text(value: Any) -> str | None:
    """``value`` as compact, key-sorted JSON text (``None`` stays ``None``; NaN stays NaN)."""
    return None if value is None else json.dumps(value, sort_keys=True, separators=(",", ":"))


def _times(pd: Any, values: list[Any]) -> Any:
    return pd.to_datetime(pd.Series(values, dtype="float64"), unit="s", utc=True)


def _numbers(value: Any) -> np.ndarray | None:
    """A recorded tensor (nested lists; non-finite values may be the strings ``"nan"``, ``"inf"``) as a
    flat float64 array, or ``None`` if it is not one."""
    if value is None or isinstance(value, (dict, str)):
        return None
    try:
        return np.asarray(value, dtype=np.float64).ravel()
    except (TypeError, ValueError):
        return None


@dataclass
class StepSchema:
    """The step columns of a study, read from its steps: the agents (in order of appearance), the kind of
    each one's actions (``"int"``, ``"float"`` or ``"list"``), which agents have recorded logits, the
    names of each agent's recorded states, and each recorded observation's kind (``"list"`` for a
    numeric array, else ``"json"``)."""

    agents: list[str] = field(default_factory=list)
    action_kinds: dict[str, str] = field(default_factory=dict)
    logits: list[str] = field(default_factory=list)
    states: dict[str, list[str]] = field(default_factory=dict)
    observations: dict[str, str] = field(default_factory=dict)

    @classmethod
    def of(cls, steps: Iterable[dict[str, Any]]) -> StepSchema:
        """Read the schema from steps (one pass)."""
        schema = cls()
        kinds, rank = schema.action_kinds, {"int": 0, "float": 1, "list": 2}
        for step in steps:
            for agent, action in (step.get("actions") or {}).items():
                if isinstance(action, list):
                    kind = "list"
                else:
                    kind = "int" if isinstance(action, int) and not isinstance(action, bool) else "float"
                if agent not in kinds or rank[kind] > rank[kinds[agent]]:
                    kinds[agent] = kind
            for agent, out in (step.get("policy_outputs") or {}).items():
                if out.get("logits") is not None and agent not in schema.logits:
                    schema.logits.append(agent)
                names = schema.states.setdefault(agent, [])
                names += [n for n in out.get("states") or {} if n not in names]
            for agent, obs in (step.get("observations") or {}).items():
                if schema.observations.get(agent) != "json":
                    schema.observations[agent] = "list" if _numbers(obs) is not None else "json"
        schema.agents = list(kinds)
        schema.states = {a: names for a, names in schema.states.items() if names}
        return schema

    def _tensor_columns(self) -> list[tuple[str, str]]:
        """(column, arrow kind) of the logits, state and observation columns."""
        out = [(f"logits_{a}", "list") for a in self.logits]
        out += [(f"state_{a}_{n}", "list") for a, names in self.states.items() for n in names]
        out += [(f"observation_{a}", kind) for a, kind in self.observations.items()]
        return out

    def columns(self) -> list[str]:
        """Every steps column, in order."""
        per_agent = [f"{prefix}_{a}" for a in self.agents for prefix, _ in PER_AGENT]
        return [*STEP_KEYS, *per_agent, *(c for c, _ in self._tensor_columns()), "infos", "verified"]

    def arrow(self) -> pa.Schema:
        """The Parquet (Arrow) schema of the steps table."""
        import pyarrow as pa

        vector = pa.list_(pa.float64())
        action = {"int": pa.int64(), "float": pa.float64(), "list": vector}
        fields = [pa.field(k, pa.string()) for k in STEP_KEYS[:3]]
        fields += [pa.field(k, pa.int64()) for k in STEP_KEYS[3:6]]
        fields.append(pa.field("time", pa.timestamp("ns", tz="UTC")))
        fields.append(pa.field("match_id", pa.string()))
        for agent in self.agents:
            fields += [
                pa.field(f"action_{agent}", action[self.action_kinds[agent]]),
                pa.field(f"source_{agent}", pa.string()),
                pa.field(f"reward_{agent}", pa.float64()),
                pa.field(f"terminated_{agent}", pa.bool_()),
                pa.field(f"truncated_{agent}", pa.bool_()),
            ]
        fields += [pa.field(c, vector if kind == "list" else pa.string()) for c, kind in self._tensor_columns()]
        fields.append(pa.field("infos", pa.string()))
        fields.append(pa.field("verified", pa.bool_()))
        return pa.schema(fields)


def steps_frame(steps: list[dict[str, Any]], schema: StepSchema | None = None) -> pd.DataFrame:
    """Recorded steps (as ``Store.iter_steps`` gives them) as a typed DataFrame (see module docstring)."""
    pd = _pandas()
    schema = schema or StepSchema.of(steps)
    data: dict[str, Any] = {k: pd.Series([s[k] for s in steps], dtype="string") for k in STEP_KEYS[:3]}
    data.update({k: pd.Series([s[k] for s in steps], dtype="int64") for k in STEP_KEYS[3:6]})
    data["time"] = _times(pd, [s["time"] for s in steps])
    data["match_id"] = pd.Series([s.get("match_id") for s in steps], dtype="string")
    for agent in schema.agents:
        for prefix, source in PER_AGENT:
            values = [(s.get(source) or {}).get(agent) for s in steps]
            if prefix == "action":
                kind = schema.action_kinds[agent]
                column = (
                    pd.Series(values, dtype="object")
                    if kind == "list"
                    else pd.Series(values, dtype="Int64" if kind == "int" else "float64")
                )
            elif prefix == "source":
                column = pd.Series(values, dtype="string")
            elif prefix == "reward":
                column = pd.to_numeric(pd.Series(values, dtype="object"), errors="coerce").astype("float64")
            else:
                column = pd.Series(values, dtype="boolean")
            data[f"{prefix}_{agent}"] = column
    outputs = [s.get("policy_outputs") or {} for s in steps]
    for agent in schema.logits:
        data[f"logits_{agent}"] = pd.Series([_numbers((o.get(agent) or {}).get("logits")) for o in outputs], dtype="object")
    for agent, names in schema.states.items():
        for name in names:
            values = [_numbers(((o.get(agent) or {}).get("states") or {}).get(name)) for o in outputs]
            data[f"state_{agent}_{name}"] = pd.Series(values, dtype="object")
    for agent, kind in schema.observations.items():
        values = [(s.get("observations") or {}).get(agent) for s in steps]
        data[f"observation_{agent}"] = pd.Series(
            [_numbers(v) for v in values] if kind == "list" else [json_text(v) for v in values], dtype="object"
        )
    data["infos"] = pd.Series([json_text(s.get("infos")) for s in steps], dtype="object")
    data["verified"] = pd.Series([s.get("verified") for s in steps], dtype="boolean")
    return pd.DataFrame(data, columns=schema.columns())


def _answer_column(pd: Any, values: list[Any]) -> Any:
    kinds = {type(v) for v in values if v is not None}
    dtype = {
        frozenset({int}): "Int64",
        frozenset({float}): "float64",
        frozenset({int, float}): "float64",
        frozenset({str}): "string",
        frozenset({bool}): "boolean",
        frozenset({list}): "object",
        frozenset(): "object",
    }.get(frozenset(kinds))
    if dtype is None:  # mixed kinds in one question: JSON text
        return pd.Series([json_text(v) for v in values], dtype="object")
    return pd.Series(values, dtype=dtype)


def responses_frame(responses: list[dict[str, Any]]) -> pd.DataFrame:
    """Survey responses as a DataFrame: one ``answer_<question>`` column per question."""
    pd = _pandas()
    questions = list(dict.fromkeys(q for r in responses for q in r["answers"]))
    data: dict[str, Any] = {
        "participant_id": pd.Series([r["participant_id"] for r in responses], dtype="string"),
        "scene_id": pd.Series([r["scene_id"] for r in responses], dtype="string"),
        "time": _times(pd, [r["time"] for r in responses]),
    }
    for q in questions:
        data[f"answer_{q}"] = _answer_column(pd, [r["answers"].get(q) for r in responses])
    return pd.DataFrame(data)


def participants_frame(participants: list[dict[str, Any]]) -> pd.DataFrame:
    """Participants (``Store.participants()``) as a DataFrame with datetimes."""
    pd = _pandas()
    column = lambda k, dtype: pd.Series([p[k] for p in participants], dtype=dtype)  # noqa: E731
    return pd.DataFrame(
        {
            "participant_id": column("participant_id", "string"),
            "created": _times(pd, [p["created"] for p in participants]),
            "updated": _times(pd, [p["updated"] for p in participants]),
            "scene_id": column("scene_id", "string"),
            "completed": column("completed", "bool"),
            "scene_index": column("scene_index", "int64"),
            "scenes": column("scenes", "int64"),
            "steps": column("steps", "int64"),
            "completion_code": column("completion_code", "string"),
        }
    )


def events_frame(events: list[dict[str, Any]]) -> pd.DataFrame:
    """Non-step events as a DataFrame; ``data`` as JSON text."""
    pd = _pandas()
    data = {k: pd.Series([e[k] for e in events], dtype="string") for k in ("participant_id", "session_id", "scene_id", "kind")}
    return pd.DataFrame(
        {
            **data,
            "time": _times(pd, [e["time"] for e in events]),
            "data": pd.Series([json_text(e["data"]) for e in events], dtype="object"),
        }
    )


def matches_frame(matches: list[dict[str, Any]]) -> pd.DataFrame:
    """Matches (``Store.matches()``) as a DataFrame: seats as JSON text, datetimes."""
    pd = _pandas()
    return pd.DataFrame(
        {
            "match_id": pd.Series([m["match_id"] for m in matches], dtype="string"),
            "scene_id": pd.Series([m["scene_id"] for m in matches], dtype="string"),
            "seats": pd.Series([json_text(m["seats"]) for m in matches], dtype="object"),
            "formed": _times(pd, [m["formed"] for m in matches]),
            "started": _times(pd, [m["started"] for m in matches]),
            "ended": _times(pd, [m["ended"] for m in matches]),
            "end_reason": pd.Series([m["end_reason"] for m in matches], dtype="string"),
        }
    )


@dataclass
class StudyData:
    """Every table of a study (see :mod:`mug.data`)."""

    steps: pd.DataFrame
    responses: pd.DataFrame
    participants: pd.DataFrame
    events: pd.DataFrame
    matches: pd.DataFrame


def load(data_dir: str | Path) -> StudyData:
    """Read a deployment's data directory (``mug-data`` by default) into typed pandas DataFrames.

    Safe while the server runs (a read-only snapshot of what was committed). ``mug.load(d).steps``
    has one typed column per agent for actions, sources and rewards, and UTC datetimes for times;
    see :mod:`mug.data` for every column.
    """
    from mug.server.store import Store

    data_dir = Path(data_dir)
    if not (data_dir / "mug.sqlite").is_file():
        raise MugError(f"load: {str(data_dir)!r} holds no MUG data (no mug.sqlite)")
    _pandas()
    store = Store(data_dir, readonly=True)
    try:
        return StudyData(
            steps=steps_frame(store.steps()),
            responses=responses_frame(store.responses()),
            participants=participants_frame(store.participants()),
            events=events_frame(store.events()),
            matches=matches_frame(store.matches()),
        )
    finally:
        store.close()
