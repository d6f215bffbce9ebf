"""Security headers on every response of a participant server, and the cookie attributes that go with them.

The Content-Security-Policy lets pages run only the server's own scripts (the
participant page's one inline script by its nonce), compile WebAssembly (ONNX
Runtime Web and Pyodide need ``'wasm-unsafe-eval'``; neither needs
``'unsafe-eval'``), start Web Workers only from the server's own scripts (the
Pyodide worker of browser-side environments) and connect only to the server
(its WebSocket, its files), plus the package indexes that browser-side
environments load compiled packages from (``package_origins``); a study with
a ``custom_inference_fn`` also needs ``'unsafe-eval'``, which it then gets. Images, media and fonts may also come
from ``https:`` (a researcher's scene text may show them); styles may be
inline. Framing is refused (``X-Frame-Options: DENY``, ``frame-ancestors
'none'``) unless the deployment names the origins that may embed the study
(``frame_ancestors``, e.g. a recruitment site showing it in an iframe).
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from mug.errors import ConfigError

__all__ = ["check_frame_ancestors", "security_headers", "with_nonce"]

_ORIGIN = re.compile(r"^https?://(\*\.)?[A-Za-z0-9.-]+(:\d{1,5})?$")


def check_frame_ancestors(value: Iterable[str] | None) -> tuple[str, ...]:
    """The origins that may embed the study (``()``: none); ``ConfigError`` for anything but ``https://host[:port]``."""
    if value is None:
        return ()
    if isinstance(value, str):
        value = [value]
    origins = tuple(value)
    for origin in origins:
        if not isinstance(origin, str) or not _ORIGIN.match(origin):
            raise ConfigError(
                f"frame_ancestors: {origin!r} is not an origin; give origins like 'https://app.example.org' "
                "(scheme and host, optional port, no path)",
                field="frame_ancestors",
            )
    return origins


def security_headers(frame_ancestors: tuple[str, ...], allow_eval: bool, package_origins: tuple[str, ...] = ()) -> dict[str, str]:
    """The headers every response carries (the participant page adds its script nonce with :func:`with_nonce`).

    ``package_origins``: origins (``https://host``) a browser-side environment fetches compiled packages from.
    """
    script = "script-src 'self' 'wasm-unsafe-eval'" + (" 'unsafe-eval'" if allow_eval else "")
    policy = [
        "default-src 'self'",
        script,
        "style-src 'self' 'unsafe-inline'",
        "img-src 'self' data: blob: https:",
        "media-src 'self' data: blob: https:",
        "font-src 'self' data: https:",
        "worker-src 'self'",
        " ".join(["connect-src 'self'", *package_origins]),
        "object-src 'none'",
        "base-uri 'none'",
        "form-action 'self'",
        "frame-ancestors " + (" ".join(frame_ancestors) if frame_ancestors else "'none'"),
    ]
    headers = {
        "Content-Security-Policy": "; ".join(policy),
        "X-Content-Type-Options": "nosniff",
        "Referrer-Policy": "same-origin",
    }
    if not frame_ancestors:
        headers["X-Frame-Options"] = "DENY"
    return headers


def with_nonce(policy: str, nonce: str) -> str:
    """``policy`` letting the inline scripts marked with ``nonce`` run too."""
    return policy.replace("script-src 'self'", f"script-src 'self' 'nonce-{nonce}'", 1)
