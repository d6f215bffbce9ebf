"""MUG's Jupyter server extension: serves the package's public assets, and sends kernel messages without delay.

Enabled by ``jupyter-config/jupyter_server_config.d/mug.json`` (installed with the
package). It does two things:

- Assets (client bundle, ORT wasm) are served like Jupyter's own ``/static/``,
  without authentication: they are public package files, and the widget's module
  (loaded from a blob URL) cannot pass Jupyter's authenticated-handler checks.
- Kernel WebSockets get ``TCP_NODELAY``. Jupyter Server leaves Nagle's algorithm
  on, and every kernel reply comes with busy/idle status messages, so each
  widget message exchange stalls about 44 ms on the browser's delayed ACK (about
  21 exchanges/s, measured); the preview takes one exchange per step. With
  no-delay it is about 90/s. The extension does this by subclassing the
  server's configured ``kernel_websocket_connection_class`` (whatever it is) so
  that once ``connect()`` is done it calls the handler's ``set_nodelay(True)``;
  nothing else about the connection changes. The cost is a few more small TCP packets.
"""

from __future__ import annotations

import inspect
from pathlib import Path
from typing import Any

from tornado.web import StaticFileHandler

__all__ = ["STATIC", "STATIC_ROUTE", "_load_jupyter_server_extension", "with_nodelay"]

STATIC = Path(__file__).resolve().parent / "static"
#: Where the assets appear under the server's base URL.
STATIC_ROUTE = "mug/static"


def with_nodelay(connection_class: type) -> type:
    """``connection_class`` (a Jupyter Server kernel WebSocket connection class) whose sockets send at once."""

    class NoDelayConnection(connection_class):  # type: ignore[misc, valid-type]
        __doc__ = f"{connection_class.__name__} with TCP_NODELAY on its WebSocket (added by mug's server extension)."

        async def connect(self) -> Any:
            result = super().connect()
            if inspect.isawaitable(result):
                result = await result
            # Only now: Tornado turns Nagle back on when it finishes writing the handshake response,
            # which happens after the handler's open() has started this connect().
            if self.websocket_handler.ws_connection is not None:
                self.websocket_handler.set_nodelay(True)
            return result

    NoDelayConnection.__qualname__ = NoDelayConnection.__name__ = f"NoDelay{connection_class.__name__}"
    return NoDelayConnection


def _load_jupyter_server_extension(serverapp: Any) -> None:
    web_app = serverapp.web_app
    base = web_app.settings["base_url"].rstrip("/")
    web_app.add_handlers(".*$", [(f"{base}/{STATIC_ROUTE}/(.*)", StaticFileHandler, {"path": str(STATIC)})])
    serverapp.log.info("mug: serving %s at %s/%s/", STATIC, base, STATIC_ROUTE)
    connection = web_app.settings.get("kernel_websocket_connection_class")
    if connection is not None:
        web_app.settings["kernel_websocket_connection_class"] = with_nodelay(connection)
        serverapp.log.info("mug: kernel WebSockets send without delay (TCP_NODELAY)")
