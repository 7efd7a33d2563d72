#!/usr/bin/env bash
# Builds the hands sandbox image (loopd-sandbox:latest) without pulling from any container registry:
# from loopd's base image (deploy/base/build.sh, which debootstraps a minimal Debian bookworm from the
# machine's own apt mirror and `docker import`s it, and is built here when missing), it adds the agent
# user and /workspace. Users who can pull base images may use the Dockerfile beside this script instead.
#
# Usage: deploy/sandbox/build.sh [--force | --check]
#   --force                 rebuild even when the image already exists
#   --check                 build nothing; succeed only if the image exists and is built for the user
#   LOOPD_BASE_IMAGE        the base it starts from (default: loopd-base:bookworm); see deploy/base/build.sh
#                           for how that is made (LOOPD_DEBIAN_MIRROR, LOOPD_BASE_CA_BUNDLE)
#   LOOPD_SANDBOX_IMAGE     image tag to build (default: loopd-sandbox:latest)
#   LOOPD_SANDBOX_USER      uid:gid of the sandbox user (default: 64000:64000, which no host account
#                           should use); an existing image built for another one is rebuilt
set -euo pipefail

IMAGE="${LOOPD_SANDBOX_IMAGE:-loopd-sandbox:latest}"
SANDBOX_USER="${LOOPD_SANDBOX_USER:-64000:64000}"
# Hands read the user an image was built for from this label (services/hands/sandbox/image_user.py).
USER_LABEL=org.loopd.sandbox.user
FORCE=0
CHECK=0

for arg in "$@"; do
  case "$arg" in
    --force) FORCE=1 ;;
    --check) CHECK=1 ;;
    -h|--help) sed -n '2,14p' "$0"; exit 0 ;;
    *) echo "build.sh: unknown argument: $arg" >&2; exit 2 ;;
  esac
done

if [[ ! "$SANDBOX_USER" =~ ^([1-9][0-9]*):([1-9][0-9]*)$ ]]; then
  echo "build.sh: LOOPD_SANDBOX_USER must be uid:gid, numeric and not root (got '$SANDBOX_USER')" >&2
  exit 2
fi
AGENT_UID="${BASH_REMATCH[1]}"
AGENT_GID="${BASH_REMATCH[2]}"

# Gives the agent user of the existing image another uid:gid, without downloading anything: only the
# account and the owner of its home and of /workspace change.
reown() {
  local container
  container="$(docker create --pull never --network none --user 0:0 "$IMAGE" /bin/sh -c \
    "groupmod --gid $AGENT_GID agent && usermod --uid $AGENT_UID --gid $AGENT_GID agent && chown -R $AGENT_UID:$AGENT_GID /workspace /home/agent")"
  # shellcheck disable=SC2064  # the container's id is known now
  trap "docker rm -f $container >/dev/null 2>&1 || true" EXIT
  docker start --attach "$container"
  docker commit \
    --change 'CMD ["sleep", "infinity"]' \
    --change "USER $SANDBOX_USER" --change "LABEL $USER_LABEL=$SANDBOX_USER" \
    "$container" "$IMAGE" >/dev/null
  echo "build.sh: $IMAGE now runs as $SANDBOX_USER"
}

if docker image inspect "$IMAGE" >/dev/null 2>&1; then
  built_for="$(docker image inspect -f "{{ index .Config.Labels \"$USER_LABEL\" }}" "$IMAGE")"
  if [[ "$built_for" == "$SANDBOX_USER" ]]; then
    if [[ "$CHECK" == 1 ]]; then exit 0; fi
    if [[ "$FORCE" == 0 ]]; then
      echo "build.sh: $IMAGE already exists (use --force to rebuild)"
      exit 0
    fi
  else
    # Images from before the label ran as 1000:1000, a real account on many hosts.
    echo "build.sh: $IMAGE was built for user ${built_for:-1000:1000 (unlabelled)}, not $SANDBOX_USER"
    if [[ "$CHECK" == 1 ]]; then exit 1; fi
    if [[ "$FORCE" == 0 ]]; then
      reown
      exit 0
    fi
  fi
elif [[ "$CHECK" == 1 ]]; then
  echo "build.sh: $IMAGE does not exist"
  exit 1
fi

# One bootstrap of Debian serves every image built without a registry: the sandbox is that base
# with the agent user and its /workspace.
bash "$(dirname "$0")/../base/build.sh"
BASE="${LOOPD_BASE_IMAGE:-loopd-base:bookworm}"

echo "build.sh: making $IMAGE from $BASE"
container="$(docker create --pull never --network none --user 0:0 "$BASE" /bin/sh -c \
  "groupadd --gid $AGENT_GID agent && useradd --uid $AGENT_UID --gid $AGENT_GID --create-home --shell /bin/bash agent && install -d -o $AGENT_UID -g $AGENT_GID -m 0755 /workspace")"
# shellcheck disable=SC2064  # the container's id is known now
trap "docker rm -f $container >/dev/null 2>&1 || true" EXIT
docker start --attach "$container"
docker commit \
  --change "ENV HOME=/tmp" \
  --change "USER $SANDBOX_USER" \
  --change "LABEL $USER_LABEL=$SANDBOX_USER" \
  --change "WORKDIR /workspace" \
  --change 'CMD ["sleep", "infinity"]' \
  "$container" "$IMAGE" >/dev/null
echo "build.sh: built $IMAGE"
