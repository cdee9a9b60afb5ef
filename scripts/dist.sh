#!/bin/sh
# make dist: the release artifacts, reproducibly, into OUT (default dist/):
#   hearth-VERSION-linux-amd64.tar.gz   bin/hearth, libexec/hearth/hearth-agent,
#                                       completions/, docs/, examples/, README.md
#   hearth_DEBVERSION_amd64.deb         /usr/bin/hearth, /usr/libexec/hearth/hearth-agent,
#                                       completions, /usr/share/doc/hearth (nfpm)
#   hearth-PYVERSION.tar.gz, hearth-PYVERSION-py3-none-any.whl   the Python SDK
#   SHA256SUMS
# Every time written comes from SOURCE_DATE_EPOCH (default: the commit's time),
# so the same commit gives the same bytes (scripts/dist-repro.sh checks it).
# Needs Go, and Debian's python3-build, python3-wheel and python3-setuptools.
set -eu
cd "$(dirname "$0")/.."
out=${1:-dist}
GO=${GO:-go}
PYTHON=${DIST_PYTHON:-/usr/bin/python3}
NFPM=${NFPM:-github.com/goreleaser/nfpm/v2/cmd/nfpm@v2.48.0}
command -v "$GO" >/dev/null || GO=/usr/local/go/bin/go

export SOURCE_DATE_EPOCH="${SOURCE_DATE_EPOCH:-$(git log -1 --format=%ct)}"
commit=$(git rev-parse HEAD)
dirty=""
git diff --quiet HEAD -- 2>/dev/null || dirty=.dirty
# The version: a tag vX.Y.Z on this commit, else a development version that
# sorts by commit time (semver; Debian's form is 0.0.0~dev.…).
if tag=$(git describe --tags --exact-match --match 'v[0-9]*' 2>/dev/null); then
	version=${tag#v}$(echo "$dirty" | sed 's/^\./+/')
else
	version=0.0.0-dev.$(date -u -d "@$SOURCE_DATE_EPOCH" +%Y%m%d%H%M%S).g$(git rev-parse --short=12 HEAD)$dirty
fi
[ -z "$dirty" ] || echo "dist: warning: the work tree has uncommitted changes; the artifacts are not reproducible from a commit" >&2

# normalize DIR: one time and the usual modes on every file (whatever the
# umask or the checkout's times were), for tar, nfpm and the wheel alike.
normalize() {
	find "$1" -type d -exec chmod 0755 {} +
	find "$1" -type f -perm /111 -exec chmod 0755 {} +
	find "$1" -type f ! -perm /111 -exec chmod 0644 {} +
	find "$1" -exec touch -h -d "@$SOURCE_DATE_EPOCH" {} +
}

work=$(mktemp -d "${TMPDIR:-/tmp}/hearth-dist.XXXXXX")
trap 'rm -rf "$work"' EXIT INT TERM
umask 022
name=hearth-$version-linux-amd64
stage=$work/$name
mkdir -p "$stage/bin" "$stage/libexec/hearth" "$stage/completions"

# Binaries: static, no build paths, no build id, no VCS stamp (whether Go
# can read one depends on the checkout: a clone or a worktree), the version
# and commit linked in.
ldflags="-buildid= -X github.com/hearthvm/hearth/internal/agent.Version=$version -X github.com/hearthvm/hearth/internal/version.Version=$version -X github.com/hearthvm/hearth/internal/version.Commit=$commit"
export CGO_ENABLED=0 GOOS=linux GOARCH=amd64 GOFLAGS="${GOFLAGS:-} -trimpath -buildvcs=false"
"$GO" build -ldflags "$ldflags -s -w" -o "$stage/libexec/hearth/hearth-agent" ./cmd/hearth-agent
"$GO" build -ldflags "$ldflags" -o "$stage/bin/hearth" ./cmd/hearth

"$stage/bin/hearth" completion bash >"$stage/completions/hearth.bash"
"$stage/bin/hearth" completion zsh >"$stage/completions/_hearth"
"$stage/bin/hearth" completion fish >"$stage/completions/hearth.fish"
# Tracked files only (git archive), so stray files in the tree never ship.
git -c tar.umask=022 archive --format=tar HEAD README.md docs examples $(git ls-files --error-unmatch LICENSE 2>/dev/null) | tar -C "$stage" -xf -
normalize "$stage"

rm -rf "$out"
mkdir -p "$out"
tar -C "$work" --sort=name --mtime="@$SOURCE_DATE_EPOCH" --owner=0 --group=0 --numeric-owner \
	--pax-option=exthdr.name=%d/PaxHeaders/%f,delete=atime,delete=ctime \
	-cf - "$name" | gzip -9n >"$out/$name.tar.gz"

# The Debian package: packaging/nfpm.yaml with ${STAGE}, ${PACKAGING} and
# ${HEARTH_VERSION} filled in.
sed -e "s|\${STAGE}|$stage|g" -e "s|\${PACKAGING}|$(pwd)/packaging|g" -e "s|\${HEARTH_VERSION}|$version|g" \
	packaging/nfpm.yaml >"$work/nfpm.yaml"
"$GO" run "$NFPM" package --config "$work/nfpm.yaml" --packager deb --target "$out/" >"$work/nfpm.log" 2>&1 ||
	{ cat "$work/nfpm.log" >&2; exit 1; }

# The Python SDK, from a copy of the tracked sources (no build/ or egg-info
# left over from an earlier build), with Debian's build tools, no index.
git -c tar.umask=022 archive --format=tar HEAD python | tar -C "$work" -xf -
normalize "$work/python"
"$PYTHON" -m build --no-isolation --sdist --wheel --outdir "$work/py" "$work/python" >"$work/build.log" 2>&1 ||
	{ cat "$work/build.log" >&2; echo "dist: python3 -m build failed: apt-get install python3-build python3-wheel python3-setuptools" >&2; exit 1; }
cp "$work"/py/*.whl "$out/"
# setuptools' sdist stamps the build time into the gzip header and into the
# files it generates (PKG-INFO, setup.cfg): pack it again from its contents,
# the way the tarball above is packed.
for sd in "$work"/py/*.tar.gz; do
	mkdir "$work/sdist"
	tar -C "$work/sdist" -xzf "$sd"
	top=$(ls "$work/sdist")
	tar -C "$work/sdist" --sort=name --mtime="@$SOURCE_DATE_EPOCH" --owner=0 --group=0 --numeric-owner --format=ustar \
		-cf - "$top" | gzip -9n >"$out/$(basename "$sd")"
	rm -rf "$work/sdist"
done

(cd "$out" && sha256sum -- * >SHA256SUMS)
echo "dist: $version ($commit$dirty, SOURCE_DATE_EPOCH=$SOURCE_DATE_EPOCH) in $out/" >&2
(cd "$out" && ls -l -- *)
