#!/usr/bin/env bash
# Builds loopd's base image (loopd-base:bookworm) without pulling from any container registry:
# debootstrap a minimal Debian bookworm root file system from the machine's own apt mirror, then
# `docker import` it. Every image loopd builds without a registry starts from it: the sandbox
# (deploy/sandbox/build.sh), and loopd, PostgreSQL and Redis (deploy/offline.sh), so one bootstrap
# serves them all. It has Python 3.11 with venv, procps, and the CA certificates of Debian and of the
# machine that builds it (so that apt and pip inside builds trust what the host trusts).
#
# Usage: deploy/base/build.sh [--force | --check]
#   --force                 rebuild even when the image already exists
#   --check                 build nothing; succeed only if the image exists and has today's packages
#   LOOPD_BASE_IMAGE        image tag to build (default: loopd-base:bookworm)
#   LOOPD_DEBIAN_MIRROR     Debian mirror URL to bootstrap from (default: read from the apt sources)
#   LOOPD_BASE_CA_BUNDLE    extra CA certificates (PEM) the image trusts (default: the host's bundle,
#                           /etc/ssl/certs/ca-certificates.crt, if there is one; empty for none)
set -euo pipefail

IMAGE="${LOOPD_BASE_IMAGE:-loopd-base:bookworm}"
SUITE=bookworm
PACKAGES=ca-certificates,python3,python3-venv,procps
HOST_BUNDLE=/etc/ssl/certs/ca-certificates.crt
if [[ -v LOOPD_BASE_CA_BUNDLE ]]; then
  CA_BUNDLE="$LOOPD_BASE_CA_BUNDLE"
elif [[ -f "$HOST_BUNDLE" ]]; then
  CA_BUNDLE="$HOST_BUNDLE"
else
  CA_BUNDLE=""
fi
# An image made from another package list is rebuilt like a missing one.
PACKAGES_LABEL=org.loopd.base.packages
FORCE=0
CHECK=0

for arg in "$@"; do
  case "$arg" in
    --force) FORCE=1 ;;
    --check) CHECK=1 ;;
    -h | --help) sed -n '2,15p' "$0"; exit 0 ;;
    *) echo "base/build.sh: unknown argument: $arg" >&2; exit 2 ;;
  esac
done

if docker image inspect "$IMAGE" >/dev/null 2>&1; then
  built_with="$(docker image inspect -f "{{ index .Config.Labels \"$PACKAGES_LABEL\" }}" "$IMAGE")"
  if [[ "$built_with" == "$PACKAGES" ]]; then
    if [[ "$CHECK" == 1 ]]; then exit 0; fi
    if [[ "$FORCE" == 0 ]]; then
      echo "base/build.sh: $IMAGE already exists (use --force to rebuild)"
      exit 0
    fi
  else
    echo "base/build.sh: $IMAGE has packages '${built_with}', not '$PACKAGES'"
    if [[ "$CHECK" == 1 ]]; then exit 1; fi
  fi
elif [[ "$CHECK" == 1 ]]; then
  echo "base/build.sh: $IMAGE does not exist"
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
  echo "base/build.sh: no Debian mirror found in the apt sources; set LOOPD_DEBIAN_MIRROR" >&2
  exit 1
fi

ROOTFS="$(mktemp -d)"
cleanup() {
  # debootstrap mounts proc/sys inside the target; never let rm descend into them after a failed run.
  umount -R "$ROOTFS/proc" "$ROOTFS/sys" 2>/dev/null || true
  rm -rf --one-file-system "$ROOTFS"
}
trap cleanup EXIT

echo "base/build.sh: bootstrapping $SUITE from $MIRROR"
debootstrap --variant=minbase --include="$PACKAGES" "$SUITE" "$ROOTFS" "$MIRROR"

if [[ -n "$CA_BUNDLE" ]]; then
  # As local CAs, one file each, they survive every later regeneration of the bundle (a package
  # that adds CAs); the ones Debian has already are harmless twins.
  local_cas="$ROOTFS/usr/local/share/ca-certificates/loopd-build-host"
  install -d -m 0755 "$local_cas"
  awk -v dir="$local_cas" '
    /-----BEGIN CERTIFICATE-----/ { file = sprintf("%s/%03d.crt", dir, ++n) }
    file != "" { print > file }
    /-----END CERTIFICATE-----/ { close(file); file = "" }
  ' "$CA_BUNDLE"
  chroot "$ROOTFS" update-ca-certificates >/dev/null
fi
# The engine provides both at run time; the build host's own would only be misleading.
echo localhost >"$ROOTFS/etc/hostname"
: >"$ROOTFS/etc/resolv.conf"
# Images built from this one install their packages afresh; old lists and archives only add size.
rm -rf "$ROOTFS"/var/cache/apt/archives/*.deb "$ROOTFS"/var/lib/apt/lists/*

echo "base/build.sh: importing $IMAGE"
tar --numeric-owner -C "$ROOTFS" -c . | docker import \
  --change "ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin" \
  --change "ENV LANG=C.UTF-8" \
  --change "LABEL $PACKAGES_LABEL=$PACKAGES" \
  --change 'CMD ["/bin/bash"]' \
  - "$IMAGE"
echo "base/build.sh: built $IMAGE"
