"""The driver contract: generated from the spec, and every driver coroutine is a procedure.

A driver method whose name matches no procedure would never be called (a typo,
or a procedure renamed in the spec): the memory driver may define coroutines
only under procedure names, besides the hooks of ``Driver`` itself and helpers
whose names start with an underscore.
"""

from __future__ import annotations

import inspect

from virtwire.protocol.generated import remote as R
from virtwire.server.dispatch import CONNECTION_PROCEDURES, build_routes
from virtwire.server.driver import interfacegen
from virtwire.server.driver.base import Driver
from virtwire.server.driver.interface import DriverInterface
from virtwire.server.driver.memory.driver import MemoryDriver


def test_interface_module_is_generated_from_the_spec() -> None:
    assert interfacegen.TARGET.read_text(encoding="utf-8") == interfacegen.render(), (
        "server/driver/interface.py is stale: run `python -m virtwire.server.driver.interfacegen`"
    )


def test_interface_has_exactly_the_driver_procedures() -> None:
    methods = {name for name, value in vars(DriverInterface).items() if inspect.iscoroutinefunction(value)}
    expected = {
        p.name.lower()
        for p in R.PROCEDURES.values()
        if p.event is None and p.modelled and p.name not in CONNECTION_PROCEDURES
    }
    assert methods == expected


def test_every_memory_driver_coroutine_is_a_procedure() -> None:
    hooks = {name for name, value in vars(Driver).items() if inspect.iscoroutinefunction(value)}
    strays = sorted(
        name
        for name, value in inspect.getmembers(MemoryDriver, inspect.iscoroutinefunction)
        if not name.startswith("_") and name not in hooks and not hasattr(DriverInterface, name)
    )
    assert strays == [], f"coroutines named after no procedure (rename them or make them private): {strays}"


def test_overridden_methods_are_routed_and_the_rest_answer_no_support() -> None:
    driver = MemoryDriver(hostname="contract")
    routes = build_routes(driver)
    for number, route in routes.items():
        if route.connection_level:
            continue
        name = route.proc.name.lower()
        overridden = getattr(MemoryDriver, name, None) is not getattr(DriverInterface, name, None)
        assert (route.driver_handler is not None) == (overridden and route.proc.modelled), number
