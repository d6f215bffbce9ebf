"""The preview widget serves a scene's declared images over its comm, by the name the participant page uses."""

from __future__ import annotations

from pathlib import Path

import mug

ASSETS = Path(__file__).resolve().parents[1] / "e2e" / "assets"


def test_declared_images_are_sent_by_name_and_others_are_refused():
    scene = (
        mug.GymScene("sprites")
        .environment("CartPole-v1", seed=1)
        .policies({"agent_0": mug.Random})
        .rendering(mode="surface", draw=lambda env, s: s.image(10, 10, 32, 32, "cart", id="cart"))
        .assets(directory=ASSETS, images={"cart": "cart.png"})
    )
    preview = scene.preview()
    sent: list[tuple[dict, list | None]] = []
    preview.send = lambda content, buffers=None: sent.append((content, buffers))  # the comm, without a kernel
    for name in ("assets/sprites/cart", "assets/sprites/cart.png", "assets/other/cart", "cart"):
        preview._send_asset(name)
    (ok, data), *refused = sent
    assert ok == {"channel": "asset", "name": "assets/sprites/cart"} and data == [(ASSETS / "cart.png").read_bytes()]
    for (message, buffers), name in zip(refused, ("assets/sprites/cart.png", "assets/other/cart", "cart")):
        assert message["name"] == name and buffers is None
        assert message["error"] == f"no model or declared image at {name!r}; images: ['assets/sprites/cart']"
