"""Notebook widgets: ``ScenePreview`` (``scene.preview()``), ``P2PPreview`` (that of a P2P scene) and ``Trace``."""

from mug.widgets.p2p_preview import P2PPreview
from mug.widgets.preview import ScenePreview
from mug.widgets.trace import Trace

__all__ = ["P2PPreview", "ScenePreview", "Trace"]
