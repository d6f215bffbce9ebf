"""Scenes without an environment: start, text and end pages."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from mug.errors import ConfigError
from mug.scenes.base import Scene

__all__ = ["StartScene", "TextScene", "EndScene"]


def _text(value: Any, field: str, *, allow_empty: bool = True) -> str:
    if not isinstance(value, str) or (not allow_empty and not value.strip()):
        raise ConfigError(f"{field}: expected {'a non-empty' if not allow_empty else 'a'} string, got {value!r}", field=field)
    return value


class TextScene(Scene):
    """A page of text (HTML allowed) with a continue button.

    Args:
        scene_id: the scene's id.
        header: title shown on top.
        body: the page's content (HTML).
        button: the continue button's label.
    """

    kind = "text"

    def __init__(self, scene_id: str, header: str = "", body: str = "", button: str = "Continue") -> None:
        super().__init__(scene_id)
        self.header = _text(header, "header")
        self.body = _text(body, "body")
        self.button = _text(button, "button", allow_empty=False)

    def client_metadata(self) -> dict[str, Any]:
        return {**super().client_metadata(), "header": self.header, "body": self.body, "button": self.button}


class StartScene(TextScene):
    """The first page of a study (consent, instructions)."""

    kind = "start"

    def __init__(self, scene_id: str = "start", header: str = "Welcome", body: str = "", button: str = "Start") -> None:
        super().__init__(scene_id, header, body, button)


class EndScene(TextScene):
    """The last page: thanks, a completion code, and optionally a redirect.

    Args:
        completion_code: one code shown to every participant (e.g. a Prolific study's code).
        unique_code: give each participant a code of their own instead (10 letters and digits,
            generated once, never shared): stored with the participant, shown on the admin page
            and in the ``participants`` export, so each payment claim can be checked.
        redirect_url: where to send the participant; ``{participant_id}`` and
            ``{completion_code}`` in it are filled in.
        redirect_delay_s: seconds before the redirect.
    """

    kind = "end"

    def __init__(
        self,
        scene_id: str = "end",
        header: str = "Thank you!",
        body: str = "",
        completion_code: str | None = None,
        redirect_url: str | None = None,
        redirect_delay_s: float = 3.0,
        unique_code: bool = False,
    ) -> None:
        super().__init__(scene_id, header, body, button="Finish")
        if completion_code is not None and (not isinstance(completion_code, str) or not completion_code.strip()):
            raise ConfigError(
                f"completion_code: expected a non-empty string or None, got {completion_code!r}", field="completion_code"
            )
        if not isinstance(unique_code, bool):
            raise ConfigError(f"unique_code: expected True or False, got {unique_code!r}", field="unique_code")
        if unique_code and completion_code is not None:
            raise ConfigError(
                f"unique_code=True gives each participant a code of their own; drop completion_code={completion_code!r}",
                field="unique_code",
            )
        self.completion_code, self.unique_code = completion_code, unique_code
        if redirect_url is not None:
            parts = urlsplit(redirect_url) if isinstance(redirect_url, str) else None
            if parts is None or parts.scheme not in ("http", "https") or not parts.netloc:
                raise ConfigError(f"redirect_url: expected an http(s) URL, got {redirect_url!r}", field="redirect_url")
            try:
                redirect_url.format(participant_id="p", completion_code="c")
            except (KeyError, IndexError, ValueError) as exc:
                raise ConfigError(
                    f"redirect_url: only {{participant_id}} and {{completion_code}} can be filled in, got {redirect_url!r} ({exc})",
                    field="redirect_url",
                ) from exc
        self.redirect_url = redirect_url
        if isinstance(redirect_delay_s, bool) or not isinstance(redirect_delay_s, (int, float)) or redirect_delay_s < 0:
            raise ConfigError(f"redirect_delay_s: expected a number >= 0, got {redirect_delay_s!r}", field="redirect_delay_s")
        self.redirect_delay_s = float(redirect_delay_s)

    def redirect_for(self, participant_id: str, completion_code: str | None = None) -> str | None:
        """The redirect URL for one participant (ids are URL-quoted); ``completion_code`` is the participant's
        own code (``unique_code``), else the scene's."""
        from urllib.parse import quote

        if self.redirect_url is None:
            return None
        code = completion_code if self.unique_code else self.completion_code
        return self.redirect_url.format(participant_id=quote(participant_id, safe=""), completion_code=quote(code or "", safe=""))

    def client_metadata(self) -> dict[str, Any]:
        return {
            **super().client_metadata(),
            "completion_code": self.completion_code,
            "redirect_delay_s": self.redirect_delay_s,
            "redirects": self.redirect_url is not None,
        }
