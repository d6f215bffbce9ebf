"""``ScreeningScene``: an entry check in the study sequence, decided by the server from what it measured.

The server parses the User-Agent header (captured when the participant page
and its WebSocket were opened) with ``ua-parser``, and counts and measures its
own WebSocket ping round trips; nothing the page says about itself is used. A
participant who passes goes on to the next scene; one who fails sees
``message`` on an end page with a completion code of their own. Either way a
``screening`` event records the values (``device``, ``browser``, ``os``,
``rtt_samples``, ``rtt_median_ms``, ``rtt_max_ms``, the ``check``'s answer).
"""

from __future__ import annotations

import statistics
from collections.abc import Callable, Sequence
from typing import Any

from mug.errors import ConfigError
from mug.scenes.base import Scene

__all__ = ["ScreeningScene", "DEVICES", "device_class"]

DEVICES = ("desktop", "mobile", "tablet")
_MOBILE_OS = ("Android", "iOS", "Windows Phone", "BlackBerry OS", "KaiOS", "Firefox OS")


def device_class(user_agent: str) -> tuple[str, str, str]:
    """``(device, browser family, os family)`` of a User-Agent string; device is one of :data:`DEVICES`."""
    import ua_parser

    parsed = ua_parser.parse(user_agent or "")
    browser = parsed.user_agent.family if parsed.user_agent else "Other"
    os_family = parsed.os.family if parsed.os else "Other"
    family = parsed.device.family if parsed.device else ""
    if "iPad" in family or "Tablet" in family or "Kindle" in family or (os_family == "Android" and "Mobile" not in user_agent):
        return "tablet", browser, os_family
    if os_family in _MOBILE_OS or "Mobile" in user_agent:
        return "mobile", browser, os_family
    return "desktop", browser, os_family


class ScreeningScene(Scene):
    """An entry check (see module docstring).

    Args:
        scene_id: the scene's id.
        devices: allowed device classes, from ``("desktop", "mobile", "tablet")`` (``None``: any).
        browsers: allowed browser families as ``ua-parser`` names them (``"Chrome"``, ``"Firefox"``,
            ``"Safari"``, ``"Edge"``, ...), compared case-insensitively (``None``: any).
        min_rtt_samples: round trips the server must have measured before deciding (it waits up to
            :data:`mug.server.matches.room.SCREENING_WAIT_S` for them; fewer then fails).
        max_rtt_ms: the median round trip must be at most this.
        check: ``check(values) -> bool`` with the measured values (and ``params``, the study link's query).
        message: what a participant who fails sees.
    """

    kind = "screening"

    def __init__(
        self,
        scene_id: str,
        devices: Sequence[str] | None = None,
        browsers: Sequence[str] | None = None,
        min_rtt_samples: int = 0,
        max_rtt_ms: float | None = None,
        check: Callable[[dict[str, Any]], bool] | None = None,
        message: str = "Sorry, this study cannot run on your device or connection. Here is your completion code.",
    ) -> None:
        super().__init__(scene_id)
        if devices is not None:
            if isinstance(devices, str) or not all(d in DEVICES for d in devices) or not devices:
                raise ConfigError(f"devices: expected a list from {list(DEVICES)}, got {devices!r}", field="devices")
            devices = tuple(devices)
        if browsers is not None:
            if isinstance(browsers, str) or not browsers or not all(isinstance(b, str) and b for b in browsers):
                raise ConfigError(f"browsers: expected a list of browser names, got {browsers!r}", field="browsers")
            browsers = tuple(browsers)
        if isinstance(min_rtt_samples, bool) or not isinstance(min_rtt_samples, int) or not 0 <= min_rtt_samples <= 50:
            raise ConfigError(f"min_rtt_samples: expected an integer in 0..50, got {min_rtt_samples!r}", field="min_rtt_samples")
        if max_rtt_ms is not None and (
            isinstance(max_rtt_ms, bool) or not isinstance(max_rtt_ms, (int, float)) or not 1 <= max_rtt_ms <= 60_000
        ):
            raise ConfigError(f"max_rtt_ms: expected a number in 1..60000 or None, got {max_rtt_ms!r}", field="max_rtt_ms")
        if check is not None and not callable(check):
            raise ConfigError(f"check: expected a function or None, got {check!r}", field="check")
        if not isinstance(message, str):
            raise ConfigError(f"message: expected a string, got {message!r}", field="message")
        self.devices, self.browsers, self.min_rtt_samples = devices, browsers, min_rtt_samples
        self.max_rtt_ms = None if max_rtt_ms is None else float(max_rtt_ms)
        self.check, self.message = check, message
        if max_rtt_ms is not None and min_rtt_samples == 0:
            self.min_rtt_samples = 3  # a median needs measurements

    def client_metadata(self) -> dict[str, Any]:
        return {**super().client_metadata(), "header": "", "body": "Checking your browser and connection…"}

    def evaluate(self, user_agent: str | None, rtts_ms: Sequence[float], params: dict[str, str]) -> tuple[bool, dict[str, Any]]:
        """Whether a participant passes, and the values it was decided on (``failed`` names the rules failed)."""
        device, browser, os_family = device_class(user_agent or "")
        values: dict[str, Any] = {
            "user_agent": (user_agent or "")[:512],
            "device": device,
            "browser": browser,
            "os": os_family,
            "rtt_samples": len(rtts_ms),
            "rtt_median_ms": round(statistics.median(rtts_ms), 2) if rtts_ms else None,
            "rtt_max_ms": round(max(rtts_ms), 2) if rtts_ms else None,
        }
        failed = []
        if self.devices is not None and device not in self.devices:
            failed.append("device")
        if self.browsers is not None and browser.lower() not in {b.lower() for b in self.browsers}:
            failed.append("browser")
        if len(rtts_ms) < self.min_rtt_samples:
            failed.append("rtt_samples")
        if self.max_rtt_ms is not None and (not rtts_ms or statistics.median(rtts_ms) > self.max_rtt_ms):
            failed.append("max_rtt_ms")
        if self.check is not None:
            try:
                answer = bool(self.check({**values, "params": dict(params)}))
            except Exception as exc:  # a researcher's bug fails the check, recorded, never the server
                values["check_error"] = f"{type(exc).__name__}: {exc}"[:500]
                answer = False
            values["check"] = answer
            if not answer:
                failed.append("check")
        values["failed"] = failed
        return not failed, values
