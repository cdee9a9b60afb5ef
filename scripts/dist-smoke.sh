#!/bin/sh
# The CLI half of `make dist-check`, run inside the fresh Debian root where
# the .deb was installed (scripts/dist-check.sh copies it in): the installed
# /usr/bin/hearth against a fresh $HEARTH_HOME. Each step prints its time;
# the first failure stops it with a non-zero exit.
set -eu
ws=smoke-cli
t0=$(date +%s.%N)
step() { printf '  cli %-30s %6.1f s\n' "$1" "$(echo "$(date +%s.%N) - $t0" | bc)" >&2; t0=$(date +%s.%N); }
fail() { echo "dist-smoke: FAIL: $*" >&2; exit 1; }
expect() { # expect WHAT NEEDLE TEXT
	case $3 in *"$2"*) ;; *) fail "$1: want \"$2\" in: $3" ;; esac
}

[ "$(command -v hearth)" = /usr/bin/hearth ] || fail "hearth is not /usr/bin/hearth"
hearth version
step version
hearth doctor >/tmp/doctor.txt 2>&1 || { cat /tmp/doctor.txt >&2; fail "hearth doctor"; }
expect "doctor finds the packaged agent" /usr/libexec/hearth/hearth-agent "$(cat /tmp/doctor.txt)"
step doctor

mkdir -p /root/project
echo hello >/root/project/hello.txt
hearth workspace create --name $ws --seed /root/project >/dev/null
step "create --seed"
expect "exec" hello "$(hearth workspace exec $ws -- cat /workspace/hello.txt)"
step exec

echo more >>/root/project/hello.txt
echo new >/root/project/new.txt
hearth workspace sync push $ws /root/project >/dev/null
expect "sync push" more "$(hearth workspace exec $ws -- cat /workspace/hello.txt)"
step "sync push"
expect "diff" new.txt "$(hearth workspace diff $ws --stat)"
step diff

hearth workspace exec $ws -- sh -c 'mkdir -p /workspace/out && echo result >/workspace/out/r.txt' >/dev/null
hearth workspace export $ws /workspace/out /root/exported >/dev/null
expect "export" result "$(cat /root/exported/r.txt)"
step export

port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
hearth workspace service start $ws web --cwd /workspace --ready port:8000 --wait --publish "127.0.0.1:$port:8000" \
	-- python3 -m http.server 8000 --bind 127.0.0.1 >/dev/null
step "service start --wait (ready)"
body=$(python3 -c 'import sys, urllib.request; print(urllib.request.urlopen("http://127.0.0.1:%s/hello.txt" % sys.argv[1], timeout=30).read().decode())' "$port")
expect "published port" more "$body"
step "GET published port"
hearth workspace service stop $ws web >/dev/null
step "service stop"

hearth workspace snapshot create $ws before >/dev/null
hearth workspace exec $ws -- rm /workspace/hello.txt
hearth workspace reset $ws --to before --force >/dev/null
expect "reset" more "$(hearth workspace exec $ws -- cat /workspace/hello.txt)"
step "snapshot, change, reset"

hearth workspace delete --force $ws >/dev/null
if hearth workspace show $ws >/dev/null 2>&1; then fail "workspace still there after delete"; fi
step delete
