"""The client: libvirt's remote protocol from Python, without libvirt.so.

Three shells over one sans-IO core (core.ClientProtocol: serials, packets,
replies, events, data streams, keepalive clock; streamstate.py for a stream's
queue) and one description of every call (ops.py, and flows.py / migration.py
for the multi-call logic libvirt's client library runs itself):

- `virtwire.libvirt`: libvirt-python's module, classes and behaviour, over a
  blocking socket shared by any number of threads (sync.py, facade.py,
  eventloop.py, stream.py)::

      import virtwire.libvirt as libvirt
      conn = libvirt.open("qemu+tls://host/system")
      print(conn.lookupByName("vm1").info())

- `virtwire.client.connect`: the trio API (aio.py)::

      async with await virtwire.client.connect("test+tcp://127.0.0.1/default") as conn:
          dom = await conn.lookupByName("test")
          print(await dom.info(), [n.name for n in await conn.listAllNetworks()])
          async with conn.domain_events() as events:
              async for event in events:
                  print(event.domain.name, event.args)

- `virtwire.client.asyncio.connect`: the same API over asyncio (asyncio_client.py).

Both async APIs have every method of libvirt-python's classes under its name, as
a coroutine, on async objects (aio_api.Domain, aio_objects.Network, ...):
generated from the spec (client/aio_generated.py, by client/surface/gen.py);
the calls whose Python shape libvirt-python writes by hand run the facade's own
code for them (aio_handle.py, bridge.py). The first async API's snake_case
names (lookup_by_name, xml_desc, ...) stay.

Streams (volume upload/download, screenshots) are virStream in the thread shell
(stream.py) and stream_aio.AsyncStream in the async ones.

URIs follow libvirt's remote driver (uri.py): tcp, tls (with libvirt's PKI
locations and its 0x01 confirmation byte) and unix sockets.

Authentication follows it too (sasl_auth.py, authconf.py): SASL with
SCRAM-SHA-256, SCRAM-SHA-1 or PLAIN, credentials from auth.conf and then from
the caller's callback (``openAuth(uri, [credtypes, callback, cbdata], flags)``;
``connect(uri, auth=[...])`` in the async APIs).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from virtwire.client.aio import Connection, Domain, DomainEventRecord, connect

__all__ = ["Connection", "Domain", "DomainEventRecord", "connect"]


def __getattr__(name: str) -> Any:
    # The trio API on first use (PEP 562): `import virtwire.libvirt` imports this
    # package too, and a threads program should not pay for trio and the async shells.
    if name in __all__:
        from virtwire.client import aio

        value = getattr(aio, name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
