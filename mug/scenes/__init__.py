"""Scenes and the study sequence."""

from mug.scenes.base import Scene
from mug.scenes.gym_scene import GymScene
from mug.scenes.matching import Candidate
from mug.scenes.policies import Human, Random
from mug.scenes.screening import ScreeningScene
from mug.scenes.stager import RandomizeOrder, RepeatScene, Stager, StagerRun
from mug.scenes.static import EndScene, StartScene, TextScene
from mug.scenes.survey import FreeText, Likert, MultipleChoice, SurveyScene

__all__ = [
    "Candidate",
    "EndScene",
    "FreeText",
    "GymScene",
    "Human",
    "Likert",
    "MultipleChoice",
    "Random",
    "RandomizeOrder",
    "RepeatScene",
    "Scene",
    "ScreeningScene",
    "Stager",
    "StagerRun",
    "StartScene",
    "SurveyScene",
    "TextScene",
]
