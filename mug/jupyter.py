"""MUG's Jupyter server extension: serves the package's public assets (client bundle, ORT wasm).

Enabled by ``jupyter-config/jupyter_server_config.d/mug.json`` (installed with the
package). Assets are served like Jupyter's own ``/static/``, without
authentication: they are public package files, and the widget's module (loaded
from a blob URL) cannot pass Jupyter's authenticated-handler checks.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tornado.web import StaticFileHandler

__all__ = ["STATIC", "STATIC_ROUTE", "_load_jupyter_server_extension"]

STATIC = Path(__file__).resolve().parent / "static"
#: Where the assets appear under the server's base URL.
STATIC_ROUTE = "mug/static"


def _load_jupyter_server_extension(serverapp: Any) -> None:
    web_app = serverapp.web_app
    base = web_app.settings["base_url"].rstrip("/")
    web_app.add_handlers(".*$", [(f"{base}/{STATIC_ROUTE}/(.*)", StaticFileHandler, {"path": str(STATIC)})])
    serverapp.log.info("mug: serving %s at %s/%s/", STATIC, base, STATIC_ROUTE)
