#!/bin/bash
# make dist-check: install the release artifacts the way a user would, in a
# clean place, and run the product there.
#
# A fresh Debian 12 root (debootstrap, from the mirror the host's apt uses;
# the base root is cached as .cache/dist-check/base-bookworm.tar) gets the
# .deb through apt (so its dependencies resolve), a fresh HEARTH_HOME, and a
# copy of the guest image the tests built (no second kernel compile); the
# wheel goes into a fresh venv (pip --no-index). Then, inside the root,
# scripts/dist-smoke.sh drives the installed CLI and scripts/dist-smoke.py
# the installed Python SDK: doctor, create with a seed, exec, sync push,
# diff, export, a service with readiness and a published port, a snapshot and
# reset, delete. Any failure exits non-zero; every exit path unmounts.
#
# The root with the .deb's dependencies installed is cached as well
# (.cache/dist-check/deps-*.tar, keyed by the Depends list), so a second run
# only installs the .deb itself; delete it to install them afresh.
#
# Needs root, debootstrap, `make dist` output in DIST (default dist/), and an
# image in DIST_CHECK_IMAGE (default .cache/hearth-test/images/debian-12,
# which `make image` builds). Downloaded .debs are kept in
# .cache/dist-check/apt-archives, so a second run downloads nothing new.
set -euo pipefail
cd "$(dirname "$0")/.."
top=$(pwd)
dist=${DIST:-dist}
cache=${DIST_CHECK_CACHE:-.cache/dist-check}
image=${DIST_CHECK_IMAGE:-${TEST_HOME:-.cache/hearth-test}/images/debian-12}
suite=bookworm
start=$(date +%s.%N)

say() { printf 'dist-check: %s\n' "$*" >&2; }
die() { say "FAIL: $*"; exit 1; }
# step NAME CMD...: run CMD, print how long it took, stop on failure. CMD
# runs in a subshell with errexit (a function called as `f || ...` would
# have errexit ignored).
step() {
	local name=$1 t0 rc
	shift
	t0=$(date +%s.%N)
	set +e
	(set -e; "$@")
	rc=$?
	set -e
	printf 'dist-check: %-38s %6.1f s%s\n' "$name" "$(echo "$(date +%s.%N) - $t0" | bc)" "$([ $rc = 0 ] || echo "  FAILED (exit $rc)")" >&2
	[ $rc = 0 ] || exit $rc
}

[ "$(id -u)" = 0 ] || die "needs root (debootstrap, chroot, mounts): run it as root"
command -v debootstrap >/dev/null || die "debootstrap not found: apt-get install debootstrap"
for f in SHA256SUMS; do [ -f "$dist/$f" ] || die "$dist/$f missing: run make dist first"; done
(cd "$dist" && sha256sum --quiet -c SHA256SUMS) || die "$dist/SHA256SUMS does not match the artifacts: run make dist again"
deb=$(ls "$dist"/hearth_*_amd64.deb)
whl=$(ls "$dist"/hearth-*-py3-none-any.whl)
tarball=$(ls "$dist"/hearth-*-linux-amd64.tar.gz)
[ -f "$image/rootfs.ext4" ] || [ -n "$(ls -A "$image" 2>/dev/null)" ] ||
	die "no guest image in $image: run make image (or set DIST_CHECK_IMAGE)"

