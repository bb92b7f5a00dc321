"""The simulated guest: memory pages, dirty logging and a workload that writes them.

Guest RAM is a sequence of 4 KiB pages. A page that was never written is a zero
page and costs nothing to store: ``GuestMemory.versions`` only holds pages that
were written, mapping page number to a write counter. The content of a page is a
pure function of ``(page, version)`` (``page_content``), so a destination can check
every page it receives without the source shipping any side information.

The workload is lazy: it does not run as a task. Whoever needs the guest to be up
to date (the migration engine before each batch, the job stats) calls
``Guest.catch_up(now)``, which performs the writes that a guest dirtying
``dirty_rate`` pages per second would have done since the last call.

Two sets describe the workload, as they do a real guest: the *working set*
(``working-set-mib``) is the memory the guest has touched, its non-zero resident
pages, written once at boot; the *dirty set* (``dirty-set-mib``, by default
``1/DEFAULT_DIRTY_SET_FRACTION`` of the working set, never larger than it) is the
hot subset the running guest keeps writing. The dirty set starts at the beginning
of the working set unless ``dirty_set_offset`` places it further in. By default the
writes sweep the dirty set page after page and wrap around, like QEMU's own
migration stress guest: within one lap every write dirties a distinct page, so a
guest that dirties faster than the link carries keeps the whole dirty set dirty
(a pass skips the pages written before their turn, so it lasts at least half the
dirty set's send time), and pre-copy cannot converge once sending the dirty set
takes longer than the allowed downtime. With ``pattern="random"`` each write lands on a page of the
dirty set drawn at random (from a fixed seed). Runs are exactly repeatable. The
position of the next write is CPU state and travels with the guest.
"""

from __future__ import annotations

import os
import random
import struct
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterator
from dataclasses import dataclass

PAGE_SIZE = 4096
VIRTWIRE_XMLNS = "https://virtwire.dev/xmlns/1"

# Built-in server-wide defaults. `virtwire serve --dirty-rate/--working-set-mib/
# --dirty-set-mib` override them (SERVER_DEFAULTS), else the environment
# (VIRTWIRE_DIRTY_RATE pages/s, VIRTWIRE_WORKING_SET_MIB MiB, VIRTWIRE_DIRTY_SET_MIB
# MiB); without a dirty set, it is the working set's fraction below.
DEFAULT_DIRTY_RATE = 2000
DEFAULT_WORKING_SET_MIB = 64
# A guest rewrites a small part of what it has touched: by default 1/8 of the
# working set is hot. With a dirty set of at most a fifth of the working set,
# post-copy after one full pass sends (W + D) <= 1.2 x the touched memory.
DEFAULT_DIRTY_SET_FRACTION = 8

# Never replay more than this much lazily-accumulated guest time in one catch-up:
# a guest that sat idle for an hour has simply rewritten its working set many times,
# and replaying every write would only burn CPU.
_MAX_CATCH_UP_S = 1.0
_PAGE_STAMP = struct.Struct("<QQ")
_RANDOM_SEED = 12  # random-pattern writes repeat exactly from run to run
SWEEP = "sweep"
RANDOM = "random"


