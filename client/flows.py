"""Multi-call logic libvirt's client library runs itself, written once for both APIs.

A flow is a generator: it yields `Step`s (an Op for the source or destination
connection) and receives each result, or the libvirtError thrown in. The sync
facade drives it with blocking calls (`drive`), the trio API with awaits
(`aio.drive`). This module holds the driver, the feature probe and the
handshake (src/remote/remote_driver.c, doRemoteOpen); migration.py holds the
migration flows.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Generator, Mapping
from dataclasses import dataclass
from typing import Any, Final

from virtwire.client import ops, sasl_auth
from virtwire.protocol.errors import libvirtError
from virtwire.protocol.features import DriverFeature
from virtwire.protocol.generated import constants as c

SRC: Final = "src"
DST: Final = "dst"


@dataclass(frozen=True, slots=True)
class Step:
    target: str
    op: ops.Op


@dataclass(frozen=True, slots=True)
class Together:
    """Independent calls that need not wait for each other: a runner may send them
    back to back and wait once (one round trip instead of several).  The flow
    receives a list with each call's result, or the libvirtError it raised, in order."""

    target: str
    ops: tuple[ops.Op, ...]


Flow = Generator[Step | Together, Any, Any]
# Runs a Together's ops; returns each one's result or libvirtError.
RunTogether = Callable[[tuple[ops.Op, ...]], list[Any]]


def one_by_one(run: Callable[[ops.Op], Any], calls: tuple[ops.Op, ...]) -> list[Any]:
    """A Together run as separate calls (for runners that cannot send them at once)."""
    out: list[Any] = []
    for op in calls:
        try:
            out.append(run(op))
        except libvirtError as exc:
            out.append(exc)
    return out


def drive(
    flow: Flow,
    run: Mapping[str, Callable[[ops.Op], Any]],
    together: Mapping[str, RunTogether] | None = None,
) -> Any:
    """Run a flow with blocking runners, one per connection name."""
    try:
        step = next(flow)
        while True:
            if isinstance(step, Together):
                batch = together.get(step.target) if together is not None else None
                outcomes = batch(step.ops) if batch is not None else one_by_one(run[step.target], step.ops)
                step = flow.send(outcomes)
                continue
            try:
                result = run[step.target](step.op)
            except libvirtError as exc:
                step = flow.throw(exc)
            else:
                step = flow.send(result)
    except StopIteration as stop:
        return stop.value


# -- handshake --------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Features:
    keepalive: bool
    event_callback: bool
    close_callback: bool
    sasl: bool = False  # a SASL session was set up (libvirt then counts the link as encrypted)


def supported(feature: int, target: str = SRC) -> Generator[Step, Any, bool]:
    """VIR_DRV_SUPPORTS_FEATURE: ask the server; an error counts as "no"."""
    return (yield from _probe(Step(target, ops.supports_feature(feature))))


def _probe(step: Step) -> Generator[Step, Any, bool]:
    """A feature probe's step: its answer, an error counting as "no"."""
    try:
        answer = yield step
    except libvirtError:
        return False
    return bool(answer)


def on_target(target: str, flow: sasl_auth.OpFlow) -> Generator[Step, Any, Any]:
    """Run a flow of bare Ops as Steps on one connection."""
    try:
        op = next(flow)
        while True:
            try:
                result = yield Step(target, op)
            except libvirtError as exc:
                op = flow.throw(exc)
            else:
                op = flow.send(result)
    except StopIteration as stop:
        return stop.value


# The handshake's steps that never change, built once: every open sends them, and
# an Op is only read once built (its payload is encoded on first use and kept).
_AUTH_LIST: Final = Step(SRC, ops.auth_list())
_KEEPALIVE_PROBE: Final = Step(SRC, ops.supports_feature(DriverFeature.PROGRAM_KEEPALIVE))
# Both probes at once: they do not depend on each other (an error means "no").
_CALLBACK_PROBES: Final = Together(
    SRC,
    (
        ops.supports_feature(DriverFeature.REMOTE_EVENT_CALLBACK),
        ops.supports_feature(DriverFeature.REMOTE_CLOSE_CALLBACK),
    ),
)
NO_FEATURES: Final = Features(False, False, False)


@functools.lru_cache(maxsize=32)
def _connect_open(name: str | None, flags: int) -> Step:
    """CONNECT_OPEN's step, encoded once per (name, flags): programs open the same URI again and again."""
    return Step(SRC, ops.connect_open(name, flags))


def handshake(
    name: str | None, flags: int, want_keepalive: bool, auth: sasl_auth.AuthRequest
) -> Generator[Step | Together, Any, Features]:
    """AUTH_LIST, [SASL], [feature 10], CONNECT_OPEN, features 14 and 15: libvirt-python's order."""
    try:
        types: list[int] = yield _AUTH_LIST
    except libvirtError as exc:
        # An old server without AUTH_LIST means "no auth".
        if exc.get_error_code() != c.VIR_ERR_NO_SUPPORT:
            raise
        types = []
    encrypted = yield from on_target(SRC, sasl_auth.authenticate(types, auth))
    keepalive = False
    if want_keepalive:
        keepalive = yield from _probe(_KEEPALIVE_PROBE)
    yield _connect_open(name, flags)
    event_answer, close_answer = yield _CALLBACK_PROBES
    return Features(keepalive, _yes(event_answer), _yes(close_answer), encrypted)


def _yes(answer: Any) -> bool:
    """A feature probe's answer: an error means "no"."""
    return not isinstance(answer, libvirtError) and bool(answer)
