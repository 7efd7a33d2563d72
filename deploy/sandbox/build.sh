#!/usr/bin/env bash
# Builds the hands sandbox image (loopd-sandbox:latest) without pulling from any container registry:
# debootstrap a minimal Debian bookworm root file system from the machine's own apt mirror, then
# `docker import` it. Users who can pull base images may use the Dockerfile beside this script instead.
#
# Usage: deploy/sandbox/build.sh [--force | --check]
#   --force                 rebuild even when the image already exists
#   --check                 build nothing; succeed only if the image exists and is built for the user
#   LOOPD_DEBIAN_MIRROR     Debian mirror URL to bootstrap from (default: read from the apt sources)
#   LOOPD_SANDBOX_IMAGE     image tag to build (default: loopd-sandbox:latest)
#   LOOPD_SANDBOX_USER      uid:gid of the sandbox user (default: 64000:64000, which no host account
#                           should use); an existing image built for another one is rebuilt
set -euo pipefail

IMAGE="${LOOPD_SANDBOX_IMAGE:-loopd-sandbox:latest}"
SUITE=bookworm
SANDBOX_USER="${LOOPD_SANDBOX_USER:-64000:64000}"
# Hands read the user an image was built for from this label (services/hands/sandbox/image_user.py).
USER_LABEL=org.loopd.sandbox.user
FORCE=0
CHECK=0

for arg in "$@"; do
  case "$arg" in
    --force) FORCE=1 ;;
    --check) CHECK=1 ;;
    -h|--help) sed -n '2,13p' "$0"; exit 0 ;;
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

# Prints the first Debian archive URI configured for apt, preferring the stanza or line that serves $SUITE.
# The security archive only carries *-security suites, so it is never picked for a plain suite.
apt_mirror() {
  local found=""
  shopt -s nullglob
  local deb822=(/etc/apt/sources.list.d/*.sources)
  shopt -u nullglob
  if ((${#deb822[@]})); then
    found="$(awk -v suite="$SUITE" '
      function flush() { if (uri != "" && has_suite && best == "") best = uri; if (uri != "" && first == "" && uri !~ /security/) first = uri; uri = ""; has_suite = 0 }
      /^[[:space:]]*$/ { flush(); next }
      /^URIs:/ { uri = $2 }
      /^Suites:/ { for (i = 2; i <= NF; i++) if ($i == suite) has_suite = 1 }
      END { flush(); print (best != "" ? best : first) }
    ' "${deb822[@]}")"
  fi
  if [[ -z "$found" && -f /etc/apt/sources.list ]]; then
    found="$(awk -v suite="$SUITE" '
      $1 == "deb" {
        i = 2; if ($i ~ /^\[/) { while ($i !~ /\]$/) i++; i++ }
        if ($(i + 1) == suite && best == "") best = $i
        if (first == "" && $i !~ /security/) first = $i
      }
      END { print (best != "" ? best : first) }
    ' /etc/apt/sources.list)"
  fi
  echo "$found"
}

MIRROR="${LOOPD_DEBIAN_MIRROR:-$(apt_mirror)}"
if [[ -z "$MIRROR" ]]; then
  echo "build.sh: no Debian mirror found in the apt sources; set LOOPD_DEBIAN_MIRROR" >&2
  exit 1
fi

ROOTFS="$(mktemp -d)"
cleanup() {
  # debootstrap mounts proc/sys inside the target; never let rm descend into them after a failed run.
  umount -R "$ROOTFS/proc" "$ROOTFS/sys" 2>/dev/null || true
  rm -rf --one-file-system "$ROOTFS"
}
trap cleanup EXIT

echo "build.sh: bootstrapping $SUITE from $MIRROR"
debootstrap --variant=minbase --include=python3,procps "$SUITE" "$ROOTFS" "$MIRROR"

chroot "$ROOTFS" groupadd --gid "$AGENT_GID" agent
chroot "$ROOTFS" useradd --uid "$AGENT_UID" --gid "$AGENT_GID" --create-home --shell /bin/bash agent
install -d -o "$AGENT_UID" -g "$AGENT_GID" -m 0755 "$ROOTFS/workspace"
# Package caches only make the image bigger; the sandbox never runs apt.
rm -rf "$ROOTFS"/var/cache/apt/archives/*.deb "$ROOTFS"/var/lib/apt/lists/*

echo "build.sh: importing $IMAGE"
tar --numeric-owner -C "$ROOTFS" -c . | docker import \
  --change "ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin" \
  --change "ENV LANG=C.UTF-8" \
  --change "ENV HOME=/tmp" \
  --change "USER $SANDBOX_USER" \
  --change "LABEL $USER_LABEL=$SANDBOX_USER" \
  --change "WORKDIR /workspace" \
  --change 'CMD ["sleep", "infinity"]' \
  - "$IMAGE"
echo "build.sh: built $IMAGE"
