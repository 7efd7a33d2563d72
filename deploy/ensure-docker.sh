#!/usr/bin/env bash
# Makes sure a Docker engine answers. Where none runs, starts one if it can (root on Debian or
# Ubuntu: install docker.io, start dockerd); otherwise says what to install. Never waits forever.
set -euo pipefail

engine_answers() { timeout 10 docker info >/dev/null 2>&1; }

if command -v docker >/dev/null 2>&1 && engine_answers; then
  exit 0
fi

if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null 2>&1; then
  cat >&2 <<'MSG'
loopd needs a running Docker engine for its sandboxes, and none answers.
Install and start one, for example on Debian or Ubuntu as root:
    apt-get install docker.io && dockerd &
or give your user access to an existing engine (the docker group), then run this again.
MSG
  exit 1
fi

if ! command -v dockerd >/dev/null 2>&1; then
  echo "installing docker.io ..." >&2
  export DEBIAN_FRONTEND=noninteractive
  timeout 600 apt-get update -qq
  timeout 900 apt-get install -y -qq docker.io >/dev/null
fi

log=/var/log/loopd-dockerd.log
echo "starting dockerd (log: $log) ..." >&2
nohup dockerd >"$log" 2>&1 &
for _ in $(seq 1 60); do
  if engine_answers; then
    exit 0
  fi
  sleep 1
done
echo "dockerd did not come up within 60 s; see $log" >&2
tail -n 20 "$log" >&2 || true
exit 1
