"""Domain XML parsing and printing, checked against what libvirt 9.0's test driver answers."""

from __future__ import annotations

import uuid

import pytest
from virtwire.protocol.errors import libvirtError
from virtwire.server.driver.memory import defaults
from virtwire.server.driver.memory.domxml import format_domain_xml, normalise, parse_domain_xml, scale_to_kib

# virsh dumpxml of `x3` after defining the minimal document below on a real libvirtd.
MINIMAL = (
    "<domain type='test'><name>x3</name><memory unit='MiB'>512</memory><vcpu>3</vcpu>"
    "<os><type>hvm</type></os></domain>"
)
MINIMAL_AS_LIBVIRT_PRINTS_IT = """\
<domain type='test'>
  <name>x3</name>
  <uuid>aa96e991-02f4-4835-ae7c-c6409ba66f49</uuid>
  <memory unit='KiB'>524288</memory>
  <currentMemory unit='KiB'>524288</currentMemory>
  <vcpu placement='static'>3</vcpu>
  <os>
    <type arch='i686'>hvm</type>
    <boot dev='hd'/>
  </os>
  <clock offset='utc'/>
  <on_poweroff>destroy</on_poweroff>
  <on_reboot>restart</on_reboot>
  <on_crash>destroy</on_crash>
  <devices>
  </devices>
</domain>
"""


def test_minimal_definition_prints_like_libvirt() -> None:
    parsed = parse_domain_xml(MINIMAL)
    fixed = uuid.UUID("aa96e991-02f4-4835-ae7c-c6409ba66f49").bytes
    assert format_domain_xml(normalise(parsed, fixed), domain_id=None) == MINIMAL_AS_LIBVIRT_PRINTS_IT


def test_default_test_domain_round_trips_byte_for_byte() -> None:
    parsed = parse_domain_xml(defaults.TEST_DOMAIN_XML)
    assert (parsed.name, parsed.memory_kib, parsed.current_memory_kib, parsed.vcpus) == (
        "test",
        8388608,
        2097152,
        2,
    )
    assert parsed.uuid is not None
    tree = normalise(parsed, parsed.uuid)
    assert format_domain_xml(tree, domain_id=None) == defaults.TEST_DOMAIN_XML
    active = format_domain_xml(tree, domain_id=1)
    assert active.startswith("<domain type='test' id='1'>\n")
    assert active.split("\n", 1)[1] == defaults.TEST_DOMAIN_XML.split("\n", 1)[1]


@pytest.mark.parametrize(
    ("value", "unit", "kib"),
    [
        ("1024", None, 1024),
        ("1", "MiB", 1024),
        ("1", "M", 1024),
        ("1", "MB", 977),
        ("1", "G", 1048576),
        ("1", "GB", 976563),
        ("1500", "b", 2),
        ("1", "bytes", 1),
        ("2", "KiB", 2),
        ("2", "KB", 2),
        ("1", "T", 1 << 30),
    ],
)
def test_memory_units_round_up_to_kib(value: str, unit: str | None, kib: int) -> None:
    assert scale_to_kib(value, unit) == kib


# (document, code, domain, message) as the real test driver answers defineXML.
BAD_DEFINITIONS = [
    ("<foo/>", 27, 5, "XML error: expecting root element of 'domain', not 'foo'"),
    (
        "<domain><name>x2</name><memory>1024</memory><os><type>hvm</type></os></domain>",
        1,
        20,
        "internal error: missing domain type attribute",
    ),
    ("<domain type='test'></domain>", 21, 20, "missing name information"),
    (
        "<domain type='test'><name>x2</name><uuid>zz</uuid><memory>1024</memory>"
        "<os><type>hvm</type></os></domain>",
        1,
        20,
        "internal error: malformed uuid element",
    ),
    (
        "<domain type='test'><name>x2</name><memory unit='foo'>1</memory><os><type>hvm</type></os></domain>",
        8,
        0,
        "invalid argument: unknown suffix 'foo'",
    ),
    (
        "<domain type='test'><name>x2</name><memory>1024</memory><vcpu>abc</vcpu>"
        "<os><type>hvm</type></os></domain>",
        27,
        20,
        "XML error: maximum vcpus count must be an integer",
    ),
    (
        "<domain type='test'><name>x2</name><memory>1024</memory></domain>",
        27,
        20,
        "XML error: an os <type> must be specified",
    ),
    (
        "<domain type='test'><name>x2</name><os><type>hvm</type></os></domain>",
        27,
        20,
        "XML error: Memory size must be specified via <memory> or in the <numa> configuration",
    ),
    (
        "<domain type='test'><name>x2</name><memory>1024</memory><vcpu>0</vcpu>"
        "<os><type>hvm</type></os></domain>",
        1,
        20,
        "internal error: CPU IDs in <numa> exceed the <vcpu> count",
    ),
]


