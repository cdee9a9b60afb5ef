#!/bin/sh
# make dist-repro: build the release artifacts twice, into two directories,
# and compare their SHA-256 sums: the same commit must give the same bytes.
# The second build runs from a copy of the tree at another path and with a
# different umask and file times, so that no path, umask or checkout time
# can leak into an artifact unnoticed.
set -eu
cd "$(dirname "$0")/.."
root=$(pwd)
dir=${1:-.cache/dist-repro}
rm -rf "$dir"
mkdir -p "$dir"
dir=$(cd "$dir" && pwd)
export SOURCE_DATE_EPOCH="${SOURCE_DATE_EPOCH:-$(git log -1 --format=%ct)}"

start=$(date +%s)
scripts/dist.sh "$dir/a" >/dev/null
# The second tree: a fresh clone of this commit elsewhere, with the work
# tree's uncommitted changes applied, and its files touched now.
git clone -q --no-hardlinks "$root" "$dir/tree"
git -C "$dir/tree" checkout -q --detach "$(git rev-parse HEAD)"
git diff HEAD --binary | git -C "$dir/tree" apply --allow-empty - 2>/dev/null || true
(umask 002 && cd "$dir/tree" && find . -path ./.git -prune -o -exec touch {} + && scripts/dist.sh "$dir/b" >/dev/null)

if diff "$dir/a/SHA256SUMS" "$dir/b/SHA256SUMS"; then
	echo "dist-repro: identical bytes in two builds ($(($(date +%s) - start)) s):"
	cat "$dir/a/SHA256SUMS"
	rm -rf "$dir/tree"
else
	echo "dist-repro: the two builds differ (see $dir/a and $dir/b; diffoscope shows where)" >&2
	exit 1
fi
