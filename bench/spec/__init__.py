"""The spec layer: what a model, a trial and a dataset are, as validated frozen values, with no
torch, timm, Ray or MLflow import (parsing a space file, ``--help`` and ``--schema`` stay fast).

- ``bench.spec.parts``: one registry per axis (blocks, skips, stems, datasets, proxies) holding
  definitions whose torch code is referenced lazily;
- ``bench.spec.arch``: ``ArchSpec`` / ``StageSpec``, the resolved, buildable model;
- ``bench.spec.presets``: depth conventions (nominal depth -> stages);
- ``bench.spec.params``: the architecture language of space files and ``--set`` (a pydantic
  union discriminated by ``family``; its fields are the axis names);
- ``bench.spec.trial``: the trial schema (data, train, measure, diagnostics, proxies);
- every spec is a frozen dataclass validated by pydantic (``bench.config.spec_class``), its
  errors one ``ConfigError`` naming the key path, the bad value and what is valid;
- ``bench.spec.costs``: parameter and MAC counts computed from the spec, without building.

The submodules are imported on their own (this file imports none of them).
"""
