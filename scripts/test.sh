#!/bin/sh
# The test command of README.md and CI: installs what it needs, builds, builds
# the guest image once (cached under .cache/), then runs unit and real-VM tests.
set -eu
cd "$(dirname "$0")/.."
export PATH="$PATH:/usr/local/go/bin"
scripts/setup-host.sh
make check
make test
