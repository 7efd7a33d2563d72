#!/usr/bin/env bash
# Builds the hands sandbox image (loopd-sandbox:latest) without pulling from any container registry:
# debootstrap a minimal Debian bookworm root file system from the machine's own apt mirror, then
# `docker import` it. Users who can pull base images may use the Dockerfile beside this script instead.
#
# Usage: deploy/sandbox/build.sh [--force]
#   --force                 rebuild even when the image already exists
#   LOOPD_DEBIAN_MIRROR     Debian mirror URL to bootstrap from (default: read from the apt sources)
#   LOOPD_SANDBOX_IMAGE     image tag to build (default: loopd-sandbox:latest)
set -euo pipefail

IMAGE="${LOOPD_SANDBOX_IMAGE:-loopd-sandbox:latest}"
SUITE=bookworm
AGENT_UID=1000
FORCE=0

for arg in "$@"; do
  case "$arg" in
    --force) FORCE=1 ;;
    -h|--help) sed -n '2,10p' "$0"; exit 0 ;;
    *) echo "build.sh: unknown argument: $arg" >&2; exit 2 ;;
  esac
done

if [[ "$FORCE" == 0 ]] && docker image inspect "$IMAGE" >/dev/null 2>&1; then
  echo "build.sh: $IMAGE already exists (use --force to rebuild)"
  exit 0
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

chroot "$ROOTFS" groupadd --gid "$AGENT_UID" agent
chroot "$ROOTFS" useradd --uid "$AGENT_UID" --gid "$AGENT_UID" --create-home --shell /bin/bash agent
install -d -o "$AGENT_UID" -g "$AGENT_UID" -m 0755 "$ROOTFS/workspace"
# Package caches only make the image bigger; the sandbox never runs apt.
rm -rf "$ROOTFS"/var/cache/apt/archives/*.deb "$ROOTFS"/var/lib/apt/lists/*

echo "build.sh: importing $IMAGE"
tar --numeric-owner -C "$ROOTFS" -c . | docker import \
  --change "ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin" \
  --change "ENV LANG=C.UTF-8" \
  --change "ENV HOME=/tmp" \
  --change "USER $AGENT_UID:$AGENT_UID" \
  --change "WORKDIR /workspace" \
  --change 'CMD ["sleep", "infinity"]' \
  - "$IMAGE"
echo "build.sh: built $IMAGE"
