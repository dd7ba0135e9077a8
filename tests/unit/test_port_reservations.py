"""The tests' port reservations: no port handed out twice while held, and each usable by the
server it was taken for."""

from __future__ import annotations

import asyncio

from ccfleet.embedded_redis import free_port
from tests.processes import PortReservations


def test_a_held_port_is_never_handed_out_again_and_its_server_listens_on_it() -> None:
    ports = PortReservations()
    try:
        taken = [ports.take() for _ in range(200)]
        assert len(set(taken)) == len(taken)
        assert not set(taken) & {free_port() for _ in range(2_000)}
        asyncio.run(_serve_on(taken[0]))  # as a front end binds it: SO_REUSEADDR, listening
    finally:
        ports.release()


async def _serve_on(port: int) -> None:
    server = await asyncio.start_server(lambda _reader, _writer: None, "127.0.0.1", port)
    server.close()
    await server.wait_closed()
