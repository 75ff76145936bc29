#!/usr/bin/env bash
# The sidecar image, built and tested for real with podman (no Docker engine, no image registry):
#   1. install podman & co. (ci/debian-tools.sh) and write a containers.conf/storage.conf that keep
#      everything under the cache directory;
#   2. build a local Debian base image with debootstrap from the machine's own apt mirror (cached);
#   3. lint the Dockerfile (hadolint) and build the image;
#   4. in a pod, the demo service as the app and chaosproxy as its sidecar: a request through the
#      sidecar reaches the app; the admin API refuses a scenario without the token and, with it,
#      makes injected 500s visible; `podman healthcheck run` says healthy; `podman stop -t 10`
#      during a slow request lets it finish with 200 and the container exits 0.
# Usage (as root): ci/container-smoke.sh, or `make test-container`.
# CHAOSPROXY_CI_CACHE: base image tarball and podman storage (default /var/cache/chaosproxy-ci).
set -euo pipefail
cd "$(dirname "$0")/.."

CACHE=${CHAOSPROXY_CI_CACHE:-/var/cache/chaosproxy-ci}
PY=${PYTHON:-.venv/bin/python}
HADOLINT=${HADOLINT:-.venv/bin/hadolint}
SUITE=bookworm
BASE_IMAGE=localhost/chaosproxy-ci-base:$SUITE
BASE_TAR=$CACHE/base-$SUITE.tar
IMAGE=localhost/chaosproxy:ci
NAME=chaosproxy-smoke-$$
TOKEN=smoke-$RANDOM$RANDOM
DEADLINE=60 # seconds any one wait may take

T0=${EPOCHREALTIME/./}
T_LAST=$T0
lap() { # print the time since the start and since the previous lap
  local now=${EPOCHREALTIME/./}
  printf '[%5.1fs  +%5.1fs] %s\n' "$(((now - T0) / 100000))e-1" "$(((now - T_LAST) / 100000))e-1" "$*"
  T_LAST=$now
}
fail() {
  echo "FAIL: $*" >&2
  exit 1
}

[ "$(id -u)" -eq 0 ] || fail "run as root (podman storage, debootstrap)"
for tool in "$PY" "$HADOLINT"; do
  [ -x "$tool" ] || fail "$tool missing: run through 'make test-container'"
done

ci/debian-tools.sh podman runc catatonit debootstrap curl
lap "tools"

# ---------------------------------------------------------------- podman, kept under $CACHE
mkdir -p "$CACHE/conf"
exec 9>"$CACHE/lock"
flock 9 # one run at a time per cache: they share the base image and the build cache
nofile=$(ulimit -Hn)
cat >"$CACHE/conf/containers.conf" <<EOF
# Written by ci/container-smoke.sh. Root here cannot raise limits, so containers get the host's.
[containers]
default_ulimits = ["nofile=$nofile:$nofile", "nproc=4096:4096"]
[engine]
runtime = "runc"
cgroup_manager = "cgroupfs"
events_logger = "file"
events_logfile_path = "$CACHE/events.log"
tmp_dir = "$CACHE/tmp"
EOF
cat >"$CACHE/conf/storage.conf" <<EOF
# Written by ci/container-smoke.sh.
[storage]
driver = "overlay"
graphroot = "$CACHE/storage"
runroot = "$CACHE/run"
EOF
export CONTAINERS_CONF=$CACHE/conf/containers.conf
export CONTAINERS_STORAGE_CONF=$CACHE/conf/storage.conf
: >"$CACHE/events.log" # podman's event log, only ever appended to: one run's worth is enough

WORK=$(mktemp -d)
cleanup() {
  local rc=$?
  if [ "$rc" -ne 0 ]; then
    for c in "$NAME-proxy" "$NAME-app"; do
      podman container exists "$c" 2>/dev/null || continue
      echo "--- logs of $c" >&2
      podman logs "$c" >&2 || true
    done
  fi
  podman pod rm -f --ignore "$NAME" >/dev/null 2>&1 || true
  rm -rf "$WORK"
  exit "$rc"
}
trap cleanup EXIT
# Without systemd podman cannot schedule healthcheck timers and says so on every start and stop;
# the healthcheck itself is run by hand below.
quiet() { "$@" 2> >(grep -v 'systemd connection' >&2); }

