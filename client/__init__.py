"""Client side: the trio API (`connect`) and, in virtwire.libvirt, the libvirt-python facade."""

from virtwire.client.aio import Connection, Domain, DomainEventRecord, connect

__all__ = ["Connection", "Domain", "DomainEventRecord", "connect"]
