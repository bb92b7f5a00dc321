"""The client: libvirt's remote protocol from Python, without libvirt.so.

Two APIs over one sans-IO core (core.py: serials, packets, replies, events,
keepalive clock, read-only policy) and one description of every call (ops.py,
and flows.py / migration.py for the multi-call logic libvirt's client library
runs itself):

- `virtwire.libvirt`: libvirt-python's module, classes and behaviour, over a
  blocking socket shared by any number of threads (sync.py, facade.py,
  eventloop.py)::

      import virtwire.libvirt as libvirt
      conn = libvirt.open("qemu+tls://host/system")
      print(conn.lookupByName("vm1").info())

- `virtwire.client.connect`: the trio API (aio.py)::

      async with await virtwire.client.connect("test+tcp://127.0.0.1/default") as conn:
          dom = await conn.lookup_by_name("test")
          print(await dom.info())
          async with conn.domain_events() as events:
              async for event in events:
                  print(event.domain.name, event.args)

URIs follow libvirt's remote driver (uri.py): tcp, tls (with libvirt's PKI
locations and its 0x01 confirmation byte) and unix sockets.
"""

from virtwire.client.aio import Connection, Domain, DomainEventRecord, connect

__all__ = ["Connection", "Domain", "DomainEventRecord", "connect"]
