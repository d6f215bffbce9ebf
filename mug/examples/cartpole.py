"""Drawing Gymnasium's CartPole with MUG's Surface: two persistent objects, the cart and the pole."""

from __future__ import annotations

import math
from typing import Any

__all__ = ["draw_cartpole"]


def draw_cartpole(env: Any, surface: Any) -> None:
    """``GymScene.rendering(mode="surface", draw=draw_cartpole)`` for ``CartPole-v1`` (any scene size)."""
    cartpole = env.unwrapped
    x, _, theta, _ = cartpole.state.tolist()  # plain floats: cheaper arithmetic than NumPy scalars
    width, height = surface.width, surface.height
    scale = width / (2 * cartpole.x_threshold)
    cart_x, cart_y = width / 2 + x * scale, height * 0.7
    surface.rect(cart_x - 25, cart_y - 15, 50, 30, color="#333333", id="cart")
    length = 2 * cartpole.length * scale
    tip = (cart_x + length * math.sin(theta), cart_y - length * math.cos(theta))
    surface.line([(cart_x, cart_y), tip], color="#c87533", width=8, id="pole", depth=1)
