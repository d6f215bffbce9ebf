"""Log lines a browser cannot forge: text that came from a participant's page is escaped."""

from __future__ import annotations

import logging

__all__ = ["EscapeFilter", "install", "printable"]


def printable(text: str) -> str:
    """``text`` with newlines, ANSI escapes and other non-printable characters written as ``\\n``, ``\\x1b``..."""
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() else c.encode("unicode_escape").decode("ascii") for c in text)


class EscapeFilter(logging.Filter):
    """Escapes each record's message (see :func:`printable`); tracebacks stay as they are."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        escaped = printable(message)
        if escaped is not message:
            record.msg, record.args = escaped, None
        return True


def install() -> None:
    """Escape every record logged by the server's loggers (wherever the application sends its log)."""
    for name in ("mug.server", "mug.access", "mug.session", "tornado.access", "tornado.application", "tornado.general"):
        logger = logging.getLogger(name)
        if not any(isinstance(f, EscapeFilter) for f in logger.filters):
            logger.addFilter(EscapeFilter())
