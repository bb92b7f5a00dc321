"""Render client/aio_generated.py: the async API's methods, libvirt-python's names, awaited.

Run through `python -m virtwire.client.surface.gen` (it writes both files).

For every class of the facade (`virtwire.libvirt`) and every public method of
it, the async class standing for it (aio_handle.ASYNC_CLASSES) gets a
coroutine of the same name:

- a method the facade takes from generated.py (one procedure, plain arguments,
  plain result: the plan of gen.py) is generated the same way, awaited;
- a method whose shape the facade writes by hand runs the facade's own code
  for it (aio_handle.AsyncHandle._facade), with the facade's signature.

Two tables say what differs: ASYNC_OWN, the methods the async classes write
themselves (streams, keepalive, the `name` property), and NOT_ASYNC, the
methods that have no async counterpart and why.  A test checks that every
facade method is in one of the three places.
"""

from __future__ import annotations

import inspect
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Final

from virtwire.client.surface import apixml, gen

OUT: Final = Path(__file__).parent.parent / "aio_generated.py"

# Facade class -> the async API's class (the generated base is <name>Calls).
ASYNC_NAMES: Final = {
    "virConnect": "Connection",
    "virDomain": "Domain",
    "virNetwork": "Network",
    "virNetworkPort": "NetworkPort",
    "virInterface": "Interface",
    "virStoragePool": "StoragePool",
    "virStorageVol": "StorageVol",
    "virNodeDevice": "NodeDevice",
    "virSecret": "Secret",
    "virNWFilter": "NWFilter",
    "virNWFilterBinding": "NWFilterBinding",
    "virDomainSnapshot": "DomainSnapshot",
    "virDomainCheckpoint": "DomainCheckpoint",
}

# Methods the async classes define themselves (client/aio_api.py, aio_objects.py).
_STREAM_BINDING = "binds an AsyncStream from newStream() (the facade binds a virStream)"
ASYNC_OWN: Final[dict[str, dict[str, str]]] = {
    "*": {"name": "a property, as on the async Domain since the first async API"},
    "virConnect": {
        "newStream": "an unbound AsyncStream",
        "setKeepAlive": "the shell's keepalive clock (the facade's needs its event loop)",
        "close": "the shell's close (CONNECT_CLOSE, then the socket)",
    },
    "virDomain": {
        "screenshot": _STREAM_BINDING,
        "openConsole": _STREAM_BINDING,
        "openChannel": _STREAM_BINDING,
    },
    "virStorageVol": {"download": _STREAM_BINDING, "upload": _STREAM_BINDING},
}

_EVENTS = (
    "a callback registration: the async API delivers events as async iterators"
    " (domain_events(), object_events(family, ...))"
)
_HANDLERS = "handler callbacks: iterate the AsyncStream (chunks()) or give send_all() an async iterable"
NOT_ASYNC: Final[dict[str, dict[str, str]]] = {
    "virConnect": {
        name: _EVENTS
        for name in (
            "domainEventRegister",
            "domainEventDeregister",
            "domainEventRegisterAny",
            "domainEventDeregisterAny",
            "networkEventRegisterAny",
            "networkEventDeregisterAny",
            "storagePoolEventRegisterAny",
            "storagePoolEventDeregisterAny",
            "nodeDeviceEventRegisterAny",
            "nodeDeviceEventDeregisterAny",
            "secretEventRegisterAny",
            "secretEventDeregisterAny",
            "registerCloseCallback",
            "unregisterCloseCallback",
        )
    },
    # virStream is stream_aio.AsyncStream, which has libvirt-python's other names.
    "virStream": {
        "eventAddCallback": _EVENTS,
        "eventUpdateCallback": _EVENTS,
        "eventRemoveCallback": _EVENTS,
        "recvAll": _HANDLERS,
        "sendAll": _HANDLERS,
        "sparseRecvAll": _HANDLERS,
        "sparseSendAll": _HANDLERS,
        "c_pointer": "there is no C object to point at in the async API",
    },
}


def facade_methods(klass: str) -> dict[str, Any]:
    """The public methods of the facade's class `klass` (name -> function)."""
    from virtwire.client.surface import base

    import virtwire.libvirt  # defines and registers every facade class

    cls = getattr(virtwire.libvirt, klass) if klass not in base.CLASSES else base.CLASSES[klass]
    out: dict[str, Any] = {}
    for name in dir(cls):
        if name.startswith("_"):
            continue
        value = inspect.getattr_static(cls, name)
        if inspect.isfunction(value):
            out[name] = value
    return out


