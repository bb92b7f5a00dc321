#!/usr/bin/env bash
# Run virtwire's whole test suite from a fresh clone (Debian 12, as root in CI).
#
#   bash scripts/test.sh [PYTEST ARGS...]        from any directory
#
# 1. Installs the real libvirt 9.0 reference peer (libvirtd, virsh,
#    python3-libvirt, openssl), what building libvirt-python needs
#    (libvirt-dev pkg-config gcc libc6-dev), OpenSSH (server and client)
#    with netcat-openbsd for the ssh transport tests, sasl2-bin with
#    libsasl2-modules for the SASL tests, and systemd (systemd-socket-activate,
#    systemd-analyze for the unit files), and libxml2-dev with libxslt1-dev (lxml is
#    rebuilt against libvirt's libxml2, for libvirt's exact schema errors), only what is missing.
# 2. Creates .venv in the repository and installs virtwire editable with its
#    test and dev extras, plus libvirt-python==9.0.0 (matches the installed libvirt.so).
#    Keeps libvirt-python 9.0.0's source distribution in .venv/src (its tests/ and
#    libvirtaio.py run against virtwire; VIRTWIRE_LIBVIRT_PYTHON_SRC points at it), and
#    libvirt 9.0.0's domain XML test corpus from Debian's orig tarball in .venv/src
#    (VIRTWIRE_LIBVIRT_CORPUS points at it).
# 3. Runs pytest; extra arguments are passed through (e.g. -k, -x, a path).
#
# Exit status: pytest's, except that "no tests collected" (5) is a failure too;
# 124 when the run exceeded VIRTWIRE_TEST_TIMEOUT seconds (default 4800).
# With CI=true the interop tests fail instead of skipping when libvirt is absent.
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=_lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/_lib.sh"

say "repository: $ROOT"
ensure_debs libvirt-daemon libvirt-clients python3-libvirt openssl libvirt-dev pkg-config gcc libc6-dev \
    sasl2-bin libsasl2-modules \
    golang-go golang-github-digitalocean-go-libvirt-dev openssh-server openssh-client netcat-openbsd systemd \
    libxml2-dev libxslt1-dev libsys-virt-perl virtinst
find_python python3-dev
# lxml 4.9.2's wheels carry libxml2 2.9.14, Debian 12's (the one libvirt links): the
# VALIDATE flags' RelaxNG error texts then match libvirt's without building lxml.
ensure_venv -e ".[test,dev]" "libvirt-python==9.0.0" "lxml==4.9.2"
ensure_lxml_system_libxml2  # elsewhere (another libxml2): lxml built against the system's
# libvirt-python's own tests/ and libvirtaio.py run against our client and server
# (never copied into the repository): keep its source distribution beside the venv.
LIBVIRT_PYTHON_SRC="$VENV/src/libvirt-python-9.0.0"
if [ ! -f "$LIBVIRT_PYTHON_SRC/tests/test_api_coverage.py" ]; then
    say "fetching the libvirt-python 9.0.0 source distribution (its tests/)"
    mkdir -p "$VENV/src"
    "$VENV/bin/pip" download -q --no-deps --no-binary :all: -d "$VENV/src" "libvirt-python==9.0.0" \
        || die "pip download libvirt-python==9.0.0 failed"
    tar -xzf "$VENV/src/libvirt-python-9.0.0.tar.gz" -C "$VENV/src"
fi
export VIRTWIRE_LIBVIRT_PYTHON_SRC="$LIBVIRT_PYTHON_SRC"

# libvirt's own domain XML test corpus (tests/genericxml2xmlindata, tests/qemuxml2argvdata)
# is the yardstick of tests/server/test_diff_libvirt_corpus.py; it is never copied into the
# repository: fetch Debian's libvirt 9.0.0 orig tarball from the archive apt uses here
# (VIRTWIRE_DEBIAN_MIRROR overrides it), check its SHA-256 (the one the bookworm .dsc
# lists), and unpack only those directories beside the venv.
LIBVIRT_CORPUS="$VENV/src/libvirt-9.0.0-corpus"
if [ ! -f "$LIBVIRT_CORPUS/.complete" ]; then
    say "fetching libvirt 9.0.0's domain XML test corpus (Debian's orig tarball)"
    mirror="${VIRTWIRE_DEBIAN_MIRROR:-http://deb.debian.org/debian}"
    tarball="$VENV/src/libvirt_9.0.0.orig.tar.xz"
    mkdir -p "$VENV/src"
    "$VENV/bin/python" - "$mirror/pool/main/libv/libvirt/libvirt_9.0.0.orig.tar.xz" "$tarball" \
        deca5cff1b7baac297bca9663907c61f71a47183371dc7ac019c107806d5435a <<'PY' \
        || die "could not fetch libvirt_9.0.0.orig.tar.xz from $mirror"
import hashlib, os, sys, urllib.request
url, dest, want = sys.argv[1:]
if not (os.path.exists(dest) and hashlib.sha256(open(dest, "rb").read()).hexdigest() == want):
    with urllib.request.urlopen(url, timeout=120) as response:
        data = response.read()
    if hashlib.sha256(data).hexdigest() != want:
        sys.exit(f"{url}: SHA-256 mismatch")
    with open(dest + ".part", "wb") as out:
        out.write(data)
    os.replace(dest + ".part", dest)
PY
    rm -rf "$LIBVIRT_CORPUS"
    mkdir -p "$LIBVIRT_CORPUS"
    tar -xJf "$tarball" -C "$LIBVIRT_CORPUS" --strip-components=1 \
        libvirt-9.0.0/tests/genericxml2xmlindata libvirt-9.0.0/tests/genericxml2xmloutdata \
        libvirt-9.0.0/tests/qemuxml2argvdata libvirt-9.0.0/tests/qemuxml2xmloutdata \
        || die "unpacking libvirt's test corpus from $tarball failed"
    rm -f "$tarball"
    touch "$LIBVIRT_CORPUS/.complete"
fi
export VIRTWIRE_LIBVIRT_CORPUS="$LIBVIRT_CORPUS"

cd "$ROOT"
# Many tests start `python -m virtwire.server` subprocesses: let them reuse the
# compiled bytecode of the large generated codec instead of recompiling it each time.
unset PYTHONDONTWRITEBYTECODE
"$VENV/bin/python" -m compileall -q protocol >/dev/null || true
say "running pytest ${*:-(whole suite)}${CI:+ (CI=$CI)}"
# CI kills the job at 90 min; interrupt pytest well before that so it still
# prints its summary and the slowest tests (SIGINT = Ctrl-C for pytest).
limit="${VIRTWIRE_TEST_TIMEOUT:-4800}"
rc=0
timeout --signal=INT --kill-after=60 "$limit" \
    "$VENV/bin/pytest" -q -p no:cacheprovider --durations=15 "$@" </dev/null || rc=$?
case "$rc" in
    0) say "PASSED" ;;
    5) say "FAILED: pytest collected no tests (exit 5)"; rc=1 ;;
    124) say "FAILED: pytest did not finish within ${limit}s (VIRTWIRE_TEST_TIMEOUT)" ;;
    70) say "FAILED: the hang guard aborted the session (a test was stuck in C code; stacks above)" ;;
    *) say "FAILED: pytest exit status $rc" ;;
esac
exit "$rc"
