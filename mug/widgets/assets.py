"""What a preview widget's views ask the kernel for over the comm (``asset_request``): ORT's wasm, images, models."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from mug.jupyter import STATIC

if TYPE_CHECKING:
    import anywidget

    from mug.scenes.gym_scene import GymScene

__all__ = ["send_asset"]


def send_asset(widget: anywidget.AnyWidget, scene: GymScene, name: str) -> None:
    """Answer a view's ``asset_request``: the ORT wasm (when the server extension is not there), a declared image
    or a browser-side policy's model of ``scene``; an unknown name is answered with an error naming what exists."""
    prefix = f"assets/{scene.scene_id}/"  # the deployment's URL of a declared image
    image = scene.images.get(name[len(prefix) :]) if name.startswith(prefix) else None
    if name == "wasm":
        data = (STATIC / "ort-wasm-simd-threaded.wasm").read_bytes()
    elif image is not None:
        data = (scene.asset_dir / image).read_bytes()  # type: ignore[operator]
    else:
        path = next(
            (
                Path(s.config.onnx_path)
                for a, s in scene.policy_specs.items()
                if s.config is not None and scene.model_path(a) == name
            ),
            None,
        )
        if path is None:
            known = [f"assets/{scene.scene_id}/{n}" for n in sorted(scene.images)]
            widget.send({"channel": "asset", "name": name, "error": f"no model or declared image at {name!r}; images: {known}"})
            return
        data = path.read_bytes()
    widget.send({"channel": "asset", "name": name}, [data])
