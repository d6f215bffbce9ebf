"""Test helpers around simulated participants: plain HTTP requests and running coroutines beside Playwright."""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from tornado.httpclient import AsyncHTTPClient, HTTPClientError

from mug.server.simulate import SimulatedParticipant, join

__all__ = ["DEMO_ANSWERS", "Bot", "join", "raw_http", "run_async"]

DEMO_ANSWERS = {"helpful": 5, "human_like": "no", "comments": "bot"}


def Bot(base_url: str, participant_id: str, **kwargs: Any) -> SimulatedParticipant:
    """A simulated participant answering the demo survey."""
    return SimulatedParticipant(base_url, participant_id, answers=DEMO_ANSWERS, **kwargs)


async def raw_http(url: str) -> tuple[int, str]:
    """GET ``url``; status and body (errors included)."""
    try:
        response = await AsyncHTTPClient().fetch(url, follow_redirects=False, raise_error=False)
    except HTTPClientError as exc:
        return exc.code, ""
    return response.code, response.body.decode(errors="replace")


def run_async(coroutine: Any) -> Any:
    """Run ``coroutine`` to completion on a fresh event loop in its own thread
    (Playwright's sync API keeps a loop running in the test thread)."""
    with ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(asyncio.run, coroutine).result()
