"""Hands' end of the channel to a sandbox's executor (inside/executor.py): a unix socket hands listens on.

The socket lives in a directory of its own per sandbox, bind-mounted read-only into the sandbox: the
executor can connect (connecting writes nothing to the file system) but nothing inside can replace
the socket. Hands keeps only the first connection after `expect()`: the executor, which connects
before any tool exists; later attempts (a tool dialling the socket) are closed at once. Frames are two
big-endian u32 lengths, a JSON header and a payload; replies carry the id of the request they answer.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import os
import shutil
import struct
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

HEAD = struct.Struct(">II")
SOCKET_NAME = "exec.sock"
# The reply types that end a request.
FINAL = frozenset({"exit", "done", "scan", "error"})

Frame = tuple[dict[str, Any], bytes]


class ChannelClosed(Exception):
    """The executor's connection is gone: the sandbox died, or is being restarted."""


class Reply:
    """The replies to one request, in order."""

    def __init__(self) -> None:
        self._queue: asyncio.Queue[Frame | None] = asyncio.Queue()

    def put(self, frame: Frame | None) -> None:
        self._queue.put_nowait(frame)

    async def next(self, timeout: float | None = None) -> Frame:
        """The next reply; raises ChannelClosed, or TimeoutError after `timeout` seconds."""
        # asyncio.timeout, not wait_for: on Python 3.11 wait_for can swallow a cancellation.
        async with asyncio.timeout(timeout):
            frame = await self._queue.get()
        if frame is None:
            raise ChannelClosed("the sandbox's executor disconnected")
        return frame


class ExecutorChannel:
    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self._server: asyncio.Server | None = None
        self._writer: asyncio.StreamWriter | None = None
        self._accepting = True
        self._connected = asyncio.Event()
        self._replies: dict[int, Reply] = {}
        self._ids = itertools.count(1)

    async def open(self) -> None:
        """Create the directory (only its own sandbox ever sees it) and listen in it."""
        await asyncio.to_thread(self.directory.mkdir, mode=0o755, parents=True)
        path = self.directory / SOCKET_NAME
        self._server = await asyncio.start_unix_server(self._accept, path=str(path))
        # The sandbox user is not hands' user; the directory's mount is what limits who can connect.
        await asyncio.to_thread(os.chmod, path, 0o666)

    @property
    def connected(self) -> bool:
        return self._writer is not None

    async def wait_connected(self, timeout: float) -> bool:
        try:
            async with asyncio.timeout(timeout):
                await self._connected.wait()
        except TimeoutError:
            return False
        return True

    def expect(self) -> None:
        """Drop the current connection and keep the next one (the executor of a restarted sandbox)."""
        self._disconnect()
        self._accepting = True

    @asynccontextmanager
    async def ask(self, header: dict[str, Any], payload: bytes = b"") -> AsyncIterator[Reply]:
        """Send one request; the Reply yields its replies until the context ends."""
        writer = self._writer
        if writer is None:
            raise ChannelClosed("the sandbox's executor is not connected")
        request_id = next(self._ids)
        reply = self._replies[request_id] = Reply()
        try:
            data = json.dumps({**header, "id": request_id}, separators=(",", ":")).encode()
            writer.write(HEAD.pack(len(data), len(payload)) + data)
            if payload:
                writer.write(payload)
            try:
                await writer.drain()
            except (ConnectionError, RuntimeError) as exc:
                raise ChannelClosed(f"the sandbox's executor disconnected: {exc}") from exc
            yield reply
        finally:
            self._replies.pop(request_id, None)

    async def call(
        self, header: dict[str, Any], payload: bytes = b"", timeout: float = 30.0
    ) -> dict[str, Any]:
        """Send a request whose only reply is its final one, and return that reply's header."""
        async with self.ask(header, payload) as reply:
            head, _ = await reply.next(timeout)
            return head

    async def close(self) -> None:
        self._accepting = False
        self._disconnect()
        if self._server is not None:
            self._server.close()
            self._server = None
        await asyncio.to_thread(shutil.rmtree, self.directory, True)

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if not self._accepting:
            writer.close()
            return
        self._accepting = False
        self._writer = writer
        self._connected.set()
        try:
            while True:
                head_size, payload_size = HEAD.unpack(await reader.readexactly(HEAD.size))
                header = json.loads(await reader.readexactly(head_size))
                payload = await reader.readexactly(payload_size) if payload_size else b""
                reply = self._replies.get(header.get("id", 0))
                # A reply nobody waits for belongs to a request its caller gave up on.
                if reply is not None:
                    reply.put((header, payload))
        except (asyncio.IncompleteReadError, ConnectionError, ValueError):
            pass
        finally:
            if self._writer is writer:
                self._disconnect()

    def _disconnect(self) -> None:
        writer, self._writer = self._writer, None
        self._connected.clear()
        if writer is not None:
            with contextlib.suppress(RuntimeError):
                writer.close()
        for reply in self._replies.values():
            reply.put(None)
