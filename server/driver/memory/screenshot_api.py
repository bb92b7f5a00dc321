"""DOMAIN_SCREENSHOT as libvirt's test driver answers it (testDomainScreenshot).

The test driver does not look the domain up: any domain gets the same image,
the file ``test-screenshot.png`` of libvirt's data directory, streamed as it
is, with "image/png" in the reply.  Without that file the call fails as
virFDStreamOpenFile does.
"""

from __future__ import annotations

import os
from pathlib import Path

from virtwire.protocol.errors import make_error
from virtwire.protocol.generated import constants as C
from virtwire.protocol.generated import remote as R

from ... import streams
from ...errors import check_flags
from ..base import ConnectionContext, nonblocking
from .core import MemoryCore

# PKGDATADIR of Debian's libvirt 9.0, where the test driver finds its image.
SCREENSHOT = Path("/usr/share/libvirt/test-screenshot.png")


@nonblocking
class ScreenshotAPI(MemoryCore):
    async def domain_screenshot(
        self, args: R.remote_domain_screenshot_args, ctx: ConnectionContext
    ) -> R.remote_domain_screenshot_ret:
        check_flags(args.flags, 0, "testDomainScreenshot")
        try:
            image = SCREENSHOT.read_bytes()
        except OSError as exc:
            detail = f"Unable to open stream for '{SCREENSHOT}': {os.strerror(exc.errno or 0)}"
            raise make_error(C.VIR_ERR_SYSTEM_ERROR, C.VIR_FROM_STREAMS, detail) from None
        streams.attach(streams.BytesSource(image))
        return R.remote_domain_screenshot_ret(mime="image/png")
