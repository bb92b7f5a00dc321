"""The --timeout idle timer on trio's virtual clock: when it ends the daemon, and when not."""

from __future__ import annotations

import trio
import trio.testing
from virtwire.server.driver.base import Driver
from virtwire.server.idletimer import IdleTimer


class Daemon:
    def __init__(self, timeout: int) -> None:
        self.clients = 0
        self.busy = False
        self.quit_at: float | None = None
        self.timer = IdleTimer(timeout, lambda: self.clients > 0, lambda: self.busy)

    def quit(self) -> None:
        self.quit_at = trio.current_time()


async def test_idle_for_the_timeout_quits(autojump_clock: trio.testing.MockClock) -> None:
    daemon = Daemon(5)
    await daemon.timer.run(daemon.quit)
    assert daemon.quit_at == 5


async def test_a_client_holds_it_and_leaving_restarts_the_count(
    autojump_clock: trio.testing.MockClock,
) -> None:
    daemon = Daemon(5)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(daemon.timer.run, daemon.quit)
        await trio.sleep(3)
        daemon.clients = 1
        daemon.timer.clients_changed()
        await trio.sleep(100)
        assert daemon.quit_at is None
        daemon.clients = 0
        daemon.timer.clients_changed()
    assert daemon.quit_at == 108  # a whole period after the last client left


async def test_busy_driver_waits_another_period(autojump_clock: trio.testing.MockClock) -> None:
    daemon = Daemon(5)
    daemon.busy = True
    async with trio.open_nursery() as nursery:
        nursery.start_soon(daemon.timer.run, daemon.quit)
        await trio.sleep(12)
        assert daemon.quit_at is None
        daemon.busy = False
    assert daemon.quit_at == 15


async def test_zero_disables_and_a_new_timeout_starts_over(autojump_clock: trio.testing.MockClock) -> None:
    daemon = Daemon(0)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(daemon.timer.run, daemon.quit)
        await trio.sleep(1000)
        assert daemon.quit_at is None
        daemon.timer.set_timeout(2)
    assert daemon.quit_at == 1002


async def test_driver_work_no_client_holds_inhibits_the_exit() -> None:
    """An incoming migration runs in the driver's nursery: the idle exit waits for it."""
    driver = Driver()
    assert not driver.inhibits_idle_exit()
    async with trio.open_nursery() as nursery:
        driver.nursery = nursery
        assert not driver.inhibits_idle_exit()
        nursery.start_soon(trio.sleep_forever)
        await trio.testing.wait_all_tasks_blocked()
        assert driver.inhibits_idle_exit()
        nursery.cancel_scope.cancel()
