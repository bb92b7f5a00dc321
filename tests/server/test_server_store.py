"""State directory: atomic writes, reload, crash safety."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from virtwire.server.driver.memory.store import DomainStore

XML = "<domain type='test'>\n  <name>p1</name>\n</domain>\n"


def test_save_load_delete(tmp_path: Path) -> None:
    store = DomainStore(tmp_path)
    store.save("u1", XML, autostart=True)
    loaded = DomainStore(tmp_path).load()
    assert len(loaded) == 1
    assert loaded[0].autostart is True
    assert "<name>p1</name>" in loaded[0].xml
    store.delete("u1")
    assert DomainStore(tmp_path).load() == []


def test_crash_before_rename_keeps_the_old_definition(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = DomainStore(tmp_path)
    store.save("u1", XML, autostart=False)

    def crash(src: object, dst: object) -> None:
        raise OSError("simulated crash between fsync and rename")

    monkeypatch.setattr(os, "replace", crash)
    with pytest.raises(OSError, match="simulated crash"):
        store.save("u1", XML.replace("p1", "p2"), autostart=True)
    monkeypatch.undo()
    # The half-done write left a temp file; the definition on record is still the old one.
    assert any(p.name.startswith(".tmp-") for p in tmp_path.iterdir())
    loaded = DomainStore(tmp_path).load()
    assert [("<name>p1</name>" in s.xml, s.autostart) for s in loaded] == [(True, False)]
    assert not any(p.name.startswith(".tmp-") for p in tmp_path.iterdir())  # cleaned up on load


def test_torn_file_is_skipped_not_fatal(tmp_path: Path) -> None:
    store = DomainStore(tmp_path)
    store.save("good", XML, autostart=False)
    (tmp_path / "bad.xml").write_text("<virtwire-domain autostart='0'><domain type=")
    loaded = store.load()
    assert len(loaded) == 1


def test_family_store_attrs_blobs_and_keys(tmp_path: Path) -> None:
    from virtwire.server.driver.memory.store import ObjectStore

    nets = ObjectStore(tmp_path / "networks", "network")
    assert not nets.seeded
    nets.save("default", "<network><name>default</name></network>", autostart=True, note="a'b")
    nets.save_blob("default", "value", b"\x00secret\xff")
    nets.mark_seeded()
    again = ObjectStore(tmp_path / "networks", "network")
    assert again.seeded
    [stored] = again.load()
    assert (stored.key, stored.autostart, stored.attrs["note"]) == ("default", True, "a'b")
    assert stored.xml == "<network><name>default</name></network>"
    assert again.load_blob("default", "value") == b"\x00secret\xff"
    # A domain store in the parent directory does not see the family's files.
    assert DomainStore(tmp_path).load() == []
    again.delete("default")
    assert again.load() == [] and again.load_blob("default", "value") is None
    for bad in ("", "../x", ".hidden", "a/b"):
        with pytest.raises(ValueError):
            again.save(bad, "<network/>")
