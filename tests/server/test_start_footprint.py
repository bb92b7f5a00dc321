"""What a server costs before its first client: modules it needs only later stay unimported.

Each of these is megabytes of every server's resident memory (bench/bench_memory.py's
start row): cryptography's x509 (9 MiB) is for TLS certificate checks, and the client
package (3.6 MiB) for peer-to-peer migration.
"""

from __future__ import annotations

import subprocess
import sys

from virtwire.server.connection import Connection


def test_the_server_imports_neither_cryptography_nor_the_client_at_start() -> None:
    code = (
        "import sys\n"
        "import virtwire.server.cli, virtwire.server.driver.memory.driver\n"
        "late = sorted(m for m in sys.modules if m.split('.')[0] == 'cryptography'"
        " or m.startswith('virtwire.client'))\n"
        "assert not late, late\n"
        "import virtwire.client.transport\n"  # a plain TCP or unix client does not need it either
        "assert 'cryptography' not in sys.modules\n"
        "from virtwire.protocol import x509check\n"
        "assert 'cryptography.x509' in sys.modules\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


def test_a_connection_has_no_instance_dict() -> None:
    # Past 30 attributes CPython gives each instance a dict of its own (~1.5 KiB per client).
    assert Connection.__dictoffset__ == 0
