"""Data out of a played study: typed frames, Parquet, CSV, admin downloads, completion codes, model records."""

from __future__ import annotations

import csv
import gzip
import hashlib
import importlib
import io
import shutil

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from tornado.httpclient import AsyncHTTPClient

import mug
from mug.examples.demo import PARTNER_MODEL, demo_study
from mug.server.export import csv_chunks, export
from mug.server.simulate import simulate
from mug.server.store import Store
from tests.bots import DEMO_ANSWERS, Bot, run_async


def _study(model=PARTNER_MODEL, **end):
    study = demo_study(episodes=1, max_steps=8)
    if end:
        scenes = list(study.scenes.values())
        study = mug.Stager([*scenes[:-1], mug.EndScene(**end)])
    if model != PARTNER_MODEL:
        study.scenes["coins"].policies({"agent_0": mug.Human, "agent_1": mug.ModelConfig.from_onnx(model, temperature=0.3)})
    return study


def _play(study, data_dir, ids, before_stop=None):
    async def main():
        deployment = mug.deploy(study, port=0, data_dir=data_dir)
        results = await simulate(deployment.url, [Bot(deployment.url, pid) for pid in ids])
        extra = await before_stop(deployment) if before_stop else None
        deployment.stop()
        return results, extra

    return run_async(main())


@pytest.fixture(scope="module")
def played(tmp_path_factory):
    data = tmp_path_factory.mktemp("played")
    results, _ = _play(_study(), data, ["p1", "p2"])
    assert all(r.completion_code == "MUGDEMO" and r.errors == [] for r in results)
    return data, results


def test_a_played_study_loads_into_typed_frames(played):
    data, results = played
    study = mug.load(data)
    steps = study.steps
    assert len(steps) == sum(r.acked_steps for r in results) > 0
    assert steps["action_agent_0"].dtype == "Int64" and steps["action_agent_1"].dtype == "Int64"
    assert steps["reward_agent_0"].dtype == "float64"
    assert steps["source_agent_0"].dtype == "string" and set(steps["source_agent_1"]) == {"policy"}
    assert steps["terminated_agent_0"].dtype == "boolean" and str(steps["time"].dtype) == "datetime64[ns, UTC]"
    assert steps["episode"].dtype == "int64" and steps["step"].dtype == "int64"
    assert set(steps["participant_id"]) == {"p1", "p2"}
    assert "logits_agent_1" in steps and "logits_agent_0" not in steps  # only the browser-side policy has logits
    assert all(isinstance(x, np.ndarray) and x.dtype == np.float64 and x.shape == (5,) for x in steps["logits_agent_1"])
    assert "observations" not in steps and "policy_outputs" not in steps
    raw = Store(data, readonly=True)
    first = raw.steps()[0]
    raw.close()
    assert steps["action_agent_0"].iloc[0] == first["actions"]["agent_0"]
    assert steps["time"].iloc[0] == pd.Timestamp(first["time"], unit="s", tz="UTC")
    answers = study.responses.set_index("participant_id")
    assert answers.loc["p1", "answer_helpful"] == DEMO_ANSWERS["helpful"] and answers["answer_helpful"].dtype == "Int64"
    assert answers.loc["p2", "answer_human_like"] == "no"
    people = study.participants.set_index("participant_id")
    assert people["completed"].all() and str(people["created"].dtype) == "datetime64[ns, UTC]"
    assert people["steps"].to_dict() == steps.groupby("participant_id").size().to_dict()  # rows in any order
    assert {"session", "scene_start", "episode_end", "completed"} <= set(study.events["kind"])


def test_parquet_columns_are_typed(played, tmp_path):
    data, _ = played
    paths = {p.stem: p for p in export(data, "parquet", tmp_path)}
    assert sorted(paths) == ["events", "matches", "participants", "responses", "steps"]
    schema = pq.read_schema(paths["steps"])
    assert schema.field("action_agent_0").type == pa.int64()
    assert schema.field("reward_agent_1").type == pa.float64()
    assert schema.field("source_agent_1").type == pa.string()
    assert schema.field("truncated_agent_0").type == pa.bool_()
    assert schema.field("time").type == pa.timestamp("ns", tz="UTC")
    assert schema.field("infos").type == pa.string()  # free-form: JSON text
    assert schema.field("logits_agent_1").type == pa.list_(pa.float64())
    assert pa.types.is_timestamp(pq.read_schema(paths["participants"]).field("created").type)
    assert pa.types.is_integer(pq.read_schema(paths["responses"]).field("answer_helpful").type)
    table = pq.read_table(paths["steps"]).to_pandas()
    assert len(table) == len(mug.load(data).steps)


