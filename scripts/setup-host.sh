#!/bin/sh
# Install the Debian packages hearth needs (as root), once: QEMU, the image
# build tools, what the tests drive, and the Python packaging tools `make dist`
# uses. Re-running it is cheap.
set -eu
pkgs="qemu-system-x86 debootstrap linux-source-6.1 bc flex bison libelf-dev libssl-dev e2fsprogs cpio tmux xz-utils make gcc git python3 ca-certificates python3-build python3-wheel python3-setuptools"
missing=""
for p in $pkgs; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing="$missing $p"
done
if [ -n "$missing" ]; then
	if [ "$(id -u)" != 0 ]; then
		echo "setup-host: missing packages:$missing — run as root or install them" >&2
		exit 1
	fi
	echo "setup-host: installing$missing" >&2
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -qq
	apt-get install -y -qq --no-install-recommends $missing >/dev/null
fi
command -v go >/dev/null || { echo "setup-host: Go 1.26 is needed on PATH" >&2; exit 1; }