def _own(klass: str, name: str) -> bool:
    return name in ASYNC_OWN["*"] or name in ASYNC_OWN.get(klass, {})


def _delegate(name: str, fn: Any) -> Iterator[str]:
    """A coroutine with the facade method's parameters that runs the facade's code."""
    params = list(inspect.signature(fn).parameters.values())[1:]
    sig: list[str] = ["self"]
    call: list[str] = [repr(name)]
    star_done = False
    for p in params:
        default = "" if p.default is inspect.Parameter.empty else f" = {p.default!r}"
        if p.kind is p.VAR_POSITIONAL:
            sig.append(f"*{p.name}: Any")
            call.append(f"*{p.name}")
            star_done = True
        elif p.kind is p.VAR_KEYWORD:
            sig.append(f"**{p.name}: Any")
            call.append(f"**{p.name}")
        elif p.kind is p.KEYWORD_ONLY:
            if not star_done:
                sig.append("*")
                star_done = True
            sig.append(f"{p.name}: Any{default}")
            call.append(f"{p.name}={p.name}")
        else:
            sig.append(f"{p.name}: Any{default}")
            call.append(p.name)
    yield f"    async def {name}({', '.join(sig)}) -> Any:"
    yield f'        """{name}: the facade\'s shape of it, awaited."""'
    yield f"        return await self._facade({', '.join(call)})"


def render(api_xml: Path = apixml.DEFAULT_PATH) -> str:
    from virtwire.client.surface import generated

    planned, _ = gen.plan_all(apixml.load(api_xml))
    lines = [
        '"""Generated by virtwire.client.surface.gen (client/surface/agen.py); do not edit.',
        "",
        "The async API's methods: every method of the facade's classes under its",
        "libvirt-python name, as a coroutine (one call made directly, or the facade's",
        "hand-written shape run over the async connection).  NOT_ASYNC lists the",
        "methods without an async counterpart, ASYNC_OWN those the async classes",
        "write themselves.",
        '"""',
        "",
        "# ruff: noqa: E501",
        "from __future__ import annotations",
        "",
        "from typing import Any, Final",
        "",
        "from virtwire.client.aio_handle import AsyncHandle",
        "",
    ]
    for klass, async_name in ASYNC_NAMES.items():
        gen_cls = getattr(generated, f"{klass}Generated")
        direct = {m.binding.method: (m, fn) for m, fn in planned[klass]}
        lines += [
            "",
            f"class {async_name}Calls(AsyncHandle):",
            f'    """{klass}\'s methods, awaited."""',
            "",
            f"    _FACADE = {klass!r}",
        ]
        for name, fn in sorted(facade_methods(klass).items()):
            if _own(klass, name) or name in NOT_ASYNC.get(klass, {}):
                continue
            lines.append("")
            if name in direct and fn is inspect.getattr_static(gen_cls, name, None):
                m, afn = direct[name]
                lines.extend(gen._emit_method(m, afn, awaited=True))
            else:
                lines.extend(_delegate(name, fn))
        lines.append("")
    lines += [
        "",
        "# Facade class -> method -> why the async API has no coroutine for it.",
        "NOT_ASYNC: Final[dict[str, dict[str, str]]] = {",
    ]
    for klass, table in NOT_ASYNC.items():
        lines.append(f"    {klass!r}: {{")
        lines += [f"        {m!r}: {why!r}," for m, why in sorted(table.items())]
        lines.append("    },")
    lines += [
        "}",
        "",
        "# Facade class ('*': every class) -> method -> what the async classes write for it.",
        "ASYNC_OWN: Final[dict[str, dict[str, str]]] = {",
    ]
    for klass, table in ASYNC_OWN.items():
        lines.append(f"    {klass!r}: {{")
        lines += [f"        {m!r}: {why!r}," for m, why in sorted(table.items())]
        lines.append("    },")
    lines += [
        "}",
        "",
        "# Facade class -> the async API's class name.",
        f"ASYNC_NAMES: Final[dict[str, str]] = {dict(ASYNC_NAMES)!r}",
        "",
    ]
    return "\n".join(lines)