@pytest.mark.parametrize(("xml", "code", "domain", "message"), BAD_DEFINITIONS)
def test_bad_definitions_get_libvirts_errors(xml: str, code: int, domain: int, message: str) -> None:
    with pytest.raises(libvirtError) as info:
        parse_domain_xml(xml)
    assert (info.value.get_error_code(), info.value.get_error_domain(), info.value.get_error_message()) == (
        code,
        domain,
        message,
    )


def test_unparsable_document_is_an_xml_detail_error() -> None:
    with pytest.raises(libvirtError) as info:
        parse_domain_xml("<domain")
    err = info.value
    assert (err.get_error_code(), err.get_error_domain(), err.get_str1()) == (35, 20, "%s")
    assert str(err.get_error_message()).startswith("(domain_definition):1: ")


def test_unmodelled_elements_are_kept() -> None:
    xml = (
        "<domain type='test'><name>k</name><memory>1024</memory><os><type>hvm</type></os>"
        "<description>a &amp; b</description><features><acpi/></features>"
        "<devices><disk type='file'><source file='/x'/><target dev='vda'/></disk></devices></domain>"
    )
    parsed = parse_domain_xml(xml)
    printed = format_domain_xml(normalise(parsed, b"\x01" * 16), domain_id=None)
    assert "  <description>a &amp; b</description>\n" in printed
    assert "  <features>\n    <acpi/>\n  </features>\n" in printed
    # Kept, with the device kind libvirt fills in.
    kept = "    <disk type='file' device='disk'>\n      <source file='/x'/>\n      <target dev='vda'"
    assert kept in printed
    assert printed.index("<description>") < printed.index("<memory")


# Namespaced <metadata>, as libvirt 9.0 prints it back (libxml2's node dump: the
# application's prefix, its xmlns on the element, double quotes).
METADATA_IN = (
    "<domain type='test'><name>md</name><memory>1048576</memory><vcpu>1</vcpu>"
    "<os><type>hvm</type></os><metadata>"
    '<app1:foo xmlns:app1="http://app1.org/app1/" a="1"><app1:bar>x</app1:bar></app1:foo>'
    "<vw:workload xmlns:vw='https://virtwire.dev/xmlns/1' dirty-rate='100'/>"
    "</metadata></domain>"
)
METADATA_AS_LIBVIRT_PRINTS_IT = """\
  <metadata>
    <app1:foo xmlns:app1="http://app1.org/app1/" a="1">
      <app1:bar>x</app1:bar>
    </app1:foo>
    <vw:workload xmlns:vw="https://virtwire.dev/xmlns/1" dirty-rate="100"/>
  </metadata>
"""


def test_namespaced_metadata_prints_like_libvirt_and_parses_back() -> None:
    # Another document binding the same namespace to another prefix changes nothing.
    parse_domain_xml(METADATA_IN.replace("vw:", "other:").replace("xmlns:vw", "xmlns:other"))
    parsed = parse_domain_xml(METADATA_IN)
    printed = format_domain_xml(normalise(parsed, bytes(16)), domain_id=None)
    start = printed.index("  <metadata>")
    assert printed[start : printed.index("</metadata>\n") + 12] == METADATA_AS_LIBVIRT_PRINTS_IT
    again = parse_domain_xml(printed)  # the printed document is well-formed and equivalent
    assert format_domain_xml(normalise(again, bytes(16)), domain_id=None) == printed
