#!/bin/sh
# A Redis pod of the Sentinel group starts as a replica of the primary the sentinels name;
# when no sentinel answers (a new group, or all restarting), pod 0 is the primary.
set -eu
# $group and $primary: primary.sh, mounted beside this script.
. "${0%/*}/primary.sh"
self="$POD_NAME.$group"
set -- --requirepass "$REDIS_PASSWORD" --masterauth "$REDIS_PASSWORD" \
  --replica-announce-ip "$self" \
  --appendonly yes --dir /data \
  --maxmemory 512mb --maxmemory-policy noeviction
if [ "$primary" != "$self" ]; then
  set -- "$@" --replicaof "$primary" 6379
fi
# Redis rewrites its process title, so the password does not stay in `ps`.
exec redis-server "$@"
