"""Small environments that ship with MUG, for demos and tests."""

from mug.examples.gridworld import CoinGrid

__all__ = ["CoinGrid"]
