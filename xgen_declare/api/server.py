"""`run --api`: uvicorn in a thread of the daemon's process, sharing the daemon (and its control loop)."""

from __future__ import annotations

import asyncio
import logging
import threading
import time

import uvicorn

from xgen_declare.api.app import AnsweredOnce, create_app
from xgen_declare.api.context import ApiContext
from xgen_declare.api.shedding import (ACCEPT_BURST, OncePerInterval, Shedding, connection_cap, protocol_class,
                                       raise_fd_limit)
from xgen_declare.http.security import ApiSetupError, check_bind, load_token

log = logging.getLogger("xgen_declare.api")
UVICORN_LOG = "uvicorn.error"  # one line per malformed request, per refused upgrade...: once per interval


class _Server(uvicorn.Server):
    """uvicorn's server with its event loop's errors (accept() failing: EMFILE...) logged once per interval."""

    def __init__(self, config: uvicorn.Config, shed: Shedding):
        super().__init__(config)
        self.shed = shed
        self.loop: asyncio.AbstractEventLoop | None = None  # the server's event loop, once serving

    async def serve(self, sockets=None) -> None:
        self.loop = asyncio.get_running_loop()
        self.loop.set_exception_handler(self.shed.loop_error)
        await super().serve(sockets)


class ApiServer:
    def __init__(self, daemon, host: str | None = None, port: int | None = None, environ: dict | None = None):
        config = daemon.env.config
        settings = config.api
        self.host = host or settings.host
        self.port = settings.port if port is None else port
        token = load_token(settings, config, environ)
        check_bind(self.host, token)
        self.ctx = ApiContext(daemon, settings, self.host, token)
        self.app = create_app(self.ctx)
        self.server: uvicorn.Server | None = None
        self.thread: threading.Thread | None = None

    def start(self, timeout: float = 15.0) -> None:
        """Listen (in a thread); raises ApiSetupError when the address cannot be bound."""
        self.ctx.attach()
        settings = self.ctx.settings
        cap = connection_cap(settings.max_connections, raise_fd_limit())
        shed = Shedding(cap, settings.header_timeout, settings.body_timeout)
        cfg = uvicorn.Config(AnsweredOnce(self.app), host=self.host, port=self.port, log_level="warning",
                             access_log=False, lifespan="off", server_header=False, timeout_graceful_shutdown=2,
                             http=protocol_class(shed), backlog=ACCEPT_BURST)
        uvicorn_log = logging.getLogger(UVICORN_LOG)
        if not any(isinstance(f, OncePerInterval) for f in uvicorn_log.filters):
            uvicorn_log.addFilter(OncePerInterval())
        self.server = _Server(cfg, shed)
        self.thread = threading.Thread(target=self.server.run, name="xgen-api", daemon=True)
        self.thread.start()
        deadline = time.monotonic() + timeout
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                self.stop()
                raise ApiSetupError(f"the API cannot listen on {self.host}:{self.port} (see the message above; "
                                    "--api-port picks another port)")
            time.sleep(0.02)
        url = f"http://{self.host if ':' not in self.host else f'[{self.host}]'}:{self.port}"
        log.info("management API on %s/api/management (%s)", url,
                 "token required for writes" if self.ctx.token else "no token")
        store = self.ctx.daemon.env.store
        info = store.daemon_info()
        info["api"] = url  # for `doctor`; cleared when the daemon starts again
        store.write_daemon_info(info)

    def stop(self) -> None:
        self.ctx.detach()
        if self.server is not None:
            self.server.should_exit = True
        if self.thread is not None:
            self.thread.join(10)
