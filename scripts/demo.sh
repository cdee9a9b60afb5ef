#!/bin/sh
# The main job of README.md: build what is missing (binaries, guest image),
# then create a workspace, use it, and show what changed.
set -eu
cd "$(dirname "$0")/.."
export PATH="$PATH:/usr/local/go/bin"
scripts/setup-host.sh
make build
H=bin/hearth
$H image build debian-12
$H doctor || true
$H workspace delete --force demo >/dev/null 2>&1 || true
$H workspace create --name demo
$H workspace exec demo -- sh -c 'uname -a; echo hello > /workspace/hello.txt; python3 -c "print(6*7)"'
$H workspace logs demo
$H workspace stop demo
$H workspace start demo
$H workspace exec demo -- cat /workspace/hello.txt
$H workspace delete --force demo
