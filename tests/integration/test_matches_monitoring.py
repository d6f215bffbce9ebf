"""What the server measures decides: round trips (through a delaying TCP proxy on loopback) and entry screening."""

from __future__ import annotations

import asyncio
import contextlib
import time
from urllib.parse import urlparse

import mug
from tests.bots import run_async
from tests.integration.test_matches import deployed, kinds_of, stored
from tests.match_clients import Player, open_page
from tests.match_studies import duo, duo_scene


class DelayingProxy:
    """A TCP proxy on 127.0.0.1 that holds every server -> client byte back ``delay_s`` seconds (in order);
    the server's pings therefore reach the client late and their pongs come back late."""

    def __init__(self, upstream: str, delay_s: float) -> None:
        u = urlparse(upstream)
        self.host, self.port, self.delay_s = u.hostname, u.port, delay_s
        self.server: asyncio.AbstractServer | None = None
        self.tasks: set[asyncio.Task] = set()

    async def start(self) -> str:
        self.server = await asyncio.start_server(self._client, "127.0.0.1", 0)
        return f"127.0.0.1:{self.server.sockets[0].getsockname()[1]}"

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection(self.host, self.port)
        for task in (self._pump(reader, up_writer, 0.0), self._pump(up_reader, writer, self.delay_s)):
            t = asyncio.get_running_loop().create_task(task)
            self.tasks.add(t)

    async def _pump(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, delay: float) -> None:
        queue: asyncio.Queue[tuple[float, bytes]] = asyncio.Queue()

        async def later() -> None:
            while True:
                due, data = await queue.get()
                await asyncio.sleep(max(0.0, due - time.monotonic()))
                if not data:
                    writer.close()
                    return
                writer.write(data)

        sender = asyncio.get_running_loop().create_task(later())
        self.tasks.add(sender)
        with contextlib.suppress(ConnectionError):
            while data := await reader.read(1 << 16):
                queue.put_nowait((time.monotonic() + delay, data))
        queue.put_nowait((time.monotonic() + delay, b""))

    def close(self) -> None:
        for task in self.tasks:
            task.cancel()
        if self.server is not None:
            self.server.close()


def test_a_member_whose_round_trips_stay_over_max_rtt_is_excluded_with_the_measured_values(tmp_path):
    monitoring = {"max_rtt_ms": 100, "rtt_window": 3, "rtt_violations": 2, "exclusion_message": "Connection too slow"}

    async def main():
        async with deployed(duo(mode="realtime", max_steps=100_000, monitoring=monitoring), tmp_path) as d:
            proxy = DelayingProxy(d.url, 0.25)
            via = await proxy.start()
            alice = await Player(d.url, "alice").open()
            bob = await Player(d.url, "bob").open(via=via)
            excluded = await bob.next("notice", timeout=30, where=lambda m: m["code"] == "excluded")
            lost = await alice.next("notice", timeout=10)
            rtt_alice = d._server.registry.participants["alice"].monitor.rtt_ms()
            alice.close(), bob.close(), proxy.close()
            return excluded, lost, rtt_alice

    excluded, lost, rtt_alice = run_async(main())
    assert excluded["message"] == "Connection too slow" and lost["code"] == "partner_lost"
    assert rtt_alice is not None and rtt_alice < 100  # the direct connection is measured fast
    _, events, matches = stored(tmp_path)
    (ex,) = kinds_of(events, "excluded")
    values = ex["data"]["values"]
    assert ex["participant_id"] == "bob" and ex["data"]["reason"] == "rtt"
    assert values["violations"] >= 2 and all(r >= 250 for r in values["rtt_ms"][-2:]) and values["max_rtt_ms"] == 100
    assert matches[0]["end_reason"] == "partner_lost"


