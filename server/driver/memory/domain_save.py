"""Save, restore, managed save and core dumps, as libvirt's test driver does them.

``save`` writes the running domain's live definition to the caller's path in
the test driver's image format (``save_image``) and shuts the domain off with
reason SAVED; ``restore`` reads it back and starts the domain (reason
RESTORED).  A managed save is only a mark on the domain, as in the test driver:
the domain stops (SAVED), ``hasManagedSave`` answers 1 until the next start,
``managedSaveRemove`` or an undefine with VIR_DOMAIN_UNDEFINE_MANAGED_SAVE (a
plain undefine is refused while it exists).  With a state directory the marks
survive a restart: ``state_dir/managedsave/<uuid>.xml`` holds the definition the
domain was saved with.
"""

from __future__ import annotations

import uuid as uuidlib
import xml.etree.ElementTree as ET
from pathlib import Path

from virtwire.protocol.generated import constants as C
from virtwire.protocol.generated import remote as R

from ...errors import check_flags, report
from ..base import ConnectionContext, nonblocking
from .core import FROM, operation_invalid
from .domain_api import _UNDEFINE_FLAGS, DomainAPI
from .domsecure import shown
from .domxml import format_domain_xml, normalise, parse_domain_xml
from .model import Domain
from .nodexml import NodeDescription
from .save_image import read_image, write_core_dump, write_image
from .store import ObjectStore

_MANAGED = "managed_save"  # Domain.extra key: the domain has a managed save image
_MANAGED_SAVE_FLAGS = C.VIR_DOMAIN_SAVE_BYPASS_CACHE | C.VIR_DOMAIN_SAVE_RUNNING | C.VIR_DOMAIN_SAVE_PAUSED
_IMAGE_DEFINE_FLAGS = C.VIR_DOMAIN_SAVE_RUNNING | C.VIR_DOMAIN_SAVE_PAUSED
_UNDEFINE_CHECKED = C.VIR_DOMAIN_UNDEFINE_MANAGED_SAVE


def _xml_unsupported() -> Exception:
    return report(C.VIR_ERR_ARGUMENT_UNSUPPORTED, FROM, "xml modification unsupported")


def _formatted_definition(xml: str) -> tuple[str, str]:
    """(name, XML) of a definition as the test driver writes it into an image: no id."""
    parsed = parse_domain_xml(xml)
    uuid = parsed.uuid if parsed.uuid is not None else uuidlib.uuid4().bytes
    return parsed.name, format_domain_xml(normalise(parsed, uuid), domain_id=None)


