"""``GymScene``: an environment scene, configured by chained builder methods.

Every builder method checks its arguments when it is called and raises
:class:`~mug.ConfigError` naming the field, so a mistake shows up in the
notebook cell that made it, not in a participant's browser.
"""

from __future__ import annotations

import numbers
import os
import re
import warnings
from collections.abc import Callable, Hashable, Mapping
from pathlib import Path
from typing import Any
from urllib.parse import quote

from mug.errors import ConfigError, did_you_mean
from mug.scenes.base import Scene
from mug.scenes.browser_env import ENVIRONMENTS, browser_spec, check_browser_scene, check_packages
from mug.scenes.checks import accepts, integer, one_of
from mug.scenes.matching import MatchBuilder, MatchmakingOptions, MonitoringOptions, MultiplayerOptions, WaitroomOptions
from mug.scenes.policies import HOSTS, INFERENCE, PolicySpec, check_model_fits, discrete_n, file_sha256, policy_spec
from mug.session.engine import BROWSER_WAIT_S, episode_seed
from mug.session.envs import EnvAdapter, agent_key, inspect_env
from mug.session.inputs import keys_of

__all__ = ["GymScene"]

_COLOR = re.compile(r"^#(?:[0-9a-fA-F]{3}|[0-9a-fA-F]{6})$")
RENDER_MODES = ("rgb_array", "surface")
ENCODINGS = ("png", "zlib", "raw")
INPUT_MODES = ("pressed_keys", "single_keystroke")
STEP_MODES = ("realtime", "lockstep")


