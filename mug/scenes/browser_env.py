"""Scenes whose environment runs in the participant's browser (Pyodide): options, checks and the portable spec.

:meth:`GymScene.runtime(environment="browser", ...) <mug.GymScene.runtime>`
delegates here. At build time a browser-side scene is checked:

* the env creator (and ``draw``/``hud``) are module-level objects of an
  importable module file (not a notebook cell), which mug ships to the browser:
  the module's top-level package directory, or the module file alone;
* every action space is ``Discrete`` or ``MultiDiscrete`` (described as plain data);
* policies are ``mug.Human``, ``mug.Random`` or ONNX models (run by the page's
  JS runtime); a Python callable cannot run in the browser;
* the env can be snapshotted (:func:`check_snapshots`).

:func:`browser_spec` is the plain-data spec the browser's engine
(:class:`mug.browser.BrowserGame`) is built from.
"""

from __future__ import annotations

import copy
import inspect
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mug.errors import ConfigError
from mug.session.engine import episode_seed
from mug.session.envs import EnvAdapter
from mug.session.snapshots import has_state_protocol, observation_hash, restore_env, snapshot_env, state_hash

if TYPE_CHECKING:
    from mug.scenes.gym_scene import GymScene

__all__ = [
    "DEFAULT_PACKAGE_INDEX",
    "ENVIRONMENTS",
    "browser_spec",
    "check_browser_scene",
    "check_snapshots",
    "check_packages",
    "describe_action_space",
    "object_ref",
]

ENVIRONMENTS = ("server", "browser")
#: Where Pyodide packages with compiled code (NumPy, ...) come from by default: Pyodide's own index (with its
#: integrity hashes in ``pyodide-lock.json``) for the Pyodide release mug ships. Set ``package_index_url`` to a
#: mirror you host for studies that must not depend on a CDN.
DEFAULT_PACKAGE_INDEX = "https://cdn.jsdelivr.net/pyodide/v{version}/full/"


def check_packages(packages: Any, package_index_url: Any) -> tuple[list[str], list[Path], str | None]:
    """``(names, wheels, index)`` from ``runtime(packages=..., package_index_url=...)``.

    An entry ending in ``.whl`` is a local pure-Python wheel (``*-none-any.whl``) shipped by the server; any other
    entry is a Pyodide package name loaded from ``package_index_url``."""
    if isinstance(packages, str) or not isinstance(packages, (list, tuple)):
        raise ConfigError(f"packages: expected a list of package names or wheel paths, got {packages!r}", field="packages")
    names, wheels = [], []
    for entry in packages:
        if not isinstance(entry, (str, Path)) or not str(entry):
            raise ConfigError(f"packages: expected a package name or a .whl path, got {entry!r}", field="packages")
        if str(entry).endswith(".whl"):
            path = Path(entry).resolve()
            if not path.is_file():
                where = (
                    "" if Path(entry).is_absolute() else f" (a relative path is taken from the working directory, {Path.cwd()})"
                )
                raise ConfigError(f"packages: wheel {str(entry)!r} is not a file{where}", field="packages")
            if not path.name.endswith("-none-any.whl"):
                raise ConfigError(
                    f"packages: wheel {path.name!r} is not pure Python (its name must end in -none-any.whl); compiled "
                    "packages come from the package index by name (e.g. 'numpy')",
                    field="packages",
                )
            wheels.append(path)
        else:
            names.append(str(entry))
    if package_index_url is not None and (
        not isinstance(package_index_url, str) or not package_index_url.startswith(("https://", "http://", "/"))
    ):
        raise ConfigError(
            f"package_index_url: expected an http(s) URL or a path on this server ending in '/', got {package_index_url!r}",
            field="package_index_url",
        )
    if package_index_url is not None and not package_index_url.endswith("/"):
        package_index_url += "/"
    return names, wheels, package_index_url


