#!/bin/sh
# A Redis pod of the Sentinel group starts as a replica of the primary the sentinels name;
# when no sentinel answers (a new group, or all restarting), pod 0 is the primary.
set -eu
group=ccfleet-redis-headless
self="$POD_NAME.$group"
primary=""
for i in 0 1 2; do
  primary=$(redis-cli -h "ccfleet-redis-$i.$group" -p 26379 --no-auth-warning -a "$REDIS_PASSWORD" \
    sentinel get-master-addr-by-name ccfleet 2>/dev/null | head -n 1) || primary=""
  [ -n "$primary" ] && break
done
if [ -z "$primary" ]; then
  primary="ccfleet-redis-0.$group"
fi
set -- --requirepass "$REDIS_PASSWORD" --masterauth "$REDIS_PASSWORD" \
  --replica-announce-ip "$self" \
  --appendonly yes --dir /data \
  --maxmemory 512mb --maxmemory-policy noeviction
if [ "$primary" != "$self" ]; then
  set -- "$@" --replicaof "$primary" 6379
fi
# Redis rewrites its process title, so the password does not stay in `ps`.
exec redis-server "$@"
