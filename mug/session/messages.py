"""The message vocabulary between the session engine and a client (notebook widget or participant page).

Messages are JSON objects with a ``type``. Binary data (frames, tensors)
travels beside them as a list of buffers: anywidget sends them natively; over
a WebSocket both go in one binary frame, the *envelope*::

    b"MUG1" | uint32 little-endian header length | header JSON (UTF-8) | buffer 0 | buffer 1 | ...

where the header is ``{"message": {...}, "buffers": [length0, length1, ...]}``
(encoded and parsed with ``orjson``: a participant server does both hundreds of
times per frame tick; a non-finite float goes out as ``null``, as in the browser).
In Pyodide, where ``orjson`` and NumPy may be missing, the standard ``json``
module parses and tensors are :class:`FlatTensor` values (same checks).
A tensor inside a message is a reference ``{"buffer": i, "dtype": "float32",
"shape": [116]}``. The JavaScript twin is ``js/src/client/messages.js``.

Inbound (client -> engine): ``ready``, ``act``, ``advance``, ``response``,
``client_error`` (a browser-side failure, e.g. a custom inference function that threw),
``visibility`` ``{hidden}`` (the page's tab was hidden or shown; the server times it);
for browser-side environments (client -> server, see :mod:`mug.browser.game`):
``steps`` (records made by the engine in the browser, checked for shape here and
for content by :mod:`mug.server.browser_sessions`) and ``env_error``; for peer-to-peer
matches (page -> server, see :mod:`mug.server.matches.p2p`): ``p2p_frames``
``{match_id, records}``, ``p2p_events`` ``{match_id, events}`` and ``p2p_done``
``{match_id, reason: "scene_end"}`` (shapes checked here, contents there).
An ``act`` holds the client's keys and, per browser-side agent, its action,
logits, hidden states and (together) ``rng``/``steps``: the sampling stream
and step count after the step, which the engine hands back to a reloading
page; ``dropped`` counts the frames it did not draw since its last act.
Outbound (engine -> client): ``scene``, ``frame``, ``episode_end``,
``scene_end``, ``ack``, ``error``; from the server's match room (:mod:`mug.server.matches`):
``waitroom``, ``match``, ``paused``, ``resumed``, ``notice``.
"""

from __future__ import annotations

import json
import math
import numbers
import struct
from typing import Any

from mug.errors import MugError

try:
    import numpy as np
except ImportError:  # Pyodide without NumPy (a browser-side env that does not need it)
    np = None  # type: ignore[assignment]
try:
    import orjson
except ImportError:  # Pyodide: no wheel offline
    orjson = None  # type: ignore[assignment]

__all__ = [
    "MessageError",
    "decode_inbound",
    "encode_envelope",
    "decode_envelope",
    "tensor_ref",
    "tensor_from_ref",
    "FlatTensor",
    "jsonable",
    "MAX_MESSAGE_BYTES",
    "INBOUND_TYPES",
    "P2P_MATCH_TYPES",
]

MAGIC = b"MUG1"
_DUMP_OPTIONS = orjson.OPT_NON_STR_KEYS | orjson.OPT_SERIALIZE_NUMPY if orjson is not None else 0
MAX_MESSAGE_BYTES = 1 << 20
#: What the pages of a peer-to-peer match send about the game they run (see :mod:`mug.server.matches.p2p`).
P2P_MATCH_TYPES = ("p2p_frames", "p2p_events", "p2p_done")
INBOUND_TYPES = ("ready", "act", "advance", "response", "client_error", "visibility", "steps", "env_error", *P2P_MATCH_TYPES)
#: Peer-to-peer signalling and relay, passed on as they are: ``mug.server.matches.signal`` checks them.
P2P_INBOUND_TYPES = ("p2p_join", "signal", "relay", "p2p_relay", "p2p_direct")
#: Most records one ``steps`` message may carry (a page resending after a long disconnect sends several).
MAX_RECORDS = 512
TENSOR_DTYPES = ("float32", "float64", "int32", "int64", "uint8", "int8", "bool")
_KEY_MAX = 40
_KEYS_MAX = 16
#: Deepest nesting of arrays and objects an inbound message may have (real ones stay under 10).
MAX_DEPTH = 32


