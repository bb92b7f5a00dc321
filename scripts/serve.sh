#!/usr/bin/env bash
# Install what virtwire's server needs and run it with its defaults.
#
#   sudo bash scripts/serve.sh [SERVE ARGS...]        from any directory
#
# On a fresh Debian 12 (as root): installs Python >= 3.11 with venv support if
# there is none, and virsh (libvirt-clients) to talk to the server; creates
# .venv in the repository; installs virtwire; then runs `virtwire serve`,
# which by default listens on TCP 127.0.0.1:16509 and on unix sockets in its
# runtime folder.  Extra arguments go to `virtwire serve` (see --help).
# Idempotent: a second run installs nothing and starts the server at once.
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=_lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/_lib.sh"

ensure_debs libvirt-clients
# shellcheck disable=SC2119  # no extra DEBs: the server builds nothing
find_python
ensure_venv -e .

say "starting: virtwire serve $*"
exec "$VENV/bin/virtwire" serve "$@"
