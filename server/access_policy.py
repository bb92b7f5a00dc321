"""The access policy file: who may use which permission on which objects.

libvirt decides every API call with an access driver (polkit in practice) asked
"may this identity use permission P on object O?", where P is one of the
permissions the spec's ``@acl`` lines name (``domain:read``, ``domain:migrate``,
``connect:search_domains``...) and O is described by its name and UUID.
virtwire answers the same question from a TOML file (``virtwire serve
--access-policy FILE``)::

    # the answer when no rule matches (default: "deny")
    default = "deny"

    [[rule]]
    # who: every key given must match (fnmatch globs); keys are libvirt's
    # identity attributes
    x509_dname = "O=other,CN=*"
    # what: object:permission globs
    permissions = ["connect:*", "domain:getattr", "domain:read"]
    # on which objects (names or UUIDs, globs); omitted = every object.
    # A rule with objects never grants or denies connect:* permissions.
    objects = ["dev-*"]
    allow = true

Rules are tried in order; the first whose identity, permission and object all
match decides.  Identity attributes: ``user_name``, ``unix_user_id``,
``group_name``, ``unix_group_id``, ``process_id``, ``sasl_user_name``,
``x509_dname`` (libvirt's virIdentity attributes) and ``transport``.
"""

from __future__ import annotations

import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from fnmatch import fnmatchcase
from pathlib import Path
from typing import Any

IDENTITY_KEYS = frozenset(
    {
        "user_name",
        "unix_user_id",
        "group_name",
        "unix_group_id",
        "process_id",
        "sasl_user_name",
        "x509_dname",
        "transport",
    }
)
RULE_KEYS = IDENTITY_KEYS | {"permissions", "objects", "allow"}
# The objects libvirt's @acl lines name; "connect" is the hypervisor connection itself.
OBJECT_KINDS = frozenset(
    {
        "connect",
        "domain",
        "interface",
        "network",
        "network_port",
        "node_device",
        "nwfilter",
        "nwfilter_binding",
        "secret",
        "storage_pool",
        "storage_vol",
    }
)


class PolicyError(ValueError):
    """The policy file is not valid; the message says where and why."""


@dataclass(frozen=True, slots=True)
class AccessObject:
    """An object a permission is checked on, as the server knows it."""

    kind: str
    name: str
    uuid: str | None = None


@dataclass(frozen=True, slots=True)
class Rule:
    identity: tuple[tuple[str, str], ...]  # (attribute, glob)
    permissions: tuple[str, ...]  # "object:permission" globs
    objects: tuple[str, ...] | None  # name/UUID globs; None = every object
    allow: bool

    def matches_identity(self, attrs: Mapping[str, str]) -> bool:
        return all(key in attrs and fnmatchcase(attrs[key], glob) for key, glob in self.identity)

    def matches_permission(self, kind: str, permission: str) -> bool:
        if self.objects is not None and kind == "connect":
            return False
        wanted = f"{kind}:{permission}"
        return any(fnmatchcase(wanted, glob) for glob in self.permissions)

    def matches_object(self, obj: AccessObject) -> bool:
        if self.objects is None:
            return True
        return any(
            fnmatchcase(obj.name, glob) or (obj.uuid is not None and fnmatchcase(obj.uuid, glob))
            for glob in self.objects
        )


@dataclass(frozen=True, slots=True)
class Policy:
    rules: tuple[Rule, ...]
    default_allow: bool = False

    @classmethod
    def load(cls, path: Path) -> Policy:
        try:
            data = tomllib.loads(path.read_text(encoding="utf-8"))
        except OSError as exc:
            raise PolicyError(f"cannot read access policy {path}: {exc.strerror}") from None
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
            raise PolicyError(f"{path}: {exc}") from None
        return cls.from_mapping(data, str(path))

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any], where: str = "policy") -> Policy:
        unknown = set(data) - {"default", "rule"}
        if unknown:
            raise PolicyError(f"{where}: unknown key {sorted(unknown)[0]!r}, expected 'default' or [[rule]]")
        default = data.get("default", "deny")
        if default not in ("allow", "deny"):
            raise PolicyError(f'{where}: default = {default!r}, expected "allow" or "deny"')
        raw_rules = data.get("rule", [])
        if not isinstance(raw_rules, list):
            raise PolicyError(f"{where}: 'rule' must be an array of tables ([[rule]])")
        rules = tuple(_rule(raw, f"{where}: rule {i + 1}") for i, raw in enumerate(raw_rules))
        return cls(rules, default == "allow")

    def for_identity(self, attrs: Mapping[str, str]) -> SubjectAccess:
        return SubjectAccess(tuple(r for r in self.rules if r.matches_identity(attrs)), self.default_allow)


def _rule(raw: Any, where: str) -> Rule:
    if not isinstance(raw, dict):
        raise PolicyError(f"{where}: expected a table")
    unknown = set(raw) - RULE_KEYS
    if unknown:
        raise PolicyError(f"{where}: unknown key {sorted(unknown)[0]!r}")
    identity = []
    for key in sorted(IDENTITY_KEYS & set(raw)):
        value = raw[key]
        if isinstance(value, bool) or not isinstance(value, str | int):
            raise PolicyError(f"{where}: {key} must be a string or a number")
        identity.append((key, str(value)))
    permissions = _strings(raw, "permissions", where)
    if permissions is None or not permissions:
        raise PolicyError(f'{where}: permissions must be a non-empty list of "object:permission" globs')
    for perm in permissions:
        kind, sep, _ = perm.partition(":")
        if not sep or not any(fnmatchcase(k, kind) for k in OBJECT_KINDS):
            raise PolicyError(f'{where}: permission {perm!r} names no object (expected e.g. "domain:read")')
    allow = raw.get("allow")
    if not isinstance(allow, bool):
        raise PolicyError(f"{where}: allow must be true or false")
    return Rule(tuple(identity), permissions, _strings(raw, "objects", where), allow)


def _strings(raw: Mapping[str, Any], key: str, where: str) -> tuple[str, ...] | None:
    if key not in raw:
        return None
    value = raw[key]
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise PolicyError(f"{where}: {key} must be a list of strings")
    return tuple(value)


@dataclass(frozen=True, slots=True)
class SubjectAccess:
    """The rules that apply to one identity: the questions asked per call."""

    rules: tuple[Rule, ...]
    default_allow: bool

    def allows(self, kind: str, permission: str, obj: AccessObject | None = None) -> bool:
        for rule in self.rules:
            if not rule.matches_permission(kind, permission):
                continue
            if rule.objects is None or (obj is not None and rule.matches_object(obj)):
                return rule.allow
        return self.default_allow

    def uniform(self, kind: str, permission: str) -> bool | None:
        """The answer for every object alike, or None when it depends on the object."""
        for rule in self.rules:
            if rule.matches_permission(kind, permission):
                return rule.allow if rule.objects is None else None
        return self.default_allow
