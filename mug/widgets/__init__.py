"""Notebook widgets: ``ScenePreview`` (``scene.preview()``) and its ``Trace``."""

from mug.widgets.preview import ScenePreview
from mug.widgets.trace import Trace

__all__ = ["ScenePreview", "Trace"]
