"""libvirt's admin program (virt-admin) on the admin socket: servers, clients, logging, timeout."""