def object_ref(obj: Any, field: str) -> str:
    """``"module:qualname"`` of a module-level function or class; ``ConfigError`` on ``field`` if the browser
    could not import it from a shipped module file."""
    module_name, qualname = getattr(obj, "__module__", None), getattr(obj, "__qualname__", None)
    module = sys.modules.get(module_name or "")
    where = getattr(module, "__file__", None)
    if module is None or module_name == "__main__" or not where or not where.endswith(".py") or "<locals>" in (qualname or ""):
        raise ConfigError(
            f"{field}: {obj!r} must be defined at the top level of a Python module file (not in a notebook cell or "
            "inside a function) so that mug can ship that module to the browser; move it into a .py file next to the "
            "notebook and import it from there",
            field=field,
        )
    target: Any = module
    for part in qualname.split("."):  # type: ignore[union-attr]
        target = getattr(target, part, None)
    if target is not obj:
        raise ConfigError(
            f"{field}: {module_name}.{qualname} is not {obj!r} when imported from {where}; define it at module level",
            field=field,
        )
    return f"{module_name}:{qualname}"


def describe_action_space(space: Any, agent: str) -> dict[str, Any]:
    """A ``Discrete`` or ``MultiDiscrete`` space as plain data (:class:`mug.browser.scene.PortableSpace`)."""
    from gymnasium import spaces

    if isinstance(space, spaces.Discrete):
        return {"kind": "discrete", "n": int(space.n), "start": int(space.start)}
    if isinstance(space, spaces.MultiDiscrete) and space.nvec.ndim == 1:
        return {"kind": "multi_discrete", "nvec": [int(n) for n in space.nvec]}
    raise ConfigError(
        f"environment='browser': agent {agent!r} has action space {space}; a browser-side scene supports Discrete and "
        "one-dimensional MultiDiscrete action spaces",
        field="environment",
    )


def check_snapshots(adapter: EnvAdapter, seed: int, steps: int = 3) -> None:
    """Snapshot -> step -> restore -> step must give the same observations, rewards and state hash.

    The env is reset with ``seed`` and stepped ``steps`` times with each agent's first action of its space
    (``0`` / zeros). ``ConfigError`` (field ``environment``) says what differed or why the env cannot be
    snapshotted (give it ``get_state()``/``set_state()``)."""
    env = adapter.env
    how = "get_state()/set_state()" if has_state_protocol(env) else "a deep copy of the env object"
    hint = (
        "Give the env get_state() -> plain data and set_state(state) methods that capture everything its step "
        "depends on (positions, counters, RNG state)"
    )
    try:
        adapter.reset(seed)
        actions = {a: _zero_action(adapter.action_space(a)) for a in adapter.agents}
        for step in range(steps):
            live = {a: v for a, v in actions.items() if a in set(adapter.live_agents())}
            if not live:
                return
            state = snapshot_env(env)
            before = state_hash(env)
            first = adapter.step(live)
            first_obs, first_hash = observation_hash(first.observations), state_hash(env)
            restore_env(env, state)
            if state_hash(env) != before:
                raise ConfigError(
                    f"environment='browser': restoring a snapshot ({how}) at step {step} does not give back the env's "
                    f"state (state hash {state_hash(env)} instead of {before}). {hint}",
                    field="environment",
                )
            second = adapter.step(live)
            for what, a, b in (
                ("observations", first_obs, observation_hash(second.observations)),
                ("rewards", first.rewards, second.rewards),
                ("state hash", first_hash, state_hash(env)),
            ):
                if a != b:
                    raise ConfigError(
                        f"environment='browser': the env cannot be snapshotted with {how}: snapshot -> step -> restore -> "
                        f"step gave different {what} at step {step} ({a!r} then {b!r}). {hint}",
                        field="environment",
                    )
    except ConfigError:
        raise
    except Exception as exc:
        raise ConfigError(
            f"environment='browser': the env cannot be snapshotted with {how}: {type(exc).__name__}: {exc}. {hint}",
            field="environment",
        ) from exc


