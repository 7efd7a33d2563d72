#!/usr/bin/env bash
# Writes the compose deployment's secrets to .env beside docker-compose.yml (compose reads it):
# random passwords for PostgreSQL and Redis, the hands secret, and the root tenant's admin API key.
# Values already in .env are kept, so running it again changes nothing.
#
# Usage: deploy/compose-env.sh [DIR]
#   DIR   the compose project folder to write .env in (default: the repository root)
set -euo pipefail
cd "${1:-$(dirname "$0")/..}"

env_file=.env
touch "$env_file"
chmod 600 "$env_file"
for name in LOOPD_POSTGRES_PASSWORD LOOPD_REDIS_PASSWORD LOOPD_HANDS_SECRET; do
  if ! grep -q "^${name}=" "$env_file"; then
    # Hex only: the values go into URLs unescaped.
    echo "${name}=$(od -An -N24 -tx1 /dev/urandom | tr -d ' \n')" >>"$env_file"
  fi
done
if ! grep -q "^LOOPD_ADMIN_KEY=" "$env_file"; then
  # An API key as loopd mints them: lk_ and 256 random bits.
  echo "LOOPD_ADMIN_KEY=lk_$(od -An -N32 -tx1 /dev/urandom | tr -d ' \n')" >>"$env_file"
fi
echo "compose-env: secrets are in $PWD/$env_file (LOOPD_ADMIN_KEY is the root tenant's admin API key)"
