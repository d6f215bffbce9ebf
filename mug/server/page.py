"""HTML of the participant page and the admin view."""

from __future__ import annotations

import html
import json
import time
from typing import Any

__all__ = ["participant_page", "admin_page"]

_STYLE = """
body { font-family: system-ui, sans-serif; margin: 0; background: #f6f6f4; color: #222; }
#mug-root { max-width: 900px; margin: 2rem auto; padding: 0 1rem; }
.mug-card { background: #fff; border-radius: 8px; padding: 1.5rem 2rem; box-shadow: 0 1px 3px rgba(0,0,0,.12); }
.mug-hud { font: 600 1.1rem system-ui; min-height: 1.5rem; margin: .5rem 0; }
canvas { display: block; margin: 0 auto; border: 1px solid #ccc; background: #fff; }
canvas:focus { outline: 3px solid #3b82f6; }
button { font-size: 1rem; padding: .5rem 1.2rem; margin-top: 1rem; cursor: pointer; }
.mug-error { background: #fee2e2; color: #991b1b; padding: .75rem 1rem; border-radius: 6px; margin: 1rem 0; }
.mug-loading { color: #555; font-style: italic; }
.mug-question { margin: 1.2rem 0; }
.mug-likert label { margin-right: .8rem; }
.mug-code { font: 700 1.4rem monospace; letter-spacing: .1em; }
.mug-notice { background: #fef3c7; color: #78350f; padding: .75rem 1rem; border-radius: 6px; margin: 1rem 0; }
.mug-seat { color: #666; font-size: .9rem; margin: 0 0 .5rem; }
.mug-waitroom-count, .mug-waitroom-time { font-size: 1.2rem; }
.mug-paused { position: fixed; inset: 0; display: flex; flex-direction: column; align-items: center; justify-content: center;
  background: rgba(246,246,244,.92); font-size: 1.2rem; text-align: center; padding: 1rem; }
"""


def participant_page(participant_id: str, nonce: str) -> str:
    """The page a participant opens; the client bundle does the rest over the WebSocket.

    ``nonce`` marks its one inline script for the Content-Security-Policy (see :mod:`mug.server.headers`).
    """
    config = json.dumps({"participantId": participant_id, "socketPath": "ws", "staticPath": "static/"})
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>Study</title><link rel="icon" href="data:,"><style>{_STYLE}</style></head>
<body><main id="mug-root"><p class="mug-loading">Loading…</p></main>
<script type="module" nonce="{nonce}">
import {{ startParticipant }} from "./static/client.js";
startParticipant(document.getElementById("mug-root"), {html.escape(config, quote=False)});
</script></body></html>"""


def admin_page(participants: list[dict[str, Any]]) -> str:
    """The researcher's overview: one row per participant (with their own completion code where the study
    gives one), with export links, and the live view of the matches (``static/admin.js`` fills it from
    ``/admin/live``, see :mod:`mug.server.admin_live`)."""
    rows = "".join(
        "<tr>"
        + "".join(
            f"<td>{html.escape(str(v))}</td>"
            for v in (
                p["participant_id"],
                time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(p["created"])),
                p["scene_id"] or "-",
                f"{p['scene_index']} / {p['scenes']}",
                p["steps"],
                "yes" if p["completed"] else "no",
                p.get("completion_code") or "-",
            )
        )
        + "</tr>"
        for p in participants
    )
    links = " · ".join(f'<a href="admin/{t}.csv">{t}.csv</a>' for t in ("steps", "responses", "participants", "events"))
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>MUG admin</title><link rel="icon" href="data:,"><style>{_STYLE}
table {{ border-collapse: collapse; width: 100%; }} td, th {{ border-bottom: 1px solid #ddd; padding: .4rem; text-align: left; }}</style></head>
<body><main id="mug-root"><div class="mug-card"><h1>Participants ({len(participants)})</h1>
<p>Export: {links}</p>
<table><thead><tr><th>participant</th><th>started</th><th>scene</th><th>progress</th><th>steps</th><th>completed</th><th>completion code</th></tr></thead>
<tbody>{rows}</tbody></table></div>
<div class="mug-card" id="mug-live"><h1>Matches, live</h1><p class="mug-loading">Loading…</p></div></main>
<script type="module" src="static/admin.js"></script></body></html>"""