# The Debian mirror: $HEARTH_DEBIAN_MIRROR, else the first URI of the host's
# apt sources that serves $suite main (as `hearth image build` picks it).
mirror() {
	if [ -n "${HEARTH_DEBIAN_MIRROR:-}" ]; then echo "${HEARTH_DEBIAN_MIRROR%/}"; return; fi
	/usr/bin/python3 - "$suite" /etc/apt/sources.list /etc/apt/sources.list.d/*.list /etc/apt/sources.list.d/*.sources <<'PY'
import sys
suite, files = sys.argv[1], sys.argv[2:]
def ok(uri): return uri.startswith(("http://", "https://", "file:/"))
for f in files:
    try: text = open(f).read()
    except OSError: continue
    if f.endswith(".sources"):
        for stanza in text.split("\n\n"):
            d = {}
            for line in stanza.splitlines():
                if ":" in line and not line.startswith(("#", " ")):
                    k, v = line.split(":", 1); d[k.strip().lower()] = v.split()
            if "deb" in d.get("types", []) and suite in d.get("suites", []) and "main" in d.get("components", []) and d.get("enabled", ["yes"])[0] != "no":
                for u in d.get("uris", []):
                    if ok(u): print(u.rstrip("/")); sys.exit(0)
    else:
        for line in text.splitlines():
            w = line.split("#", 1)[0]
            if "[" in w and "]" in w:  # deb [options] URI SUITE COMPONENT...
                w = w[:w.index("[")] + w[w.index("]") + 1:]
            w = w.split()
            if len(w) >= 4 and w[0] == "deb" and w[2] == suite and "main" in w[3:] and ok(w[1]):
                print(w[1].rstrip("/")); sys.exit(0)
sys.exit("no deb source for %s main in %s; set HEARTH_DEBIAN_MIRROR" % (suite, " ".join(files)))
PY
}

mkdir -p "$cache/apt-archives/partial"
cache=$(cd "$cache" && pwd)
root=$cache/root
base=$cache/base-$suite.tar

# Unmount everything under the root (deepest first) and end the processes
# running inside it (only ours: nothing else has that root).
cleanup() {
	local pids p alive
	pids=""
	for p in /proc/[0-9]*; do
		[ "$(readlink "$p/root" 2>/dev/null)" = "$root" ] && pids="$pids ${p#/proc/}"
	done
	# shellcheck disable=SC2086
	if [ -n "$pids" ]; then
		kill -TERM $pids 2>/dev/null || true
		for _ in $(seq 50); do # until they are gone, 5 s at most
			alive=""
			for p in $pids; do kill -0 "$p" 2>/dev/null && alive=1; done
			[ -n "$alive" ] || break
			sleep 0.1
		done
		kill -KILL $pids 2>/dev/null || true
	fi
	awk -v r="$root" '$2 == r || index($2, r "/") == 1 { print $2 }' /proc/mounts | sort -r |
		while read -r m; do umount "$m" 2>/dev/null || umount -l "$m"; done
}
trap 'rc=$?; cleanup; [ $rc = 0 ] || say "failed after $(echo "$(date +%s.%N) - $start" | bc | cut -d. -f1) s"; exit $rc' EXIT
trap 'exit 130' INT TERM
cleanup # what an earlier run killed hard may have left

# remove_root deletes the root, never while anything is mounted under it
# (a bind-mounted /dev would go with it).
remove_root() {
	if awk -v r="$root" '$2 == r || index($2, r "/") == 1 { found = 1 } END { exit !found }' /proc/mounts; then
		say "still mounted under $root; not removing it"
		return 1
	fi
	rm -rf --one-file-system "$root"
}

make_base() {
	local m tmp=$cache/base-build
	m=$(mirror)
	say "debootstrap $suite from the host's apt mirror into $base (once; cached)"
	rm -rf "$tmp"
	debootstrap --variant=minbase "$suite" "$tmp" "$m" >"$cache/debootstrap.log" 2>&1 ||
		{ tail -20 "$cache/debootstrap.log" >&2; return 1; }
	rm -rf "$tmp"/var/cache/apt/archives/*.deb "$tmp"/var/lib/apt/lists/*_Packages
	tar -C "$tmp" -cf "$base.tmp" . && mv "$base.tmp" "$base"
	rm -rf "$tmp"
}
[ -f "$base" ] || step "debootstrap (base root, cached)" make_base

# The base root with the package's dependencies installed (never hearth
# itself) is cached too, keyed by its Depends: a later run installs only
# the .deb, through apt, which then finds every dependency satisfied.
depends=$(dpkg-deb -f "$deb" Depends | tr ',' '\n' | sed -e 's/|.*//' -e 's/(.*)//' | tr -d ' ' | grep . | sort)
depsroot=$cache/deps-$suite-$(printf '%s\n' "$depends" python3-venv | sha256sum | cut -c1-16).tar

fresh_root() {
	remove_root
	mkdir -p "$root"
	if [ -f "$depsroot" ]; then tar -C "$root" -xf "$depsroot"; else tar -C "$root" -xf "$base"; fi
	cp /etc/resolv.conf "$root/etc/resolv.conf"
	# A throwaway root: dpkg need not fsync every file it unpacks.
	echo force-unsafe-io >"$root/etc/dpkg/dpkg.cfg.d/dist-check-unsafe-io"
	# apt in the root sees what the host's apt sees (security updates too):
	# the host's sources, read now, never written into this repository.
	rm -f "$root/etc/apt/sources.list"
	cp /etc/apt/sources.list "$root/etc/apt/" 2>/dev/null || true
	for f in /etc/apt/sources.list.d/*.list /etc/apt/sources.list.d/*.sources; do
		[ ! -f "$f" ] || cp "$f" "$root/etc/apt/sources.list.d/"
	done
	mount --rbind /dev "$root/dev" && mount --make-rslave "$root/dev"
	mount -t proc proc "$root/proc"
	mount --rbind /sys "$root/sys" && mount --make-rslave "$root/sys"
	mount --bind "$cache/apt-archives" "$root/var/cache/apt/archives"
	mkdir -p "$root/root/dist" "$root/root/hearth-home/images"
	cp "$deb" "$whl" "$tarball" "$root/root/dist/"
	cp scripts/dist-smoke.sh scripts/dist-smoke.py "$root/root/"
	# The tests' image, hard-linked when it is on the same file system.
	cp -al "$image" "$root/root/hearth-home/images/" 2>/dev/null || cp -a "$image" "$root/root/hearth-home/images/"
}
step "fresh root, mounts, copy in" fresh_root

in_root() {
	chroot "$root" /usr/bin/env -i HOME=/root PATH=/usr/sbin:/usr/bin:/sbin:/bin LANG=C.UTF-8 \
		HEARTH_HOME=/root/hearth-home DEBIAN_FRONTEND=noninteractive "$@"
}
install_deps() {
	in_root apt-get update -qq >"$cache/apt.log" 2>&1 || { cat "$cache/apt.log" >&2; return 1; }
	# --no-install-recommends: the package's Depends are what hearth needs;
	# QEMU's recommends (a GUI) are not.
	# shellcheck disable=SC2086
	in_root apt-get install -y --no-install-recommends $depends python3-venv \
		>>"$cache/apt.log" 2>&1 || { tail -30 "$cache/apt.log" >&2; return 1; }
	tar -C "$root" --exclude=./dev/* --exclude=./proc/* --exclude=./sys/* --exclude=./var/cache/apt/archives/* \
		--exclude=./root/* -cf "$depsroot.tmp" . && mv "$depsroot.tmp" "$depsroot"
}
install_deb() {
	in_root apt-get install -y --no-install-recommends "/root/dist/$(basename "$deb")" >"$cache/apt-deb.log" 2>&1 ||
		{ tail -30 "$cache/apt-deb.log" >&2; return 1; }
	grep -q 'sudo hearth image build debian-12' "$cache/apt-deb.log" || { say "the postinst message about the image is missing"; return 1; }
}
in_root dpkg-query -W python3-venv >/dev/null 2>&1 || step "apt-get install its Depends (cached)" install_deps
step "apt-get install the .deb" install_deb
step "CLI smoke (installed hearth)" in_root /bin/sh /root/dist-smoke.sh
# The tarball, unpacked and run in place: it finds its agent in ../libexec.
tarball_in_place() {
	in_root tar -C /opt -xzf "/root/dist/$(basename "$tarball")"
	local dir=/opt/$(basename "$tarball" .tar.gz)
	in_root "$dir/bin/hearth" doctor --json >"$cache/doctor-tarball.json"
	grep -q "\"$dir/libexec/hearth/hearth-agent\"" "$cache/doctor-tarball.json" ||
		{ say "the unpacked tarball's hearth does not find $dir/libexec/hearth/hearth-agent"; return 1; }
}
step "tarball: unpack, doctor in place" tarball_in_place
install_wheel() {
	in_root python3 -m venv /root/venv &&
		in_root /root/venv/bin/pip install -q --no-index "/root/dist/$(basename "$whl")"
}
step "venv + pip install --no-index wheel" install_wheel
step "Python SDK smoke (installed wheel)" in_root /root/venv/bin/python /root/dist-smoke.py

cleanup
remove_root
say "PASS in $(echo "$(date +%s.%N) - $start" | bc | cut -d. -f1) s ($(basename "$deb"), $(basename "$whl"))"
