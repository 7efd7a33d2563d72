"""The embedded local stack: embedded PostgreSQL, an in-process bus, and the gateway, brain and hands
roles under one supervisor process. Tool calls still run in real Docker sandboxes over gRPC.
"""

from __future__ import annotations

import asyncio
import logging
from contextlib import AsyncExitStack

import uvicorn
from pydantic import SecretStr

from services.brain.worker import BrainWorker
from services.core import keys
from services.core.artifacts import build_artifact_store
from services.core.db.migrate import upgrade_async
from services.core.identity import stack_id, stored_value
from services.core.process import open_bus, open_engine
from services.core.settings import Settings
from services.gateway.app import create_app
from services.local.postgres import EmbeddedPostgres

logger = logging.getLogger(__name__)
ADMIN_KEY_FILE = "admin-key"


class LocalStack:
    """Async context manager; `url` is the gateway's base URL once entered."""

    def __init__(self, settings: Settings) -> None:
        data_dir = settings.data_dir.resolve()
        self.postgres = EmbeddedPostgres(data_dir / "postgres")
        key_file = data_dir / ADMIN_KEY_FILE
        # The first start makes the stack's admin key; `new_admin_key` says this start made it.
        self.new_admin_key = settings.admin_key is None and not key_file.exists()
        admin_key = (
            settings.admin_key.get_secret_value()
            if settings.admin_key is not None
            else stored_value(key_file, keys.mint)
        )
        self.admin_key = admin_key
        self.settings = settings.model_copy(
            update={
                "admin_key": SecretStr(admin_key),
                "bus_url": "local://",
                "artifacts_dir": settings.artifacts_dir
                if settings.artifacts_dir.is_absolute()
                else data_dir / "artifacts",
                # A stable id lets the next start remove sandboxes left by a stack that was killed.
                "hands_id": settings.hands_id or f"local-{stack_id(settings)}",
            }
        )
        self._exit = AsyncExitStack()
        self._server: uvicorn.Server | None = None
        self._serving: asyncio.Task[None] | None = None

    @property
    def headers(self) -> dict[str, str]:
        """What a request of the root tenant's admin carries."""
        return {"Authorization": f"Bearer {self.admin_key}"}

    @property
    def url(self) -> str:
        return f"http://{self.settings.host}:{self.settings.port}"

    async def __aenter__(self) -> LocalStack:
        database_url = await asyncio.to_thread(self._start_postgres)
        self._exit.callback(self.postgres.stop)
        # The stack owns its database, so it always migrates it, once, before any role starts.
        await upgrade_async(database_url)
        self.settings = self.settings.model_copy(
            update={"database_url": database_url, "migrate_on_start": False}
        )
        bus = await self._exit.enter_async_context(open_bus(self.settings))
        engine = await self._exit.enter_async_context(open_engine(self.settings))
        artifacts = build_artifact_store(self.settings)

        from services.hands.server import HandsWorker  # the brain-only path never imports Docker

        await self._exit.enter_async_context(HandsWorker(self.settings, bus, artifacts))
        await self._exit.enter_async_context(BrainWorker(self.settings, engine, bus, artifacts))
        config = uvicorn.Config(
            create_app(self.settings, bus=bus),
            host=self.settings.host,
            port=self.settings.port,
            log_level="warning",
            lifespan="on",
        )
        self._server = uvicorn.Server(config)
        self._serving = asyncio.create_task(self._server.serve())
        while not self._server.started:
            if self._serving.done():
                await self._serving  # surfaces the bind error
                raise RuntimeError(f"the gateway could not start on {self.url}")
            await asyncio.sleep(0.05)
        return self

    def _start_postgres(self) -> str:
        # PostgreSQL runs as its own user under root, so its parent folder must be traversable.
        self.postgres.data_dir.parent.mkdir(parents=True, exist_ok=True)
        self.postgres.data_dir.parent.chmod(0o755)
        return self.postgres.start()

    async def wait_closed(self) -> None:
        """Return when the gateway stops serving (uvicorn ends it on SIGINT or SIGTERM)."""
        if self._serving is not None:
            await self._serving

    async def __aexit__(self, *exc_info: object) -> None:
        if self._server is not None and self._serving is not None:
            self._server.should_exit = True
            await asyncio.gather(self._serving, return_exceptions=True)
        await self._exit.aclose()
