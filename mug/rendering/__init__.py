"""Drawing scenes for the browser: the Surface draw-command API and rgb frame encoding."""

from mug.rendering.frames import encode_rgb
from mug.rendering.surface import Surface

__all__ = ["Surface", "encode_rgb"]
