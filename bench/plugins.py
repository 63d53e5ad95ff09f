"""Plugins: modules that register entries (blocks, skips, stems, datasets, proxies, studies) into
the public registries when imported.

Three ways in, all imported once per process: a space file's ``plugins:`` list (the driver at
load, each trial worker at decode), ``--plugin MODULE`` on every launcher (a sweep adds it to
the space's list, so its workers import it too) and the ``resbench.plugins`` entry-point group
of installed distributions (``[project.entry-points."resbench.plugins"]`` in a plugin's
pyproject.toml; an entry naming a callable is called after import), read through
importlib.metadata. A plugin that fails to import is a ConfigError naming it.
"""

from __future__ import annotations

import argparse
import importlib
import re
from collections.abc import Sequence

from bench.config import shown
from bench.errors import ConfigError

ENTRY_POINT_GROUP = "resbench.plugins"
_IMPORTED: set[str] = set()
_ENTRY_POINTS_LOADED = False


def add_argument(parser: argparse.ArgumentParser) -> None:
    """The launchers' ``--plugin MODULE`` option (repeatable)."""
    parser.add_argument("--plugin", action="append", default=[], metavar="MODULE",
                        help="import this module first, so that the blocks, datasets, ... it "
                             "registers can be named (repeatable; installed plugins of the "
                             f"{ENTRY_POINT_GROUP} entry-point group load anyway)")


def import_plugins(modules: Sequence[str], where: str = "plugins") -> None:
    """Import each plugin module once per process, after the installed entry-point plugins, so
    the registries hold what the file or the command line names."""
    load_entry_points()
    for i, name in enumerate(modules):
        if name in _IMPORTED:
            continue
        path = f"{where}[{i}]"
        if not isinstance(name, str) or not re.fullmatch(r"[A-Za-z_][\w]*(\.[A-Za-z_][\w]*)*", name):
            raise ConfigError(f"expected a dotted module name like my_pkg.blocks, got {name!r}",
                              path)
        _import(name, path)
        _IMPORTED.add(name)


def load_entry_points() -> None:
    """Import (and call, when callable) every ``resbench.plugins`` entry point, once."""
    global _ENTRY_POINTS_LOADED
    if _ENTRY_POINTS_LOADED:
        return
    _ENTRY_POINTS_LOADED = True
    from importlib.metadata import entry_points

    for ep in entry_points(group=ENTRY_POINT_GROUP):
        where = f"entry point {ep.name} = {ep.value} ({ENTRY_POINT_GROUP})"
        target = _import(ep.value, where, entry=ep)
        if callable(target):
            target()


def _import(name: str, path: str, entry: object = None) -> object:
    try:
        return entry.load() if entry is not None else importlib.import_module(name)  # type: ignore[attr-defined]
    except ImportError as exc:
        raise ConfigError(
            f"cannot import plugin module {name!r} ({type(exc).__name__}: {exc}); it must be "
            "importable by the driver and by every Ray worker (install it, or put its folder "
            "on PYTHONPATH before the Ray cluster starts)", path) from None
    except SystemExit as exc:  # a plugin must not end the process that imports it
        raise ConfigError(f"plugin module {name!r} called sys.exit({shown(exc.code)}) while "
                          "being imported; a plugin only registers entries", path) from None
    except Exception as exc:  # noqa: BLE001 - any error in the plugin's own code
        raise ConfigError(
            f"plugin module {name!r} raised {type(exc).__name__} while being imported: "
            f"{shown(str(exc))}; fix the plugin (run python -c 'import {name}' to see the "
            "traceback)", path) from None


__all__ = ["ENTRY_POINT_GROUP", "add_argument", "import_plugins", "load_entry_points"]
