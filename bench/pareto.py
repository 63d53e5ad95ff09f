"""Multi-objective ranking: non-dominated sorting (Deb et al. 2002), the two tie-breaks used
inside a front (NSGA-II's crowding distance and a greedy epsilon-net, as in Schmucker et al.
2021), a total order built from them, and the 2-d hypervolume.

Points are tuples of floats in "larger is better" form: callers flip minimised objectives with
``oriented``. No torch, no Ray: the scheduler, the reports and the tests share these.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Literal

Point = tuple[float, ...]
TieBreak = Literal["epsnet", "crowding"]
TIE_BREAKS: tuple[str, ...] = ("epsnet", "crowding")


def oriented(values: Mapping[str, float], objectives: Mapping[str, str]) -> Point:
    """The objective values of one result in objective order, negated where minimised, so that
    larger is better on every axis."""
    return tuple(float(values[k]) if mode == "max" else -float(values[k])
                 for k, mode in objectives.items())


def dominates(a: Point, b: Point) -> bool:
    """``a`` is at least as good as ``b`` everywhere and better somewhere."""
    return all(x >= y for x, y in zip(a, b, strict=True)) and a != b


def nondominated_fronts(points: Sequence[Point]) -> list[list[int]]:
    """Indices of ``points`` by front: front 0 is the non-dominated set, front 1 what is
    non-dominated once front 0 is removed, ... (each front in input order)."""
    n = len(points)
    dominated_by = [0] * n
    dominating: list[list[int]] = [[] for _ in range(n)]
    for i in range(n):
        for j in range(i + 1, n):
            if dominates(points[i], points[j]):
                dominating[i].append(j)
                dominated_by[j] += 1
            elif dominates(points[j], points[i]):
                dominating[j].append(i)
                dominated_by[i] += 1
    fronts: list[list[int]] = []
    current = [i for i in range(n) if dominated_by[i] == 0]
    while current:
        fronts.append(current)
        nxt = []
        for i in current:
            for j in dominating[i]:
                dominated_by[j] -= 1
                if dominated_by[j] == 0:
                    nxt.append(j)
        current = sorted(nxt)
    return fronts


def _normalised(points: Sequence[Point]) -> list[Point]:
    """Each axis scaled to [0, 1] over ``points`` (a constant axis becomes 0)."""
    if not points:
        return []
    dims = len(points[0])
    lows = [min(p[d] for p in points) for d in range(dims)]
    spans = [max(p[d] for p in points) - lows[d] for d in range(dims)]
    return [tuple((p[d] - lows[d]) / spans[d] if spans[d] > 0 else 0.0 for d in range(dims))
            for p in points]


def crowding_distance(points: Sequence[Point]) -> list[float]:
    """NSGA-II crowding distance of each point within its set: the sum over objectives of the
    normalised gap between its two neighbours; the extremes of every objective get infinity."""
    n = len(points)
    if n <= 2:
        return [math.inf] * n
    norm = _normalised(points)
    dist = [0.0] * n
    for d in range(len(points[0])):
        order = sorted(range(n), key=lambda i: norm[i][d])
        dist[order[0]] = dist[order[-1]] = math.inf
        for k in range(1, n - 1):
            dist[order[k]] += norm[order[k + 1]][d] - norm[order[k - 1]][d]
    return dist


def epsnet_order(points: Sequence[Point]) -> list[int]:
    """A greedy epsilon-net of the set: first the best point on the first objective, then
    repeatedly the point farthest (Euclidean, normalised axes) from every point chosen so far.
    Any prefix of the order covers the set as evenly as that many points can; ties go to the
    better first objective, then to the earlier index."""
    n = len(points)
    if n == 0:
        return []
    norm = _normalised(points)
    first = max(range(n), key=lambda i: (points[i][0], -i))
    order = [first]
    gap = [math.dist(norm[i], norm[first]) for i in range(n)]
    left = set(range(n)) - {first}
    while left:
        nxt = max(left, key=lambda i: (gap[i], points[i][0], -i))
        order.append(nxt)
        left.discard(nxt)
        for i in left:
            gap[i] = min(gap[i], math.dist(norm[i], norm[nxt]))
    return order


def rank(points: Sequence[Point], tie_break: TieBreak = "epsnet") -> list[int]:
    """Every index of ``points``, best first: by non-dominated front, and inside a front by the
    tie-break (``epsnet``: epsilon-net order; ``crowding``: crowding distance, largest first,
    equal distances by the first objective, then the earlier index)."""
    if tie_break not in TIE_BREAKS:
        raise ValueError(f"unknown tie-break {tie_break!r}; valid: {', '.join(TIE_BREAKS)}")
    out: list[int] = []
    for front in nondominated_fronts(points):
        members = [points[i] for i in front]
        if tie_break == "epsnet":
            out += [front[k] for k in epsnet_order(members)]
        else:
            dist = crowding_distance(members)
            out += [front[k] for k in sorted(range(len(front)),
                                             key=lambda k: (-dist[k], -members[k][0], front[k]))]
    return out


def hypervolume_2d(points: Sequence[tuple[float, float]], reference: tuple[float, float]
                   ) -> float:
    """Area dominated by ``points`` (both axes maximised) and bounded below by ``reference``;
    points not better than the reference on both axes add nothing."""
    pts = sorted({p for p in points if p[0] > reference[0] and p[1] > reference[1]},
                 key=lambda p: (-p[0], -p[1]))
    area, best_y = 0.0, reference[1]
    for x, y in pts:
        if y > best_y:
            area += (x - reference[0]) * (y - best_y)
            best_y = y
    return area


__all__ = [
    "TIE_BREAKS",
    "crowding_distance",
    "dominates",
    "epsnet_order",
    "hypervolume_2d",
    "nondominated_fronts",
    "oriented",
    "rank",
]
