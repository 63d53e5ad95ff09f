"""Planning a sweep before Ray starts: the trials each search proposes (rejected ones by the
budget), the dry run's description and table, its time estimate, the schedule warnings and the
zero-cost prescreen."""

from __future__ import annotations

import dataclasses
from typing import Any

# --- planning -------------------------------------------------------------------------------------


@dataclasses.dataclass
class Planned:
    """One trial known before the sweep: its config, spec, cost and budget verdict."""

    index: int
    config: dict[str, Any]
    spec: Any
    params: int
    macs: int
    rejected: str = ""


def plan(space: Any, prescreen: dict[str, Any] | None = None
         ) -> tuple[list[Planned] | None, list[Planned]]:
    """(search trials, or None under Optuna; reference trials), with costs and verdicts; with a
    ``prescreen`` screening (``Screening.as_dict``), grid / random run only its kept configs."""
    from bench.space import decode, reference_configs, search_configs
    from bench.spec.costs import arch_counts  # exact, from the spec (cached per architecture)

    def planned(i: int, config: dict[str, Any], check: bool) -> Planned:
        spec = decode(space, config)
        params, macs = arch_counts(spec.arch)
        reason = space.constraints.violation(params, macs) if check else ""
        return Planned(i, config, spec, params, macs, reason)

    search = None
    if not space.search.is_optuna:
        configs = search_configs(space) if prescreen is None else \
            [{"sample": r["sample"]} for r in prescreen["rows"] if r["kept"]]
        search = [planned(i, c, True) for i, c in enumerate(configs)]
    refs = [planned(i, c, False) for i, c in enumerate(reference_configs(space))]
    return search, refs


def describe(space: Any, source: str, digest: str) -> list[str]:
    from bench.space import human

    s, sch, r = space.search, space.scheduler, space.resources
    objectives = ", ".join(f"{k} {v}" for k, v in s.objectives.items())
    count = (f"{len(space.trials)} listed trials, each once" if space.trials else
             "every combination" if s.algorithm == "grid" else f"{s.samples} samples")
    sched = (f"{sch.type} (grace {sch.grace_period}, reduction {sch.reduction_factor:g}"
             f"{', tie-break ' + sch.tie_break if sch.type == 'mo_asha' else ''})"
             if sch.type != "none" else "none")
    t, d = space.train, space.dataset
    budget = ", ".join(f"{k} {human(v)}" for k, v in
                       (("max params", space.constraints.max_params),
                        ("max MACs", space.constraints.max_macs)) if v) or "none"
    lines = [
        f"sweep {space.name} ({source}, space hash {digest})",
        f"  search: {s.algorithm}, {count}, objectives {objectives}, seed {s.seed}, "
        f"max concurrent {s.max_concurrent or 'auto'}",
        f"  scheduler: {sched}; per trial {r.cpu:g} CPU, {r.gpu:g} GPU; budget: {budget}",
    ]
    trains = space.space or space.arch or space.trials or any(r.train for r in space.references)
    if trains:
        lines.append(
            f"  data: {d.name} (subset {d.subset or 'all'}, val {d.val_fraction:g}); train: "
            f"{t.epochs} epochs, {t.optimizer} lr {t.lr:g}, batch {t.batch_size}, {t.schedule}")
    if space.space:
        lines.append("  axes:")
        for name, axis in space.space.items():
            values = getattr(axis, axis.kind)
            when = f"  when {axis.when}" if axis.when else ""
            lines.append(f"    {name:20s} {axis.kind} {list(values)}{when}")
    return lines


def text_table(headers: list[str], rows: list[list[str]]) -> list[str]:
    from bench.text import columns

    return columns([headers, *rows], indent="  ")