# ---------------------------------------------------------------- base image
debian_mirror() { # the machine's own Debian mirror for $SUITE, from its apt sources
  local f
  for f in /etc/apt/sources.list.d/*.sources; do
    [ -f "$f" ] || continue
    awk -v suite="$SUITE" 'BEGIN { RS = ""; FS = "\n" }
      { uri = ""; ok = 0
        for (i = 1; i <= NF; i++) {
          if ($i ~ /^URIs:/) { split($i, u, " "); uri = u[2] }
          if ($i ~ /^Suites:/) { n = split($i, s, " "); for (j = 2; j <= n; j++) if (s[j] == suite) ok = 1 }
          if ($i ~ /^Enabled: *no/) { off = 1 }
        }
        if (off) { off = 0; next }
        if (ok && uri != "") { print uri; exit } }' "$f"
  done
  for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
    [ -f "$f" ] || continue
    awk -v suite="$SUITE" '$1 == "deb" {
        i = 2; if ($i ~ /^\[/) { while (i <= NF && $i !~ /\]$/) i++; i++ }
        if ($(i + 1) == suite) { print $i; exit } }' "$f"
  done
}

if ! podman image exists "$BASE_IMAGE"; then
  if [ ! -s "$BASE_TAR" ]; then
    mirror=$(debian_mirror | head -n 1) || true
    [ -n "$mirror" ] || fail "no apt source for $SUITE in /etc/apt/sources.list*"
    echo "debootstrap $SUITE from the machine's apt mirror"
    rootfs=$WORK/rootfs
    debootstrap --variant=minbase --include=python3,python3-venv,ca-certificates \
      "$SUITE" "$rootfs" "$mirror" >"$WORK/debootstrap.log" 2>&1 ||
      { tail -n 20 "$WORK/debootstrap.log" >&2; fail "debootstrap"; }
    rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/* \
      "$rootfs"/usr/share/doc/* "$rootfs"/usr/share/man/* "$rootfs"/usr/share/locale/*
    tar -C "$rootfs" --numeric-owner -cf "$BASE_TAR.part" .
    mv "$BASE_TAR.part" "$BASE_TAR"
    rm -rf "$rootfs"
    lap "debootstrap: $BASE_TAR"
  fi
  podman import --quiet --change 'CMD ["python3"]' "$BASE_TAR" "$BASE_IMAGE" >/dev/null
  lap "base image $BASE_IMAGE imported"
else
  lap "base image $BASE_IMAGE (cached)"
fi

# ---------------------------------------------------------------- lint and build
"$HADOLINT" Dockerfile
lap "hadolint: clean"

# pip in the build reaches the index the way this machine's pip does: the host CA bundle and the
# host's http(s) index settings, mounted for the build only (file:// indexes do not exist there).
mkdir -p "$WORK/build-config"
{
  echo "[global]"
  echo "cert = /etc/ssl/certs/ca-certificates.crt"
  "$PY" -m pip config list 2>/dev/null | "$PY" -c '
import re, sys
found = {}
for line in sys.stdin:
    m = re.match(r"^(\S*?)\.(index-url|extra-index-url|trusted-host)=\x27(.*)\x27$", line.strip())
    if m and (m[1] == ":env:" or m[2] not in found):  # the environment wins, as in pip
        found[m[2]] = m[3]
for key, value in found.items():
    keep = [v for v in value.split() if key == "trusted-host" or v.startswith(("http://", "https://"))]
    if keep:
        print(key, "=", " ".join(keep))
'
} >"$WORK/build-config/pip.conf"

build() { # podman build with the build-time mounts, output kept for a failure report
  podman build --format docker \
    --build-arg BASE="$BASE_IMAGE" --build-arg PIP_CONFIG_FILE=/mnt/pip.conf \
    --volume /etc/ssl/certs/ca-certificates.crt:/etc/ssl/certs/ca-certificates.crt:ro \
    --volume "$WORK/build-config:/mnt:ro" \
    "$@" . >>"$WORK/build.log" 2>&1 || { tail -n 40 "$WORK/build.log" >&2; fail "podman build $*"; }
}
build --tag "$IMAGE"
# The build stage, tagged, keeps its layers (the dependency wheels) out of the prune below, so
# the next run reuses them; older images of earlier runs go.
build --target build --tag "$IMAGE-build"
podman image prune --force >/dev/null
# The image must hold the code under test, not a cached layer of an earlier run.
# shellcheck disable=SC2016 # expanded by the sh that runs it, here and in the image
digest='cd "$0" && find . -name "*.py" -o -name "*.yaml" | LC_ALL=C sort | xargs sha256sum | sha256sum'
here=$(sh -c "$digest" chaosproxy)
there=$(podman run --rm --no-healthcheck --entrypoint sh "$IMAGE" -c "$digest" \
  "$(podman run --rm --no-healthcheck --entrypoint python3 "$IMAGE" -c \
    'import chaosproxy, os; print(os.path.dirname(chaosproxy.__file__))')")
[ "$here" = "$there" ] || fail "the image's chaosproxy package differs from ./chaosproxy"
podman run --rm --no-healthcheck --entrypoint sh "$IMAGE" -c \
  'for c in gcc cc pip pip3 curl; do ! command -v $c || exit 1; done; ! python3 -c "import locust"' \
  >"$WORK/absent.out" 2>&1 || fail "the image holds what it must not: $(cat "$WORK/absent.out")"
version=$(podman run --rm --no-healthcheck "$IMAGE" --version 2>&1) || fail "chaosproxy --version: $version"
case "$version" in
*"compiled ("*) ;;
*) fail "the image's per-request path is not the compiled one: $version" ;;
esac
lap "image $IMAGE built: holds ./chaosproxy, its per-request path compiled; no compiler, pip, curl or Locust"

# ---------------------------------------------------------------- the sidecar in a pod
# A scenario directory mounted like a ConfigMap: every API request fails with 500 at once.
mkdir -p "$WORK/scenarios"
cat >"$WORK/scenarios/smoke-breakage.yaml" <<'EOF'
name: smoke-breakage
description: Every API request fails with 500 for a minute; the rest keeps working.
phases:
  - name: broken
    duration: 1m
    rules:
      - match: {path: "/api/**"}
        fault: {error: {status: 500}}
EOF
chmod -R a+rX "$WORK/scenarios"

podman pod create --name "$NAME" -p 127.0.0.1::8080 -p 127.0.0.1::8081 >/dev/null
podman run -d --pod "$NAME" --name "$NAME-app" --no-healthcheck --read-only \
  "$IMAGE" demo-service --listen 127.0.0.1:9000 >/dev/null
quiet podman run -d --pod "$NAME" --name "$NAME-proxy" --read-only \
  -e CHAOSPROXY_UPSTREAM=http://127.0.0.1:9000 \
  -e CHAOSPROXY_ADMIN_TOKEN="$TOKEN" \
  -e CHAOSPROXY_SCENARIO_DIR=/etc/chaosproxy/scenarios \
  -v "$WORK/scenarios:/etc/chaosproxy/scenarios:ro" \
  "$IMAGE" >/dev/null
PROXY=http://$(podman port "$NAME-proxy" 8080/tcp)
ADMIN=http://$(podman port "$NAME-proxy" 8081/tcp)

status_of() { # METHOD URL [curl args]: print the HTTP status (000 when no answer)
  local method=$1 url=$2
  shift 2
  curl -s -o "$WORK/body" -w '%{http_code}' -X "$method" --max-time 10 "$@" "$url" || true
}
wait_for() { # DESCRIPTION COMMAND...: poll until COMMAND succeeds, at most $DEADLINE seconds
  local what=$1 end=$((SECONDS + DEADLINE))
  shift
  until "$@"; do
    [ "$SECONDS" -lt "$end" ] || fail "no $what after ${DEADLINE}s"
    sleep 0.1
  done
}
expect() { # WANT METHOD URL [curl args]
  local want=$1 got
  shift
  got=$(status_of "$@")
  [ "$got" = "$want" ] || fail "$1 $2: HTTP $got, expected $want: $(head -c 300 "$WORK/body")"
}
ready() { [ "$(status_of GET "$ADMIN/readyz")" = 200 ]; }
wait_for "ready sidecar (GET /readyz)" ready
lap "pod up: proxy $PROXY, admin $ADMIN"

expect 200 GET "$PROXY/api/items"
grep -q '"item-1"' "$WORK/body" || fail "the app's answer did not come through: $(head -c 300 "$WORK/body")"
lap "a request through the sidecar reaches the app"

auth=(-H "Authorization: Bearer $TOKEN")
expect 401 POST "$ADMIN/scenarios/smoke-breakage/start"
expect 200 GET "$PROXY/api/items"
expect 201 POST "$ADMIN/scenarios/smoke-breakage/start" "${auth[@]}"
expect 500 GET "$PROXY/api/items"
grep -q 'injected by chaosproxy' "$WORK/body" || fail "not the injected 500: $(head -c 300 "$WORK/body")"
expect 200 GET "$PROXY/static/app.js"
# `chaosproxy ctl` from the same image, beside the sidecar in the pod, stops it.
podman run --rm --pod "$NAME" --no-healthcheck "$IMAGE" ctl --token "$TOKEN" stop >"$WORK/ctl.out" ||
  fail "chaosproxy ctl stop: $(cat "$WORK/ctl.out")"
grep -q 'stopped smoke-breakage' "$WORK/ctl.out" || fail "chaosproxy ctl stop said: $(cat "$WORK/ctl.out")"
expect 200 GET "$PROXY/api/items"
expect 401 POST "$ADMIN/rules" -d '{"fault": {"error": {"status": 500}}, "ttl": "1m"}'
expect 201 POST "$ADMIN/rules" "${auth[@]}" -d '{"fault": {"error": {"status": 500}}, "ttl": "1m"}'
expect 500 GET "$PROXY/api/items"
expect 200 DELETE "$ADMIN/rules" "${auth[@]}"
expect 200 GET "$PROXY/api/items"
lap "admin API: refused without the token; with it a scenario and a rule inject 500s; ctl stops"

# Exit code 0 means the image's HEALTHCHECK (`chaosproxy health`) passed; the status records it.
quiet podman healthcheck run "$NAME-proxy" || fail "podman healthcheck run: unhealthy"
health=$(podman inspect "$NAME-proxy" --format '{{.State.Health.Status}}')
[ "$health" = healthy ] || fail "health status after podman healthcheck run: $health"
lap "podman healthcheck run: healthy"

# Graceful stop: SIGTERM while a 3-second request is in flight.
curl -s -o "$WORK/slow.body" -w '%{http_code}' --max-time 30 "$PROXY/api/slow?delay=3" \
  >"$WORK/slow.code" &
slow_pid=$!
in_flight() {
  curl -s --max-time 5 "$ADMIN/metrics" | grep -q '^chaosproxy_inflight_requests [1-9]'
}
wait_for "request in flight (chaosproxy_inflight_requests)" in_flight
quiet podman stop -t 10 "$NAME-proxy" >/dev/null
wait "$slow_pid" || true
code=$(cat "$WORK/slow.code")
[ "$code" = 200 ] || fail "the in-flight request got HTTP $code during the stop, expected 200"
exit_code=$(podman inspect "$NAME-proxy" --format '{{.State.ExitCode}}')
[ "$exit_code" = 0 ] || fail "the sidecar exited with $exit_code on SIGTERM, expected 0"
lap "podman stop -t 10: the in-flight request finished with 200, exit code 0"

echo "container smoke test passed"
