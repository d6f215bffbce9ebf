"""``mug check-policy``: signature, config, validation and Python-vs-JS parity of one ONNX policy."""

from __future__ import annotations

import argparse
import json
from typing import Any

from mug.errors import ConfigError, MugError
from mug.inference.config import ModelConfig
from mug.inference.parity import compare_traces, node_available, node_trace, python_trace, random_observations
from mug.inference.signature import read_signature

TOLERANCE = 1e-4


def add_parser(sub: Any) -> None:
    """Register ``check-policy`` on the ``mug`` sub-command parser."""
    p = sub.add_parser(
        "check-policy",
        help="check an ONNX policy: signature, config, validation, Python vs JS parity",
        description="Print the model's signature and the inferred (or given) config, validate it, then run N steps "
        "on random observations in the Python runtime and in the JS runtime (when Node is present) and compare.",
    )
    p.add_argument("model", help="the .onnx file")
    p.add_argument("--config", help="a ModelConfig JSON file (default: inferred from the graph)")
    p.add_argument("--steps", type=int, default=50, help="steps to run in each runtime (default: 50)")
    p.add_argument("--seed", type=int, default=0, help="sampling and observation seed (default: 0)")
    p.add_argument("--reset-every", type=int, default=0, metavar="K", help="reset hidden state every K steps (default: never)")
    p.add_argument("--json", action="store_true", help="print one JSON object instead of text")
    p.set_defaults(run=run)


def check(model: str, config_path: str | None, steps: int, seed: int, reset_every: int) -> dict[str, Any]:
    """Run every check; return the report as a JSON-ready dict (``ok`` says whether all passed)."""
    report: dict[str, Any] = {"model": model, "ok": False}
    try:
        report["signature"] = read_signature(model).to_dict()
        if config_path:
            config = ModelConfig.from_json(config_path)
            config.onnx_path = model
            report["config_source"] = config_path
        else:
            config = ModelConfig.from_onnx(model)
            report["config_source"] = "inferred from the graph"
        report["config"] = config.to_dict()
        config.validate()
        report["validation"] = "ok"
    except ConfigError as exc:
        report["validation"] = str(exc)
        return report

    observations = random_observations(config, steps, seed)
    entries = [{"obs": o, "reset": bool(reset_every and i and i % reset_every == 0)} for i, o in enumerate(observations)]

    def attempt(key: str, run: Any) -> Any:
        try:
            trace = run()
        except MugError as exc:
            report[key] = f"failed: {exc}"
            return None
        report[key] = f"ok, {len(trace)} steps"
        return trace

    py = js = None
    if config.custom_inference_fn is None:
        py = attempt("python", lambda: python_trace(config, entries, seed))
    else:
        report["python"] = "skipped: custom_inference_fn is JavaScript"
    if node_available():
        js = attempt("javascript", lambda: node_trace(config, entries, seed))
    else:
        report["javascript"] = "skipped: Node.js or the built JS runtime is missing"
    if py is not None and js is not None:
        parity = compare_traces(py, js)
        report["parity"] = {
            "steps": parity.steps,
            "differing_actions": parity.differing_actions,
            "max_logit_delta": parity.max_logit_delta,
            "max_state_delta": parity.max_state_delta,
            "tolerance": TOLERANCE,
            "ok": parity.within(TOLERANCE),
            "summary": parity.lines(),
        }
    ran = [r for r in (py, js) if r is not None]
    report["ok"] = (
        bool(ran)
        and not any(str(report.get(k, "")).startswith("failed") for k in ("python", "javascript"))
        and (report.get("parity", {}).get("ok", True))
    )
    return report


def render(report: dict[str, Any]) -> str:
    """The report as text."""
    lines = [f"== model: {report['model']}"]
    sig = report.get("signature")
    if sig:
        for side in ("inputs", "outputs"):
            lines.append(f"  {side}:")
            for t in sig[side]:
                shape = (
                    "[?...]" if t["shape"] is None else "[" + ", ".join("?" if d is None else str(d) for d in t["shape"]) + "]"
                )
                lines.append(f"    {t['name']:<14} {t['dtype']:<8} {shape}")
    if "config" in report:
        lines.append(f"== config ({report['config_source']}):")
        lines += ["  " + ln for ln in json.dumps(report["config"], indent=2).splitlines()]
    lines.append(f"== validation: {report.get('validation', 'not reached')}")
    for key in ("python", "javascript"):
        if key in report:
            lines.append(f"== {key} runtime: {report[key]}")
    if "parity" in report:
        p = report["parity"]
        lines.append(f"== parity (tolerance {p['tolerance']:g}): {'ok' if p['ok'] else 'MISMATCH'}")
        lines += ["  " + s for s in p["summary"]]
    lines.append("RESULT: " + ("ok" if report["ok"] else "FAILED"))
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    """Entry point of ``mug check-policy``."""
    if args.steps < 1:
        raise SystemExit("mug check-policy: --steps must be at least 1")
    report = check(args.model, args.config, args.steps, args.seed, args.reset_every)
    print(json.dumps(report, indent=2) if args.json else render(report))
    return 0 if report["ok"] else 1
