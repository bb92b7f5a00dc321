"""Run code written for `import libvirt` with a chosen libvirt module (a subprocess helper).

    python libvirt_python_shim.py --impl ours|real --uri URI --src SDIST \
        (--unittest MODULE... --json OUT | --script FILE)

`libvirt` (and `libvirtmod`, libvirt-python's C module, which its tests'
eventmock.py imports) resolve to virtwire.libvirt (`ours`) or to the real
libvirt-python (`real`); `open`, `openReadOnly` and `openAuth` of
"test:///..." go to the daemon of URI (its test driver) instead.  SDIST is
libvirt-python 9.0.0's unpacked source: its tests/ and libvirtaio.py are
imported from there, never copied.  With --unittest the named test modules
run and each test's outcome is written to OUT as JSON; with --script the file
runs as __main__.
"""

from __future__ import annotations

import argparse
import functools
import json
import runpy
import sys
import types
import unittest
from collections.abc import Callable
from typing import Any

LOCAL_TEST = "test:///"


def daemon_uri(name: str | None, uri: str) -> str | None:
    """test:///PATH (the in-process test driver) as the same driver behind the daemon.

    Both modules then reach the same daemon: the real libvirt-python has no
    in-process advantage.  URI is the daemon's test:///default URI.
    """
    if name is None or not name.startswith(LOCAL_TEST):
        return name
    head, sep, query = uri.partition("?")
    scheme = head[: head.index("///") + 2]
    return f"{scheme}{name[len('test://') :]}{sep}{query}"


def _redirect(fn: Callable[..., Any], uri: str) -> Callable[..., Any]:
    @functools.wraps(fn)
    def opener(name: str | None = None, *args: Any, **kwargs: Any) -> Any:
        return fn(daemon_uri(name, uri), *args, **kwargs)

    return opener


def install(impl: str, uri: str) -> types.ModuleType:
    if impl == "ours":
        import virtwire.libvirt as module

        binding: Any = module.libvirtmod
    else:
        import libvirt as module  # type: ignore[no-redef]

        binding = module.libvirtmod
    for name in ("open", "openReadOnly", "openAuth"):
        setattr(module, name, _redirect(getattr(module, name), uri))
    sys.modules["libvirt"] = module
    sys.modules["libvirtmod"] = binding
    return module


class _Outcomes(unittest.TextTestResult):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.outcomes: dict[str, str] = {}

    def addSuccess(self, test: unittest.TestCase) -> None:
        super().addSuccess(test)
        self.outcomes[test.id()] = "pass"

    def addFailure(self, test: unittest.TestCase, err: Any) -> None:
        super().addFailure(test, err)
        self.outcomes[test.id()] = "fail"

    def addError(self, test: unittest.TestCase, err: Any) -> None:
        super().addError(test, err)
        self.outcomes[test.id()] = "error"

    def addSkip(self, test: unittest.TestCase, reason: str) -> None:
        super().addSkip(test, reason)
        self.outcomes[test.id()] = "skip"


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--impl", choices=["ours", "real"], required=True)
    ap.add_argument("--uri", required=True)
    ap.add_argument("--src", required=True)
    ap.add_argument("--unittest", nargs="*", default=[])
    ap.add_argument("--json")
    ap.add_argument("--script")
    ns = ap.parse_args()
    install(ns.impl, ns.uri)
    sys.path[:0] = [f"{ns.src}/tests", ns.src]
    if ns.script:
        runpy.run_path(ns.script, run_name="__main__")
        return 0
    suite = unittest.defaultTestLoader.loadTestsFromNames(ns.unittest)
    runner = unittest.TextTestRunner(resultclass=_Outcomes, verbosity=2)
    result = runner.run(suite)
    assert isinstance(result, _Outcomes)
    with open(ns.json, "w", encoding="utf-8") as out:
        json.dump(result.outcomes, out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
