"""``Surface``: draw commands for a scene, sent to the browser canvas as deltas.

Objects drawn with an ``id`` persist: they stay on screen until drawn again
(changed) or removed, and only changes travel. Objects without an ``id`` are
ephemeral: drawn for one frame. Order: ``depth`` (low first), then first draw.
"""

from __future__ import annotations

import math
import numbers
import re
from collections.abc import Iterable
from typing import Any

__all__ = ["Surface"]

_COLOR = re.compile(r"^(#[0-9a-fA-F]{3,8}|rgba?\([0-9., %]+\)|[a-zA-Z]{3,20})$")
_ALIGN = ("left", "center", "right")


def _num(value: Any, name: str) -> float:
    kind = type(value)
    if (kind is float or kind is int) and math.isfinite(value):
        return value
    if isinstance(value, float) and math.isfinite(value):  # NumPy's float64 is a float
        return float(value)
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(value):
        raise ValueError(f"{name}: expected a finite number, got {value!r}")
    return float(value)


_CHECKED_COLORS: set[str] = set()  # colours already validated (a scene draws the same few every frame)


def _color(value: Any, name: str = "color") -> str:
    if type(value) is str and value in _CHECKED_COLORS:
        return value
    if not isinstance(value, str) or not _COLOR.match(value):
        raise ValueError(f"{name}: expected a CSS color such as '#ff0000', 'rgb(0,0,0)' or 'black', got {value!r}")
    if len(_CHECKED_COLORS) < 4096:
        _CHECKED_COLORS.add(value)
    return value


def _points(points: Iterable[Any]) -> list[list[float]]:
    pts = [[_num(p[0], "x"), _num(p[1], "y")] for p in points]
    if len(pts) < 2:
        raise ValueError(f"points: expected at least two (x, y) points, got {pts}")
    return pts


class Surface:
    """A frame's drawing, in scene pixels (origin top-left).

    Args:
        width, height: the scene's size in pixels.
        images: names of the registered image assets ``image()`` may use.
    """

    def __init__(self, width: int, height: int, images: Iterable[str] = ()) -> None:
        self.width, self.height = width, height
        self.images = set(images)
        self._objects: dict[str, dict[str, Any]] = {}
        self._sent: dict[str, dict[str, Any]] = {}
        self._ephemeral: list[dict[str, Any]] = []
        self._full = True

    def _add(self, obj: dict[str, Any], id: str | None, depth: float) -> None:
        obj["depth"] = _num(depth, "depth")
        if id is None:
            self._ephemeral.append(obj)
            return
        if not isinstance(id, str) or not id or len(id) > 64:
            raise ValueError(f"id: expected a non-empty string of at most 64 characters, got {id!r}")
        obj["id"] = id
        self._objects[id] = obj

    def rect(
        self, x: float, y: float, w: float, h: float, *, color: str = "#000000", id: str | None = None, depth: float = 0
    ) -> None:
        """A filled rectangle with its top-left corner at (x, y)."""
        self._add(
            {"shape": "rect", "x": _num(x, "x"), "y": _num(y, "y"), "w": _num(w, "w"), "h": _num(h, "h"), "color": _color(color)},
            id,
            depth,
        )

    def circle(
        self, x: float, y: float, radius: float, *, color: str = "#000000", id: str | None = None, depth: float = 0
    ) -> None:
        """A filled circle centred at (x, y)."""
        self._add(
            {"shape": "circle", "x": _num(x, "x"), "y": _num(y, "y"), "r": _num(radius, "radius"), "color": _color(color)},
            id,
            depth,
        )

    def line(
        self, points: Iterable[Any], *, color: str = "#000000", width: float = 1, id: str | None = None, depth: float = 0
    ) -> None:
        """A polyline through ``points`` ((x, y) pairs)."""
        self._add({"shape": "line", "points": _points(points), "width": _num(width, "width"), "color": _color(color)}, id, depth)

    def polygon(self, points: Iterable[Any], *, color: str = "#000000", id: str | None = None, depth: float = 0) -> None:
        """A filled polygon."""
        self._add({"shape": "polygon", "points": _points(points), "color": _color(color)}, id, depth)

    def text(
        self,
        x: float,
        y: float,
        text: str,
        *,
        color: str = "#000000",
        size: float = 16,
        align: str = "left",
        id: str | None = None,
        depth: float = 0,
    ) -> None:
        """Text with its baseline starting at (x, y) (``align`` moves the anchor)."""
        if not isinstance(text, str):
            raise ValueError(f"text: expected a string, got {text!r}")
        if align not in _ALIGN:
            raise ValueError(f"align: expected one of {list(_ALIGN)}, got {align!r}")
        self._add(
            {
                "shape": "text",
                "x": _num(x, "x"),
                "y": _num(y, "y"),
                "text": text[:500],
                "size": _num(size, "size"),
                "align": align,
                "color": _color(color),
            },
            id,
            depth,
        )

    def image(self, x: float, y: float, w: float, h: float, name: str, *, id: str | None = None, depth: float = 0) -> None:
        """A registered image asset (``GymScene.assets(images=...)``) drawn into the box (x, y, w, h)."""
        if name not in self.images:
            raise ValueError(f"image: {name!r} is not a registered asset; registered: {sorted(self.images)}")
        self._add(
            {"shape": "image", "x": _num(x, "x"), "y": _num(y, "y"), "w": _num(w, "w"), "h": _num(h, "h"), "name": name},
            id,
            depth,
        )

    def remove(self, id: str) -> None:
        """Take a persistent object off the scene."""
        self._objects.pop(id, None)

    def clear(self) -> None:
        """Remove every persistent object."""
        self._objects.clear()

    def resend(self) -> None:
        """Make the next :meth:`commit` describe the whole scene (a new or reconnected client)."""
        self._full = True

    def commit(self) -> dict[str, Any]:
        """This frame's payload: changed persistent objects, removed ids and ephemeral objects.

        ``{"full": bool, "set": [...], "remove": [...], "ephemeral": [...]}``;
        with ``full`` the client drops what it had and takes ``set`` as everything.
        """
        objects, sent = self._objects, self._sent
        if self._full:
            changed = list(objects.values())
            removed: list[str] = []
        else:
            changed = [o for i, o in objects.items() if sent.get(i) != o]
            removed = [i for i in sent if i not in objects] if sent.keys() != objects.keys() else []
        payload = {"full": self._full, "set": changed, "remove": removed, "ephemeral": self._ephemeral}
        self._sent = objects.copy()
        self._ephemeral = []
        self._full = False
        return payload
