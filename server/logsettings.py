"""libvirt's log settings (log_level, log_filters, log_outputs) applied to Python logging.

The syntax and the errors are libvirt's (src/util/virlog.c):

* priorities: 1 debug, 2 info, 3 warning, 4 error;
* a filter is ``PRIO:MATCH`` (a leading ``+`` of MATCH is dropped); MATCH is a
  substring of the logger name (``connection`` matches
  ``virtwire.server.connection``), kept as the glob ``*MATCH*`` as libvirt
  shows it.  The first matching filter decides a record's minimum priority;
  records no filter matches are held to ``log_level``;
* an output is ``PRIO:stderr``, ``PRIO:journald``, ``PRIO:file:PATH`` or
  ``PRIO:syslog:IDENT``; it writes what passed the filters and is at least
  its own priority.  A repeated destination keeps its last occurrence.  No
  outputs (an empty string) means the default one: ``LEVEL:stderr``, as
  libvirtd in the foreground.

virt-admin's daemon-log-filters / daemon-log-outputs read and replace them
while the server runs.
"""

from __future__ import annotations

import fnmatch
import logging
import logging.handlers
import os
import socket
import sys
from dataclasses import dataclass

from virtwire.protocol import errors as E
from virtwire.protocol.generated import constants as C

# libvirtd's log_level when none is set (warnings and errors)
DEFAULT_LOG_LEVEL = 3
# libvirt priority -> Python level
LEVELS = {1: logging.DEBUG, 2: logging.INFO, 3: logging.WARNING, 4: logging.ERROR}
LOGGER_NAME = "virtwire"
FORMAT = "%(asctime)s virtwire[%(process)d] %(levelname)s %(name)s: %(message)s"
JOURNAL_SOCKET = "/run/systemd/journal/socket"
SYSLOG_SOCKET = "/dev/log"


def _invalid(detail: str) -> E.libvirtError:
    return E.make_error(C.VIR_ERR_INVALID_ARG, C.VIR_FROM_NONE, detail)


def _priority(token: str) -> int | None:
    """virStrToLong_uip: decimal digits only, 1..4."""
    if not token.isdigit() or not token.isascii():
        return None
    value = int(token)
    return value if 1 <= value <= 4 else None


def parse_level(text: str | int) -> int:
    """log_level: 1..4 (libvirtd.conf also takes debug/info/warning/error)."""
    names = {"1": 1, "debug": 1, "2": 2, "info": 2, "3": 3, "warning": 3, "4": 4, "error": 4}
    value = names.get(str(text))
    if value is None:
        raise _invalid(f"Failed to set logging priority, argument '{text}' is invalid")
    return value


@dataclass(frozen=True, slots=True)
class LogFilter:
    priority: int
    match: str  # the glob, "*MATCH*"

    def __str__(self) -> str:
        return f"{self.priority}:{self.match}"


@dataclass(frozen=True, slots=True)
class LogOutput:
    priority: int
    dest: str  # stderr, journald, file, syslog
    name: str = ""  # the file's absolute path, the syslog ident

    def __str__(self) -> str:
        tail = f":{self.name}" if self.dest in ("file", "syslog") else ""
        return f"{self.priority}:{self.dest}{tail}"


def parse_filters(text: str) -> list[LogFilter]:
    out: list[LogFilter] = []
    for item in text.split(" "):
        if not item:
            continue
        tokens = item.split(":")
        if len(tokens) < 2:
            raise _invalid(f"Malformed format for filter '{item}'")
        priority = _priority(tokens[0])
        if priority is None:
            raise _invalid(f"Invalid priority '{tokens[0]}' for filter '{item}'")
        match = tokens[1][1:] if tokens[1].startswith("+") else tokens[1]
        if not match:
            raise _invalid(f"Invalid match string '{tokens[1]}'")
        out.append(LogFilter(priority, f"*{match}*"))
    return out


def parse_outputs(text: str) -> list[LogOutput]:
    out: list[LogOutput] = []
    for item in text.split(" "):
        if not item:
            continue
        tokens = item.split(":")
        if len(tokens) < 2:
            raise _invalid(f"Malformed format for log output '{item}'")
        priority = _priority(tokens[0])
        if priority is None:
            raise _invalid(f"Invalid log priority '{tokens[0]}' for log output '{item}'")
        dest = tokens[1]
        if dest not in ("stderr", "journald", "file", "syslog"):
            raise _invalid(f"Invalid log destination '{dest}' for log output '{item}'")
        if len(tokens) != (2 if dest in ("stderr", "journald") else 3):
            raise _invalid(
                f"Log output '{item}' does not meet the format requirements for destination type '{dest}'"
            )
        name = tokens[2] if len(tokens) == 3 else ""
        if dest == "file":
            name = os.path.abspath(name)
        output = LogOutput(priority, dest, name)
        # A repeated destination: the last one stays, in its place at the end.
        out = [o for o in out if (o.dest, o.name) != (output.dest, output.name)]
        out.append(output)
    return out


