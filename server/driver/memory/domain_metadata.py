"""Metadata, lifecycle actions, renames and the *WithFiles starts of test:///default.

Title, description and namespaced ``<metadata>`` elements are read from and
written to the live and/or persistent definition the AFFECT_* flags name (as
virDomainObjGetOneDef / virDomainObjGetDefs pick them); every successful set
emits METADATA_CHANGE.  A changed persistent definition is written to the state
directory before the reply.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET

from virtwire.protocol import errors as E
from virtwire.protocol.generated import constants as C
from virtwire.protocol.generated import remote as R

from ...errors import check_flags, report
from ..base import ConnectionContext, nonblocking
from .core import FROM, MemoryCore, dom_ref, operation_invalid
from .domdefs import both_defs, element, one_def, put_section
from .metadata_xml import dump_without_namespace, in_namespace, parse_element
from .model import Domain

_AFFECT = C.VIR_DOMAIN_AFFECT_LIVE | C.VIR_DOMAIN_AFFECT_CONFIG
_TAGS = {C.VIR_DOMAIN_METADATA_DESCRIPTION: "description", C.VIR_DOMAIN_METADATA_TITLE: "title"}
# virDomainLifecycle / virDomainLifecycleAction names, and the XML element of each event.
_LIFECYCLE_ELEMENTS = ("on_poweroff", "on_reboot", "on_crash")
_LIFECYCLE_NAMES = ("poweroff", "reboot", "crash")
_ACTIONS = ("destroy", "restart", "rename-restart", "preserve", "coredump-destroy", "coredump-restart")


def _arg_error(function: str, argument: str, message: str) -> Exception:
    return E.invalid_argument(function, argument, message, C.VIR_FROM_DOMAIN)


def _null_arg(function: str, argument: str, value: str | None, must_be_null: bool) -> None:
    """virCheckNullArgGoto / virCheckNonNullArgGoto of the public API."""
    if must_be_null and value is not None:
        raise _arg_error(function, argument, f"{argument} in {function} must be NULL")
    if not must_be_null and value is None:
        raise _arg_error(function, argument, f"{argument} in {function} must not be NULL")


def _unknown_type(kind: int) -> Exception:
    return report(C.VIR_ERR_INVALID_ARG, C.VIR_FROM_DOMAIN, f"unknown metadata type '{kind}'")


def _exclusive_affect(function: str, flags: int) -> None:
    if flags & C.VIR_DOMAIN_AFFECT_LIVE and flags & C.VIR_DOMAIN_AFFECT_CONFIG:
        raise _arg_error(
            function,
            "ctl",
            "Flags 'VIR_DOMAIN_AFFECT_LIVE' and 'VIR_DOMAIN_AFFECT_CONFIG' are mutually exclusive",
        )


def _set_in(tree: ET.Element, kind: int, value: str | None, key: str | None, uri: str | None) -> None:
    """virDomainDefSetMetadata on one definition."""
    if kind in _TAGS:
        tag = _TAGS[kind]
        put_section(tree, tag, element(tag, value) if value else None)
        return
    assert uri is not None
    new = parse_element(value, uri, key or "") if value is not None else None
    holder = tree.find("metadata")
    if holder is None and new is not None:
        holder = element("metadata")
        put_section(tree, "metadata", holder)
    if holder is None:
        return
    for old in [child for child in holder if in_namespace(child, uri)]:
        holder.remove(old)
    if new is not None:
        holder.append(new)


@nonblocking
class MetadataAPI(MemoryCore):
    """virDomainGetMetadata/SetMetadata/SetLifecycleAction/Rename/CreateWithFiles of test:///default."""

    # --- metadata ------------------------------------------------------------------------

    async def domain_get_metadata(
        self, args: R.remote_domain_get_metadata_args, ctx: ConnectionContext
    ) -> R.remote_domain_get_metadata_ret:
        api = "virDomainGetMetadata"
        _exclusive_affect(api, args.flags)
        if args.type in _TAGS:
            _null_arg(api, "uri", args.uri, True)
        elif args.type == C.VIR_DOMAIN_METADATA_ELEMENT:
            _null_arg(api, "uri", args.uri, False)
        check_flags(args.flags, _AFFECT, "testDomainGetMetadata")
        dom = self.lookup(args.dom)
        if args.type >= C.VIR_DOMAIN_METADATA_LAST or args.type < 0:
            raise _unknown_type(args.type)
        tree, _ = one_def(dom, args.flags)
        found: str | None = None
        if args.type in _TAGS:
            found = tree.findtext(_TAGS[args.type])
        else:
            assert args.uri is not None
            holder = tree.find("metadata")
            for child in holder if holder is not None else ():
                if in_namespace(child, args.uri):
                    found = dump_without_namespace(child, args.uri)
                    break
        if found is None:
            raise report(
                C.VIR_ERR_NO_DOMAIN_METADATA, C.VIR_FROM_DOMAIN, "Requested metadata element is not present"
            )
        return R.remote_domain_get_metadata_ret(metadata=found)

    async def domain_set_metadata(
        self, args: R.remote_domain_set_metadata_args, ctx: ConnectionContext
    ) -> None:
        api = "virDomainSetMetadata"
        kind, value, key, uri = args.type, args.metadata, args.key, args.uri
        if kind == C.VIR_DOMAIN_METADATA_TITLE and value is not None and "\n" in value:
            raise _arg_error(api, "metadata", "metadata title can't contain newlines")
        if kind in _TAGS:
            _null_arg(api, "uri", uri, True)
            _null_arg(api, "key", key, True)
        elif kind == C.VIR_DOMAIN_METADATA_ELEMENT:
            _null_arg(api, "uri", uri, False)
            if value is not None:
                _null_arg(api, "key", key, False)
        check_flags(args.flags, _AFFECT, "testDomainSetMetadata")
        dom = self.lookup(args.dom)
        live, persistent = both_defs(dom, args.flags)
        if kind >= C.VIR_DOMAIN_METADATA_LAST or kind < 0:
            raise _unknown_type(kind)
        for tree in (live, persistent):
            if tree is not None:
                _set_in(tree, kind, value, key, uri)
        if persistent is not None:
            self.save(dom)
        ref = dom_ref(dom)
        self.events.callback_only(
            C.VIR_DOMAIN_EVENT_ID_METADATA_CHANGE,
            ref,
            R.remote_procedure.REMOTE_PROC_DOMAIN_EVENT_CALLBACK_METADATA_CHANGE,
            lambda callback_id: R.remote_domain_event_callback_metadata_change_msg(
                callbackID=callback_id, dom=ref, type=kind, nsuri=uri
            ),
        )

    # --- lifecycle actions ---------------------------------------------------------------

    async def domain_set_lifecycle_action(
        self, args: R.remote_domain_set_lifecycle_action_args, ctx: ConnectionContext
    ) -> None:
        kind, action = args.type, args.action
        # virDomainSetLifecycleAction's own range checks.
        if kind >= C.VIR_DOMAIN_LIFECYCLE_LAST:
            raise report(C.VIR_ERR_INVALID_ARG, C.VIR_FROM_DOMAIN, f"invalid lifecycle type '{kind}'")
        if action >= C.VIR_DOMAIN_LIFECYCLE_ACTION_LAST:
            raise report(C.VIR_ERR_INVALID_ARG, C.VIR_FROM_DOMAIN, f"invalid lifecycle action '{action}'")
        check_flags(args.flags, _AFFECT, "testDomainSetLifecycleAction")
        coredump = action in (
            C.VIR_DOMAIN_LIFECYCLE_ACTION_COREDUMP_DESTROY,
            C.VIR_DOMAIN_LIFECYCLE_ACTION_COREDUMP_RESTART,
        )
        if kind != C.VIR_DOMAIN_LIFECYCLE_CRASH and coredump:
            raise report(
                C.VIR_ERR_CONFIG_UNSUPPORTED,
                C.VIR_FROM_DOMAIN,
                f"Lifecycle event '{_LIFECYCLE_NAMES[kind]}' doesn't support '{_ACTIONS[action]}' action",
            )
        dom = self.lookup(args.dom)
        live, persistent = both_defs(dom, args.flags)
        tag = _LIFECYCLE_ELEMENTS[kind]
        for tree in (live, persistent):
            if tree is not None:
                put_section(tree, tag, element(tag, _ACTIONS[action]))
        if persistent is not None:
            self.save(dom)

    # --- rename --------------------------------------------------------------------------

    async def domain_rename(
        self, args: R.remote_domain_rename_args, ctx: ConnectionContext
    ) -> R.remote_domain_rename_ret:
        api = "virDomainRename"
        new_name = args.new_name
        if new_name is None:
            raise _arg_error(api, "new_name", f"new_name in {api} must not be NULL")
        if not new_name:
            raise _arg_error(api, "new_name", f"string new_name in {api} must not be empty")
        check_flags(args.flags, 0, "testDomainRename")
        dom = self.lookup(args.dom)
        if dom.active:
            raise operation_invalid("cannot rename active domain", FROM)
        if not dom.persistent:
            raise operation_invalid("cannot rename a transient domain", FROM)
        if dom.state != C.VIR_DOMAIN_SHUTOFF:
            raise operation_invalid("domain has to be shutoff before renaming", FROM)
        if new_name == dom.name:
            raise operation_invalid("Can't rename domain to itself")
        if new_name in self._by_name:
            raise operation_invalid(f"domain with name '{new_name}' already exists")
        if "/" in new_name:
            raise report(C.VIR_ERR_XML_ERROR, FROM, f"name {new_name} cannot contain '/'")
        self._rename(dom, new_name)
        return R.remote_domain_rename_ret(retcode=0)

    def _rename(self, dom: Domain, new_name: str) -> None:
        self.events.lifecycle(
            dom_ref(dom), C.VIR_DOMAIN_EVENT_UNDEFINED, C.VIR_DOMAIN_EVENT_UNDEFINED_RENAMED
        )
        del self._by_name[dom.name]
        dom.name = new_name
        self._by_name[new_name] = dom
        self._sorted = None
        dom.ref_cache = None
        for tree in (dom.tree, dom.new_tree):
            name_el = tree.find("name") if tree is not None else None
            if name_el is not None:
                name_el.text = new_name
        self.save(dom)
        self.events.lifecycle(dom_ref(dom), C.VIR_DOMAIN_EVENT_DEFINED, C.VIR_DOMAIN_EVENT_DEFINED_RENAMED)

    # --- starts that hand over file descriptors (the test driver ignores them) -------------

    async def domain_create_with_files(
        self, args: R.remote_domain_create_with_files_args, ctx: ConnectionContext
    ) -> R.remote_domain_create_with_files_ret:
        check_flags(args.flags, 0, "testDomainCreateWithFlags")
        dom = self.lookup(args.dom)
        self.start_domain(dom)
        return R.remote_domain_create_with_files_ret(dom=dom_ref(dom))

    async def domain_create_xml_with_files(
        self, args: R.remote_domain_create_xml_with_files_args, ctx: ConnectionContext
    ) -> R.remote_domain_create_xml_with_files_ret:
        check_flags(args.flags, C.VIR_DOMAIN_START_VALIDATE, "testDomainCreateXML")
        validate = bool(args.flags & C.VIR_DOMAIN_START_VALIDATE)
        dom = self.define_domain(args.xml_desc, persistent=False, emit=False, live=True, validate=validate)
        self.start_domain(dom)
        return R.remote_domain_create_xml_with_files_ret(dom=dom_ref(dom))
