"""The ``mug`` command as a researcher runs it (``check-policy``; ``deploy``/``demo`` options)."""

from __future__ import annotations

import json
import re
import socket
import subprocess
import sys

import mug
from tests.bots import raw_http, run_async
from tests.conftest import COGRID, LSTM, SLIME, requires_node
from tests.servers import ServerProcess


def mug_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "mug", *args], capture_output=True, text=True, timeout=600)


@requires_node
def test_check_policy_reports_signature_config_and_parity():
    proc = mug_cli("check-policy", str(LSTM), "--steps", "30", "--reset-every", "10")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    out = proc.stdout
    assert "state_in_0     float32  [batch_size, 128]" in out
    assert '"state_outputs": [' in out
    assert "== validation: ok" in out
    assert "== python runtime: ok, 30 steps" in out
    assert "== javascript runtime: ok, 30 steps" in out
    assert "differing actions: 0" in out
    assert "max |Δ| state_out_1:" in out
    assert out.rstrip().endswith("RESULT: ok")


@requires_node
def test_check_policy_json():
    proc = mug_cli("check-policy", str(SLIME), "--steps", "5", "--json")
    report = json.loads(proc.stdout)
    assert proc.returncode == 0
    assert report["ok"] is True
    assert report["config"]["fixed_inputs"] == {"state_ins": 1}
    assert report["parity"]["differing_actions"] == 0


def test_check_policy_with_a_wrong_config_prints_the_validation_error(tmp_path):
    bad = {**mug.ModelConfig.from_onnx(LSTM).to_dict(), "state_outputs": ["state_out_1", "state_out_0"]}
    cfg = tmp_path / "policy.json"
    cfg.write_text(json.dumps(bad))
    proc = mug_cli("check-policy", str(LSTM), "--config", str(cfg))
    assert proc.returncode == 1
    assert (
        "== validation: state_outputs: state_inputs[0]='state_in_0' is paired with state_outputs[0]='state_out_1'" in proc.stdout
    )
    assert "RESULT: FAILED" in proc.stdout


def test_check_policy_on_the_batch4_export_explains_the_failure():
    proc = mug_cli("check-policy", str(COGRID), "--steps", "3")
    assert proc.returncode == 1
    assert "== python runtime: failed: policy 'cogrid_lstm_batch4', agent 'agent_0', step 0: onnxruntime failed" in proc.stdout
    assert "hint: an export whose graph hard-codes a batch size" in proc.stdout


def test_check_policy_on_a_missing_file():
    proc = mug_cli("check-policy", "no/such/model.onnx")
    assert proc.returncode == 1
    assert "== validation: onnx_path: no file at 'no/such/model.onnx'" in proc.stdout


def test_deploy_with_a_bad_limit_says_which_and_exits_2(tmp_path):
    proc = mug_cli("demo", "--port", "0", "--data-dir", str(tmp_path), "--messages-per-second", "0")
    assert proc.returncode == 2
    assert "messages_per_second must be a number from 1 to 10000, got 0.0" in proc.stderr


def test_a_served_study_logs_requests_with_timestamps_and_without_query_strings(tmp_path):
    server = ServerProcess(["demo"], tmp_path / "data").start()
    try:
        status, _ = run_async(raw_http(server.url + "?participant=logged1"))
        run_async(raw_http(server.url + "admin?token=" + server.admin_token))
    finally:
        output = server.stop()
    assert status == 200
    assert re.search(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d+ INFO mug\.access: 200 GET / ", output, re.M), output
    assert "logged1" not in output and server.admin_token not in output  # query strings (ids, the token) stay out


def test_user_mistakes_are_one_line_with_the_fix_exit_2_and_leave_nothing_on_disk(tmp_path):
    (tmp_path / "broken.py").write_text("import mug\nstudy = mug.Stager([\n")
    (tmp_path / "raises.py").write_text("import mug\n\nstudy = mug.Stager([mug.EndScene(completion_code=7)])\n")
    taken = socket.create_server(("127.0.0.1", 0))
    port = str(taken.getsockname()[1])
    data = tmp_path / "data"
    cases = {
        ("deploy", str(tmp_path / "missing.py")): "no file",
        ("deploy", str(tmp_path / "broken.py")): "broken.py line 2: '[' was never closed; fix the file",
        ("deploy", str(tmp_path / "raises.py")): "raises.py line 3: ",
        ("deploy", f"{tmp_path / 'broken.py'}:nothing"): "line 2",
        ("demo", "--port", port): f"port: {port} on 127.0.0.1 is already in use",
        ("demo", "--admin-token", "has spaces in it"): "admin_token must be 8-128 letters",
        ("demo", "--port", "eighty"): "argument --port: invalid int value",
        ("deploy",): "the following arguments are required",
    }
    try:
        for args, expected in cases.items():
            proc = mug_cli(*args, *([] if args == ("deploy",) else ["--data-dir", str(data)]))
            assert proc.returncode == 2, (args, proc.stderr)
            assert proc.stderr.count("\n") == 1 and expected in proc.stderr, (args, proc.stderr)
            assert proc.stderr.startswith(f"mug {args[0]}: ") and f"mug {args[0]}: {args[0]}:" not in proc.stderr
            assert "Traceback" not in proc.stderr and not data.exists(), args
    finally:
        taken.close()
