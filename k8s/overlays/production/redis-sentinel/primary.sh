# Sourced by redis.sh and sentinel.sh: sets $group, the pods' headless Service, and $primary,
# the primary the sentinels name; when no sentinel answers (a new group, or all restarting),
# pod 0.
group=ccfleet-redis-headless
primary=""
for i in 0 1 2; do
  primary=$(redis-cli -h "ccfleet-redis-$i.$group" -p 26379 --no-auth-warning -a "$REDIS_PASSWORD" \
    sentinel get-master-addr-by-name ccfleet 2>/dev/null | head -n 1) || primary=""
  [ -n "$primary" ] && break
done
if [ -z "$primary" ]; then
  primary="ccfleet-redis-0.$group"
fi
