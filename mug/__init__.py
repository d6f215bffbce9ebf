"""MUG (Multi-User Gymnasium): Gymnasium and PettingZoo environments as browser experiments.

Public API::

    mug.ModelConfig     declarative ONNX policy config (from_onnx, validate, signature)
    mug.PolicyRuntime   runs a ModelConfig in Python (ONNX Runtime or onnx.reference)
    mug.GymScene        an environment scene, built with chained methods
    mug.Human, mug.Random                       policy values for GymScene.policies
    mug.StartScene, mug.TextScene, mug.EndScene, mug.SurveyScene (FreeText, Likert, MultipleChoice)
    mug.Stager, mug.RandomizeOrder, mug.RepeatScene   the study sequence
    mug.ScreeningScene  an entry check (device, browser, round trip) decided by the server
    mug.Candidate       a waiting participant as a custom matchmaker sees them
    mug.deploy          serve a study to participants (Tornado + SQLite), returns a Deployment
    mug.simulate        run simulated participants (the page's own code, under Node) through a deployed study
    mug.load            a deployment's data as typed pandas DataFrames (steps, responses, participants, events)
    mug.ConfigError     a configuration value is wrong (names the field)
    mug.PolicyError     running a policy failed
"""

from mug.data import load
from mug.errors import ConfigError, MugError, PolicyError
from mug.inference import ModelConfig, PolicyRuntime, PolicyStep
from mug.scenes import (
    Candidate,
    EndScene,
    FreeText,
    GymScene,
    Human,
    Likert,
    MultipleChoice,
    Random,
    RandomizeOrder,
    RepeatScene,
    ScreeningScene,
    Stager,
    StartScene,
    SurveyScene,
    TextScene,
)
from mug.server import Deployment, deploy
from mug.server.simulate import simulate

__version__ = "0.1.0"


def _jupyter_server_extension_points() -> list[dict[str, str]]:
    """Jupyter Server extension entry point (see ``mug.jupyter``)."""
    return [{"module": "mug.jupyter"}]


__all__ = [
    "Candidate",
    "ConfigError",
    "Deployment",
    "EndScene",
    "FreeText",
    "GymScene",
    "Human",
    "Likert",
    "ModelConfig",
    "MugError",
    "MultipleChoice",
    "PolicyError",
    "PolicyRuntime",
    "PolicyStep",
    "Random",
    "RandomizeOrder",
    "RepeatScene",
    "ScreeningScene",
    "Stager",
    "StartScene",
    "SurveyScene",
    "TextScene",
    "__version__",
    "deploy",
    "load",
    "simulate",
]
