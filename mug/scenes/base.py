"""What every scene shares: an id that is safe everywhere it travels."""

from __future__ import annotations

import re
from typing import Any

from mug.errors import ConfigError

__all__ = ["Scene", "check_scene_id", "SCENE_ID_PATTERN"]

#: Scene ids travel in URLs, messages, database rows and file names.
SCENE_ID_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$")


def check_scene_id(scene_id: Any) -> str:
    """Return ``scene_id`` if it is 1-64 letters, digits, ``_`` or ``-`` (not first); else ``ConfigError``."""
    if not isinstance(scene_id, str) or not SCENE_ID_PATTERN.match(scene_id):
        raise ConfigError(
            f"scene_id: {scene_id!r} is not a valid scene id; use 1-64 letters, digits, '_' or '-', starting with a "
            "letter or digit (ids appear in URLs and data files)",
            field="scene_id",
        )
    return scene_id


class Scene:
    """Base class of every scene: an id and the metadata a client needs to show it."""

    kind = "scene"

    def __init__(self, scene_id: str) -> None:
        self.scene_id = check_scene_id(scene_id)

    def client_metadata(self) -> dict[str, Any]:
        """JSON-ready description sent to the client in the ``scene`` message."""
        return {"scene_id": self.scene_id, "kind": self.kind}

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.scene_id!r})"