def page_content(page: int, version: int) -> bytes:
    """The 4 KiB content of ``page`` after its ``version``-th write (0 = zero page)."""
    if version == 0:
        return bytes(PAGE_SIZE)
    return _PAGE_STAMP.pack(page, version) * (PAGE_SIZE // _PAGE_STAMP.size)


_MIB_PAGES = 1024 * 1024 // PAGE_SIZE


@dataclass(frozen=True, slots=True)
class WorkloadSpec:
    """What the guest does: ``dirty_rate`` pages written per second into the hot
    ``dirty_set_pages``, which start ``dirty_set_offset`` pages into its touched
    ``working_set_pages``; ``pattern`` is SWEEP (page after page) or RANDOM.

    ``dirty_set_pages`` None means the default fraction of the working set; a
    dirty set larger than the working set is clamped to it, and the offset so
    that the dirty set lies inside the working set.
    """

    dirty_rate: int  # pages per second
    working_set_pages: int
    dirty_set_pages: int | None = None
    dirty_set_offset: int = 0
    pattern: str = SWEEP

    def __post_init__(self) -> None:
        if self.pattern not in (SWEEP, RANDOM):
            raise ValueError(f"unknown write pattern '{self.pattern}': expected '{SWEEP}' or '{RANDOM}'")

    @property
    def hot_start(self) -> int:
        """The first page of the dirty set."""
        return max(min(self.dirty_set_offset, self.working_set_pages - self.hot_pages), 0)

    @property
    def hot_pages(self) -> int:
        """The pages the writes land on (the effective dirty set)."""
        if self.dirty_set_pages is None:
            return default_dirty_set(self.working_set_pages)
        return min(self.dirty_set_pages, self.working_set_pages)

    @classmethod
    def default(cls) -> WorkloadSpec:
        d = SERVER_DEFAULTS
        rate = d.dirty_rate if d.dirty_rate is not None else _env_int("VIRTWIRE_DIRTY_RATE")
        ws_mib = d.working_set_mib if d.working_set_mib is not None else _env_int("VIRTWIRE_WORKING_SET_MIB")
        ds_mib = d.dirty_set_mib if d.dirty_set_mib is not None else _env_int("VIRTWIRE_DIRTY_SET_MIB")
        rate = DEFAULT_DIRTY_RATE if rate is None else rate
        ws_mib = DEFAULT_WORKING_SET_MIB if ws_mib is None else ws_mib
        return cls(
            dirty_rate=max(rate, 0),
            working_set_pages=max(ws_mib, 0) * _MIB_PAGES,
            dirty_set_pages=None if ds_mib is None else max(ds_mib, 0) * _MIB_PAGES,
        )


@dataclass(slots=True)
class ServerDefaults:
    """What the server's command line sets for every domain without its own metadata."""

    dirty_rate: int | None = None  # pages/s
    working_set_mib: int | None = None
    dirty_set_mib: int | None = None
    test_hooks: bool = False  # honour <virtwire:fault> (test suites only)


SERVER_DEFAULTS = ServerDefaults()


def _env_int(name: str) -> int | None:
    value = os.environ.get(name)
    return None if value is None else int(value)


def default_dirty_set(working_set_pages: int) -> int:
    """The hot set of a working set nobody sized it for (at least one page if any)."""
    return min(max(working_set_pages // DEFAULT_DIRTY_SET_FRACTION, 1), working_set_pages)


@dataclass(frozen=True, slots=True)
class FaultSpec:
    """A test hook: cut the migration link in ``phase`` after ``after_pages`` pages.

    ``phase`` names one or more stages, space-separated: "precopy", "postcopy",
    "recovery" (the post-copy push of a recovery); the link is cut once in each.

    Only honoured when the server runs with test hooks enabled (see
    ``test_hooks_enabled``), so a stray element in a production domain XML is inert.
    """

    phase: str  # "precopy", "postcopy", "recovery", or several of them

    @property
    def stages(self) -> frozenset[str]:
        return frozenset(self.phase.split())
    after_pages: int


def test_hooks_enabled() -> bool:
    """Test hooks are off unless the operator opts in explicitly."""
    return SERVER_DEFAULTS.test_hooks or os.environ.get("VIRTWIRE_ENABLE_TEST_HOOKS") == "1"


def _parse_int(value: str | None, what: str) -> int | None:
    if value is None:
        return None
    try:
        number = int(value)
    except ValueError:
        raise ValueError(f"invalid virtwire {what} '{value}': expected a non-negative integer") from None
    if number < 0:
        raise ValueError(f"invalid virtwire {what} '{value}': expected a non-negative integer")
    return number


def parse_workload(domain_xml: str | ET.Element, memory_pages: int) -> WorkloadSpec:
    """The workload from ``<metadata><virtwire:workload .../>`` or the server default.

    The working set is clamped to the guest's memory and the dirty set to the
    working set. Each attribute falls back to the server default on its own; with
    no dirty set anywhere it is the default fraction of the working set.
    """
    default = WorkloadSpec.default()
    rate: int | None = None
    ws_mib: int | None = None
    ds_mib: int | None = None
    element = _find_metadata(domain_xml, "workload")
    if element is not None:
        rate = _parse_int(element.get("dirty-rate"), "dirty-rate")
        ws_mib = _parse_int(element.get("working-set-mib"), "working-set-mib")
        ds_mib = _parse_int(element.get("dirty-set-mib"), "dirty-set-mib")
    ws_pages = min(default.working_set_pages if ws_mib is None else ws_mib * _MIB_PAGES, memory_pages)
    ds_pages = default.dirty_set_pages if ds_mib is None else ds_mib * _MIB_PAGES
    return WorkloadSpec(
        dirty_rate=default.dirty_rate if rate is None else rate,
        working_set_pages=ws_pages,
        dirty_set_pages=None if ds_pages is None else min(ds_pages, ws_pages),
    )


def parse_fault(domain_xml: str | ET.Element) -> FaultSpec | None:
    """The link-cut test hook, or None (always None unless test hooks are enabled)."""
    if not test_hooks_enabled():
        return None
    element = _find_metadata(domain_xml, "fault")
    if element is None:
        return None
    phase = element.get("cut-link") or ""
    if not phase.split() or not set(phase.split()) <= {"precopy", "postcopy", "recovery"}:
        return None
    return FaultSpec(phase=phase, after_pages=_parse_int(element.get("after-pages"), "after-pages") or 0)


def _find_metadata(domain_xml: str | ET.Element, tag: str) -> ET.Element | None:
    if isinstance(domain_xml, ET.Element):
        root = domain_xml
    else:
        try:
            root = ET.fromstring(domain_xml)
        except ET.ParseError:
            return None
    return root.find(f"metadata/{{{VIRTWIRE_XMLNS}}}{tag}")


class GuestMemory:
    """Sparse guest RAM with a dirty log that migration turns on."""

    def __init__(self, total_pages: int) -> None:
        self.total_pages = total_pages
        self.versions: dict[int, int] = {}
        self._dirty: set[int] | None = None

    def write(self, page: int) -> None:
        self.versions[page] = self.versions.get(page, 0) + 1
        if self._dirty is not None:
            self._dirty.add(page)

    def version(self, page: int) -> int:
        return self.versions.get(page, 0)

    def start_dirty_log(self) -> None:
        self._dirty = set()

    def stop_dirty_log(self) -> None:
        self._dirty = None

    def sync_dirty_log(self) -> set[int]:
        """Pages written since the last sync (QEMU's bitmap sync); restarts the log."""
        dirty = self._dirty if self._dirty is not None else set()
        self._dirty = set()
        return dirty

    @property
    def dirty_logging(self) -> bool:
        return self._dirty is not None

    def nonzero_pages(self) -> list[int]:
        return sorted(self.versions)


def page_runs(pages: list[int]) -> Iterator[tuple[int, int]]:
    """Group sorted page numbers into ``(start, count)`` runs of consecutive pages."""
    start = prev = -2
    for page in pages:
        if page != prev + 1:
            if start >= 0:
                yield start, prev - start + 1
            start = page
        prev = page
    if start >= 0:
        yield start, prev - start + 1


class Guest:
    """A domain's memory plus the workload that writes it while the guest runs."""

    def __init__(self, memory_pages: int, workload: WorkloadSpec, *, booted: bool = True) -> None:
        self.memory = GuestMemory(memory_pages)
        self.workload = workload
        self.cursor = 0  # the dirty-set page (counted from its start) the workload writes next
        self.throttle_pct = 0  # vCPU throttling (auto-converge): that share of writes not done
        self._running_since: float | None = None
        self._owed = 0.0  # fractional writes carried between catch-ups
        self._random = random.Random(_RANDOM_SEED) if workload.pattern == RANDOM else None
        if booted:
            # Booting touched the whole working set once: those are the non-zero pages.
            for page in range(workload.working_set_pages):
                self.memory.write(page)

    @classmethod
    def empty(cls, memory_pages: int, workload: WorkloadSpec) -> Guest:
        """A destination guest: all pages still to arrive, workload not running."""
        return cls(memory_pages, workload, booted=False)

    @property
    def running(self) -> bool:
        return self._running_since is not None

    def resume(self, now: float) -> None:
        if self._running_since is None:
            self._running_since = now

    def pause(self, now: float) -> None:
        self.catch_up(now)
        self._running_since = None

    def catch_up(self, now: float, touch: Callable[[int], bool] | None = None) -> int:
        """Perform the writes due since the last call; returns how many were done.

        ``touch`` replaces the plain memory write (the post-copy destination uses it
        to fault on pages it does not have yet): False means the vCPU blocks on that
        page, so the writes stop there and the page is written again on the next
        call (after ``stall``).
        """
        if self._running_since is None:
            return 0
        elapsed = min(max(now - self._running_since, 0.0), _MAX_CATCH_UP_S)
        self._running_since = now
        hot = self.workload.hot_pages
        if hot == 0 or self.workload.dirty_rate == 0:
            return 0
        self._owed += elapsed * self.workload.dirty_rate * (100 - self.throttle_pct) / 100
        count = int(self._owed)
        self._owed -= count
        base = self.workload.hot_start
        pick = self._random.randrange if self._random is not None else None
        cursor = self.cursor % hot
        done = 0
        for _ in range(count):
            if touch is None:
                self.memory.write(base + cursor)
            elif not touch(base + cursor):
                self._owed = 0.0  # the same page is written once the vCPU runs again
                break
            done += 1
            if pick is not None:
                cursor = pick(hot)
            else:
                cursor += 1
                if cursor >= hot:
                    cursor = 0
        self.cursor = cursor
        return done

    def stall(self, now: float) -> None:
        """The vCPU waited (on a post-copy fault) until ``now``: no writes for that time."""
        if self._running_since is not None:
            self._running_since = now
        self._owed = 0.0
