#!/usr/bin/env bash
# The one owner of machine set-up for the make targets: `deploy/setup.sh TARGET` makes sure the
# system has what TARGET (run, up, test, bench, lint, image, docker, compose) needs. On Debian or
# Ubuntu as root it installs missing packages, starts dockerd, registers gVisor's runsc with it and
# builds loopd's base image and the sandbox image from Debian packages; anywhere else it stops at
# once and names exactly what to install. Every wait it makes is bounded. `compose` is what bringing up docker-compose.yml with
# images built offline (deploy/offline.sh) needs.
set -euo pipefail
cd "$(dirname "$0")/.."

say() { echo "setup: $*" >&2; }
die() { echo "setup: $*" >&2; exit 1; }

# need NAME: one requirement a target can have. Each is (a check, the Debian package that meets it).
check() {
  case "$1" in
    venv) "${PYTHON:-python3}" -c 'import ensurepip, venv' >/dev/null 2>&1 ;;
    docker) command -v dockerd >/dev/null 2>&1 && command -v docker >/dev/null 2>&1 ;;
    debootstrap) command -v debootstrap >/dev/null 2>&1 ;;
    redis) command -v redis-server >/dev/null 2>&1 ;;
    compose) command -v docker-compose >/dev/null 2>&1 || docker compose version >/dev/null 2>&1 ;;
    procps) command -v ps >/dev/null 2>&1 && command -v pgrep >/dev/null 2>&1 ;;
    certificates) [ -s /etc/ssl/certs/ca-certificates.crt ] ;;
    # Workspace disks (loop-mounted ext4 images) are made by hands running as root; others do without.
    e2fsprogs) [ "$(id -u)" != 0 ] || command -v mkfs.ext4 >/dev/null 2>&1 ;;
    mount) [ "$(id -u)" != 0 ] || { command -v mount >/dev/null 2>&1 && command -v umount >/dev/null 2>&1; } ;;
    # The partition tests give each role a network namespace of its own and cut links with iptables.
    iproute2) command -v ip >/dev/null 2>&1 && command -v nsenter >/dev/null 2>&1 ;;
    iptables) command -v iptables >/dev/null 2>&1 ;;
    runsc) command -v runsc >/dev/null 2>&1 ;;
    cc) command -v cc >/dev/null 2>&1 ;;
    *) die "unknown requirement: $1" ;;
  esac
}

package() {
  case "$1" in
    venv) echo python3-venv ;;
    docker) echo docker.io ;;
    debootstrap) echo debootstrap ;;
    redis) echo redis-server ;;
    compose) echo docker-compose ;;
    procps) echo procps ;;
    certificates) echo ca-certificates ;;
    e2fsprogs) echo e2fsprogs ;;
    mount) echo mount ;;
    iproute2) echo iproute2 ;;
    iptables) echo iptables ;;
    runsc) echo runsc ;;
    cc) echo gcc ;;
  esac
}

# What each make target needs, in the order it needs it. `engine`, `gvisor`, `base` and `image` are
# steps, not packages. The sandbox image is made from the base, which the compose test's images
# share. The tests and benchmarks run sandboxes under both runc and runsc (gVisor); run and up need
# runsc only when LOOPD_SANDBOX_RUNTIME asks for it.
needs() {
  local gvisor="" gvisor_step=""
  if [ "${LOOPD_SANDBOX_RUNTIME:-runc}" = runsc ]; then gvisor="runsc cc" gvisor_step=gvisor; fi
  case "$1" in
    lint) echo "venv" ;;
    docker) echo "docker engine" ;;
    gvisor) echo "runsc cc docker engine gvisor" ;;
    image) echo "docker engine debootstrap base image" ;;
    run | up) echo "venv certificates e2fsprogs mount $gvisor docker engine $gvisor_step debootstrap base image" ;;
    test) echo "venv certificates procps redis compose e2fsprogs mount iproute2 iptables runsc cc docker engine gvisor debootstrap base image" ;;
    bench) echo "venv certificates procps redis e2fsprogs mount runsc cc docker engine gvisor debootstrap base image" ;;
    compose) echo "compose docker engine debootstrap base image" ;;
    *) die "unknown target: $1 (one of: lint docker gvisor image run up test bench compose)" ;;
  esac
}

