"""Survey scenes: free text, Likert scales and multiple choice, with required answers."""

from __future__ import annotations

import re
from typing import Any

from mug.errors import ConfigError
from mug.scenes.base import Scene

__all__ = ["FreeText", "Likert", "MultipleChoice", "SurveyScene", "Question"]

_QUESTION_ID = re.compile(r"^[A-Za-z][A-Za-z0-9_]{0,63}$")


class Question:
    """A survey question: ``qid`` (the data column), the prompt, and whether an answer is required."""

    kind = "question"

    def __init__(self, qid: str, prompt: str, required: bool = True) -> None:
        if not isinstance(qid, str) or not _QUESTION_ID.match(qid):
            raise ConfigError(
                f"question id {qid!r}: use a letter then letters, digits or '_' (it becomes a data column)", field="qid"
            )
        if not isinstance(prompt, str) or not prompt.strip():
            raise ConfigError(f"question {qid!r}: the prompt must be a non-empty string", field="prompt")
        self.qid, self.prompt, self.required = qid, prompt, bool(required)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready description for the client."""
        return {"qid": self.qid, "kind": self.kind, "prompt": self.prompt, "required": self.required}

    def clean(self, value: Any) -> Any:
        """The stored form of ``value``; ``ValueError`` says what is wrong with it."""
        raise NotImplementedError


class FreeText(Question):
    """A text answer of at most ``max_length`` characters."""

    kind = "text"

    def __init__(self, qid: str, prompt: str, required: bool = True, max_length: int = 2000) -> None:
        super().__init__(qid, prompt, required)
        if isinstance(max_length, bool) or not isinstance(max_length, int) or not 1 <= max_length <= 100_000:
            raise ConfigError(
                f"question {qid!r}: max_length must be an integer in 1..100000, got {max_length!r}", field="max_length"
            )
        self.max_length = max_length

    def to_dict(self) -> dict[str, Any]:
        return {**super().to_dict(), "max_length": self.max_length}

    def clean(self, value: Any) -> str:
        if not isinstance(value, str):
            raise ValueError(f"expected text, got {type(value).__name__}")
        if len(value) > self.max_length:
            raise ValueError(f"the answer has {len(value)} characters; at most {self.max_length} are allowed")
        return value


class Likert(Question):
    """A scale of ``points`` options, stored as 1..points, with optional end labels."""

    kind = "likert"

    def __init__(self, qid: str, prompt: str, points: int = 7, labels: tuple[str, str] = ("", ""), required: bool = True) -> None:
        super().__init__(qid, prompt, required)
        if isinstance(points, bool) or not isinstance(points, int) or not 2 <= points <= 11:
            raise ConfigError(f"question {qid!r}: points must be an integer in 2..11, got {points!r}", field="points")
        if not isinstance(labels, (list, tuple)) or len(labels) != 2 or not all(isinstance(s, str) for s in labels):
            raise ConfigError(f"question {qid!r}: labels must be two strings (low end, high end), got {labels!r}", field="labels")
        self.points, self.labels = points, tuple(labels)

    def to_dict(self) -> dict[str, Any]:
        return {**super().to_dict(), "points": self.points, "labels": list(self.labels)}

    def clean(self, value: Any) -> int:
        if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= self.points:
            raise ValueError(f"expected an integer from 1 to {self.points}, got {value!r}")
        return value


class MultipleChoice(Question):
    """Pick one of ``options`` (or several with ``multiple=True``); stored as the option texts."""

    kind = "choice"

    def __init__(self, qid: str, prompt: str, options: list[str], multiple: bool = False, required: bool = True) -> None:
        super().__init__(qid, prompt, required)
        if not isinstance(options, (list, tuple)) or len(options) < 2 or not all(isinstance(o, str) and o for o in options):
            raise ConfigError(
                f"question {qid!r}: options must be a list of at least two non-empty strings, got {options!r}", field="options"
            )
        if len(set(options)) != len(options):
            raise ConfigError(f"question {qid!r}: options repeat: {options!r}", field="options")
        self.options, self.multiple = list(options), bool(multiple)

    def to_dict(self) -> dict[str, Any]:
        return {**super().to_dict(), "options": self.options, "multiple": self.multiple}

    def clean(self, value: Any) -> str | list[str]:
        chosen = value if self.multiple else [value]
        if not isinstance(chosen, list) or not all(isinstance(v, str) for v in chosen):
            raise ValueError(f"expected {'a list of options' if self.multiple else 'one option'}, got {value!r}")
        unknown = [v for v in chosen if v not in self.options]
        if unknown:
            raise ValueError(f"{unknown[0]!r} is not one of the options {self.options}")
        return chosen if self.multiple else chosen[0]


class SurveyScene(Scene):
    """A page of questions; :meth:`clean_response` checks what a participant submitted."""

    kind = "survey"

    def __init__(
        self, scene_id: str, questions: list[Question], header: str = "", body: str = "", button: str = "Submit"
    ) -> None:
        super().__init__(scene_id)
        if not isinstance(questions, (list, tuple)) or not questions or not all(isinstance(q, Question) for q in questions):
            raise ConfigError(
                "questions: expected a non-empty list of FreeText, Likert or MultipleChoice questions", field="questions"
            )
        ids = [q.qid for q in questions]
        repeated = sorted({i for i in ids if ids.count(i) > 1})
        if repeated:
            raise ConfigError(f"questions: question id {repeated[0]!r} is used twice in survey {scene_id!r}", field="questions")
        self.questions = list(questions)
        self.header, self.body, self.button = header, body, button

    def client_metadata(self) -> dict[str, Any]:
        return {
            **super().client_metadata(),
            "header": self.header,
            "body": self.body,
            "button": self.button,
            "questions": [q.to_dict() for q in self.questions],
        }

    def clean_response(self, answers: Any) -> dict[str, Any]:
        """The answers as they will be stored; ``ValueError`` lists every problem by question id."""
        if not isinstance(answers, dict):
            raise ValueError(f"expected an object of question id -> answer, got {type(answers).__name__}")
        known = {q.qid for q in self.questions}
        problems = [f"{k!r}: not a question of this survey" for k in answers if k not in known]
        cleaned: dict[str, Any] = {}
        for q in self.questions:
            value = answers.get(q.qid)
            if value is None or value == "" or value == []:
                if q.required:
                    problems.append(f"{q.qid!r}: an answer is required")
                cleaned[q.qid] = None
                continue
            try:
                cleaned[q.qid] = q.clean(value)
            except ValueError as exc:
                problems.append(f"{q.qid!r}: {exc}")
        if problems:
            raise ValueError("; ".join(problems))
        return cleaned