class MessageError(MugError):
    """An inbound message is malformed; ``code`` is a stable short name for the problem."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


def encode_envelope(message: dict[str, Any], buffers: list[bytes] | tuple[bytes, ...] = ()) -> bytes:
    """One binary frame holding ``message`` and its ``buffers``."""
    header = _dumps({"message": message, "buffers": [len(b) for b in buffers]})
    return b"".join([MAGIC, struct.pack("<I", len(header)), header, *buffers])


def decode_envelope(data: bytes) -> tuple[Any, list[bytes]]:
    """Split an envelope into its message and buffers; ``MessageError`` if it is not one."""
    if len(data) < 8 or data[:4] != MAGIC:
        raise MessageError("bad_envelope", "binary message does not start with the MUG1 envelope header")
    (length,) = struct.unpack("<I", data[4:8])
    if 8 + length > len(data):
        raise MessageError("bad_envelope", f"envelope header says {length} bytes but only {len(data) - 8} follow")
    try:
        header = _loads(data[8 : 8 + length])
        sizes = [int(n) for n in header["buffers"]]
        message = header["message"]
    except (ValueError, KeyError, TypeError) as exc:
        raise MessageError("bad_envelope", f"envelope header is not valid: {exc}") from exc
    buffers, offset = [], 8 + length
    for size in sizes:
        if size < 0 or offset + size > len(data):
            raise MessageError("bad_envelope", "envelope buffers are shorter than their declared lengths")
        buffers.append(data[offset : offset + size])
        offset += size
    if offset != len(data):
        raise MessageError("bad_envelope", f"{len(data) - offset} stray bytes after the envelope's buffers")
    return message, buffers


def _dumps(value: Any) -> bytes:
    if orjson is not None:
        return orjson.dumps(value, option=_DUMP_OPTIONS)
    return json.dumps(jsonable(value), separators=(",", ":")).encode()


def _loads(data: str | bytes) -> Any:
    return orjson.loads(data) if orjson is not None else json.loads(data)


_STRUCT = {"float32": "f", "float64": "d", "int32": "i", "int64": "q", "uint8": "B", "int8": "b", "bool": "?"}


class FlatTensor:
    """A tensor without NumPy (Pyodide): values in C order, a dtype name of :data:`TENSOR_DTYPES` and a shape."""

    __slots__ = ("data", "dtype", "shape")

    def __init__(self, data: list[Any], dtype: str, shape: tuple[int, ...]) -> None:
        self.data, self.dtype, self.shape = data, dtype, tuple(shape)

    @classmethod
    def of(cls, value: Any) -> FlatTensor:
        """A nested list/tuple of numbers (or one number) as a tensor: bool, int64 or float64, as NumPy infers."""
        shape: list[int] = []
        level = [value]
        while level and isinstance(level[0], (list, tuple)):
            size = len(level[0])
            if any(not isinstance(v, (list, tuple)) or len(v) != size for v in level):
                raise ValueError(f"observation {_short(value)} is not a rectangular array of numbers")
            shape.append(size)
            level = [x for v in level for x in v]
        if not all(isinstance(v, numbers.Real) for v in level):
            raise ValueError(f"observation {_short(value)} holds values that are not numbers")
        if all(isinstance(v, bool) for v in level):
            dtype = "bool"
        elif all(isinstance(v, numbers.Integral) for v in level):
            dtype = "int64"
        else:
            dtype = "float64"
        return cls(level, dtype, tuple(shape))

    def tobytes(self) -> bytes:
        return struct.pack(f"<{len(self.data)}{_STRUCT[self.dtype]}", *self.data)

    def reshape(self, *shape: Any) -> FlatTensor:
        """Only ``reshape(-1)`` (flat), what the engine asks for."""
        if shape not in ((-1,), ((-1,),)):
            raise ValueError(f"FlatTensor.reshape supports only -1, got {shape}")
        return FlatTensor(self.data, self.dtype, (len(self.data),))

    def tolist(self) -> Any:
        values: Any = list(self.data)
        for size in reversed(self.shape[1:]):
            values = [values[i : i + size] for i in range(0, len(values), size)]
        return values if self.shape else values[0]


def tensor_ref(array: Any, buffers: list[bytes]) -> dict[str, Any]:
    """Append ``array``'s bytes to ``buffers``; return the reference to put in the message.

    ``array`` is a NumPy array or, without NumPy, anything :meth:`FlatTensor.of` takes."""
    if np is not None:
        array = np.ascontiguousarray(array)
        buffers.append(array.tobytes())
        return {"buffer": len(buffers) - 1, "dtype": str(array.dtype), "shape": list(array.shape)}
    tensor = array if isinstance(array, FlatTensor) else FlatTensor.of(array)
    buffers.append(tensor.tobytes())
    return {"buffer": len(buffers) - 1, "dtype": tensor.dtype, "shape": list(tensor.shape)}


def tensor_from_ref(ref: Any, buffers: list[bytes], where: str) -> Any:
    """The array a reference points at (a :class:`FlatTensor` without NumPy); ``MessageError`` names ``where``
    when it does not fit."""
    if not isinstance(ref, dict) or set(ref) != {"buffer", "dtype", "shape"}:
        raise MessageError("bad_tensor", f"{where}: expected {{buffer, dtype, shape}}, got {_short(ref)}")
    index, dtype, shape = ref["buffer"], ref["dtype"], ref["shape"]
    if not _is_int(index) or not 0 <= index < len(buffers):
        raise MessageError("bad_tensor", f"{where}: buffer {_short(index)} does not exist ({len(buffers)} buffers sent)")
    if dtype not in TENSOR_DTYPES:
        raise MessageError("bad_tensor", f"{where}: dtype {_short(dtype)} is not one of {list(TENSOR_DTYPES)}")
    if not isinstance(shape, list) or len(shape) > 8 or not all(_is_int(d) and 0 <= d <= 1 << 24 for d in shape):
        raise MessageError("bad_tensor", f"{where}: shape {_short(shape)} is not a list of sizes")
    item = struct.calcsize("<" + _STRUCT[dtype])
    if math.prod(shape) * item != len(buffers[index]):
        raise MessageError(
            "bad_tensor",
            f"{where}: shape {shape} of {dtype} needs {math.prod(shape) * item} bytes, buffer has {len(buffers[index])}",
        )
    if np is None:
        count = math.prod(shape)
        return FlatTensor(list(struct.unpack(f"<{count}{_STRUCT[dtype]}", buffers[index])), dtype, tuple(shape))
    return np.frombuffer(buffers[index], dtype=dtype).reshape(shape)


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _short(value: Any, limit: int = 80) -> str:
    if _too_deep(value, 8):  # a value not walked for depth before (see decode_inbound): never a deep repr
        return f"a {type(value).__name__} nested deeper than 8 levels"
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _too_deep(value: Any, limit: int = MAX_DEPTH) -> bool:
    """Whether ``value`` nests lists/dicts deeper than ``limit`` (walked without recursion)."""
    level = [value] if type(value) in _CONTAINERS else []
    for _ in range(limit + 1):
        if not level:
            return False
        level = [v for c in level for v in (c.values() if type(c) is dict else c) if type(v) in _CONTAINERS]
    return True


_CONTAINERS = (dict, list)  # what parsed JSON nests (exact types: json and orjson build plain ones)


_NOT_BRACKETS = bytes(b for b in range(256) if b not in b"[]{}")


def _nesting_at_most(text: bytes, limit: int) -> bool:
    """Whether JSON ``text`` provably nests at most ``limit`` levels: keep only its brackets, then strip the
    innermost pairs once per level (in C, not per character). Brackets inside strings can only make this
    answer ``False`` (then the parsed value is walked)."""
    brackets = text.translate(None, _NOT_BRACKETS)
    for _ in range(limit):
        if not brackets:
            return True
        brackets = brackets.replace(b"[]", b"").replace(b"{}", b"")
    return not brackets


def _check_depth(message: Any, text: str | bytes | None) -> None:
    """``bad_json`` for a message nested too deep to handle safely (``text``: what it was parsed from, if known)."""
    if text is not None and _nesting_at_most(text.encode() if isinstance(text, str) else text, MAX_DEPTH):
        return
    if _too_deep(message):
        raise MessageError("bad_json", f"message nests arrays or objects deeper than {MAX_DEPTH} levels")


def _check_act(msg: dict[str, Any], buffers: list[bytes]) -> dict[str, Any]:
    step = msg.get("step")
    if (type(step) is not int and not _is_int(step)) or step < 0:
        raise MessageError("bad_field", f"act.step: expected a step index (integer >= 0), got {_short(step)}")
    episode = msg.get("episode")
    if episode is not None and ((type(episode) is not int and not _is_int(episode)) or episode < 0):
        raise MessageError("bad_field", f"act.episode: expected an episode index (integer >= 0), got {_short(episode)}")
    keys = msg.get("keys", [])
    if not isinstance(keys, list) or len(keys) > _KEYS_MAX:
        raise MessageError("bad_field", f"act.keys: expected a list of at most {_KEYS_MAX} key names, got {_short(keys)}")
    for k in keys:  # a loop, not all(...): an act holds a key or two, and this runs at every step
        if not isinstance(k, str) or not 0 < len(k) <= _KEY_MAX:
            raise MessageError("bad_field", f"act.keys: expected a list of at most {_KEYS_MAX} key names, got {_short(keys)}")
    policies = msg.get("policies", {})
    if not isinstance(policies, dict):
        raise MessageError("bad_field", f"act.policies: expected an object of agent -> result, got {_short(policies)}")
    results = {}
    for agent, result in policies.items():
        if not isinstance(result, dict) or "action" not in result:
            raise MessageError(
                "bad_field", f"act.policies[{agent!r}]: expected {{action, logits?, states?}}, got {_short(result)}"
            )
        action = result["action"]
        if not (_is_int(action) or (isinstance(action, list) and all(isinstance(a, numbers.Real) for a in action))):
            raise MessageError("bad_field", f"act.policies[{agent!r}].action: expected an integer action, got {_short(action)}")
        logits = result.get("logits")
        states = result.get("states", {})
        if not isinstance(states, dict):
            raise MessageError("bad_field", f"act.policies[{agent!r}].states: expected an object of name -> tensor")
        rng, steps = result.get("rng"), result.get("steps")
        if (rng is None) != (steps is None) or (
            rng is not None and not (_is_int(rng) and 0 <= rng < 1 << 32 and _is_int(steps) and steps >= 0)
        ):
            raise MessageError(
                "bad_field",
                f"act.policies[{agent!r}]: rng and steps go together: an unsigned 32-bit sampling state and a step count "
                f"(integer >= 0), got rng={_short(rng)}, steps={_short(steps)}",
            )
        results[agent] = {
            "action": action,
            "rng": rng,
            "steps": steps,
            "logits": None if logits is None else tensor_from_ref(logits, buffers, f"act.policies[{agent!r}].logits"),
            "states": {n: tensor_from_ref(r, buffers, f"act.policies[{agent!r}].states[{n!r}]") for n, r in states.items()},
        }
    dropped = msg.get("dropped", 0)
    if (type(dropped) is not int and not _is_int(dropped)) or dropped < 0:
        raise MessageError(
            "bad_field", f"act.dropped: expected a count of frames not drawn (integer >= 0), got {_short(dropped)}"
        )
    return {"type": "act", "step": step, "episode": episode, "keys": keys, "policies": results, "dropped": dropped}


def _text(msg: dict[str, Any], name: str, where: str, limit: int) -> str:
    value = msg.get(name)
    if not isinstance(value, str) or not 0 < len(value) <= limit:
        raise MessageError("bad_field", f"{where}.{name}: expected text of 1..{limit} characters, got {_short(value)}")
    return value


def _check_steps(msg: dict[str, Any]) -> dict[str, Any]:
    session_id, scene_id = _text(msg, "session_id", "steps", 200), _text(msg, "scene_id", "steps", 200)
    records = msg.get("records")
    if not isinstance(records, list) or not 0 < len(records) <= MAX_RECORDS:
        raise MessageError("bad_field", f"steps.records: expected a list of 1..{MAX_RECORDS} records, got {_short(records)}")
    out = []
    for i, r in enumerate(records):
        if type(r) is not dict or type(r.get("record")) is not dict or (kind := r.get("kind")) not in ("step", "event"):
            raise MessageError(
                "bad_field", f"steps.records[{i}]: expected {{seq, kind: 'step'|'event', episode, step, time, record}}"
            )
        seq, time_, episode, step, name = r.get("seq"), r.get("time"), r.get("episode"), r.get("step"), r.get("name")
        if type(seq) is not int or seq < 0:
            raise MessageError("bad_field", f"steps.records[{i}].seq: expected an integer >= 0, got {_short(seq)}")
        if type(time_) not in (int, float) or not math.isfinite(time_):
            raise MessageError("bad_field", f"steps.records[{i}].time: expected seconds since the epoch, got {_short(time_)}")
        if kind == "step":
            if type(episode) is not int or episode < 0 or type(step) is not int or step < 0:
                raise MessageError("bad_field", f"steps.records[{i}]: a step record needs episode and step (integers >= 0)")
        elif type(name) is not str or not 0 < len(name) <= 40:
            raise MessageError("bad_field", f"steps.records[{i}].name: an event record needs its name, got {_short(name)}")
        out.append(
            {
                "seq": seq,
                "kind": kind,
                "name": name,
                "episode": episode,
                "step": step,
                "time": float(time_),
                "record": r["record"],
            }
        )
    return {"type": "steps", "session_id": session_id, "scene_id": scene_id, "records": out}


def _check_p2p(msg: dict[str, Any]) -> dict[str, Any]:
    kind = msg["type"]
    out: dict[str, Any] = {"type": kind, "match_id": _text(msg, "match_id", kind, 200)}
    if kind == "p2p_done":
        if msg.get("reason") != "scene_end":
            raise MessageError("bad_field", f"p2p_done.reason: expected 'scene_end', got {_short(msg.get('reason'))}")
        out["reason"] = "scene_end"
        return out
    name = "records" if kind == "p2p_frames" else "events"
    items = msg.get(name)
    if not isinstance(items, list) or not 0 < len(items) <= MAX_RECORDS or any(type(i) is not dict for i in items):
        raise MessageError("bad_field", f"{kind}.{name}: expected a list of 1..{MAX_RECORDS} objects, got {_short(items)}")
    if kind == "p2p_events":
        for i, event in enumerate(items):
            if type(event.get("type")) is not str or not 0 < len(event["type"]) <= 40:
                raise MessageError("bad_field", f"p2p_events.events[{i}].type: expected the event's name, got {_short(event)}")
    out[name] = items
    return out


def _check_env_error(msg: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {"type": "env_error", "session_id": _text(msg, "session_id", "env_error", 200)}
    for name in ("episode", "step"):
        value = msg.get(name)
        if value is not None and (not _is_int(value) or value < -1):
            raise MessageError("bad_field", f"env_error.{name}: expected an integer or null, got {_short(value)}")
        out[name] = value
    for name, limit in (("message", 2000), ("traceback", 20000)):
        value = msg.get(name, "")
        if not isinstance(value, str):
            raise MessageError("bad_field", f"env_error.{name}: expected text, got {_short(value)}")
        out[name] = value[:limit]
    return out


def decode_inbound(raw: Any, buffers: list[bytes] | None = None, *, max_bytes: int = MAX_MESSAGE_BYTES) -> dict[str, Any]:
    """Parse and check one inbound message.

    ``raw`` is a JSON string, an envelope (bytes), or an already-parsed dict
    (anywidget) with its ``buffers``. Returns a normalised dict (tensors as
    NumPy arrays); raises :class:`MessageError` for anything malformed.
    """
    buffers = list(buffers or [])
    text: str | bytes | None = None
    if isinstance(raw, (bytes, bytearray, memoryview)):
        raw = text = bytes(raw)
        if len(raw) + sum(len(b) for b in buffers) > max_bytes:
            raise MessageError("too_large", f"message of {len(raw)} bytes exceeds the limit of {max_bytes}")
        if raw[:4] == MAGIC:
            raw, buffers = decode_envelope(text)
            text = text[: len(text) - sum(len(b) for b in buffers)]  # the header: brackets in buffers do not nest
        else:
            try:
                raw = raw.decode("utf-8")
            except UnicodeDecodeError as exc:
                raise MessageError("bad_json", "binary message is neither an envelope nor UTF-8 JSON") from exc
    if isinstance(raw, str):
        if len(raw) > max_bytes:
            raise MessageError("too_large", f"message of {len(raw)} characters exceeds the limit of {max_bytes}")
        text = raw
        try:
            raw = _loads(raw)
        except ValueError as exc:
            raise MessageError("bad_json", f"message is not valid JSON: {exc}") from exc
    elif buffers and sum(map(len, buffers)) > max_bytes:
        raise MessageError("too_large", f"message buffers exceed the limit of {max_bytes} bytes")
    # An act parsed already (the worker's and the widget's message of every step) is not walked for depth: it is
    # rebuilt from its checked fields, none of which nests, so a deep value in it is dropped unread. Text is checked.
    if text is not None or not (type(raw) is dict and raw.get("type") == "act"):
        _check_depth(raw, text)
    if not isinstance(raw, dict):
        raise MessageError("bad_message", f"expected a JSON object with a 'type', got {_short(raw)}")
    kind = raw.get("type")
    if kind in P2P_INBOUND_TYPES:
        return raw
    if kind not in INBOUND_TYPES:
        raise MessageError("unknown_type", f"unknown message type {_short(kind)}; expected one of {list(INBOUND_TYPES)}")
    if kind == "act":
        return _check_act(raw, buffers)
    if kind == "response":
        answers = raw.get("answers")
        if not isinstance(answers, dict):
            raise MessageError(
                "bad_field", f"response.answers: expected an object of question id -> answer, got {_short(answers)}"
            )
        return {"type": "response", "scene_id": raw.get("scene_id"), "answers": answers}
    if kind == "advance":
        return {"type": "advance", "scene_id": raw.get("scene_id")}
    if kind == "steps":
        return _check_steps(raw)
    if kind == "env_error":
        return _check_env_error(raw)
    if kind in P2P_MATCH_TYPES:
        return _check_p2p(raw)
    if kind == "client_error":
        text = raw.get("message")
        if not isinstance(text, str):
            raise MessageError("bad_field", f"client_error.message: expected text, got {_short(text)}")
        return {"type": "client_error", "message": text[:2000]}
    if kind == "visibility":
        hidden = raw.get("hidden")
        if not isinstance(hidden, bool):
            raise MessageError("bad_field", f"visibility.hidden: expected true or false, got {_short(hidden)}")
        return {"type": "visibility", "hidden": hidden}
    return {"type": "ready"}


_JSON_LEAVES = frozenset({str, int, bool, type(None)})  # what jsonable returns as it is (floats may be non-finite)


def jsonable(value: Any) -> Any:
    """``value`` with NumPy scalars/arrays as plain numbers/lists, non-finite floats as strings
    (``"nan"``, ``"inf"``), and other unknown objects as their ``repr``."""
    kind = type(value)
    if kind is str or kind is bool or kind is int or value is None:
        return value
    if kind is float:
        return value if math.isfinite(value) else str(value)
    if kind is dict:  # JSON's own leaves are kept as they are without a call (a record's dicts hold mostly those)
        return {k if type(k) is str else str(k): v if type(v) in _JSON_LEAVES else jsonable(v) for k, v in value.items()}
    if np is not None and kind is np.ndarray:
        if value.dtype.kind in "biu" or (value.dtype.kind == "f" and np.isfinite(value).all()):
            return value.tolist()
        return jsonable(value.tolist())
    if kind is list or kind is tuple:
        return [jsonable(v) for v in value]
    if kind is FlatTensor:
        return jsonable(value.tolist())
    if isinstance(value, bool) or (np is not None and isinstance(value, np.bool_)):
        return bool(value)
    if isinstance(value, numbers.Integral):
        return int(value)
    if isinstance(value, numbers.Real):
        return jsonable(float(value))
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    return repr(value)
