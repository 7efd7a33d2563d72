"""The asyncio loopd client: the same calls as `Client`, awaited."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, AsyncIterator
from contextlib import aclosing, asynccontextmanager
from dataclasses import replace
from datetime import date, datetime
from pathlib import Path
from types import TracebackType
from typing import Any

import httpx
from httpx_sse import aconnect_sse

from loopd import calls
from loopd.calls import DEFAULT_URL, AuditQuery, Call, Quotas, decode, parse, parse_list
from loopd.downloads import VerifiedFile, safe_join
from loopd.errors import LoopdAPIError, LoopdError, connection_error
from loopd.models import (
    Agent,
    ApiKey,
    Artifact,
    AuditEntry,
    AuditPage,
    Environment,
    EnvironmentVersion,
    Event,
    EventPage,
    HandsWorker,
    NewApiKey,
    NewTenant,
    Page,
    Run,
    RunDiff,
    Secret,
    Tenant,
    UsageReport,
)
from loopd.stream import (
    Backoff,
    ReconnectPolicy,
    StreamCursor,
    already_ended,
    decode_message,
    is_latest_end,
    stream_closed,
)


class AsyncClient:
    """Talks to a loopd gateway from asyncio code. Use `async with`, or await `aclose()`.

    `api_key` (or `token`, its older name) is sent as in `Client`.
    """

    def __init__(
        self,
        base_url: str = DEFAULT_URL,
        *,
        api_key: str | None = None,
        token: str | None = None,
        timeout: float = 30.0,
        stream_read_timeout: float = 60.0,
        reconnect: ReconnectPolicy | None = None,
        headers: dict[str, str] | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        key = calls.chosen_key(api_key, token)
        self.reconnect = reconnect or ReconnectPolicy()
        self._stream_timeout = httpx.Timeout(timeout, read=stream_read_timeout)
        self._http = httpx.AsyncClient(
            transport=transport, **calls.http_options(base_url, key, timeout, headers)
        )

    async def aclose(self) -> None:
        await self._http.aclose()

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()

    async def create_agent(self, spec: dict[str, Any], *, agent_id: str | None = None) -> Agent:
        return parse(Agent, await self._send(calls.create_agent(spec, agent_id)))

    async def update_agent(self, agent_id: str, spec: dict[str, Any]) -> Agent:
        return parse(Agent, await self._send(calls.update_agent(agent_id, spec)))

    async def list_agents(self, *, limit: int | None = None, cursor: str | None = None) -> Page[Agent]:
        return parse(Page[Agent], await self._send(calls.list_agents(limit, cursor)))

    async def get_agent(self, agent_id: str, *, version: int | None = None) -> Agent:
        return parse(Agent, await self._send(calls.get_agent(agent_id, version)))

    async def create_run(
        self,
        input: str,
        *,
        agent: dict[str, Any] | None = None,
        agent_id: str | None = None,
        agent_version: int | None = None,
        metadata: dict[str, Any] | None = None,
        idempotency_key: str | None = None,
        budget: dict[str, Any] | None = None,
        environment: dict[str, Any] | None = None,
    ) -> Run:
        call = calls.create_run(
            input,
            agent=agent,
            agent_id=agent_id,
            agent_version=agent_version,
            metadata=metadata,
            idempotency_key=idempotency_key,
            budget=budget,
            environment=environment,
        )
        return parse(Run, await self._send(call))

    async def list_runs(
        self, *, status: str | None = None, limit: int | None = None, cursor: str | None = None
    ) -> Page[Run]:
        return parse(Page[Run], await self._send(calls.list_runs(status, limit, cursor)))

    async def get_run(self, run_id: str) -> Run:
        return parse(Run, await self._send(calls.get_run(run_id)))

    async def send_message(self, run_id: str, content: str) -> Run:
        return parse(Run, await self._send(calls.send_message(run_id, content)))

    async def cancel_run(self, run_id: str, *, reason: str | None = None) -> Run:
        return parse(Run, await self._send(calls.cancel_run(run_id, reason)))

    async def approve(self, run_id: str, call_id: str, message: str | None = None) -> Run:
        return parse(Run, await self._send(calls.decide_approval(run_id, call_id, "allow", message)))

    async def deny(self, run_id: str, call_id: str, message: str) -> Run:
        return parse(Run, await self._send(calls.decide_approval(run_id, call_id, "deny", message)))

    async def reply(self, run_id: str, content: Any) -> Run:
        return parse(Run, await self._send(calls.send_message(run_id, content)))

    async def interrupt(self, run_id: str, message: str | None = None) -> Run:
        return parse(Run, await self._send(calls.interrupt(run_id, message)))

    async def raise_budget(
        self,
        run_id: str,
        *,
        max_steps: int | None = None,
        max_tokens: int | None = None,
        max_cost_usd: float | None = None,
        max_wall_time_seconds: float | None = None,
    ) -> Run:
        limits = {
            "max_steps": max_steps,
            "max_tokens": max_tokens,
            "max_cost_usd": max_cost_usd,
            "max_wall_time_seconds": max_wall_time_seconds,
        }
        return parse(Run, await self._send(calls.raise_budget(run_id, limits)))

    async def fork(
        self,
        run_id: str,
        at_seq: int,
        *,
        model: str | None = None,
        system: str | None = None,
        tool_result: dict[str, Any] | None = None,
    ) -> Run:
        call = calls.fork(run_id, at_seq, model=model, system=system, tool_result=tool_result)
        return parse(Run, await self._send(call))

    async def diff(self, run_a: str, run_b: str) -> RunDiff:
        return parse(RunDiff, await self._send(calls.diff(run_a, run_b)))

    async def submit_tool_result(self, run_id: str, call_id: str, output: str, *, ok: bool = True) -> Run:
        return parse(Run, await self._send(calls.submit_tool_result(run_id, call_id, output, ok)))

    async def list_events(self, run_id: str, *, after: int = 0, limit: int | None = None) -> EventPage:
        return parse(EventPage, await self._send(calls.list_events(run_id, after, limit)))

    async def iter_events(self, run_id: str, *, after: int = 0) -> AsyncIterator[Event]:
        """Every persisted event with seq > `after`, page by page, without waiting for new ones."""
        while True:
            page = await self.list_events(run_id, after=after)
            for event in page.data:
                yield event
            if page.next_after is None or not page.data:
                return
            after = page.next_after

    async def stream_events(self, run_id: str, *, after: int = 0) -> AsyncIterator[Event]:
        """Yield events with seq > `after` live until the run ends; see `Client.stream_events`."""
        if already_ended(after, await self.get_run(run_id)):
            return
        cursor = StreamCursor(after)
        backoff = Backoff(self.reconnect)
        while True:
            try:
                # aclosing: leaving early must close the connection now, not whenever the loop gets to it.
                async with aclosing(self._stream_once(run_id, cursor, backoff)) as events:
                    async for event in events:
                        yield event
                        if event.is_terminal and await self._is_latest_end(run_id, event):
                            return
                error: LoopdError = stream_closed()
            except httpx.TransportError as transport_error:
                error = connection_error(transport_error, self.base_url)
            except LoopdAPIError as api_error:
                error = api_error
            await asyncio.sleep(backoff.next_delay(error))

    async def wait(self, run_id: str, *, after: int = 0) -> Run:
        """Wait until the run ends (a waiting run has not) and return its final state."""
        async for _ in self.stream_events(run_id, after=after):
            pass
        return await self.get_run(run_id)

    async def list_artifacts(self, run_id: str) -> list[Artifact]:
        return parse_list(Artifact, await self._send(calls.list_artifacts(run_id)))

    async def download_artifact(self, run_id: str, artifact: Artifact, directory: str | Path) -> Path:
        """Save one artifact under `directory` at its relative path, verifying size and sha256."""
        destination = safe_join(directory, artifact.path)
        async with self._stream(calls.get_artifact(run_id, artifact.path)) as response:
            with VerifiedFile(destination, artifact.sha256, artifact.size) as file:
                async for chunk in response.aiter_bytes():
                    file.write(chunk)
        return destination

    async def create_key(
        self, name: str, *, role: str = "member", expires_at: datetime | None = None
    ) -> NewApiKey:
        return parse(NewApiKey, await self._send(calls.create_key(name, role, expires_at)))

    async def list_keys(self) -> list[ApiKey]:
        return parse_list(ApiKey, await self._send(calls.list_keys()))

    async def revoke_key(self, key_id: str) -> ApiKey:
        return parse(ApiKey, await self._send(calls.revoke_key(key_id)))

    async def create_tenant(
        self, tenant_id: str, *, name: str | None = None, quotas: Quotas | None = None
    ) -> NewTenant:
        return parse(NewTenant, await self._send(calls.create_tenant(tenant_id, name, quotas)))

    async def list_tenants(self) -> list[Tenant]:
        return parse_list(Tenant, await self._send(calls.list_tenants()))

    async def get_tenant(self, tenant_id: str) -> Tenant:
        return parse(Tenant, await self._send(calls.get_tenant(tenant_id)))

    async def update_tenant(
        self, tenant_id: str, *, name: str | None = None, quotas: Quotas | None = None
    ) -> Tenant:
        return parse(Tenant, await self._send(calls.update_tenant(tenant_id, name, quotas)))

    async def create_tenant_key(
        self, tenant_id: str, name: str, *, role: str = "member", expires_at: datetime | None = None
    ) -> NewApiKey:
        call = calls.create_tenant_key(tenant_id, name, role, expires_at)
        return parse(NewApiKey, await self._send(call))

    async def create_environment(self, spec: dict[str, Any]) -> Environment:
        """A new environment at version 1: `spec` holds its id and name (optional) and the sandbox's
        image, runtime, limits, workspace_size, network and secrets (docs/environments.md)."""
        return parse(Environment, await self._send(calls.create_environment(spec)))

    async def new_environment_version(self, environment_id: str, spec: dict[str, Any]) -> Environment:
        """The environment's next version, from a whole spec; runs already started keep theirs."""
        return parse(Environment, await self._send(calls.new_environment_version(environment_id, spec)))

    async def list_environments(
        self, *, include_archived: bool = False, limit: int | None = None, cursor: str | None = None
    ) -> Page[Environment]:
        """One page of the tenant's environments, newest first, each at its latest version."""
        call = calls.list_environments(include_archived, limit, cursor)
        return parse(Page[Environment], await self._send(call))

    async def get_environment(self, environment_id: str, *, version: int | None = None) -> Environment:
        return parse(Environment, await self._send(calls.get_environment(environment_id, version)))

    async def list_environment_versions(self, environment_id: str) -> list[EnvironmentVersion]:
        """Every version of the environment, newest first."""
        return parse_list(
            EnvironmentVersion, await self._send(calls.list_environment_versions(environment_id))
        )

    async def archive_environment(self, environment_id: str) -> Environment:
        return parse(Environment, await self._send(calls.archive_environment(environment_id)))

    async def set_secret(self, name: str, value: str) -> Secret:
        """Store (or replace) a secret; the server seals it and never shows it again."""
        return parse(Secret, await self._send(calls.set_secret(name, value)))

    async def list_secrets(self) -> list[Secret]:
        """The tenant's secrets by name; never their values."""
        return parse_list(Secret, await self._send(calls.list_secrets()))

    async def delete_secret(self, name: str) -> None:
        await self._send(calls.delete_secret(name))

    async def read_audit(self, query: AuditQuery | None = None) -> AuditPage:
        return parse(AuditPage, await self._send(calls.read_audit(query or AuditQuery())))

    async def iter_audit(self, query: AuditQuery | None = None) -> AsyncIterator[AuditEntry]:
        """Every audit entry `query` matches, page after page."""
        query = query or AuditQuery()
        while True:
            page = await self.read_audit(query)
            for entry in page.data:
                yield entry
            if page.next_after is None or not page.data:
                return
            query = replace(query, after=page.next_after)

    async def list_hands(self) -> list[HandsWorker]:
        return parse_list(HandsWorker, await self._send(calls.list_hands()))

    async def usage(
        self, *, since: date | None = None, until: date | None = None, all_tenants: bool = False
    ) -> UsageReport:
        """Tokens, cost, tool calls and sandbox seconds per agent and per UTC day (see Client.usage)."""
        return parse(UsageReport, await self._send(calls.usage(since, until, all_tenants)))

    async def health(self, *, ready: bool = False) -> Any:
        return await self._send(calls.health(ready))

    async def _send(self, call: Call) -> Any:
        try:
            response = await self._http.request(call.method, call.path, **call.request_options())
        except httpx.TransportError as error:
            raise connection_error(error, self.base_url) from None
        return decode(response)

    @asynccontextmanager
    async def _stream(self, call: Call) -> AsyncIterator[httpx.Response]:
        try:
            async with self._http.stream(call.method, call.path, **call.request_options()) as response:
                if response.is_error:
                    await response.aread()
                    decode(response)
                yield response
        except httpx.TransportError as error:
            raise connection_error(error, self.base_url) from None

    async def _stream_once(
        self, run_id: str, cursor: StreamCursor, backoff: Backoff
    ) -> AsyncGenerator[Event, None]:
        call = calls.stream_events(run_id, cursor.last_seq)
        options = call.request_options()
        async with aconnect_sse(
            self._http, call.method, call.path, timeout=self._stream_timeout, **options
        ) as source:
            if source.response.is_error:
                await source.response.aread()
                decode(source.response)
            backoff.connected()
            async for message in source.aiter_sse():
                event = decode_message(message)
                if event is None or not cursor.is_new(event):
                    continue
                if cursor.missing_before(event):
                    async for earlier in self._backfill(run_id, cursor, event):
                        yield earlier
                cursor.advance(event)
                yield event

    async def _backfill(self, run_id: str, cursor: StreamCursor, event: Event) -> AsyncIterator[Event]:
        assert event.seq is not None
        while cursor.last_seq < event.seq - 1:
            page = await self.list_events(
                run_id, after=cursor.last_seq, limit=event.seq - 1 - cursor.last_seq
            )
            missing = [e for e in page.data if e.seq is not None and cursor.last_seq < e.seq < event.seq]
            if not missing:
                return
            for earlier in missing:
                cursor.advance(earlier)
                yield earlier

    async def _is_latest_end(self, run_id: str, event: Event) -> bool:
        try:
            run = await self.get_run(run_id)
        except LoopdError:
            return True
        return is_latest_end(run, event)
