"""`fulmen serve`: serving, and handing over to a new process when the plugins change.

`fulmen serve` (one worker) serves in its own process. When the set of installed
plugins changes (an install, upgrade or uninstall, by the CLI or the admin API),
code cannot be swapped in place, so a fresh worker process is started on the same
listening socket (inherited, so connections waiting to be accepted are shared, not
lost); once it is ready (migrated, plugins started) the old worker stops accepting
and drains its in-flight requests. The first process then stays on as a thin
supervisor: it keeps the socket, watches the plugins and repeats the handover for
each change, passes SIGTERM/SIGINT on and exits with its worker's status.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import subprocess
import sys
import time
from typing import Any

from .plugins.watcher import PluginWatch
from .server import HeaderTimeoutProtocol

log = logging.getLogger(__name__)
READY_TIMEOUT = 120.0


def bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(2048)
    sock.set_inheritable(True)
    return sock


def uvicorn_config(app: Any, settings: Any) -> Any:
    import uvicorn

    return uvicorn.Config(
        app, log_level=settings.log_level.lower(), access_log=False, http=HeaderTimeoutProtocol,
        timeout_keep_alive=settings.keep_alive_timeout, timeout_graceful_shutdown=8,
        lifespan="on",
    )


class Worker:
    """A worker process on the shared socket; `ready()` once it serves."""

    def __init__(self, sock: socket.socket) -> None:
        read_fd, write_fd = os.pipe()
        env = {**os.environ, "FULMEN_LISTEN_FD": str(sock.fileno()),
               "FULMEN_READY_FD": str(write_fd)}
        self.proc = subprocess.Popen([sys.executable, "-m", "fulmen.supervisor"], env=env,
                                     pass_fds=(sock.fileno(), write_fd))
        os.close(write_fd)
        self._ready_fd = read_fd

    def ready(self, timeout: float = READY_TIMEOUT) -> bool:
        import select

        try:
            readable, _, _ = select.select([self._ready_fd], [], [], timeout)
            return bool(readable) and os.read(self._ready_fd, 1) == b"r"
        finally:
            os.close(self._ready_fd)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()


def hand_over(sock: socket.socket, old: Any, children: list[Worker] | None = None) -> Worker | None:
    """Start a new worker (added to `children` at once); once it is ready,
    `old()` is told to drain. None (and the old one keeps serving) when the
    new one fails to start."""
    worker = Worker(sock)
    if children is not None:
        children.append(worker)
    if worker.ready():
        log.info("worker %s is ready; the previous one drains", worker.proc.pid)
        old()
        return worker
    log.error("a new worker failed to start (status %s); the previous one keeps serving",
              worker.proc.poll())
    worker.stop()
    return None


def serve(settings: Any) -> int:
    """Serve on one socket in this process; hand over on plugin changes (see above)."""
    import asyncio

    import uvicorn

    from .app import create_app

    sock = bind(settings.host, settings.port)
    watch = PluginWatch()  # before discovery: a plugin installed meanwhile counts as a change
    app = create_app(settings)
    server = uvicorn.Server(uvicorn_config(app, settings))
    successor: list[Worker] = []

    def drain_self() -> None:
        server.should_exit = True

    async def watch_plugins() -> None:
        while not server.should_exit:
            await asyncio.sleep(settings.plugin_rescan_interval)
            if server.started and await asyncio.to_thread(watch.changed):
                app.state.host.handing_over = True
                worker = await asyncio.to_thread(hand_over, sock, drain_self)
                if worker:
                    successor.append(worker)
                    return
                app.state.host.handing_over = False

    async def run() -> None:
        watcher = asyncio.ensure_future(watch_plugins())
        try:
            await server.serve(sockets=[socket.socket(fileno=os.dup(sock.fileno()))])
        finally:
            watcher.cancel()

    uvicorn_run(run, server)
    if not successor:
        return 0 if server.started else 3
    return supervise(sock, successor[0], watch, settings.plugin_rescan_interval)


def uvicorn_run(main: Any, server: Any) -> None:
    from uvicorn._compat import asyncio_run

    asyncio_run(main(), loop_factory=server.config.get_loop_factory())


def supervise(sock: socket.socket, worker: Worker, watch: PluginWatch, interval: float) -> int:
    children = [worker]  # the serving one, those draining and one starting
    stopping: list[int] = []

    def forward(signum: int, _: Any) -> None:
        stopping.append(signum)
        for child in children:
            if child.proc.poll() is None:
                child.proc.send_signal(signum)

    signal.signal(signal.SIGTERM, forward)
    signal.signal(signal.SIGINT, forward)
    next_check = time.monotonic() + interval
    while True:
        status = worker.proc.poll()
        if status is not None:
            for child in children:
                child.proc.wait()
            if stopping:  # end as a single-process server does: by the signal received
                signal.signal(stopping[0], signal.SIG_DFL)
                signal.raise_signal(stopping[0])
            return status if status >= 0 else 128 - status
        children[:] = [c for c in children if c.proc.poll() is None]
        if not stopping and time.monotonic() >= next_check:
            if watch.changed():
                current = worker
                current.proc.send_signal(signal.SIGUSR1)  # handing over: see run_worker
                new = hand_over(sock, current.stop, children)
                if new is None:
                    current.proc.send_signal(signal.SIGUSR2)  # it keeps serving, as before
                else:
                    worker = new
                    if stopping:  # SIGTERM came while it started
                        new.proc.send_signal(stopping[0])
            next_check = time.monotonic() + interval
        time.sleep(0.1)


def run_worker() -> None:
    """A worker started by `Worker`: serve on the inherited socket, say when ready,
    and stop when the supervisor goes away."""
    import asyncio

    import uvicorn

    from .app import create_app
    from .settings import Settings

    settings = Settings()
    logging.basicConfig(level=settings.log_level,
                        format="%(asctime)s %(levelname)s %(name)s %(message)s")
    sock = socket.socket(fileno=int(os.environ.pop("FULMEN_LISTEN_FD")))
    ready_fd = int(os.environ.pop("FULMEN_READY_FD"))
    parent = os.getppid()
    app = create_app(settings)
    server = uvicorn.Server(uvicorn_config(app, settings))

    def handing_over(signum: int, _: Any) -> None:
        app.state.host.handing_over = signum == signal.SIGUSR1  # SIGUSR2: it was called off

    signal.signal(signal.SIGUSR1, handing_over)
    signal.signal(signal.SIGUSR2, handing_over)

    async def main() -> None:
        serving = asyncio.ensure_future(server.serve(sockets=[sock]))
        while not server.started and not serving.done():
            await asyncio.sleep(0.02)
        if server.started:
            os.write(ready_fd, b"r")
        os.close(ready_fd)
        while not serving.done():  # an orphan (the supervisor was killed) stops
            if os.getppid() != parent:
                server.should_exit = True
            await asyncio.wait([serving], timeout=1)
        serving.result()

    uvicorn_run(main, server)
    sys.exit(0 if server.started else 3)


if __name__ == "__main__":
    run_worker()
