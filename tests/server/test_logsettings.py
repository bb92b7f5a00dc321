"""libvirt's log settings on Python logging: what reaches each output; bad settings on the command line."""

from __future__ import annotations

import logging
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest
from virtwire.protocol.errors import libvirtError
from virtwire.server import cli
from virtwire.server import logsettings as L


@pytest.fixture
def restore_logger() -> Iterator[None]:
    logger = logging.getLogger(L.LOGGER_NAME)
    handlers, level, propagate = list(logger.handlers), logger.level, logger.propagate
    yield
    for handler in list(logger.handlers):
        if handler not in handlers:
            logger.removeHandler(handler)
            handler.close()
    logger.setLevel(level)
    logger.propagate = propagate


def test_filters_and_outputs_decide_what_is_written(tmp_path: Path, restore_logger: None) -> None:
    everything, warnings = tmp_path / "all.log", tmp_path / "warn.log"
    settings = L.LogSettings(3, "1:connection 4:+events", f"1:file:{everything} 3:file:{warnings}")
    conn = logging.getLogger("virtwire.server.connection")
    events = logging.getLogger("virtwire.server.events")
    other = logging.getLogger("virtwire.server.daemon")
    conn.debug("conn-debug")
    events.warning("events-warning")
    events.error("events-error")
    other.info("other-info")
    other.warning("other-warning")
    written = everything.read_text()
    assert "conn-debug" in written and "events-error" in written and "other-warning" in written
    assert "events-warning" not in written and "other-info" not in written
    assert "conn-debug" not in warnings.read_text()  # the output's own priority: 3
    assert settings.filters_text() == "1:*connection* 4:*events* "
    assert settings.outputs_text() == f"1:file:{everything} 3:file:{warnings}"
    settings.set_filters(None)
    conn.debug("after-reset")
    assert "after-reset" not in everything.read_text()


def test_syslog_and_journald_never_fail_the_server(restore_logger: None) -> None:
    L.LogSettings(1, "", "1:syslog:vwtest 1:journald")
    logging.getLogger("virtwire.test").error("to a syslog and a journal that may not exist")


def test_journald_datagram(tmp_path: Path, restore_logger: None, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "journal.sock"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as journal:
        journal.bind(str(path))
        monkeypatch.setattr(L, "JOURNAL_SOCKET", str(path))
        L.LogSettings(3, "", "3:journald")
        logging.getLogger("virtwire.test").error("hello journal")
        fields = dict(line.split("=", 1) for line in journal.recv(4096).decode().splitlines())
    assert fields["PRIORITY"] == "3"
    assert fields["SYSLOG_IDENTIFIER"] == "virtwire"
    assert fields["MESSAGE"].endswith("ERROR virtwire.test: hello journal")


@pytest.mark.parametrize(
    ("filters", "outputs", "message"),
    [
        ("9:x", "", "Invalid priority '9' for filter '9:x'"),
        ("", "3:stderr:x", "Log output '3:stderr:x' does not meet the format requirements"),
        ("", "x", "Malformed format for log output 'x'"),
    ],
)
def test_bad_settings_are_refused(filters: str, outputs: str, message: str) -> None:
    with pytest.raises(libvirtError, match=message):
        L.LogSettings(3, filters, outputs, install=False)


def test_bad_log_flags_stop_the_server(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    base = ["serve", "--unix", str(tmp_path / "s")]
    for flags, message in (
        (["--log-filters", "1"], "Malformed format for filter '1'"),
        (["--log-outputs", "5:stderr"], "Invalid log priority '5' for log output '5:stderr'"),
        (["--log-level", "7"], "Failed to set logging priority, argument '7' is invalid"),
    ):
        assert cli.main([*base, *flags]) == 2
        assert message in capsys.readouterr().err
    with pytest.raises(SystemExit) as exited:
        cli.main([*base, "--timeout", "-1"])
    assert exited.value.code == 2
    assert "must not be negative" in capsys.readouterr().err
