"""`virtwire.client.asyncio`: the asyncio shell, with the trio API's method names.

    import virtwire.client.asyncio as vasyncio

    async with await vasyncio.connect("test+tcp://127.0.0.1/default") as conn:
        dom = await conn.lookup_by_name("test")
        print(await dom.info())

The implementation is asyncio_client.py (a module named like the standard
library's would shadow it for code that sits next to it).
"""

from virtwire.client.asyncio_client import (
    Connection,
    Domain,
    DomainEventRecord,
    EventSubscription,
    connect,
)

__all__ = ["Connection", "Domain", "DomainEventRecord", "EventSubscription", "connect"]
