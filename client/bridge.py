"""Run the facade's synchronous code inside an async task, awaiting its calls.

libvirt-python's hand-written shapes (typed parameters as dicts, count-then-list
name lists, listAll* objects, migration flows, ...) are written once, in the
facade (client/surface/overrides*.py, client/facade.py), as plain functions that
make calls.  The async API runs that same code: `run_sync` starts it in a
greenlet, and each call the code makes (`await_`) hands its awaitable back to
the task, which awaits it on its own loop (trio or asyncio) and switches back
with the result or the exception.  Cancellation reaches the code as an exception
raised by the call it was waiting for, so its `finally` blocks run.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import greenlet

_T = TypeVar("_T")


class _Bridged(greenlet.greenlet):  # type: ignore[misc]
    """The greenlet running synchronous code for an async task (its `driver`)."""

    def __init__(self, fn: Callable[..., Any], driver: greenlet.greenlet) -> None:
        super().__init__(fn, driver)
        self.driver = driver


def inside() -> bool:
    """Whether the running code was started by `run_sync` (its calls are awaited)."""
    return isinstance(greenlet.getcurrent(), _Bridged)


def await_(awaitable: Awaitable[_T]) -> _T:
    """From code started by `run_sync`: await `awaitable` in the task, return its result."""
    current = greenlet.getcurrent()
    if not isinstance(current, _Bridged):
        raise RuntimeError("await_() called outside bridge.run_sync()")
    return current.driver.switch(awaitable)  # type: ignore[no-any-return]


async def run_sync(fn: Callable[..., _T], *args: Any, **kwargs: Any) -> _T:
    """Run `fn(*args, **kwargs)`, awaiting each awaitable it hands to `await_`."""
    glet = _Bridged(fn, greenlet.getcurrent())
    step: Any = glet.switch(*args, **kwargs)
    while not glet.dead:
        try:
            value = await step
        except BaseException as exc:
            step = glet.throw(exc)
        else:
            step = glet.switch(value)
    return step  # type: ignore[no-any-return]
