#!/usr/bin/env bash
# Builds every image docker-compose.yml runs without pulling from any container registry, all from
# one base bootstrapped from Debian packages (deploy/base/build.sh): the sandbox, PostgreSQL and Redis
# from Debian's packages, and loopd itself (deploy/Dockerfile on that base, its Python packages from
# the package index). Then it records the images in the project's .env, where compose reads them.
# The base and the sandbox are built only when missing; the others go through `docker build`, whose
# layer cache makes a rebuild of unchanged files take seconds.
#
# Usage: deploy/offline.sh [DIR]
#   DIR                     the compose project folder whose .env names the images (default: the
#                           repository root, beside docker-compose.yml)
#   LOOPD_IMAGE             loopd's tag (default: loopd:latest)
#   LOOPD_BASE_IMAGE        the base's tag (default: loopd-base:bookworm)
#   LOOPD_POSTGRES_IMAGE    PostgreSQL's tag (default: loopd-postgres:bookworm)
#   LOOPD_REDIS_IMAGE       Redis's tag (default: loopd-redis:bookworm)
#   LOOPD_SANDBOX_IMAGE     the sandbox's tag (default: loopd-sandbox:latest)
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
project="$(cd "${1:-$root}" && pwd)"

export LOOPD_BASE_IMAGE="${LOOPD_BASE_IMAGE:-loopd-base:bookworm}"
export LOOPD_SANDBOX_IMAGE="${LOOPD_SANDBOX_IMAGE:-loopd-sandbox:latest}"
images=(
  "LOOPD_IMAGE=${LOOPD_IMAGE:-loopd:latest}"
  "LOOPD_BASE_IMAGE=$LOOPD_BASE_IMAGE"
  "LOOPD_POSTGRES_IMAGE=${LOOPD_POSTGRES_IMAGE:-loopd-postgres:bookworm}"
  "LOOPD_REDIS_IMAGE=${LOOPD_REDIS_IMAGE:-loopd-redis:bookworm}"
  "LOOPD_SANDBOX_IMAGE=$LOOPD_SANDBOX_IMAGE"
)
tag() { local name="$1" entry; for entry in "${images[@]}"; do [[ "$entry" == "$name="* ]] && echo "${entry#*=}"; done; }

build() {
  local image="$1"
  shift
  echo "offline: building $image"
  docker build --quiet --build-arg "BASE=$LOOPD_BASE_IMAGE" --tag "$image" "$@" >/dev/null
}

bash "$root/deploy/base/build.sh"
bash "$root/deploy/sandbox/build.sh"
build "$(tag LOOPD_POSTGRES_IMAGE)" "$root/deploy/postgres"
build "$(tag LOOPD_REDIS_IMAGE)" "$root/deploy/redis"
build "$(tag LOOPD_IMAGE)" --file "$root/deploy/Dockerfile" "$root"

env_file="$project/.env"
touch "$env_file"
chmod 600 "$env_file"
# Earlier image lines are replaced, so running it again with other tags leaves one line per image.
# Rewritten in place, so the file keeps its mode: it holds compose-env.sh's secrets too.
kept="$(grep -v -E "^($(IFS='|'; echo "${images[*]%%=*}"))=" "$env_file" || true)"
printf '%s\n' ${kept:+"$kept"} "${images[@]}" >"$env_file"
echo "offline: the images are named in $env_file; start with: docker compose up -d"
