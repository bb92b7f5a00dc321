"""libvirt's driver feature numbers (VIR_DRV_FEATURE_*, src/libvirt_internal.h).

A client asks CONNECT_SUPPORTS_FEATURE with one of these; both ends of virtwire
take the numbers from here.  They are not in the protocol's .x files because
libvirt keeps them in an internal C header, not in remote_protocol.x.
"""

from __future__ import annotations

import enum


class DriverFeature(enum.IntEnum):
    MIGRATION_V1 = 1
    REMOTE = 2
    MIGRATION_V2 = 3
    MIGRATION_P2P = 4
    MIGRATION_DIRECT = 5
    MIGRATION_V3 = 6
    MIGRATE_CHANGE_PROTECTION = 7
    FD_PASSING = 8
    TYPED_PARAM_STRING = 9
    PROGRAM_KEEPALIVE = 10
    XML_MIGRATABLE = 11
    MIGRATION_OFFLINE = 12
    MIGRATION_PARAMS = 13
    REMOTE_EVENT_CALLBACK = 14
    REMOTE_CLOSE_CALLBACK = 15
    NETWORK_UPDATE_HAS_CORRECT_ORDER = 16
