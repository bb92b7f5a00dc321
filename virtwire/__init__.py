"""virtwire: libvirt RPC remote protocol in pure Python."""

from importlib import metadata as _metadata

try:
    __version__ = _metadata.version("virtwire")
except _metadata.PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0+unknown"
