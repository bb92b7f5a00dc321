"""virtwire: libvirt RPC remote protocol in pure Python."""

from __future__ import annotations


def __getattr__(name: str) -> str:
    # __version__ on demand: importlib.metadata pulls in email and zipfile (tens of
    # milliseconds and a few MiB), which every client and server would pay at import.
    if name == "__version__":
        from importlib import metadata

        try:
            return metadata.version("virtwire")
        except metadata.PackageNotFoundError:  # a source tree that was never installed
            return "0+unknown"
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