can_install() { [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; }

install_packages() {
  local missing=("$@")
  ((${#missing[@]})) || return 0
  if ! can_install; then
    die "missing system packages: ${missing[*]}
  On Debian or Ubuntu, as root:  apt-get install ${missing[*]}
  Elsewhere, install the equivalents (a Docker engine, redis-server, debootstrap, docker-compose,
  Python's venv module, gVisor's runsc) and run this again."
  fi
  export DEBIAN_FRONTEND=noninteractive
  say "installing ${missing[*]}"
  # A held dpkg lock or an unreachable mirror must fail, not hang.
  timeout 900 apt-get -o DPkg::Lock::Timeout=120 update -qq
  timeout 1800 apt-get -o DPkg::Lock::Timeout=120 install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

engine_answers() { timeout 10 docker info >/dev/null 2>&1; }

start_engine() {
  engine_answers && return 0
  if [ "$(id -u)" != 0 ]; then
    die "no Docker engine answers. Start one (as root: dockerd &) or join the docker group, then run this again."
  fi
  local log=/var/log/loopd-dockerd.log
  say "starting dockerd (log: $log)"
  nohup dockerd >"$log" 2>&1 </dev/null &
  for _ in $(seq 1 60); do
    engine_answers && return 0
    sleep 1
  done
  tail -n 20 "$log" >&2 || true
  die "dockerd did not answer within 60 s; see $log"
}

# The engine's runsc runtime, with the flags the sandboxes need (deploy/gvisor/register.py says why).
engine_has_runsc() {
  docker info --format '{{json .Runtimes}}' 2>/dev/null | "${PYTHON:-python3}" deploy/gvisor/register.py check
}

# The statx shim runsc sandboxes preload (deploy/gvisor/statx.c says why), built beside the source,
# where hands look for it; it needs no headers and no libc to link.
build_gvisor_shim() {
  local out="${LOOPD_GVISOR_DIR:-.gvisor}"
  [ -s "$out/statx.so" ] && [ "$out/statx.so" -nt deploy/gvisor/statx.c ] && return 0
  mkdir -p "$out"
  cc -shared -fPIC -nostdlib -O2 -o "$out/statx.so.new" deploy/gvisor/statx.c || die "could not build $out/statx.so"
  mv "$out/statx.so.new" "$out/statx.so"
}

# Registers runsc in the engine's daemon.json (only its own key) and reloads the engine with SIGHUP,
# which reloads runtimes without stopping containers. An engine that already has it is left alone.
register_gvisor() {
  build_gvisor_shim
  engine_has_runsc && return 0
  local config="${LOOPD_DOCKER_CONFIG:-/etc/docker/daemon.json}" pidfile="${LOOPD_DOCKER_PIDFILE:-/var/run/docker.pid}"
  local runsc changed
  runsc="$(command -v runsc)"
  if [ ! -w "$config" ] && [ ! -w "$(dirname "$config")" ] || [ ! -s "$pidfile" ]; then
    die "the Docker engine has no runsc runtime for the sandboxes. Add it to the engine's daemon.json:
  {\"runtimes\": {\"runsc\": {\"path\": \"$runsc\", \"runtimeArgs\": [\"--platform=ptrace\", \"--host-uds=open\", \"--network=none\"]}}}
  then reload the engine (kill -HUP <dockerd's pid>) and run this again."
  fi
  changed="$("${PYTHON:-python3}" deploy/gvisor/register.py merge "$config" "$runsc")" || die "could not register runsc in $config"
  [ "$changed" = changed ] && say "registered runsc in $config"
  say "reloading dockerd (SIGHUP) for its runsc runtime"
  kill -HUP "$(cat "$pidfile")"
  for _ in $(seq 1 20); do
    engine_has_runsc && return 0
    sleep 0.5
  done
  die "dockerd (pid file $pidfile) did not take runsc from $config: an engine started with another
  --config-file, or a remote one, needs it registered there (see docs/security.md)"
}

build_base() {
  local image="${LOOPD_BASE_IMAGE:-loopd-base:bookworm}"
  bash deploy/base/build.sh --check >/dev/null && return 0
  [ "$(id -u)" = 0 ] || die "the base image $image is missing or out of date; build it as root: bash deploy/base/build.sh"
  bash deploy/base/build.sh
}

build_image() {
  local image="${LOOPD_SANDBOX_IMAGE:-loopd-sandbox:latest}"
  # An image built for another sandbox user (LOOPD_SANDBOX_USER) is rebuilt like a missing one.
  bash deploy/sandbox/build.sh --check >/dev/null && return 0
  [ "$(id -u)" = 0 ] || die "the sandbox image $image is missing or was built for another sandbox user; build it as root: bash deploy/sandbox/build.sh"
  bash deploy/sandbox/build.sh
}

main() {
  (($#)) || die "usage: deploy/setup.sh TARGET"
  local target="$1" step listed missing=()
  listed="$(needs "$target")" || exit 1
  local steps
  read -r -a steps <<<"$listed"
  for step in "${steps[@]}"; do
    case "$step" in
      engine | gvisor | base | image) ;;
      *) check "$step" || missing+=("$(package "$step")") ;;
    esac
  done
  install_packages "${missing[@]}"
  for step in "${steps[@]}"; do
    case "$step" in
      engine) start_engine ;;
      gvisor) register_gvisor ;;
      base) build_base ;;
      image) build_image ;;
      *) check "$step" || die "$(package "$step") was installed but '$step' is still not usable" ;;
    esac
  done
}

main "$@"
