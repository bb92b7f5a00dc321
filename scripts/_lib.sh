# shellcheck shell=bash
# Helpers shared by scripts/test.sh and scripts/serve.sh.  Source it; not executable.
#
#   ROOT          the repository (found from this file, so any cwd works)
#   VENV          $ROOT/.venv
#   say / die     progress lines on stderr, prefixed with the script's name
#   ensure_debs PKG...         apt-get install what dpkg lacks (update first, once)
#   find_python [DEB...]       set PYTHON to a python >= 3.11 (installs Debian's if none)
#   ensure_venv SPEC...        create .venv if needed and pip install SPECs when they changed
#   ensure_lxml_system_libxml2 rebuild the venv's lxml against Debian's libxml2 (libvirt's own)

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)"
VENV="$ROOT/.venv"
SCRIPT_NAME="$(basename "$0" .sh)"

say() { echo "[$SCRIPT_NAME] $*" >&2; }
die() { echo "[$SCRIPT_NAME] ERROR: $*" >&2; exit 1; }

deb_installed() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q '^install ok installed$'; }

# ensure_debs PKG...: install the Debian packages that are not installed yet.
# Quiet (one line) when everything is there; apt-get update runs only when
# something must be installed.  Needs root (or password-less sudo) only then.
ensure_debs() {
    command -v dpkg-query >/dev/null || die "this script installs Debian packages; dpkg not found (Debian 12 expected)"
    local missing=() p
    for p in "$@"; do deb_installed "$p" || missing+=("$p"); done
    if [ "${#missing[@]}" -eq 0 ]; then
        say "system packages present: $*"
        return 0
    fi
    local sudo=()
    if [ "$(id -u)" -ne 0 ]; then
        if command -v sudo >/dev/null && sudo -n true 2>/dev/null; then
            sudo=(sudo -n)
        else
            die "missing Debian packages: ${missing[*]}; run as root (or: sudo apt-get install ${missing[*]})"
        fi
    fi
    say "installing Debian packages: ${missing[*]}"
    local apt=("${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get -y -q -o Dpkg::Use-Pty=0)
    if [ -z "${APT_UPDATED:-}" ]; then
        "${apt[@]}" update >/dev/null || die "apt-get update failed"
        APT_UPDATED=1
    fi
    "${apt[@]}" install --no-install-recommends "${missing[@]}" >/dev/null ||
        die "apt-get install ${missing[*]} failed"
    for p in "${missing[@]}"; do deb_installed "$p" || die "$p still not installed after apt-get install"; done
}

python_ok() { "$1" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; }

# find_python [DEB...]: set PYTHON to the interpreter that creates .venv.
# $PYTHON wins if set; else the first python3 >= 3.11 on PATH; else Debian's
# /usr/bin/python3.  Debian's needs python3-venv (ensurepip), plus the DEBs the
# caller names for it (test.sh: python3-dev, whose Python.h libvirt-python's
# build needs); they are installed when missing.
# shellcheck disable=SC2120  # test.sh passes DEBs
find_python() {
    local cand found=""
    if [ -n "${PYTHON:-}" ]; then
        python_ok "$PYTHON" || die "PYTHON=$PYTHON is not a Python >= 3.11"
        found="$PYTHON"
    else
        for cand in python3 python3.13 python3.12 python3.11; do
            if command -v "$cand" >/dev/null && python_ok "$cand"; then found="$(command -v "$cand")"; break; fi
        done
    fi
    if [ -z "$found" ]; then
        ensure_debs python3 python3-venv "$@"
        found=/usr/bin/python3
        python_ok "$found" || die "Debian's python3 is older than 3.11; virtwire needs Python >= 3.11"
    elif [ "$("$found" -c 'import sys; print(sys.base_prefix)')" = /usr ]; then
        ensure_debs python3-venv "$@"             # a Debian interpreter
    fi
    PYTHON="$found"
}

# ensure_venv SPEC...: make $VENV (if missing or broken) and pip install SPECs.
# A stamp records what was installed, so a second run with the same
# pyproject.toml and SPECs does not touch the network.
ensure_venv() {
    if [ ! -x "$VENV/bin/python" ] || ! python_ok "$VENV/bin/python"; then
        # shellcheck disable=SC2119  # the caller ran find_python with its DEBs already
        [ -n "${PYTHON:-}" ] || find_python
        say "creating $VENV with $PYTHON ($("$PYTHON" -V 2>&1))"
        rm -rf "$VENV"
        "$PYTHON" -m venv "$VENV" || die "python -m venv failed (Debian: apt-get install python3-venv)"
    fi
    # One stamp per set of SPECs (test.sh and serve.sh install different sets),
    # holding a hash of pyproject.toml and the interpreter version.
    local stamp want
    stamp="$VENV/.virtwire-installed-$(printf '%s\n' "$@" | sha256sum | cut -c1-12)"
    want="$(cat "$ROOT/pyproject.toml" <("$VENV/bin/python" -V 2>&1) | sha256sum | cut -d' ' -f1)"
    if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ] && "$VENV/bin/python" -c 'import virtwire' 2>/dev/null; then
        say "venv up to date: $VENV"
        return 0
    fi
    say "installing into $VENV: $*"
    local pip=("$VENV/bin/python" -m pip --disable-pip-version-check -q)
    "${pip[@]}" install 'setuptools>=77' 'wheel>=0.40' || die "pip could not install setuptools/wheel"
    # No build isolation: the venv's own setuptools builds virtwire and
    # libvirt-python, so repeated runs need no downloads for the build.
    (cd "$ROOT" && "${pip[@]}" install --no-build-isolation "$@") || die "pip install $* failed"
    echo "$want" > "$stamp"
}

# ensure_lxml_system_libxml2: the venv's lxml linked against the system's libxml2.
# lxml's wheels bundle a newer libxml2, whose RelaxNG explanations differ from
# those of the libxml2 libvirt links (Debian 12: 2.9.14) for some documents; the
# VALIDATE flags' error text matches libvirt's exactly only with the same library.
# Needs libxml2-dev and libxslt1-dev; pip keeps the built wheel in its cache.
ensure_lxml_system_libxml2() {
    local want have
    want="$(pkg-config --modversion libxml-2.0)" || die "pkg-config finds no libxml-2.0 (apt-get install libxml2-dev)"
    have="$("$VENV/bin/python" -c 'import lxml.etree as e; print(".".join(map(str, e.LIBXML_VERSION)))' 2>/dev/null || true)"
    if [ "$have" = "$want" ]; then
        return 0
    fi
    say "building lxml against the system libxml2 $want (the venv's has ${have:-none})"
    "$VENV/bin/python" -m pip --disable-pip-version-check -q install --no-build-isolation \
        --force-reinstall --no-deps --no-binary lxml "lxml==$("$VENV/bin/python" -c 'import importlib.metadata as m; print(m.version("lxml"))')" \
        || die "building lxml against the system libxml2 failed"
}
