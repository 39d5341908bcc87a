"""``Refused``: the one way the engine says no. Nothing changed; the code is the protocol's."""

from __future__ import annotations


class Refused(Exception):
    """A command was refused; nothing changed.  ``code`` is the protocol error
    code, ``message`` a human-readable explanation (never exception text)."""

    def __init__(self, code: str, message: str) -> None:
        self.code = code
        self.message = message
        super().__init__(code, message)

    def __str__(self) -> str:
        return f"{self.code}: {self.message}"