def dry_run(space: Any, source: str, digest: str, estimate: bool = True) -> list[str]:
    from bench.space import architectures, human

    screening = _screen(space)
    search, refs = plan(space, screening.as_dict() if screening else None)
    lines = describe(space, source, digest)
    if screening:
        lines += screening.lines()
    n_rej = 0
    if search is None:
        archs, cut = architectures(space)
        from bench.space import decode
        from bench.spec.costs import arch_counts

        rows = []
        for a in archs:
            spec = decode(space, {"sample": a})
            params, macs = arch_counts(spec.arch)
            reason = space.constraints.violation(params, macs)
            rows.append([spec.arch.label, ", ".join(f"{k}={v}" for k, v in a.items()),
                         human(params), human(macs), f"rejected: {reason}" if reason else "ok"])
            n_rej += bool(reason)
        specs = [decode(space, {"sample": a}) for a in archs]
        ok = [sp for sp, r in zip(specs, rows, strict=True) if r[-1] == "ok"]
        est, timing = _estimates(space, ok, estimate)
        per_arch = dict(zip((id(sp) for sp in ok), est, strict=True))
        for sp, r in zip(specs, rows, strict=True):
            r.append(_duration(per_arch.get(id(sp))))
        lines.append(f"  reachable architectures{' (first 200)' if cut else ''} "
                     f"(continuous axes at their ends); Optuna proposes the trials at run time:")
        lines += text_table(["arch", "sampled", "params", "MACs", "budget", "est. time"], rows)
        known = [e for e in est if e is not None]
        mean = sum(known) / len(known) if known else None
        lines += _estimate_lines(space, [mean] * space.search.samples if mean else [], timing,
                                 "each trial at the mean of the architectures")
        lines.append(f"dry run: {space.search.samples} trials proposed by {space.search.algorithm} "
                     f"over {len(archs)} architectures ({n_rej} over budget), "
                     f"{len(refs)} references")
        return lines
    rows = []
    todo = [p for p in search if not p.rejected]
    est, timing = _estimates(space, [p.spec for p in todo], estimate)
    seconds = dict(zip((p.index for p in todo), est, strict=True))
    for p in search:
        if "trial" in p.config:  # a listed trial: its name, and measure-only ones say so
            shown = space.trials[p.index].name + (
                " (measure only)" if space.trials[p.index].measure_only else "")
        else:
            shown = ", ".join(f"{k}={v}" for k, v in p.config["sample"].items()) or "-"
        rows.append([str(p.index), p.spec.arch.label, shown,
                     human(p.params), human(p.macs),
                     f"rejected: {p.rejected}" if p.rejected else "ok",
                     _duration(seconds.get(p.index))])
        n_rej += bool(p.rejected)
    if rows:
        lines.append("  trials:")
        lines += text_table(["#", "arch", "trial" if space.trials else "sampled", "params",
                             "MACs", "budget", "est. time"], rows)
        lines += _estimate_lines(space, [e for e in est if e is not None], timing,
                                 "every trial trained fully")
    if refs:
        lines.append("  references:")
        lines += text_table(["#", "model", "mode", "input", "params", "MACs"], [
            [str(p.index), p.spec.arch.timm_model,
             "train" if space.references[p.index].train else "measure only",
             str(p.spec.arch.input_size), human(p.params), human(p.macs)] for p in refs])
    lines.append(f"dry run: {len(search)} trials ({n_rej} rejected by constraints, "
                 f"{len(search) - n_rej} to run), {len(refs)} references")
    return lines


def _duration(seconds: float | None) -> str:
    from bench.estimate import duration

    return duration(seconds)


def _estimates(space: Any, specs: list[Any], enabled: bool = True
               ) -> tuple[list[float | None], str]:
    """Estimated seconds of each trial spec on this machine (None where unknown) and what the
    calibration did ('' when trials run on a GPU: no CPU estimate; 'off': --no-estimate)."""
    from bench.estimate import trial_estimates

    if not enabled:
        return [None] * len(specs), "off"
    if not specs:
        return [], "nothing to train"
    if not _on_cpu(space):
        return [None] * len(specs), ""
    est, measured = trial_estimates(specs, space.resources.cpu, space.dataset.cache_dir)
    archs = len({sp.arch for sp in specs})
    how = (f"calibrated {measured} architecture(s) now, {archs - measured} cached"
           if measured else f"{archs} architecture(s), calibration cached")
    return [e.seconds for e in est], how


def _on_cpu(space: Any) -> bool:
    device = space.train.device
    if device == "cpu":
        return True
    if device != "auto" or space.resources.gpu:
        return False
    if not space.resources.gpu:  # Ray hides every GPU from a trial that asked for none
        return True
    import torch

    return not torch.cuda.is_available()


def _estimate_lines(space: Any, seconds: list[float], timing: str, basis: str) -> list[str]:
    """The dry run's time estimate: per trial and the sweep's wall time on this machine."""
    from bench.estimate import parallel_trials, total_seconds
    from bench.host import cpu_model

    if timing in ("off", "nothing to train"):
        return [f"  time estimate: {'off (--no-estimate)' if timing == 'off' else 'none (nothing to train)'}"]
    if not timing:
        return ["  time estimate: none (trials run on a GPU; the calibration times this CPU)"]
    if not seconds:
        return ["  time estimate: none (the calibration could not time these architectures)"]
    par = parallel_trials(space.search.max_concurrent, space.resources.cpu)
    total = total_seconds(seconds, par)
    early = "; at most: ASHA stops weak trials earlier" if space.scheduler.type != "none" else ""
    return [f"  time estimate on this machine ({cpu_model()}, {par} trial(s) at a time, "
            f"{timing}): per trial {_duration(min(seconds))}"
            + (f" to {_duration(max(seconds))}" if max(seconds) > min(seconds) + 0.5 else "")
            + f", sweep about {_duration(total)} ({basis}{early}; references not included)"]


def schedule_warnings(space: Any) -> list[str]:
    """The trainer's warnings about a schedule too long for the epochs, for the space's recipe
    and for every value an axis may give ``train.epochs`` (--smoke's one epoch is expected)."""
    import dataclasses as dc

    from bench.spec.trial import schedule_warnings as of_train

    epochs, warmups = {space.train.epochs}, {space.train.warmup_epochs}
    for name, axis in space.space.items():
        if axis.target(name) == "train.epochs" and axis.values:
            epochs |= {int(v) for v in axis.values}
        if axis.target(name) == "train.warmup_epochs" and axis.values:
            warmups |= {float(v) for v in axis.values}
    out: list[str] = []
    for n in sorted(epochs):
        for w in sorted(warmups):
            if n > 1:
                train = dc.replace(space.train, epochs=n, warmup_epochs=w)
                out += [m for m in of_train(train) if m not in out]
    return out


def _screen(space: Any) -> Any:
    """The prescreen of the space (``bench.prescreen``), or None without one."""
    if space.search.prescreen is None:
        return None
    from bench.prescreen import screen

    return screen(space)
