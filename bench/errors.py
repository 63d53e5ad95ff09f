"""Error types that carry a user-facing message (the launchers print them without a traceback)."""

from __future__ import annotations

import difflib
from collections.abc import Iterable


class ResbenchError(Exception):
    """Base class: a mistake the user can fix; its message says what and how."""


MAX_MESSAGE = 2000  # characters of a message: the cause, never a whole rejected value


def clipped(text: str, limit: int = MAX_MESSAGE) -> str:
    """``text`` cut in the middle to at most ``limit`` characters."""
    if len(text) <= limit:
        return text
    half = (limit - 5) // 2
    return f"{text[:half]} ... {text[-half:]}"


class ConfigError(ResbenchError, ValueError):
    """A bad value in a spec, a search space or a command-line override.

    ``path`` is the dotted key path (``train.lr``, ``space.depth.values[2]``), ``source`` the
    file it came from, if any.
    """

    def __init__(self, message: str, path: str = "", source: str = "") -> None:
        self.path = path
        self.source = source
        self.detail = message = clipped(message)
        where = ""
        if source:
            where += f"{source}: "
        if path:
            where += f"{path}: "
        super().__init__(f"{where}{message}")

    def at(self, path: str = "", source: str = "") -> ConfigError:
        """The same error re-anchored under a parent key path and/or a file."""
        new_path = ".".join(p for p in (path, self.path) if p) if path else self.path
        new_path = new_path.replace(".[", "[")
        return ConfigError(self.detail, new_path, source or self.source)


class DataError(ResbenchError):
    """A dataset that cannot be found, read or decoded."""


def did_you_mean(name: str, valid: Iterable[str]) -> str:
    """' (did you mean 'x'?)' when a close match exists, else ''."""
    match = difflib.get_close_matches(str(name), [str(v) for v in valid], n=1, cutoff=0.6)
    return f" (did you mean '{match[0]}'?)" if match else ""


def unknown(kind: str, name: object, valid: Iterable[str]) -> ConfigError:
    """The standard 'unknown X' error: names the bad value, a close match and every valid one."""
    valid = sorted(str(v) for v in valid)
    return ConfigError(
        f"unknown {kind} {name!r}{did_you_mean(str(name), valid)}; valid: {', '.join(valid)}"
    )
