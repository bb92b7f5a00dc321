"""virtwire: libvirt RPC remote protocol in pure Python."""
