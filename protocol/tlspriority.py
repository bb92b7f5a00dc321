"""GnuTLS priority strings (libvirt's ``tls_priority``) as OpenSSL settings.

libvirt hands ``tls_priority`` (libvirtd.conf, ``--tls-priority`` here, or a
client URI's ``?tls_priority=``) to gnutls_priority_set_direct; its default is
"NORMAL".  virtwire speaks TLS through Python's ssl module (OpenSSL), so the
string is translated: the base keyword sets the cipher strength, ``+VERS-…`` /
``-VERS-…`` the protocol versions, and the other modifiers GnuTLS accepts are
taken without effect on OpenSSL (it has no matching knob).  A string GnuTLS
would reject is refused with libvirt's error.

Pure: a string in, a ``TlsPriority`` out; the caller applies it to its context.
"""

from __future__ import annotations

import re
import ssl
from dataclasses import dataclass

from . import errors as E
from .generated import constants as C

DEFAULT = "NORMAL"

# base keyword -> OpenSSL cipher list for TLS <= 1.2 (TLS 1.3 suites are all strong)
_BASES = {
    "NORMAL": "DEFAULT:!aNULL:!eNULL",
    "PFS": "ECDHE:DHE:!aNULL:!eNULL",
    "PERFORMANCE": "DEFAULT:!aNULL:!eNULL",
    "LEGACY": "DEFAULT:!aNULL:!eNULL",
    "SECURE128": "HIGH:!aNULL:!eNULL:!MD5:!3DES",
    "SECURE192": "HIGH:!aNULL:!eNULL:!MD5:!3DES:!AES128:!CAMELLIA128:!ARIA128",
    "SECURE256": "HIGH:!aNULL:!eNULL:!MD5:!3DES:!AES128:!CAMELLIA128:!ARIA128",
    "SUITEB128": "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-ECDSA-AES256-GCM-SHA384",
    "SUITEB192": "ECDHE-ECDSA-AES256-GCM-SHA384",
    "NONE": "DEFAULT:!aNULL:!eNULL",
}
_VERSIONS = {
    "VERS-TLS1.0": ssl.TLSVersion.TLSv1,
    "VERS-TLS1.1": ssl.TLSVersion.TLSv1_1,
    "VERS-TLS1.2": ssl.TLSVersion.TLSv1_2,
    "VERS-TLS1.3": ssl.TLSVersion.TLSv1_3,
}
_ORDER = list(_VERSIONS.values())
# Modifiers GnuTLS knows that have no OpenSSL counterpart here.
_MODIFIER = re.compile(r"%[A-Z0-9_]+|[-+!][A-Z0-9][A-Z0-9_.-]*|[A-Z0-9_-]+=.*")


@dataclass(frozen=True, slots=True)
class TlsPriority:
    ciphers: str
    minimum: ssl.TLSVersion
    maximum: ssl.TLSVersion

    def apply(self, ctx: ssl.SSLContext) -> None:
        ctx.set_ciphers(self.ciphers)
        ctx.minimum_version = self.minimum
        ctx.maximum_version = self.maximum


def _invalid(priority: str, reason: str = "The request is invalid.") -> E.libvirtError:
    return E.make_error(
        C.VIR_ERR_SYSTEM_ERROR, C.VIR_FROM_RPC, f"Failed to set TLS session priority to {priority}: {reason}"
    )


def parse(priority: str | None) -> TlsPriority:
    """The settings a GnuTLS priority string asks for, or libvirt's error."""
    text = DEFAULT if priority is None else priority
    words = text.split(":")
    # libvirt packages may prefix "@SYSTEM"-style system policies: take the fallback
    base = words[0]
    if base.startswith("@"):
        # "@KEYWORD,FALLBACK...": a system-wide policy; OpenSSL's own defaults stand in
        base = next((k for k in base[1:].split(",") if k in _BASES), DEFAULT)
    if base not in _BASES:
        raise _invalid(text)
    versions = set(_VERSIONS.values()) - {ssl.TLSVersion.TLSv1, ssl.TLSVersion.TLSv1_1}
    if base == "NONE":
        versions = set()
    for word in words[1:]:
        if not word:
            continue
        sign, name = word[0], word[1:]
        if sign in "+-!" and name in (*_VERSIONS, "VERS-ALL", "VERS-TLS-ALL"):
            chosen = set(_VERSIONS.values()) if name.endswith("ALL") else {_VERSIONS[name]}
            versions = versions | chosen if sign == "+" else versions - chosen
        elif not _MODIFIER.fullmatch(word):
            raise _invalid(text)
    if not versions:
        raise _invalid(text, "No or insufficient priorities were set.")
    ordered = [v for v in _ORDER if v in versions]
    return TlsPriority(_BASES[base], ordered[0], ordered[-1])
