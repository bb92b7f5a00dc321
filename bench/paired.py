"""Paired, ABBA-ordered runs of two contenders, for a shared and noisy machine.

Run i measures libvirt (A) then virtwire (B) when i is even, B then A when it is
odd: A B B A A B ... so that a drift in the machine's load (other jobs starting,
CPU frequency, caches warming) falls on both sides alike. Each pair gives one
ratio virtwire / libvirt; the summary is the median of those ratios with their
spread (lowest and highest), next to each side's median. A ratio whose spread
straddles 1.0 says "as fast, within the noise"; only the median is a claim.

    pairs = paired.abba(reps, lambda: measure(libvirt), lambda: measure(virtwire))
    summary = paired.summarise(pairs, key=lambda r: r[0])   # higher is better
    print(summary.format())
"""

from __future__ import annotations

import statistics
from collections.abc import Callable
from dataclasses import dataclass
from typing import Generic, TypeVar

T = TypeVar("T")


@dataclass(frozen=True)
class Pairs(Generic[T]):
    """The results of both contenders, run i of each side at index i."""

    theirs: list[T]
    ours: list[T]


def abba(reps: int, theirs: Callable[[], T], ours: Callable[[], T], warmup: bool = False) -> Pairs[T]:
    """`reps` runs of each, in ABBA order; `warmup` first runs each once, unrecorded."""
    if warmup:
        theirs()
        ours()
    a: list[T] = []
    b: list[T] = []
    for i in range(reps):
        if i % 2 == 0:
            a.append(theirs())
            b.append(ours())
        else:
            b.append(ours())
            a.append(theirs())
    return Pairs(a, b)


@dataclass(frozen=True)
class Summary:
    theirs: float  # median of libvirt's values
    ours: float  # median of virtwire's values
    ratio: float  # median of the per-pair ratios (>= 1.0: virtwire as fast or faster)
    low: float  # lowest per-pair ratio
    high: float  # highest per-pair ratio
    reps: int

    def format(self) -> str:
        """`RATIO [LOW-HIGH]`, as the benchmark tables print it."""
        return f"{self.ratio:5.2f} [{self.low:.2f}-{self.high:.2f}]"


def summarise(pairs: Pairs[T], key: Callable[[T], float], higher_is_better: bool = True) -> Summary:
    """Medians and the spread of the per-pair ratios of `key` (ops/s: higher is
    better, the ratio is ours/theirs; seconds: lower is better, theirs/ours)."""
    theirs = [key(r) for r in pairs.theirs]
    ours = [key(r) for r in pairs.ours]
    if higher_is_better:
        ratios = [o / t for t, o in zip(theirs, ours, strict=True)]
    else:
        ratios = [t / o for t, o in zip(theirs, ours, strict=True)]
    return Summary(
        statistics.median(theirs),
        statistics.median(ours),
        statistics.median(ratios),
        min(ratios),
        max(ratios),
        len(ratios),
    )
