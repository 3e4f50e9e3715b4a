"""uvicorn serving an app in a background thread, for tests that need a real
server: its HTTP/1.1 connection handling and its websocket handshake."""

from __future__ import annotations

import asyncio
import socket
import threading
from pathlib import Path
from types import TracebackType
from typing import Any

import uvicorn

from sessionguard import SessionGuard


class LiveServer:
    """uvicorn on a free loopback port (``url``: ``http://127.0.0.1:<port>``)
    with the ``websockets-sansio`` implementation. The thread runs its own event loop;
    the guard's async store is closed in that loop once the server has stopped
    (its connections belong there). A context manager. ``tls``: the certificate
    and key files to serve HTTPS with (``url`` then starts with ``https``)."""

    def __init__(self, app: Any, guard: SessionGuard, *, tls: tuple[Path, Path] | None = None) -> None:
        self._socket = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._socket.bind(("127.0.0.1", 0))
        self.port: int = self._socket.getsockname()[1]
        self.url = f"{'http' if tls is None else 'https'}://127.0.0.1:{self.port}"
        certificate = {} if tls is None else {"ssl_certfile": str(tls[0]), "ssl_keyfile": str(tls[1])}
        config = uvicorn.Config(app, log_level="warning", lifespan="off", ws="websockets-sansio", http="h11",
                                proxy_headers=False, **certificate)
        self._server = uvicorn.Server(config)
        self._guard = guard
        self._thread = threading.Thread(target=asyncio.run, args=(self._serve(),), daemon=True)

    def __enter__(self) -> LiveServer:
        self._thread.start()
        waiting = threading.Event()
        while not self._server.started and self._thread.is_alive():
            waiting.wait(0.02)
        assert self._server.started, "uvicorn did not start"
        return self

    async def _serve(self) -> None:
        try:
            await self._server.serve(sockets=[self._socket])
        finally:
            await self._guard.async_store.close()

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 trace: TracebackType | None) -> None:
        self._server.should_exit = True
        self._thread.join(10)
        self._socket.close()
