"""What a domain description hides unless the caller asks for secure information.

libvirt prints two kinds of secret only with VIR_DOMAIN_DEF_FORMAT_SECURE (the
public flags VIR_DOMAIN_XML_SECURE, VIR_DOMAIN_SNAPSHOT_XML_SECURE,
VIR_DOMAIN_CHECKPOINT_XML_SECURE, VIR_DOMAIN_SAVE_IMAGE_XML_SECURE): a graphics
device's ``passwd`` (virDomainGraphicsAuthDefFormatAttr; ``passwdValidTo`` and
``connected`` stay) and a network disk's HTTP ``<cookies>``
(virDomainDiskSourceFormatNetworkCookies).  Definitions are kept and stored whole;
this filter applies where a description leaves for a client.

It works on the text our formatter printed: attributes there are always
``name='value'`` with quotes escaped inside values, and element text escapes
``<``, so ``<graphics`` and ``<cookies>`` only ever start real elements.
"""

from __future__ import annotations

import re
from typing import Final

_GRAPHICS_PASSWD: Final = re.compile(r"(<graphics\b[^>]*?) passwd='[^']*'")
_COOKIES: Final = re.compile(r"^[ ]*<cookies>\n(?:.*\n)*?[ ]*</cookies>\n", re.MULTILINE)


def hide_secrets(xml: str) -> str:
    """``xml`` without graphics passwords and disk cookies."""
    if "passwd='" in xml:
        xml = _GRAPHICS_PASSWD.sub(r"\1", xml)
    if "<cookies>" in xml:
        xml = _COOKIES.sub("", xml)
    return xml


def shown(xml: str, secure: bool) -> str:
    """The description a client gets: whole with its secure flag, else without secrets."""
    return xml if secure else hide_secrets(xml)
