#!/usr/bin/env bash
# Writes an overlay's secrets.env, which its secretGenerator turns into the Secret loopd-secrets:
#   dev         random passwords for the in-cluster PostgreSQL and Redis, and their URLs
#   production  LOOPD_DATABASE_URL and LOOPD_BUS_URL from the environment (required)
# and for both a random LOOPD_ADMIN_KEY and LOOPD_HANDS_SECRET. LOOPD_OPENAI_API_KEY,
# LOOPD_ANTHROPIC_API_KEY, LOOPD_S3_ACCESS_KEY_ID and LOOPD_S3_SECRET_ACCESS_KEY are copied from the
# environment when set. Values already in the file are kept, so running it again changes nothing.
set -euo pipefail

overlay="${1:-}"
case "$overlay" in
  dev | production) ;;
  *)
    echo "usage: $0 dev|production" >&2
    exit 2
    ;;
esac
env_file="$(cd "$(dirname "$0")" && pwd)/overlays/$overlay/secrets.env"

# Hex only: the values go into URLs unescaped.
random() { od -An -N24 -tx1 /dev/urandom | tr -d ' \n'; }
has() { grep -q "^$1=" "$env_file"; }
value_of() { sed -n "s/^$1=//p" "$env_file"; }
put() { has "$1" || echo "$1=$2" >>"$env_file"; }

(umask 077 && touch "$env_file")
chmod 600 "$env_file"
put LOOPD_ADMIN_KEY "lk_$(random)"
put LOOPD_HANDS_SECRET "$(random)"
if [ "$overlay" = dev ]; then
  put LOOPD_POSTGRES_PASSWORD "$(random)"
  put LOOPD_REDIS_PASSWORD "$(random)"
  put LOOPD_DATABASE_URL \
    "postgresql+psycopg://loopd:$(value_of LOOPD_POSTGRES_PASSWORD)@loopd-postgres:5432/loopd"
  put LOOPD_BUS_URL "redis://:$(value_of LOOPD_REDIS_PASSWORD)@loopd-redis:6379/0"
else
  for name in LOOPD_DATABASE_URL LOOPD_BUS_URL; do
    if ! has "$name"; then
      if [ -z "${!name:-}" ]; then
        echo "secrets: set $name (postgresql+psycopg://... and redis://...) for the production overlay" >&2
        exit 1
      fi
      put "$name" "${!name}"
    fi
  done
fi
for name in LOOPD_OPENAI_API_KEY LOOPD_ANTHROPIC_API_KEY LOOPD_S3_ACCESS_KEY_ID LOOPD_S3_SECRET_ACCESS_KEY; do
  if [ -n "${!name:-}" ]; then
    put "$name" "${!name}"
  fi
done
echo "secrets: $env_file (the root tenant's admin key is LOOPD_ADMIN_KEY there)"
