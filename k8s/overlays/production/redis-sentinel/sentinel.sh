#!/bin/sh
# This pod's sentinel: it watches the primary the other sentinels name (pod 0 in a new group)
# and, with one other sentinel agreeing, promotes a replica when the primary is gone 3 s.
set -eu
# $group and $primary: primary.sh, mounted beside this script.
. "${0%/*}/primary.sh"
# A sentinel rewrites its configuration file: it lives in an emptyDir.
cat > /sentinel/sentinel.conf <<CONF
port 26379
requirepass $REDIS_PASSWORD
sentinel sentinel-pass $REDIS_PASSWORD
sentinel resolve-hostnames yes
sentinel announce-hostnames yes
sentinel announce-ip $POD_NAME.$group
sentinel monitor ccfleet $primary 6379 2
sentinel auth-pass ccfleet $REDIS_PASSWORD
sentinel down-after-milliseconds ccfleet 3000
sentinel failover-timeout ccfleet 10000
sentinel parallel-syncs ccfleet 1
CONF
exec redis-server /sentinel/sentinel.conf --sentinel
