"""A named registry: one per design axis (blocks, skips, stems, datasets, ...).

Each is a plain dict behind ``register`` / ``get``; unknown names raise a ConfigError that lists
the valid ones, so user code can extend any axis with ``register_block(...)`` and the like.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Generic, TypeVar

from bench.errors import ConfigError, unknown

T = TypeVar("T")


class Registry(Generic[T]):
    """A dict of name -> entry with error messages that list the valid names."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._entries: dict[str, T] = {}

    def register(self, name: str, entry: T, *, overwrite: bool = False) -> T:
        if not name or not isinstance(name, str):
            raise ConfigError(f"{self.kind} name must be a non-empty string, got {name!r}")
        if name in self._entries and not overwrite:
            raise ConfigError(
                f"{self.kind} {name!r} is already registered; pass overwrite=True to replace it"
            )
        self._entries[name] = entry
        return entry

    def unregister(self, name: str) -> T:
        """Remove and return an entry (e.g. a block a test or plugin registered)."""
        entry = self.get(name)
        del self._entries[name]
        return entry

    def get(self, name: str, path: str = "") -> T:
        """The entry; an unknown name raises a ConfigError at key ``path`` listing the valid ones."""
        try:
            return self._entries[name]
        except (KeyError, TypeError):
            raise unknown(self.kind, name, self._entries).at(path) from None

    def names(self) -> list[str]:
        return sorted(self._entries)

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def __len__(self) -> int:
        return len(self._entries)