def _zero_action(space: Any) -> Any:
    if hasattr(space, "nvec"):
        return [0] * len(space.nvec)
    return int(getattr(space, "start", 0))


def check_browser_scene(scene: GymScene) -> None:
    """Everything a browser-side scene needs, checked in CPython (module docstring); ``ConfigError`` otherwise."""
    scene.check_ready()
    if isinstance(scene.env_creator, str):
        raise ConfigError(
            f"environment='browser': scene {scene.scene_id!r} names the Gymnasium id {scene.env_creator!r}; a browser-side "
            "env is a callable from your own module file (e.g. a class in my_env.py), which mug ships to the browser",
            field="environment",
        )
    object_ref(scene.env_creator, "env_creator")
    for field in ("draw", "hud"):
        if getattr(scene, field) is not None:
            object_ref(getattr(scene, field), field)
    for agent in scene.agents:
        describe_action_space(scene.action_space(agent), agent)
    for agent, spec in scene.policy_specs.items():
        if spec.kind == "callable":
            raise ConfigError(
                f"environment='browser': the policy of agent {scene.agent_ids.get(agent, agent)!r} is a Python callable, "
                "which runs on the server; a browser-side scene takes mug.Human, mug.Random or a ModelConfig",
                field="policies",
            )
    adapter = scene.make_env()
    try:
        check_snapshots(adapter, episode_seed(scene.seed, 0))
    finally:
        adapter.close()


def env_config(scene: GymScene) -> dict[str, Any]:
    """The creator's keyword arguments as the browser passes them (``render_mode`` added as ``make_env`` does)."""
    kwargs = copy.deepcopy(scene.env_config)
    if scene.render_mode == "rgb_array" and "render_mode" not in kwargs:
        try:
            if "render_mode" in inspect.signature(scene.env_creator).parameters:  # type: ignore[arg-type]
                kwargs["render_mode"] = "rgb_array"
        except (TypeError, ValueError):
            pass
    return kwargs


def browser_spec(scene: GymScene) -> dict[str, Any]:
    """The portable spec of a checked browser-side scene (see :class:`mug.browser.scene.BrowserScene`)."""
    import mug
    from mug.session.messages import jsonable

    in_browser = [a for a, s in scene.policy_specs.items() if s.kind == "model"]
    return jsonable(
        {
            "scene_id": scene.scene_id,
            "mug_version": mug.__version__,
            "env": {"creator": object_ref(scene.env_creator, "env_creator"), "config": env_config(scene)},
            "seed": scene.seed,
            "agents": scene.agents,
            "action_spaces": {a: describe_action_space(scene.action_space(a), a) for a in scene.agents},
            "policies": {a: {"kind": s.kind, "where": "browser"} for a, s in scene.policy_specs.items()},
            "browser_policies": in_browser,
            "policy_seed": scene.policy_seed,
            "gameplay": {
                "action_mapping": [[combo, action] for combo, action in scene.action_mapping.items()],
                "num_episodes": scene.num_episodes,
                "max_steps": scene.max_steps,
                "default_action": scene.default_action,
                "input_mode": scene.input_mode,
                "step_mode": scene.step_mode,
                "frame_skip": scene.frame_skip,
                "act_timeout_s": scene.act_timeout_s,
            },
            "rendering": {
                "mode": scene.render_mode,
                "fps": scene.fps,
                "width": scene.width,
                "height": scene.height,
                "encoding": scene.encoding,
                "images": {name: name for name in scene.images},
                "draw": object_ref(scene.draw, "draw") if scene.draw is not None else None,
                "hud": object_ref(scene.hud, "hud") if scene.hud is not None else None,
            },
            "data": {
                "record_observations": scene.record_observations,
                "record_infos": scene.record_infos,
                "record_policy_outputs": scene.record_policy_outputs,
            },
            "client": scene.client_metadata("deployment"),
        }
    )
