#!/usr/bin/env bash
# Build virtwire's sdist and wheel once, then install the wheel into a fresh
# virtualenv for each Python (3.11, 3.12, 3.13) and run a fast subset of the
# tests against the installed copy.
#
#   bash scripts/packaging.sh [PYTHON...]     default: python3.11 python3.12 python3.13
#
# VIRTWIRE_DIST_DIR=DIR also keeps the built sdist and wheel in DIR;
# VIRTWIRE_PACKAGING_TESTS="PATH..." runs those tests instead of the subset below.
#
# Each PYTHON is a command or path; a bare version such as 3.12 is looked up
# as python3.12 on PATH, then under ~/.pyenv/versions.  The build runs
# `python -m build` (sdist, then the wheel from the sdist, so a file missing
# from the sdist breaks the wheel) in a copy of the source tree, with the
# project venv's setuptools (no build isolation: nothing to download).  The
# test venvs get their dependencies from a wheelhouse kept in .venv/wheelhouse
# (filled from PyPI on the first run; all pure-Python wheels, so one set serves
# every version).  The tests run from outside the checkout, so `import virtwire`
# can only find the wheel's copy.
#
# Exit status: 0 when every Python passed; 1 otherwise (or 2: a Python is missing).
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=_lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/_lib.sh"

# Fast and self-contained: no libvirt-python in these venvs, and none of the
# tests that drive virsh or libvirtd (the main suite runs those).
# VIRTWIRE_PACKAGING_TESTS (test paths or node ids, space-separated) replaces it.
SUBSET=(
    tests/protocol/test_framing.py
    tests/protocol/test_message.py
    tests/protocol/test_typedparams.py
    tests/protocol/test_xdrc_constructs.py
    tests/protocol/test_generated_drift.py  # the compiler's output must not depend on the Python running it
    tests/server/test_serve_smoke.py
    tests/server/test_daemon_config.py
    tests/server/test_systemd.py
)
DESELECT="not virsh and not libvirtd and not socket_activate"
if [ -n "${VIRTWIRE_PACKAGING_TESTS:-}" ]; then
    read -r -a SUBSET <<<"$VIRTWIRE_PACKAGING_TESTS"
fi
TEST_REQUIREMENTS=(pytest pytest-trio hypothesis)

[ -x "$VENV/bin/python" ] || die "run scripts/test.sh once first (it makes $VENV with build and pip)"

works() { [ -n "$1" ] && "$1" -c 'import sys' >/dev/null 2>&1; }

# resolve_python WANT: print a working interpreter for WANT (a version, command or path).
resolve_python() {
    local want="$1" cand
    case "$want" in
        [0-9]*)
            # On PATH (a pyenv shim works only for an activated version), else pyenv's builds.
            cand="$(command -v "python$want" || true)"
            works "$cand" && { echo "$cand"; return 0; }
            for cand in $(ls -d "${PYENV_ROOT:-$HOME/.pyenv}"/versions/"$want"*/bin/python"$want" 2>/dev/null |
                          sort -rV); do
                works "$cand" && { echo "$cand"; return 0; }
            done
            return 1 ;;
        *) cand="$(command -v "$want" || true)"; works "$cand" && echo "$cand" ;;
    esac
}

pythons=("$@")
[ "${#pythons[@]}" -gt 0 ] || pythons=(3.11 3.12 3.13)

WORK="$(mktemp -d /tmp/vw-packaging-XXXXXX)"
trap 'rm -rf "$WORK"' EXIT

say "building sdist and wheel"
mkdir "$WORK/src"
(cd "$ROOT" && git ls-files -z --cached --others --exclude-standard | tar --null -T - -cf - ) | tar -xf - -C "$WORK/src"
"$VENV/bin/python" -m build --no-isolation --outdir "$WORK/dist" "$WORK/src" >"$WORK/build.log" 2>&1 ||
    { cat "$WORK/build.log" >&2; die "python -m build failed"; }
sdist="$(ls "$WORK"/dist/virtwire-*.tar.gz)"
wheel="$(ls "$WORK"/dist/virtwire-*-py3-none-any.whl)"
say "built $(basename "$sdist") and $(basename "$wheel")"
if [ -n "${VIRTWIRE_DIST_DIR:-}" ]; then
    mkdir -p "$VIRTWIRE_DIST_DIR" && cp "$sdist" "$wheel" "$VIRTWIRE_DIST_DIR"/
fi

WHEELHOUSE="$VENV/wheelhouse"
mkdir -p "$WHEELHOUSE"
pip=("$VENV/bin/python" -m pip --disable-pip-version-check -q)
requirements=("$wheel" "${TEST_REQUIREMENTS[@]}")

# fill_wheelhouse X.Y: make sure the wheelhouse has every requirement for Python X.Y
# (some, like hypothesis, ship compiled wheels per version).
fill_wheelhouse() {
    local for_version=(--only-binary :all: --python-version "$1")
    if ! "${pip[@]}" download --no-index --find-links "$WHEELHOUSE" "${for_version[@]}" \
            -d "$WORK/probe-$1" "${requirements[@]}" >/dev/null 2>&1; then
        say "Python $1: filling $WHEELHOUSE from PyPI"
        "${pip[@]}" download "${for_version[@]}" -d "$WHEELHOUSE" "${requirements[@]}" >"$WORK/download.log" 2>&1 ||
            { cat "$WORK/download.log" >&2; return 1; }
        rm -f "$WHEELHOUSE"/virtwire-*.whl
    fi
}

failed=()
for want in "${pythons[@]}"; do
    python="$(resolve_python "$want")" || { say "MISSING: Python $want"; exit 2; }
    version="$("$python" -c 'import sys; print("%d.%d" % sys.version_info[:2])')"
    venv="$WORK/venv-$version"
    say "Python $version ($python): fresh venv, install the wheel"
    fill_wheelhouse "$version" || { failed+=("$version (pip download)"); continue; }
    "$python" -m venv --without-pip "$venv"
    # --no-compile: bytecode only for what the tests import (pip would compile every module)
    "${pip[@]}" --python "$venv/bin/python" install --no-compile --no-index --find-links "$WHEELHOUSE" "${requirements[@]}" ||
        { failed+=("$version (install)"); continue; }
    location="$(cd "$WORK" && "$venv/bin/python" -I -c 'import virtwire; print(virtwire.__file__)')"
    case "$location" in
        "$venv"/*) ;;
        *) failed+=("$version (virtwire imported from $location, not the wheel)"); continue ;;
    esac
    say "Python $version: ${#SUBSET[@]} test files against $location"
    tests=()
    for t in "${SUBSET[@]}"; do tests+=("$ROOT/$t"); done
    # From outside the checkout; pyproject.toml still configures pytest.
    if (cd "$WORK" && env -u PYTHONPATH "$venv/bin/pytest" -q -p no:cacheprovider \
            -c "$ROOT/pyproject.toml" --rootdir "$ROOT" -k "$DESELECT" "${tests[@]}" </dev/null); then
        say "Python $version: PASSED"
    else
        failed+=("$version (tests)")
    fi
done

if [ "${#failed[@]}" -gt 0 ]; then
    say "FAILED: ${failed[*]}"
    exit 1
fi
say "PASSED on Python ${pythons[*]}"