class GymScene(MatchBuilder, Scene):
    """An environment scene: who plays which agent, how inputs map to actions, how it is drawn.

    Example::

        scene = (
            mug.GymScene("cartpole")
            .environment("CartPole-v1", seed=7)
            .policies({"agent_0": mug.Human})
            .gameplay(action_mapping={"ArrowLeft": 0, "ArrowRight": 1}, num_episodes=3, max_steps=500)
            .rendering(fps=30)
        )

    ``agents`` lists the env's agents as strings (``str(id)``), the keys used
    on the wire and in records; ``agent_ids`` maps each to the env's own id,
    which the builder methods take and the callbacks receive.
    """

    kind = "gym"

    def __init__(self, scene_id: str) -> None:
        super().__init__(scene_id)
        self.env_creator: Callable[..., Any] | str | None = None
        self.env_config: dict[str, Any] = {}
        self.seed = 0
        self.agents: list[str] = []
        self.agent_ids: dict[str, Hashable] = {}
        self.env_time_limit: int | None = None
        self._action_spaces: dict[str, Any] = {}
        self._obs_spaces: dict[str, Any] = {}
        self.policy_specs: dict[str, PolicySpec] = {}
        self.action_mapping: dict[str, int] = {}
        self.num_episodes = 1
        self.max_steps: int | None = None
        self.default_action: Any = 0
        self.input_mode = "pressed_keys"
        self.step_mode = "realtime"
        self.frame_skip = 1
        self.hud: Callable[..., str] | None = None
        self.fps = 30
        self.width, self.height = 600, 400
        self.background = "#ffffff"
        self.render_mode = "rgb_array"
        self.encoding = "png"
        self.draw: Callable[..., Any] | None = None
        self.asset_dir: Path | None = None
        self.images: dict[str, str] = {}
        self.header, self.body, self.controls = "", "", ""
        self.policy_seed = 0
        self.act_timeout_s: float | None = None
        self.environment_where = "server"
        self.packages: list[str] = []
        self.wheels: list[Path] = []
        self.package_index_url: str | None = None
        self._warned_waits: set[str] = set()
        self.waitroom_options = WaitroomOptions()
        self.matchmaking_options = MatchmakingOptions()
        self.multiplayer_options = MultiplayerOptions()
        self.monitoring_options = MonitoringOptions()
        self.record_observations = False
        self.record_infos = True
        self.record_policy_outputs = True

    # -- environment --------------------------------------------------------------------

    def environment(
        self,
        env_creator: Callable[..., Any] | str,
        env_config: Mapping[str, Any] | None = None,
        seed: int = 0,
        *,
        check_determinism: bool = True,
    ) -> GymScene:
        """The environment: a Gymnasium id (``"CartPole-v1"``) or a callable ``env_creator(**env_config)``.

        ``seed`` is the scene seed; episode *k* is reset with a seed derived
        from it and *k*. One env is created here to read its agents and spaces:

        * agent ids are the env's own (any hashable, e.g. PettingZoo's ``0``,
          ``1``) wherever researcher code names or receives them; only messages
          to the browser and stored records carry ``str(id)``. Ids equal as
          strings (``0`` and ``"0"``) are refused.
        * an observation space the env does not declare is inferred from a
          reset observation (Box, Dict or Tuple), with a warning saying so.
        * ``check_determinism`` resets the env twice with episode 0's seed and
          raises :class:`~mug.ConfigError` if the first observations differ;
          ``False`` accepts such an env.
        * a Gymnasium ``TimeLimit`` shorter than ``gameplay(max_steps=...)`` warns.
        """
        if not (isinstance(env_creator, str) or callable(env_creator)):
            raise ConfigError(
                f"env_creator: expected a Gymnasium id or a callable returning an env, got {env_creator!r}", field="env_creator"
            )
        if env_config is not None and not isinstance(env_config, Mapping):
            raise ConfigError(f"env_config: expected a dict of keyword arguments, got {env_config!r}", field="env_config")
        self.seed = integer(seed, "seed", 0, 2**31 - 1)
        if not isinstance(check_determinism, bool):
            raise ConfigError(f"check_determinism: expected True or False, got {check_determinism!r}", field="check_determinism")
        self.env_creator, self.env_config = env_creator, dict(env_config or {})
        try:
            adapter = self.make_env(render=False)
        except ConfigError:
            raise
        except Exception as exc:
            raise ConfigError(
                f"env_creator: creating the environment failed: {type(exc).__name__}: {exc}", field="env_creator"
            ) from exc
        try:
            for method in ("reset", "step"):
                if not callable(getattr(adapter.env, method, None)):
                    raise ConfigError(f"env_creator: the environment has no {method}() method", field="env_creator")
            info = inspect_env(adapter, episode_seed(self.seed, 0), check_determinism=check_determinism)
        finally:
            adapter.close()
        self.agent_ids, self.agents = info.ids, list(info.ids)
        self._action_spaces, self._obs_spaces = info.action_spaces, info.observation_spaces
        self.env_time_limit = info.time_limit
        self.policy_specs = {}
        self._warn_time_limit()
        return self

    def make_env(self, *, render: bool = True) -> EnvAdapter:
        """A new environment for one session (``render=True`` asks Gymnasium ids for ``rgb_array`` frames)."""
        if self.env_creator is None:
            raise ConfigError(f"scene {self.scene_id!r}: call .environment(...) first", field="environment")
        if isinstance(self.env_creator, str):
            import gymnasium

            kwargs = dict(self.env_config)
            if render and self.render_mode == "rgb_array":
                kwargs.setdefault("render_mode", "rgb_array")
                # Gymnasium's pygame renderers need no display for rgb_array; without this SDL
                # looks for one and prints an error on headless machines.
                os.environ.setdefault("SDL_VIDEODRIVER", "dummy")
            try:
                return EnvAdapter(gymnasium.make(self.env_creator, **kwargs))
            except gymnasium.error.Error as exc:
                ids = list(gymnasium.registry)
                raise ConfigError(
                    f"env_creator: Gymnasium cannot make {self.env_creator!r}: {exc}.{did_you_mean(self.env_creator, ids)}",
                    field="env_creator",
                ) from exc
        kwargs = dict(self.env_config)
        if (
            render
            and self.render_mode == "rgb_array"
            and "render_mode" not in kwargs
            and accepts(self.env_creator, "render_mode")
        ):
            kwargs["render_mode"] = "rgb_array"
        return EnvAdapter(self.env_creator(**kwargs))

    def _need_env(self, method: str) -> None:
        if not self.agents:
            raise ConfigError(
                f"{method}: call .environment(...) before .{method}(...) so agents and spaces are known", field=method
            )

    def action_space(self, agent: str) -> Any:
        """The action space of ``agent`` (keyed by ``str(agent id)``, as in :attr:`agents`)."""
        return self._action_spaces[agent]

    def observation_space(self, agent: str) -> Any:
        """The observation space of ``agent`` (declared by the env, or inferred by :meth:`environment`)."""
        return self._obs_spaces[agent]

    def _label(self, agent: str) -> str:
        """``agent`` (a key of :attr:`agents`) as the env spells it, for messages."""
        return repr(self.agent_ids.get(agent, agent))

    def _warn_time_limit(self) -> None:
        limit, max_steps = self.env_time_limit, self.max_steps
        if limit is not None and max_steps is not None and limit < max_steps:
            warnings.warn(
                f"scene {self.scene_id!r}: the environment's TimeLimit truncates every episode after {limit} steps, before "
                f"max_steps={max_steps}; pass max_episode_steps={max_steps} in env_config or lower max_steps",
                stacklevel=3,
            )

    # -- who plays ----------------------------------------------------------------------

    def policies(self, policy_mapping: Mapping[Hashable, Any], inference: str | Mapping[Hashable, str] = "auto") -> GymScene:
        """Who acts for each agent: ``mug.Human``, ``mug.Random``, a ``ModelConfig`` or a callable.

        Agents are named by the env's own ids (``{0: mug.Human, 1: partner}`` for
        a PettingZoo env whose agents are ``0`` and ``1``; ``"agent_0"`` for a
        Gymnasium env). ``inference`` says where ``ModelConfig`` policies run; a
        dict sets it per agent:

        - ``"auto"`` (default): so that the AI acts on the observation of the step it
          acts in. A deployed realtime scene runs the model in the server's Python
          runtime (same results as the browser's, see ``mug check-policy``); lockstep
          scenes, the notebook preview and a ``custom_inference_fn`` run it in the
          participant's browser, and the step waits for its result.
        - ``"browser"``: always in the browser. In a realtime scene each step then
          waits for the browser's result (up to ``runtime(act_timeout_s=...)``), so the
          frame rate is bounded by the participant's round trip; a warning says so.
        - ``"server"``: always in Python.

        Callables ``fn(observation, agent_id) -> action`` always run on the server
        and receive the env's own id. A model whose logit output does not hold one
        logit per action of a ``Discrete`` action space is refused.
        """
        self._need_env("policies")
        if not isinstance(policy_mapping, Mapping) or not policy_mapping:
            raise ConfigError(
                f"policy_mapping: expected a dict of agent id -> policy, got {policy_mapping!r}", field="policy_mapping"
            )
        keys = {agent: agent_key(self.agent_ids, agent, "policy_mapping") for agent in policy_mapping}
        for agent in inference if isinstance(inference, Mapping) else ():
            agent_key(self.agent_ids, agent, "inference")  # a key naming no agent would be ignored silently
        missing = [self.agent_ids[a] for a in self.agents if a not in keys.values()]
        if missing:
            raise ConfigError(f"policy_mapping: no policy for agent(s) {missing}; every agent needs one", field="policy_mapping")
        specs = {}
        for agent, value in policy_mapping.items():
            where = inference.get(agent, "auto") if isinstance(inference, Mapping) else inference
            one_of(where, f"inference[{agent!r}]" if isinstance(inference, Mapping) else "inference", INFERENCE)
            spec = policy_spec(agent, value, where)
            if spec.kind == "model":
                check_model_fits(agent, spec.config, self._action_spaces[keys[agent]], self._obs_spaces[keys[agent]])  # type: ignore[arg-type]
            specs[keys[agent]] = spec
        self.policy_specs = specs
        self._warn_waiting_steps()
        return self

    def browser_policies(self, host: str = "deployment") -> list[str]:
        """Agents whose ``ModelConfig`` runs in the participant's browser in a session run by ``host``
        (``"deployment"`` or ``"preview"``; see :meth:`PolicySpec.runs_in_browser`)."""
        one_of(host, "host", HOSTS)
        if self.environment_where == "browser":  # the page's JS runtime runs every model: no ONNX Runtime there
            return [a for a, s in self.policy_specs.items() if s.kind == "model"]
        return [a for a, s in self.policy_specs.items() if s.runs_in_browser(host, self.step_mode)]

    def _warn_waiting_steps(self) -> None:
        """One warning when a deployed realtime step will wait for a browser-side policy (it costs frame rate; not
        when the env runs in the browser too: the result then comes from the same browser, no network between)."""
        if self.step_mode != "realtime" or self.environment_where == "browser":
            return
        waiting = [a for a in self.browser_policies() if a not in self._warned_waits]
        if not waiting:
            return
        self._warned_waits.update(waiting)
        wait = self.act_timeout_s if self.act_timeout_s is not None else BROWSER_WAIT_S
        warnings.warn(
            f"scene {self.scene_id!r}: the policy of agent(s) {[self.agent_ids.get(a, a) for a in waiting]} runs in the "
            f"participant's browser in a realtime scene, so each step waits for its result (up to act_timeout_s={wait:g} s) "
            "and the frame rate is bounded by the "
            "participant's network round trip. Leave inference='auto' (without a custom_inference_fn) to run it on the "
            "server, or use mode='lockstep'.",
            stacklevel=3,
        )

    @property
    def humans(self) -> list[str]:
        """Agents played by participants."""
        return [a for a, s in self.policy_specs.items() if s.kind == "human"]

    @property
    def is_match(self) -> bool:
        """Whether the scene is played by a match of participants (two or more ``mug.Human`` agents)."""
        return len(self.humans) >= 2

    # -- play ---------------------------------------------------------------------------

    def gameplay(
        self,
        action_mapping: Mapping[str, int] | None = None,
        num_episodes: int = 1,
        max_steps: int | None = None,
        default_action: Any = 0,
        input_mode: str = "pressed_keys",
        mode: str = "realtime",
        frame_skip: int = 1,
        hud: Callable[..., str] | None = None,
    ) -> GymScene:
        """How the scene plays.

        Args:
            action_mapping: keyboard key (``KeyboardEvent.key``) -> action for
                Human agents; ``"ArrowUp+ArrowLeft"`` maps a key combination.
            num_episodes: episodes in the scene.
            max_steps: steps after which an episode is cut (truncated). A
                Gymnasium ``TimeLimit`` on the env that is shorter warns.
            default_action: action when a human presses nothing (and for
                missing actions in realtime mode at the first step).
            input_mode: ``"pressed_keys"`` (keys held now) or
                ``"single_keystroke"`` (one key press, one action).
            mode: ``"realtime"`` (the env steps on every frame tick; a missing
                action is the agent's previous one) or ``"lockstep"`` (waits
                for every action).
            frame_skip: env steps per decision (the action repeats).
            hud: ``hud(env, info) -> str`` text shown above the scene; ``info``
                has ``episode``, ``step`` and ``rewards`` (episode totals, keyed by
                the env's own agent ids).
        """
        self._need_env("gameplay")
        mapping = dict(action_mapping or {})
        humans = self.humans or [a for a in self.agents]
        combos: dict[frozenset[str], str] = {}
        for combo, action in mapping.items():
            if not isinstance(combo, str) or not combo or (combo != "+" and "" in combo.split("+")):
                raise ConfigError(
                    f"action_mapping: {combo!r} is not a key name or a 'Key+Key' combination", field="action_mapping"
                )
            keys = keys_of(combo)
            if keys in combos:
                raise ConfigError(
                    f"action_mapping: {combo!r} and {combos[keys]!r} are the same key combination", field="action_mapping"
                )
            combos[keys] = combo
            for agent in humans:
                self._check_action(agent, action, f"action_mapping[{combo!r}]")
        for agent in self.agents:
            self._check_action(agent, default_action, "default_action")
        if self.humans and not mapping:
            raise ConfigError("action_mapping: Human agents need an action_mapping of keys to actions", field="action_mapping")
        self.action_mapping = mapping
        self.num_episodes = integer(num_episodes, "num_episodes", 1, 100_000)
        self.max_steps = None if max_steps is None else integer(max_steps, "max_steps", 1)
        self.default_action = default_action
        self.input_mode = one_of(input_mode, "input_mode", INPUT_MODES)
        self.step_mode = one_of(mode, "mode", STEP_MODES)
        self.frame_skip = integer(frame_skip, "frame_skip", 1, 100)
        if hud is not None and not callable(hud):
            raise ConfigError(f"hud: expected a callable hud(env, info) -> str, got {hud!r}", field="hud")
        self.hud = hud
        self._warn_waiting_steps()
        self._warn_time_limit()
        return self

    def _check_action(self, agent: str, action: Any, field: str) -> None:
        space = self._action_spaces[agent]
        n = discrete_n(space)
        if n is not None:
            if isinstance(action, bool) or not isinstance(action, numbers.Integral) or not 0 <= action < n:
                raise ConfigError(
                    f"{field}: {action!r} is not an action of agent {self._label(agent)} (Discrete({n}): 0..{n - 1})", field=field
                )
        elif hasattr(space, "contains"):
            try:
                ok = space.contains(action)
            except Exception:
                ok = False
            if not ok:
                raise ConfigError(f"{field}: {action!r} is not in agent {self._label(agent)}'s action space {space}", field=field)

    # -- looks --------------------------------------------------------------------------

    def rendering(
        self,
        fps: int = 30,
        width: int = 600,
        height: int = 400,
        background: str = "#ffffff",
        mode: str = "rgb_array",
        draw: Callable[..., Any] | None = None,
        encoding: str = "png",
    ) -> GymScene:
        """How frames are drawn and how often.

        ``mode="rgb_array"`` sends ``env.render()`` images (no drawing code);
        ``mode="surface"`` calls ``draw(env, surface)`` each frame with a
        :class:`~mug.rendering.Surface`. ``encoding`` is how rgb frames travel:
        ``"png"`` (default), ``"zlib"`` or ``"raw"`` (see benchmarks/engine.py).
        """
        self.fps = integer(fps, "fps", 1, 120)
        self.width = integer(width, "width", 16, 4096)
        self.height = integer(height, "height", 16, 4096)
        if not isinstance(background, str) or not _COLOR.match(background):
            raise ConfigError(f"background: expected a color like '#ffffff' or '#fff', got {background!r}", field="background")
        self.background = background
        self.render_mode = one_of(mode, "mode", RENDER_MODES)
        if draw is not None and not callable(draw):
            raise ConfigError(f"draw: expected a callable draw(env, surface), got {draw!r}", field="draw")
        if self.render_mode == "surface" and draw is None:
            raise ConfigError("draw: mode='surface' needs draw=callable(env, surface) that draws each frame", field="draw")
        self.draw = draw
        self.encoding = one_of(encoding, "encoding", ENCODINGS)
        return self

    def assets(self, directory: str | Path | None = None, images: Mapping[str, str] | None = None) -> GymScene:
        """Image files for ``surface.image(...)``: ``images`` maps a name to a path inside ``directory``."""
        images = dict(images or {})
        if images and directory is None:
            raise ConfigError("assets: images need the directory they are in", field="directory")
        root = None
        if directory is not None:
            root = Path(directory).resolve()
            if not root.is_dir():
                raise ConfigError(f"directory: {str(directory)!r} is not a directory", field="directory")
        for name, rel in images.items():
            if not isinstance(name, str) or not re.match(r"^[A-Za-z0-9_.-]{1,64}$", name):
                raise ConfigError(f"images: {name!r} is not a valid image name (letters, digits, '_', '.', '-')", field="images")
            path = (root / rel).resolve()  # type: ignore[operator]
            if root not in path.parents or not path.is_file():
                raise ConfigError(f"images[{name!r}]: {rel!r} is not a file inside {str(root)!r}", field="images")
        self.asset_dir, self.images = root, images
        return self

    def content(self, header: str = "", body: str = "", controls: str = "") -> GymScene:
        """Text around the game: a header, a body (HTML) and a line about the controls."""
        for field, value in (("header", header), ("body", body), ("controls", controls)):
            if not isinstance(value, str):
                raise ConfigError(f"{field}: expected a string, got {value!r}", field=field)
        self.header, self.body, self.controls = header, body, controls
        return self

    # -- machinery ----------------------------------------------------------------------

    def runtime(
        self,
        policy_seed: int = 0,
        act_timeout_s: float | None = None,
        environment: str = "server",
        packages: list[str | Path] | tuple[str | Path, ...] = (),
        package_index_url: str | None = None,
    ) -> GymScene:
        """Where the env runs, policy seeding and waiting: ``policy_seed`` seeds every policy's sampling.

        ``environment="browser"`` runs the env (and mug's engine) in the participant's browser with Pyodide; the
        server stores every step the browser sends and re-simulates finished episodes to verify them, as its spare
        CPU allows (see README, "Environments in the browser", and :mod:`mug.scenes.browser_env` for what is
        checked). ``packages`` lists what the env needs there besides the standard library: Pyodide package names
        (``"numpy"``, loaded from ``package_index_url``, default :data:`~mug.scenes.browser_env.DEFAULT_PACKAGE_INDEX`)
        and paths of local pure-Python wheels (``*-none-any.whl``; a relative path is taken from the working
        directory), which the server ships itself. Model policies of a browser-side
        scene run in the page's JS runtime, and each step waits for them.

        ``act_timeout_s`` is how long a step waits for a client's ``act``: in lockstep
        scenes (default: no limit) before its agents take their default action; in a
        deployed realtime scene, for a browser-side policy's result (default
        :data:`mug.session.engine.BROWSER_WAIT_S`) before the step goes ahead with the
        agent's previous action, recorded with source ``late``. The wait starts after
        the client has loaded its policies (its first ``act``)."""
        self.policy_seed = integer(policy_seed, "policy_seed", 0, 2**32 - 1)
        if act_timeout_s is not None and (
            isinstance(act_timeout_s, bool) or not isinstance(act_timeout_s, (int, float)) or act_timeout_s <= 0
        ):
            raise ConfigError(
                f"act_timeout_s: expected a number of seconds > 0 or None, got {act_timeout_s!r}", field="act_timeout_s"
            )
        self.act_timeout_s = act_timeout_s
        self.environment_where = one_of(environment, "environment", ENVIRONMENTS)
        self.packages, self.wheels, self.package_index_url = check_packages(packages, package_index_url)
        return self

    @property
    def hash_observations(self) -> bool:
        """Whether each recorded step carries ``obs_hash`` (browser-side scenes: verification compares it)."""
        return self.environment_where == "browser"

    def browser_spec(self) -> dict[str, Any]:
        """The plain-data spec from which the browser's engine runs this scene (``environment="browser"``);
        ``ConfigError`` if the scene cannot run there (see :mod:`mug.scenes.browser_env`)."""
        check_browser_scene(self)
        return browser_spec(self)

    def check_browser_env(self, steps: int = 200, seed: int | None = None) -> Any:
        """Run the env in Pyodide under Node and in CPython side by side for ``steps`` seeded steps: the first
        divergence, the time per step in both and whether snapshots round-trip (``mug check-env`` in a notebook)."""
        from mug.browser.check import check_env

        return check_env(self, steps=steps, seed=seed)

    def data(self, record_observations: bool = False, record_infos: bool = True, record_policy_outputs: bool = True) -> GymScene:
        """What each recorded step keeps besides actions and rewards."""
        for field, value in (
            ("record_observations", record_observations),
            ("record_infos", record_infos),
            ("record_policy_outputs", record_policy_outputs),
        ):
            if not isinstance(value, bool):
                raise ConfigError(f"{field}: expected True or False, got {value!r}", field=field)
        self.record_observations, self.record_infos, self.record_policy_outputs = (
            record_observations,
            record_infos,
            record_policy_outputs,
        )
        return self

    def preview(self, **options: Any) -> Any:
        """A live notebook preview of this scene (:class:`mug.widgets.ScenePreview`); options:
        ``autoplay`` (start stepping at once), ``speed`` (multiplies the frame rate) and
        ``action_names`` (the inspector's action labels).

        A ``multiplayer(mode="p2p")`` scene is previewed as its match plays it
        (:class:`mug.widgets.P2PPreview`): one view per Human seat side by side, each a rollback peer,
        connected by a simulated link; options ``latency_ms``, ``jitter_ms``, ``loss`` (the link, changeable
        live), ``autoplay``, ``speed`` and ``seed`` (the network's random draws)."""
        if self.multiplayer_options.mode == "p2p":
            from mug.widgets.p2p_preview import P2PPreview

            return P2PPreview(self, **options)
        from mug.widgets.preview import ScenePreview

        return ScenePreview(self, **options)

    def model_path(self, agent: str) -> str:
        """Relative URL under which hosts serve ``agent``'s browser-side ONNX model, named by the first 16 hex
        digits of the file's SHA-256: a changed model gets a new URL, so browsers can cache each one for good."""
        config = self.policy_specs[agent].config
        if config is None:
            raise ConfigError(f"model_path: agent {agent!r} of scene {self.scene_id!r} has no ONNX model", field="agent")
        # the agent's wire id, percent-escaped: env ids may hold spaces or slashes (a tuple's repr)
        return f"models/{self.scene_id}/{quote(agent, safe='')}/{file_sha256(config.onnx_path)[:16]}.onnx"

    def check_ready(self) -> None:
        """Raise ``ConfigError`` if the scene cannot run yet (no environment or no policies)."""
        self._need_env("policies")
        if not self.policy_specs:
            raise ConfigError(f"scene {self.scene_id!r}: call .policies(...) to say who plays each agent", field="policies")
        self._check_match_ready()

    def client_metadata(self, host: str = "deployment") -> dict[str, Any]:
        """What a client of a session run by ``host`` needs to know (browser-side policies' configs included)."""
        in_browser = set(self.browser_policies(host))
        return {
            **super().client_metadata(),
            "header": self.header,
            "body": self.body,
            "controls": self.controls,
            "agents": self.agents,
            "policies": {
                a: s.client_metadata(self.model_path(a) if s.config else None, a in in_browser)
                for a, s in self.policy_specs.items()
            },
            "policy_seed": self.policy_seed,
            "input_mode": self.input_mode,
            "keys": sorted({k for combo in self.action_mapping for k in keys_of(combo)}),
            "mode": self.step_mode,
            "fps": self.fps,
            "width": self.width,
            "height": self.height,
            "background": self.background,
            "render_mode": self.render_mode,
            "images": sorted(self.images),
        }
