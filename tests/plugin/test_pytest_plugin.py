"""The ``virtwire`` pytest plugin, exercised by pytester as a user's suite would use it."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.usefixtures("real_libvirt")  # the suites below import the real libvirt-python

USER_SUITE = """
import libvirt

def test_a_fresh_host(virtwire_host):
    conn = libvirt.open(virtwire_host.uri)
    dom = conn.lookupByName("test")
    assert dom.state()[0] == libvirt.VIR_DOMAIN_RUNNING
    dom.destroy()  # the next test gets its own host, with test running again
    conn.close()

def test_another_fresh_host(virtwire_host):
    conn = libvirt.open(virtwire_host.unix_uri)
    assert conn.lookupByName("test").state()[0] == libvirt.VIR_DOMAIN_RUNNING
    assert conn.getHostname() == virtwire_host.hostname
    conn.close()

def test_read_only_socket(virtwire_host):
    conn = libvirt.openReadOnly(virtwire_host.ro_uri)
    try:
        conn.lookupByName("test").suspend()
    except libvirt.libvirtError as exc:
        assert exc.get_error_code() == libvirt.VIR_ERR_OPERATION_DENIED
    else:
        raise AssertionError("a read-only socket let suspend through")
    conn.close()

def test_hosts_migrate(virtwire_hosts):
    src, dst = virtwire_hosts(2)
    assert src.hostname != dst.hostname
    sconn, dconn = libvirt.open(src.uri), libvirt.open(dst.uri)
    dom = sconn.createXML(
        "<domain type='test'><name>mig</name><memory>65536</memory><os><type>hvm</type></os></domain>", 0
    )
    moved = dom.migrate3(dconn, {}, libvirt.VIR_MIGRATE_LIVE)
    assert moved.name() == "mig" and moved.isActive()
    assert "mig" not in [d.name() for d in sconn.listAllDomains()]
    sconn.close()
    dconn.close()
"""


@pytest.mark.parametrize("mode", ["inprocess", "subprocess"])
def test_user_suite_passes(pytester: pytest.Pytester, mode: str) -> None:
    pytester.makepyfile(test_user=USER_SUITE)
    result = pytester.runpytest_subprocess(f"--virtwire-mode={mode}", "-q")
    result.assert_outcomes(passed=4)


NODE_XML = """<node>
  <cpu><mhz>2000</mhz><model>i686</model><active>2</active><nodes>1</nodes><sockets>1</sockets>
    <cores>2</cores><threads>1</threads></cpu>
  <memory>1048576</memory>
  <domain type='test'><name>lab-vm</name><memory>65536</memory><os><type>hvm</type></os></domain>
</node>
"""

NODE_SUITE = """
import libvirt
import pytest

@pytest.mark.virtwire_node("lab.xml")
def test_the_marker_node(virtwire_host):
    conn = libvirt.open(virtwire_host.uri)
    assert [d.name() for d in conn.listAllDomains()] == ["lab-vm"]
    assert conn.getInfo()[3] == 2000  # MHz, from the node file
    conn.close()

def test_a_factory_node(virtwire_hosts):
    (host,) = virtwire_hosts(1, node_xml="lab.xml")
    conn = libvirt.open(host.uri)
    assert conn.lookupByName("lab-vm").name() == "lab-vm"
    conn.close()

def test_default_node_otherwise(virtwire_host):
    conn = libvirt.open(virtwire_host.uri)
    assert [d.name() for d in conn.listAllDomains()] == ["test"]
    conn.close()
"""


@pytest.mark.parametrize("mode", ["inprocess", "subprocess"])
def test_hosts_start_from_a_node_file(pytester: pytest.Pytester, mode: str) -> None:
    pytester.makefile(".xml", lab=NODE_XML)
    pytester.makepyfile(test_node=NODE_SUITE)
    result = pytester.runpytest_subprocess(f"--virtwire-mode={mode}", "-q", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=3)


def test_a_failing_user_test_fails(pytester: pytest.Pytester) -> None:
    # The fixtures do not hide failures: a wrong expectation about the host fails.
    pytester.makepyfile(
        test_user="""
import libvirt

def test_wrong(virtwire_host):
    conn = libvirt.open(virtwire_host.uri)
    assert conn.lookupByName("test").state()[0] == libvirt.VIR_DOMAIN_SHUTOFF
"""
    )
    result = pytester.runpytest_subprocess("-q")
    result.assert_outcomes(failed=1)