def test_parquet_steps_are_written_in_row_groups(played, tmp_path, monkeypatch):
    export_module = importlib.import_module("mug.server.export")  # the package re-exports the function as .export

    monkeypatch.setattr(export_module, "PARQUET_ROWS", 3)
    data, _ = played
    path = next(p for p in export(data, "parquet", tmp_path) if p.stem == "steps")
    n = len(mug.load(data).steps)
    assert pq.ParquetFile(path).metadata.num_row_groups == -(-n // 3)


def test_recorded_states_and_observations_become_float_arrays(tmp_path):
    store = Store(tmp_path)
    for i in range(3):
        store.add_step(
            "p",
            {"session_id": "s", "scene_id": "g", "episode": 0, "step": i, "decision": i, "time": 1.7e9 + i,
             "actions": {"a": [0.5, -1.0]}, "sources": {"a": "policy"}, "rewards": {"a": float("nan")},
             "terminated": {"a": False}, "truncated": {"a": i == 2}, "infos": {"a": {"note": i}},
             "observations": {"a": np.full((2, 2), i, dtype=np.float32), "b": {"pos": [i], "name": "x"}},
             "policy_outputs": {"a": {"logits": np.array([np.nan, 1.0], np.float32),
                                      "states": {"h": np.full((1, 3), 0.5 * i, np.float32)}}}},
        )  # fmt: skip
    store.commit()
    store.close()
    steps = mug.load(tmp_path).steps
    assert steps["action_a"].iloc[0] == [0.5, -1.0] and np.isnan(steps["reward_a"]).all()
    assert steps["truncated_a"].tolist() == [False, False, True]
    assert np.array_equal(steps["state_a_h"].iloc[2], [1.0, 1.0, 1.0]) and steps["state_a_h"].iloc[2].dtype == np.float64
    assert np.isnan(steps["logits_a"].iloc[0][0]) and steps["logits_a"].iloc[0][1] == 1.0
    assert np.array_equal(steps["observation_a"].iloc[1], [1, 1, 1, 1])
    assert steps["observation_b"].iloc[1] == '{"name":"x","pos":[1]}'  # a dict observation: JSON text
    assert steps["infos"].iloc[2] == '{"a":{"note":2}}'
    path = next(p for p in export(tmp_path, "parquet") if p.stem == "steps")
    schema = pq.read_schema(path)
    assert schema.field("action_a").type == pa.list_(pa.float64())
    assert schema.field("state_a_h").type == pa.list_(pa.float64()) and schema.field("observation_b").type == pa.string()
    assert pq.read_table(path).column("state_a_h").to_pylist()[1] == [0.5, 0.5, 0.5]


def test_csv_export_has_every_table_and_is_safe_in_a_spreadsheet(tmp_path):
    store = Store(tmp_path)
    for pid in ('=HYPERLINK("http://evil")', "+1", "-2", "@SUM(A1)", "\tx", "plain"):
        store.save_participant(pid, {"index": 0, "order": ["game"]}, "game", False)
        store.add_event(pid, "advance", {"scene_id": "game"})
    store.commit()
    store.close()
    paths = {p.stem: p for p in export(tmp_path, "csv")}
    assert sorted(paths) == ["events", "matches", "participants", "responses", "steps"]
    for table in ("participants", "events"):
        ids = [row["participant_id"] for row in csv.DictReader(paths[table].open(newline=""))]
        assert ids == ['\'=HYPERLINK("http://evil")', "'+1", "'-2", "'@SUM(A1)", "'\tx", "plain"]
    assert mug.load(tmp_path).participants["participant_id"].iloc[0] == '=HYPERLINK("http://evil")'  # exact in frames


def test_csv_is_produced_in_chunks_while_rows_are_read(tmp_path, monkeypatch):
    import mug.server.store_reading as reading

    monkeypatch.setattr(reading, "BATCH_ROWS", 50)
    store = Store(tmp_path)
    for i in range(3000):
        store.add_step("p", {"session_id": "s", "scene_id": "g", "episode": 0, "step": i, "decision": i, "time": 0.0,
                             "actions": {"a": 1}, "sources": {"a": "human"}, "infos": {"pad": "x" * 100}})  # fmt: skip
    store.commit()
    read = []
    original = store.iter_steps

    def counting():
        for row in original():
            read.append(row)
            yield row

    monkeypatch.setattr(store, "iter_steps", counting)
    chunks = csv_chunks(store, "steps")
    first = next(chunks)
    assert len(read) < 1000  # the first chunk left before the table was read
    rest = "".join(chunks)
    assert len(list(csv.reader(io.StringIO(first + rest)))) == 3001
    store.close()


def test_admin_downloads_stream_every_table_gzipped_off_the_loop(played, tmp_path):
    data, _ = played
    copy = tmp_path / "data"
    shutil.copytree(data, copy)

    async def download(deployment):
        client = AsyncHTTPClient()
        out = {}
        for table in ("steps", "events", "participants", "responses"):
            url = f"{deployment.admin_url}/{table}.csv"
            response = await client.fetch(url, headers={"X-MUG-Admin-Token": deployment.admin_token, "Accept-Encoding": "gzip"},
                                          decompress_response=False)  # fmt: skip
            assert response.headers["Content-Encoding"] == "gzip" and "Content-Length" not in response.headers
            out[table] = gzip.decompress(response.body).decode()
        page = await client.fetch(deployment.admin_url, headers={"X-MUG-Admin-Token": deployment.admin_token})
        out["page"] = page.body.decode()
        return out

    _, got = _play(_study(), copy, [], before_stop=download)
    assert got["steps"].splitlines()[0].startswith("participant_id,session_id,scene_id,episode,step")
    assert len(got["steps"].splitlines()) == 1 + len(mug.load(copy).steps)
    assert "session" in got["events"] and "completed" in got["events"]
    assert "events.csv" in got["page"]


def test_unique_completion_codes_are_stored_shown_and_exported(tmp_path):
    study = _study(unique_code=True, redirect_url="https://example.org/done?code={completion_code}")

    async def admin(deployment):
        client = AsyncHTTPClient()
        page = await client.fetch(deployment.admin_url, headers={"X-MUG-Admin-Token": deployment.admin_token})
        return page.body.decode(), deployment.participants

    results, (page, participants) = _play(study, tmp_path, ["c1", "c2", "c3"], before_stop=admin)
    codes = [r.completion_code for r in results]
    assert len(set(codes)) == 3 and all(len(c) == 10 and c.isalnum() for c in codes)
    assert dict(zip(participants["participant_id"], participants["completion_code"])) == dict(zip(["c1", "c2", "c3"], codes))
    assert all(code in page for code in codes)
    exported = {row["participant_id"]: row["completion_code"] for row in csv.DictReader(export(tmp_path, "csv")[2].open())}
    assert exported == dict(zip(["c1", "c2", "c3"], codes))
    completed = {
        e["participant_id"]: e["data"]["completion_code"] for e in mug.load(tmp_path).events.pipe(_events_of, "completed")
    }
    assert completed == dict(zip(["c1", "c2", "c3"], codes))


def _events_of(frame, kind):
    import json

    return [{"participant_id": r.participant_id, "data": json.loads(r.data)} for r in frame[frame["kind"] == kind].itertuples()]


def test_a_returning_participant_keeps_their_code(tmp_path):
    study = _study(unique_code=True)

    async def main():
        deployment = mug.deploy(study, port=0, data_dir=tmp_path)
        bot = Bot(deployment.url, "back")
        first = await bot.run()
        second = await Bot(deployment.url, "back", cookie=bot.cookie).run()
        deployment.stop()
        return first, second

    first, second = run_async(main())
    assert first.completion_code and second.completion_code == first.completion_code


def test_end_scene_code_options_are_checked():
    with pytest.raises(mug.ConfigError, match="unique_code"):
        mug.EndScene(completion_code="X", unique_code=True)
    with pytest.raises(mug.ConfigError, match="unique_code: expected True or False"):
        mug.EndScene(unique_code="yes")


def test_models_are_served_at_content_hashed_urls_and_sessions_record_what_they_ran(tmp_path):
    model = tmp_path / "partner.onnx"
    shutil.copy(PARTNER_MODEL, model)
    study = _study(model)
    digest = hashlib.sha256(model.read_bytes()).hexdigest()

    async def fetch(deployment):
        client = AsyncHTTPClient()
        url = study.scenes["coins"].model_path("agent_1")
        served = await client.fetch(deployment.url + url)
        data = bytearray(model.read_bytes())
        data += b"\x00"  # a changed model file (a redeploy): new URL, the old one is gone
        model.write_bytes(bytes(data))
        new_url = study.scenes["coins"].model_path("agent_1")
        stale = await client.fetch(deployment.url + url, raise_error=False)
        fresh = await client.fetch(deployment.url + new_url, raise_error=False)
        return url, served, new_url, stale, fresh

    (result,), (url, served, new_url, stale, fresh) = _play(study, tmp_path / "data", ["m1"], before_stop=fetch)
    assert url == f"models/coins/agent_1/{digest[:16]}.onnx"
    assert served.body == PARTNER_MODEL.read_bytes()
    assert "immutable" in served.headers["Cache-Control"] and "max-age=31536000" in served.headers["Cache-Control"]
    assert new_url != url and stale.code == 404 and fresh.code == 200
    sessions = Store(tmp_path / "data", readonly=True).events("session")
    assert len(sessions) == 1
    record = sessions[0]["data"]
    assert record["mug_version"] == mug.__version__ and record["scene_id"] == "coins"
    assert record["policies"]["agent_1"]["model_sha256"] == digest
    assert record["policies"]["agent_1"]["config"]["temperature"] == 0.3
    assert record["policies"]["agent_0"] == {"kind": "human", "where": "browser"}
    assert record["policies"]["agent_1"]["where"] == "browser" and record["policies"]["agent_1"]["inference"] == "auto"
    assert result.errors == []


class _Teams:
    """A Parallel-API env whose agent ids are a string with a space and a tuple (their wire ids hold ' ', '(', "'")."""

    def __init__(self) -> None:
        import gymnasium as gym

        self.possible_agents = ["red team", ("blue", 1)]
        self.agents = list(self.possible_agents)
        self.observation_spaces = {a: gym.spaces.Box(0.0, 1.0, (4,), np.float32) for a in self.possible_agents}
        self.action_spaces = {a: gym.spaces.Discrete(3) for a in self.possible_agents}

    def reset(self, seed=None, options=None):
        self.t = 0
        return {a: np.zeros(4, np.float32) for a in self.possible_agents}, {a: {} for a in self.possible_agents}

    def step(self, actions):
        self.t += 1
        obs = {a: np.full(4, self.t / 10, np.float32) for a in self.possible_agents}
        done = {a: self.t >= 5 for a in self.possible_agents}
        return obs, dict.fromkeys(self.possible_agents, 0.0), done, dict.fromkeys(self.possible_agents, False), {}

    def render(self):
        return np.zeros((8, 8, 3), np.uint8)


def test_a_browser_side_model_is_served_for_an_agent_id_that_is_no_url_word(tmp_path):
    from tests.synthetic import recurrent_model

    config = mug.ModelConfig.from_onnx(recurrent_model(tmp_path / "blue.onnx", obs=4, actions=3))
    scene = (
        mug.GymScene("teams")
        .environment(_Teams, check_determinism=False)
        .policies({"red team": mug.Human, ("blue", 1): config})
        .gameplay(action_mapping={"ArrowUp": 1}, mode="lockstep")  # lockstep: the model runs in the browser
    )

    async def main():
        deployment = mug.deploy(mug.Stager([scene]), port=0, data_dir=tmp_path / "data")
        url = scene.model_path("('blue', 1)")
        served = await AsyncHTTPClient().fetch(deployment.url + url, raise_error=False)
        deployment.stop()
        return url, served

    url, served = run_async(main())
    assert "%28%27blue%27%2C%201%29" in url  # percent-escaped in the URL
    assert served.code == 200 and served.body == (tmp_path / "blue.onnx").read_bytes()