class _Filters(logging.Filter):
    """Held on every output: the first matching filter, else log_level, decides."""

    def __init__(self, settings: LogSettings) -> None:
        super().__init__()
        self.settings = settings

    def filter(self, record: logging.LogRecord) -> bool:
        return record.levelno >= self.settings.threshold(record.name)


class JournaldHandler(logging.Handler):
    """systemd-journald's native protocol: one datagram of KEY=value lines per record."""

    _PRIORITIES = {logging.DEBUG: 7, logging.INFO: 6, logging.WARNING: 4, logging.ERROR: 3}

    def __init__(self) -> None:
        super().__init__()
        self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)

    def emit(self, record: logging.LogRecord) -> None:
        try:
            message = self.format(record).replace("\n", " ")
            priority = self._PRIORITIES.get(record.levelno, 3)
            payload = f"MESSAGE={message}\nPRIORITY={priority}\nSYSLOG_IDENTIFIER=virtwire\n"
            self._sock.sendto(payload.encode("utf-8", "surrogateescape"), JOURNAL_SOCKET)
        except OSError:
            pass  # no journal here: like libvirt, logging never fails the daemon

    def close(self) -> None:
        self._sock.close()
        super().close()


class QuietSysLogHandler(logging.handlers.SysLogHandler):
    """syslog through /dev/log; with no syslog daemon the record is dropped silently, as syslog(3) does."""

    def handleError(self, record: logging.LogRecord) -> None:
        pass


def _handler(output: LogOutput) -> logging.Handler:
    if output.dest == "stderr":
        return logging.StreamHandler(sys.stderr)
    if output.dest == "file":
        return logging.FileHandler(output.name, encoding="utf-8")
    if output.dest == "syslog":
        handler = QuietSysLogHandler(address=SYSLOG_SOCKET)
        handler.ident = f"{output.name}: "
        return handler
    return JournaldHandler()


class LogSettings:
    """The daemon's current log level, filters and outputs, installed on the ``virtwire`` logger."""

    def __init__(self, level: int = 3, filters: str = "", outputs: str = "", *, install: bool = True) -> None:
        """Parse the settings (libvirtError on a bad one); ``install``: take over the logger now.

        Not installed (a server embedded in another program), the settings only
        take effect once virt-admin sets the outputs.
        """
        self.level = parse_level(level)
        self.filters: list[LogFilter] = parse_filters(filters)
        self.outputs: list[LogOutput] = parse_outputs(outputs or f"{self.level}:stderr")
        self._handlers: list[logging.Handler] = []
        self._filter = _Filters(self)
        self._cache: dict[str, int] = {}
        self.installed = False
        if install:
            self.set_outputs(outputs)

    # --- what virt-admin reads and sets ---------------------------------------------------

    def filters_text(self) -> str:
        """virLogGetFilters: each filter followed by a space."""
        return "".join(f"{f} " for f in self.filters)

    def outputs_text(self) -> str:
        return " ".join(str(o) for o in self.outputs)

    def set_filters(self, text: str | None) -> None:
        self.filters = parse_filters(text or "")
        if self.installed:
            self._apply_level()

    def set_outputs(self, text: str | None) -> None:
        """Replace the outputs; nothing given means the default output."""
        outputs = parse_outputs(text or f"{self.level}:stderr")
        handlers: list[logging.Handler] = []
        try:
            for output in outputs:
                handler = _handler(output)
                handler.setLevel(LEVELS[output.priority])
                handler.setFormatter(logging.Formatter(FORMAT))
                handler.addFilter(self._filter)
                handlers.append(handler)
        except OSError as exc:
            for handler in handlers:
                handler.close()
            raise E.system_error(exc.errno or 0, f"failed to open {exc.filename}", C.VIR_FROM_NONE) from None
        logger = logging.getLogger(LOGGER_NAME)
        for old in self._handlers:
            logger.removeHandler(old)
            old.close()
        for handler in handlers:
            logger.addHandler(handler)
        self.outputs, self._handlers = outputs, handlers
        logger.propagate = False  # these outputs are the whole story
        self.installed = True
        self._apply_level()

    # --- filtering --------------------------------------------------------------------------

    def threshold(self, logger_name: str) -> int:
        level = self._cache.get(logger_name)
        if level is None:
            matching = (f.priority for f in self.filters if fnmatch.fnmatchcase(logger_name, f.match))
            priority = next(matching, None)
            level = LEVELS[self.level if priority is None else priority]
            self._cache[logger_name] = level
        return level

    def _apply_level(self) -> None:
        self._cache.clear()
        lowest = min([self.level, *(f.priority for f in self.filters)])
        logging.getLogger(LOGGER_NAME).setLevel(LEVELS[lowest])