def test_matchmaking_max_rtt_keeps_a_slow_participant_waiting(tmp_path):
    study = duo(matchmaking={"max_rtt_ms": 100}, waitroom={"timeout_s": 4, "on_timeout": "skip"})

    async def main():
        async with deployed(study, tmp_path) as d:
            proxy = DelayingProxy(d.url, 0.25)
            via = await proxy.start()
            slow = await Player(d.url, "slow").open(via=via)
            await asyncio.sleep(0.8)
            fast1 = await Player(d.url, "fast1").open()
            fast2 = await Player(d.url, "fast2").open()
            match = await fast1.seat()
            timeout = await slow.next("notice", timeout=10)
            for p in (slow, fast1, fast2):
                p.close()
            proxy.close()
            return match, timeout

    _match, timeout = run_async(main())
    assert timeout["code"] == "waitroom_timeout"
    _, _, matches = stored(tmp_path)
    assert sorted(matches[0]["seats"].values()) == ["fast1", "fast2"]


IPHONE = (
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) "
    "Version/17.0 Mobile/15E148 Safari/604.1"
)
DESKTOP_CHROME = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36"


def test_entry_screening_by_device_browser_and_round_trips_decided_on_the_server(tmp_path):
    checked = []

    def check(values):
        checked.append(values)
        return values["params"].get("group") != "blocked"

    screen = mug.ScreeningScene(
        "screen", devices=["desktop"], browsers=["chrome"], min_rtt_samples=2, check=check, message="Not this time"
    )
    study = mug.Stager([screen, mug.TextScene("welcome"), mug.EndScene(unique_code=True)])

    async def main():
        async with deployed(study, tmp_path) as d:
            phone = Player(d.url, "phone", cookie=await open_page(d.url, "phone", IPHONE))
            await phone.open(user_agent=IPHONE)
            desk = Player(d.url, "desk", cookie=await open_page(d.url, "desk", DESKTOP_CHROME))
            desk.auto_advance = False
            await desk.open(user_agent=DESKTOP_CHROME)
            blocked = Player(d.url, "blocked", cookie=await open_page(d.url, "blocked", DESKTOP_CHROME, "&group=blocked"))
            await blocked.open(user_agent=DESKTOP_CHROME)
            out = await phone.scene("end"), await desk.scene("text"), await blocked.scene("end")
            for p in (phone, desk, blocked):
                p.close()
            return out

    phone_end, desk_next, blocked_end = run_async(main())
    assert phone_end["scene"]["body"] == "Not this time" and phone_end["scene"]["completion_code"]
    assert desk_next["scene"]["scene_id"] == "welcome"
    assert blocked_end["scene"]["body"] == "Not this time"
    store_events = stored(tmp_path)[1]
    screening = {e["participant_id"]: e["data"] for e in kinds_of(store_events, "screening")}
    assert screening["phone"]["passed"] is False and screening["phone"]["values"]["device"] == "mobile"
    assert "device" in screening["phone"]["values"]["failed"] and "browser" in screening["phone"]["values"]["failed"]
    assert screening["desk"]["passed"] is True and screening["desk"]["values"]["browser"] == "Chrome"
    assert screening["desk"]["values"]["rtt_samples"] >= 2
    assert screening["blocked"]["values"]["failed"] == ["check"]
    assert {v["params"].get("group") for v in checked} == {None, "blocked"}


def test_screening_scene_options_are_checked():
    import pytest

    for kwargs, field in (
        ({"devices": ["phone"]}, "devices"),
        ({"browsers": "Chrome"}, "browsers"),
        ({"min_rtt_samples": -1}, "min_rtt_samples"),
        ({"max_rtt_ms": 0}, "max_rtt_ms"),
        ({"check": "yes"}, "check"),
    ):
        with pytest.raises(mug.ConfigError) as info:
            mug.ScreeningScene("s", **kwargs)
        assert info.value.field == field


def test_a_two_scene_study_of_matches_without_a_fill_for_ai_partner_loss_is_refused():
    import pytest

    scene = duo_scene(multiplayer={"on_partner_loss": "ai"})
    with pytest.raises(mug.ConfigError) as info:
        scene.check_ready()
    assert info.value.field == "fill_with"