@nonblocking
class SaveAPI(DomainAPI):
    """virDomainSave*/Restore*/ManagedSave*/CoreDump* of test:///default."""

    _managed_store: ObjectStore | None = None

    def __init__(
        self,
        *,
        hostname: str,
        state_dir: Path | None = None,
        seed_defaults: bool = True,
        node: NodeDescription | None = None,
    ) -> None:
        super().__init__(hostname=hostname, state_dir=state_dir, seed_defaults=seed_defaults, node=node)
        if state_dir is not None:
            self._managed_store = ObjectStore(state_dir / "managedsave", "domain")
            self._load_managed_saves(self._managed_store)
        if node is not None and (self._managed_store is None or not self._managed_store.seeded):
            # test:hasmanagedsave in a node file: the (shut off) domain has an image to resume.
            for spec in node.domains:
                if spec.has_managed_save:
                    dom = self.find_by_name(spec.name)
                    self._set_managed_save(dom, dom.xml(inactive=True))
            if self._managed_store is not None:
                self._managed_store.mark_seeded()

    def _load_managed_saves(self, store: ObjectStore) -> None:
        for stored in store.load():
            try:
                dom = self._by_uuid.get(uuidlib.UUID(stored.key).bytes)
            except ValueError:
                dom = None
            if dom is None or dom.active or not dom.persistent:
                store.delete(stored.key)  # its domain is gone or was started since
                continue
            dom.extra[_MANAGED] = True

    # --- the managed-save mark -----------------------------------------------------------

    def _set_managed_save(self, dom: Domain, xml: str) -> None:
        dom.extra[_MANAGED] = True
        if self._managed_store is not None:
            self._managed_store.save(dom.uuid_string, xml)

    def _clear_managed_save(self, dom: Domain) -> None:
        if dom.extra.pop(_MANAGED, None) and self._managed_store is not None:
            self._managed_store.delete(dom.uuid_string)

    def start_domain(
        self,
        dom: Domain,
        *,
        reason: int = C.VIR_DOMAIN_RUNNING_BOOTED,
        detail: int = C.VIR_DOMAIN_EVENT_STARTED_BOOTED,
        state: int = C.VIR_DOMAIN_RUNNING,
        emit: bool = True,
    ) -> None:
        # testDomainStartState: whatever starts a domain discards its managed save.
        super().start_domain(dom, reason=reason, detail=detail, state=state, emit=emit)
        self._clear_managed_save(dom)

    def _undefine(self, ref: R.remote_nonnull_domain, flags: int) -> None:
        check_flags(flags, _UNDEFINE_FLAGS, "testDomainUndefineFlags")
        dom = self.lookup(ref)
        if dom.extra.get(_MANAGED) and not flags & _UNDEFINE_CHECKED:
            raise operation_invalid("Refusing to undefine while domain managed save image exists", FROM)
        super()._undefine(ref, flags)
        self._clear_managed_save(dom)

    # --- save and restore ----------------------------------------------------------------

    async def domain_save(self, args: R.remote_domain_save_args, ctx: ConnectionContext) -> None:
        self._save(args.dom, args.to, None, 0)

    async def domain_save_flags(self, args: R.remote_domain_save_flags_args, ctx: ConnectionContext) -> None:
        self._save(args.dom, args.to, args.dxml, args.flags)

    def _save(self, ref: R.remote_nonnull_domain, path: str, dxml: str | None, flags: int) -> None:
        check_flags(flags, 0, "testDomainSaveFlags")
        if dxml is not None:
            raise _xml_unsupported()
        dom = self._running(ref)
        write_image(path, dom.name, dom.xml())
        self.stop_domain(dom, reason=C.VIR_DOMAIN_SHUTOFF_SAVED, detail=C.VIR_DOMAIN_EVENT_STOPPED_SAVED)

    async def domain_restore(self, args: R.remote_domain_restore_args, ctx: ConnectionContext) -> None:
        self._restore(args.from_, None, 0)

    async def domain_restore_flags(
        self, args: R.remote_domain_restore_flags_args, ctx: ConnectionContext
    ) -> None:
        self._restore(args.from_, args.dxml, args.flags)

    def _restore(self, path: str, dxml: str | None, flags: int) -> None:
        check_flags(flags, 0, "testDomainRestoreFlags")
        if dxml is not None:
            raise _xml_unsupported()
        xml = read_image(path)
        parsed = parse_domain_xml(xml)
        existing = self._by_uuid.get(parsed.uuid) if parsed.uuid is not None else None
        # virDomainObjAssignDef(live): an inactive domain's definition is kept as its
        # persistent one while the restored (live) one runs.
        kept: ET.Element | None = existing.tree if existing is not None and not existing.active else None
        dom = self.define_domain(xml, persistent=False, emit=False, live=True)
        if kept is not None and dom.persistent:
            dom.new_tree = kept
        self.start_domain(
            dom, reason=C.VIR_DOMAIN_RUNNING_RESTORED, detail=C.VIR_DOMAIN_EVENT_STARTED_RESTORED
        )

    async def domain_save_image_get_xml_desc(
        self, args: R.remote_domain_save_image_get_xml_desc_args, ctx: ConnectionContext
    ) -> R.remote_domain_save_image_get_xml_desc_ret:
        check_flags(args.flags, C.VIR_DOMAIN_SAVE_IMAGE_XML_SECURE, "testDomainSaveImageGetXMLDesc")
        _, xml = _formatted_definition(read_image(args.file))
        secure = bool(args.flags & C.VIR_DOMAIN_SAVE_IMAGE_XML_SECURE)
        return R.remote_domain_save_image_get_xml_desc_ret(xml=shown(xml, secure))

    async def domain_save_image_define_xml(
        self, args: R.remote_domain_save_image_define_xml_args, ctx: ConnectionContext
    ) -> None:
        check_flags(args.flags, _IMAGE_DEFINE_FLAGS, "testDomainSaveImageDefineXML")
        parse_domain_xml(read_image(args.file))  # the image must be one
        name, xml = _formatted_definition(args.dxml)
        write_image(args.file, name, xml)

    # --- managed save --------------------------------------------------------------------

    async def domain_managed_save(
        self, args: R.remote_domain_managed_save_args, ctx: ConnectionContext
    ) -> None:
        check_flags(args.flags, _MANAGED_SAVE_FLAGS, "testDomainManagedSave")
        dom = self._running(args.dom)
        if not dom.persistent:
            raise operation_invalid("cannot do managed save for transient domain", FROM)
        xml = dom.xml()
        self.stop_domain(dom, reason=C.VIR_DOMAIN_SHUTOFF_SAVED, detail=C.VIR_DOMAIN_EVENT_STOPPED_SAVED)
        self._set_managed_save(dom, xml)

    async def domain_has_managed_save_image(
        self, args: R.remote_domain_has_managed_save_image_args, ctx: ConnectionContext
    ) -> R.remote_domain_has_managed_save_image_ret:
        check_flags(args.flags, 0, "testDomainHasManagedSaveImage")
        dom = self.lookup(args.dom)
        return R.remote_domain_has_managed_save_image_ret(result=int(bool(dom.extra.get(_MANAGED))))

    async def domain_managed_save_remove(
        self, args: R.remote_domain_managed_save_remove_args, ctx: ConnectionContext
    ) -> None:
        check_flags(args.flags, 0, "testDomainManagedSaveRemove")
        self._clear_managed_save(self.lookup(args.dom))

    # --- core dumps ----------------------------------------------------------------------

    async def domain_core_dump(self, args: R.remote_domain_core_dump_args, ctx: ConnectionContext) -> None:
        self._core_dump(args.dom, args.to, C.VIR_DOMAIN_CORE_DUMP_FORMAT_RAW, args.flags)

    async def domain_core_dump_with_format(
        self, args: R.remote_domain_core_dump_with_format_args, ctx: ConnectionContext
    ) -> None:
        self._core_dump(args.dom, args.to, args.dumpformat, args.flags)

    def _core_dump(self, ref: R.remote_nonnull_domain, path: str, dumpformat: int, flags: int) -> None:
        check_flags(flags, C.VIR_DUMP_CRASH, "testDomainCoreDumpWithFormat")
        dom = self._running(ref)
        write_core_dump(path, ref.name)
        # The test driver writes the file before it looks at the format.
        if dumpformat != C.VIR_DOMAIN_CORE_DUMP_FORMAT_RAW:
            raise report(
                C.VIR_ERR_OPERATION_UNSUPPORTED, FROM, "kdump-compressed format is not supported here"
            )
        if flags & C.VIR_DUMP_CRASH:
            self.stop_domain(
                dom, reason=C.VIR_DOMAIN_SHUTOFF_CRASHED, detail=C.VIR_DOMAIN_EVENT_STOPPED_CRASHED
            )
