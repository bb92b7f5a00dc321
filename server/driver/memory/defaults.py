"""The default state of libvirt's ``test:///default`` driver, as libvirt 9.0 reports it.

Values were read off a real libvirtd 9.0 (test driver) with virsh and libvirt-python.
"""

from __future__ import annotations

import re
from typing import Final

# virConnectGetCapabilities of test:///default, byte for byte.
CAPABILITIES_XML: Final = """\
<capabilities>

  <host>
    <cpu>
      <arch>i686</arch>
      <features>
        <pae/>
        <nonpae/>
      </features>
      <pages unit='KiB' size='4'/>
      <pages unit='KiB' size='8'/>
      <pages unit='KiB' size='2048'/>
      <pages unit='KiB' size='1048576'/>
    </cpu>
    <power_management/>
    <iommu support='no'/>
    <topology>
      <cells num='2'>
        <cell id='0'>
          <memory unit='KiB'>2097152</memory>
          <pages unit='KiB' size='4'>524288</pages>
          <pages unit='KiB' size='2048'>0</pages>
          <pages unit='KiB' size='1048576'>0</pages>
          <cpus num='8'>
            <cpu id='0' socket_id='0' die_id='0' core_id='0' siblings='0'/>
            <cpu id='1' socket_id='0' die_id='0' core_id='1' siblings='1'/>
            <cpu id='2' socket_id='0' die_id='0' core_id='2' siblings='2'/>
            <cpu id='3' socket_id='0' die_id='0' core_id='3' siblings='3'/>
            <cpu id='4' socket_id='0' die_id='0' core_id='4' siblings='4'/>
            <cpu id='5' socket_id='0' die_id='0' core_id='5' siblings='5'/>
            <cpu id='6' socket_id='0' die_id='0' core_id='6' siblings='6'/>
            <cpu id='7' socket_id='0' die_id='0' core_id='7' siblings='7'/>
          </cpus>
        </cell>
        <cell id='1'>
          <memory unit='KiB'>4194304</memory>
          <pages unit='KiB' size='8'>524288</pages>
          <pages unit='KiB' size='2048'>0</pages>
          <pages unit='KiB' size='1048576'>0</pages>
          <cpus num='8'>
            <cpu id='8' socket_id='1' die_id='0' core_id='0' siblings='8'/>
            <cpu id='9' socket_id='1' die_id='0' core_id='1' siblings='9'/>
            <cpu id='10' socket_id='1' die_id='0' core_id='2' siblings='10'/>
            <cpu id='11' socket_id='1' die_id='0' core_id='3' siblings='11'/>
            <cpu id='12' socket_id='1' die_id='0' core_id='4' siblings='12'/>
            <cpu id='13' socket_id='1' die_id='0' core_id='5' siblings='13'/>
            <cpu id='14' socket_id='1' die_id='0' core_id='6' siblings='14'/>
            <cpu id='15' socket_id='1' die_id='0' core_id='7' siblings='15'/>
          </cpus>
        </cell>
      </cells>
    </topology>
    <secmodel>
      <model>testSecurity</model>
      <doi></doi>
    </secmodel>
  </host>

  <guest>
    <os_type>hvm</os_type>
    <arch name='i686'>
      <wordsize>32</wordsize>
      <emulator>/usr/bin/test-hv</emulator>
      <domain type='test'/>
    </arch>
    <features>
      <pae/>
      <nonpae/>
    </features>
  </guest>

  <guest>
    <os_type>xen</os_type>
    <arch name='i686'>
      <wordsize>32</wordsize>
      <emulator>/usr/bin/test-hv</emulator>
      <domain type='test'/>
    </arch>
    <features>
      <pae/>
      <nonpae/>
    </features>
  </guest>

</capabilities>
"""

# The persistent definition of the domain ``test`` (virsh dumpxml --inactive).
TEST_DOMAIN_XML: Final = """\
<domain type='test'>
  <name>test</name>
  <uuid>6695eb01-f6a4-8304-79aa-97f2502e193f</uuid>
  <memory unit='KiB'>8388608</memory>
  <currentMemory unit='KiB'>2097152</currentMemory>
  <vcpu placement='static'>2</vcpu>
  <os>
    <type arch='i686'>hvm</type>
    <boot dev='hd'/>
  </os>
  <clock offset='utc'/>
  <on_poweroff>destroy</on_poweroff>
  <on_reboot>restart</on_reboot>
  <on_crash>destroy</on_crash>
  <devices>
    <disk type='file' device='disk'>
      <source file='/guest/diskimage1'/>
      <target dev='vda' bus='virtio'/>
      <address type='pci' domain='0x0000' bus='0x01' slot='0x00' function='0x0'/>
    </disk>
    <interface type='network'>
      <mac address='aa:bb:cc:dd:ee:ff'/>
      <source network='default'/>
      <target dev='testnet0'/>
      <address type='pci' domain='0x0000' bus='0x00' slot='0x01' function='0x0'/>
    </interface>
    <memballoon model='virtio'>
      <address type='pci' domain='0x0000' bus='0x00' slot='0x02' function='0x0'/>
    </memballoon>
  </devices>
</domain>
"""

# virNodeGetInfo: model, memory KiB, cpus, MHz, NUMA nodes, sockets, cores, threads.
NODE_MODEL: Final = "i686"
NODE_MEMORY_KIB: Final = 3145728
NODE_CPUS: Final = 16
NODE_MHZ: Final = 1400
NODE_NUMA_NODES: Final = 2
NODE_SOCKETS: Final = 2
NODE_CORES: Final = 2
NODE_THREADS: Final = 2
NODE_FREE_MEMORY_BYTES: Final = 3145728  # virNodeGetFreeMemory answers this, in bytes

# A node file (--node-xml) describes no NUMA cells: test:///PATH starts with none
# (testOpenFromFile), so its capabilities list an empty topology and no free memory.
NODE_FILE_CAPABILITIES_XML: Final = re.sub(
    r"<cells num='2'>.*</cells>", "<cells num='0'>\n      </cells>", CAPABILITIES_XML, flags=re.S
)
NODE_FILE_FREE_MEMORY_BYTES: Final = 0

HYPERVISOR_TYPE: Final = "TEST"
HYPERVISOR_VERSION: Final = 2  # virConnectGetVersion: "TEST 0.0.2"
LIBRARY_VERSION: Final = 9000000  # virConnectGetLibVersion: 9.0.0
MAX_VCPUS: Final = 32
SECURITY_MODEL: Final = "testSecurity"
SECURITY_DOI: Final = ""
SECURITY_LABEL: Final = "libvirt-test"
SECURITY_ENFORCING: Final = True
GUEST_OS_TYPE: Final = "linux"  # the test driver's virDomainGetOSType, whatever the XML says

# The test driver boots ``test`` with id 1 in state RUNNING, reason UNKNOWN (0).
TEST_DOMAIN_ID: Final = 1
SCHEDULER: Final = "fair"  # virDomainGetSchedulerType: "fair" with one parameter
