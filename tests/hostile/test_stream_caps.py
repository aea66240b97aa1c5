"""Open streams are capped per address and per key: the next WebSocket
handshake is refused, the next SSE stream answers 429; closing one frees a slot."""

import asyncio
import contextlib
from collections.abc import AsyncIterator

import httpx
import pytest
import uvicorn
import websockets
from fulmen.testing import free_port


@contextlib.asynccontextmanager
async def serve(app) -> AsyncIterator[str]:
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, lifespan="off",
                                           log_level="warning"))
    server.install_signal_handlers = lambda: None  # type: ignore[method-assign]
    task = asyncio.ensure_future(server.serve())
    while not server.started:
        assert not task.done(), task
        await asyncio.sleep(0.01)
    try:
        yield f"127.0.0.1:{port}"
    finally:
        server.should_exit = server.force_exit = True
        await asyncio.wait_for(task, 10)


async def test_websocket_and_sse_caps(fulmen) -> None:
    await fulmen.start(max_streams_per_address=5, max_streams_per_key=2)
    alice = await fulmen.wallet("alice")
    async with serve(fulmen.app) as where:
        url = f"ws://{where}/api/v1/ws/{alice.inkey}"
        first = await websockets.connect(url)
        second = await websockets.connect(url)
        with pytest.raises(websockets.exceptions.InvalidStatus):
            await websockets.connect(url)  # a third stream on one key
        await first.close()
        await asyncio.sleep(0.2)
        third = await websockets.connect(url)  # a slot was freed
        async with httpx.AsyncClient(base_url=f"http://{where}") as client:
            # Another key (the read key): two slots of its own.
            async with client.stream("GET", "/api/v1/events", headers=alice.read_headers) as s1:
                assert s1.status_code == 200
                async with client.stream("GET", "/api/v1/events",
                                         headers=alice.read_headers) as s2:
                    assert s2.status_code == 200
                    async with client.stream("GET", "/api/v1/events",
                                             headers=alice.read_headers) as s3:
                        assert s3.status_code == 429 and "retry-after" in s3.headers
        await asyncio.sleep(0.2)
        for _ in range(2):  # the SSE slots are free again
            async with httpx.AsyncClient(base_url=f"http://{where}") as client:
                async with client.stream("GET", "/api/v1/events",
                                         headers=alice.read_headers) as s:
                    assert s.status_code == 200
        await second.close()
        await third.close()
