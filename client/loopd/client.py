"""The synchronous loopd client: one method per v1 API call, plus a resilient live event stream."""

from __future__ import annotations

import time
from collections.abc import Generator, Iterator
from contextlib import contextmanager
from dataclasses import replace
from datetime import date, datetime
from pathlib import Path
from types import TracebackType
from typing import Any

import httpx
from httpx_sse import connect_sse

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


class Client:
    """Talks to a loopd gateway. Use as a context manager, or call `close()` when done.

    `api_key` (an `lk_...` key; `token` is its older name) goes on every request as
    `Authorization: Bearer`; its role and tenant decide what the calls may see and do.
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
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        key = calls.chosen_key(api_key, token)
        self.reconnect = reconnect or ReconnectPolicy()
        # The server pings idle streams every few seconds; silence longer than this means a dead link.
        self._stream_timeout = httpx.Timeout(timeout, read=stream_read_timeout)
        self._http = httpx.Client(transport=transport, **calls.http_options(base_url, key, timeout, headers))

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def create_agent(self, spec: dict[str, Any], *, agent_id: str | None = None) -> Agent:
        """Store an agent spec as version 1 of a new agent."""
        return parse(Agent, self._send(calls.create_agent(spec, agent_id)))

    def update_agent(self, agent_id: str, spec: dict[str, Any]) -> Agent:
        """Store `spec` as the next immutable version of an agent."""
        return parse(Agent, self._send(calls.update_agent(agent_id, spec)))

    def list_agents(self, *, limit: int | None = None, cursor: str | None = None) -> Page[Agent]:
        return parse(Page[Agent], self._send(calls.list_agents(limit, cursor)))

    def get_agent(self, agent_id: str, *, version: int | None = None) -> Agent:
        return parse(Agent, self._send(calls.get_agent(agent_id, version)))

    def create_run(
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
        """Start a run of an inline `agent` spec or of a stored agent (`agent_id`, optional version).

        `budget` overrides the agent's limits for this run: any of `max_steps`, `max_tokens`,
        `max_cost_usd` and `max_wall_time_seconds`.
        """
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
        return parse(Run, self._send(call))

    def list_runs(
        self, *, status: str | None = None, limit: int | None = None, cursor: str | None = None
    ) -> Page[Run]:
        return parse(Page[Run], self._send(calls.list_runs(status, limit, cursor)))

    def get_run(self, run_id: str) -> Run:
        return parse(Run, self._send(calls.get_run(run_id)))

    def send_message(self, run_id: str, content: str) -> Run:
        """Add a user message; a waiting or finished (not cancelled) run resumes with it."""
        return parse(Run, self._send(calls.send_message(run_id, content)))

    def cancel_run(self, run_id: str, *, reason: str | None = None) -> Run:
        return parse(Run, self._send(calls.cancel_run(run_id, reason)))

    def approve(self, run_id: str, call_id: str, message: str | None = None) -> Run:
        """Let a tool call that waits for approval run; `message` is passed on to the model."""
        return parse(Run, self._send(calls.decide_approval(run_id, call_id, "allow", message)))

    def deny(self, run_id: str, call_id: str, message: str) -> Run:
        """Refuse a tool call that waits for approval; the model gets `message` as the call's error."""
        return parse(Run, self._send(calls.decide_approval(run_id, call_id, "deny", message)))

    def reply(self, run_id: str, content: Any) -> Run:
        """Answer an `ask_user` question with any JSON value, checked against the question's schema."""
        return parse(Run, self._send(calls.send_message(run_id, content)))

    def interrupt(self, run_id: str, message: str | None = None) -> Run:
        """Without `message`, pause the run until a message is sent; with one, deliver it after this step."""
        return parse(Run, self._send(calls.interrupt(run_id, message)))

    def raise_budget(
        self,
        run_id: str,
        *,
        max_steps: int | None = None,
        max_tokens: int | None = None,
        max_cost_usd: float | None = None,
        max_wall_time_seconds: float | None = None,
    ) -> Run:
        """Give a run that waits at a limit new, higher limits, and let it go on."""
        limits = {
            "max_steps": max_steps,
            "max_tokens": max_tokens,
            "max_cost_usd": max_cost_usd,
            "max_wall_time_seconds": max_wall_time_seconds,
        }
        return parse(Run, self._send(calls.raise_budget(run_id, limits)))

    def fork(
        self,
        run_id: str,
        at_seq: int,
        *,
        model: str | None = None,
        system: str | None = None,
        tool_result: dict[str, Any] | None = None,
    ) -> Run:
        """Start a new run from this run's log and workspace as they were at seq `at_seq`.

        The fork may use another `model` or `system` prompt, or replace one tool call's result with
        `tool_result={"call_id": ..., "output": ...}`.
        """
        call = calls.fork(run_id, at_seq, model=model, system=system, tool_result=tool_result)
        return parse(Run, self._send(call))

    def diff(self, run_a: str, run_b: str) -> RunDiff:
        """Where two runs' logs diverge, and each run's events from there."""
        return parse(RunDiff, self._send(calls.diff(run_a, run_b)))

    def submit_tool_result(self, run_id: str, call_id: str, output: str, *, ok: bool = True) -> Run:
        """Hand back the result of a client tool call the run waits on; `ok=False` marks an error."""
        return parse(Run, self._send(calls.submit_tool_result(run_id, call_id, output, ok)))

    def list_events(self, run_id: str, *, after: int = 0, limit: int | None = None) -> EventPage:
        """One page of persisted events with seq > `after`."""
        return parse(EventPage, self._send(calls.list_events(run_id, after, limit)))

    def iter_events(self, run_id: str, *, after: int = 0) -> Iterator[Event]:
        """Every persisted event with seq > `after`, page by page, without waiting for new ones."""
        while True:
            page = self.list_events(run_id, after=after)
            yield from page.data
            if page.next_after is None or not page.data:
                return
            after = page.next_after

    def stream_events(self, run_id: str, *, after: int = 0) -> Iterator[Event]:
        """Yield events with seq > `after` as they happen, until the run ends.

        A dropped connection is reopened with backoff and resumes after the last seq yielded, so
        no persisted event is yielded twice or skipped. The stream ends after a `run.completed`,
        `run.failed` or `run.cancelled` event that is the run's latest.
        """
        if already_ended(after, self.get_run(run_id)):
            return
        cursor = StreamCursor(after)
        backoff = Backoff(self.reconnect)
        while True:
            try:
                ended = yield from self._stream_once(run_id, cursor, backoff)
                if ended:
                    return
                error: LoopdError = stream_closed()
            except httpx.TransportError as transport_error:
                error = connection_error(transport_error, self.base_url)
            except LoopdAPIError as api_error:
                error = api_error
            time.sleep(backoff.next_delay(error))

    def wait(self, run_id: str, *, after: int = 0) -> Run:
        """Block until the run ends and return its final state.

        A run that waits (for an approval, an answer, a budget raise...) has not ended, so this keeps
        blocking; to answer a run as it goes, watch `stream_events` for `run.waiting` events.
        """
        for _ in self.stream_events(run_id, after=after):
            pass
        return self.get_run(run_id)

    def list_artifacts(self, run_id: str) -> list[Artifact]:
        return parse_list(Artifact, self._send(calls.list_artifacts(run_id)))

    def download_artifact(self, run_id: str, artifact: Artifact, directory: str | Path) -> Path:
        """Save one artifact under `directory` at its relative path, verifying size and sha256."""
        destination = safe_join(directory, artifact.path)
        with (
            self._stream(calls.get_artifact(run_id, artifact.path)) as response,
            VerifiedFile(destination, artifact.sha256, artifact.size) as file,
        ):
            for chunk in response.iter_bytes():
                file.write(chunk)
        return destination

    def download_artifacts(self, run_id: str, directory: str | Path) -> list[Path]:
        """Save every artifact of a run under `directory`; stops at the first failure."""
        return [self.download_artifact(run_id, a, directory) for a in self.list_artifacts(run_id)]

    def create_key(self, name: str, *, role: str = "member", expires_at: datetime | None = None) -> NewApiKey:
        """A new key of the caller's tenant (admins only); `.key` is the key, shown this once."""
        return parse(NewApiKey, self._send(calls.create_key(name, role, expires_at)))

    def list_keys(self) -> list[ApiKey]:
        """The tenant's keys, newest first, revoked and expired ones too; never the keys themselves."""
        return parse_list(ApiKey, self._send(calls.list_keys()))

    def revoke_key(self, key_id: str) -> ApiKey:
        """Refuse a key from the next request on, on every gateway; revoking twice is harmless."""
        return parse(ApiKey, self._send(calls.revoke_key(key_id)))

    def create_tenant(
        self, tenant_id: str, *, name: str | None = None, quotas: Quotas | None = None
    ) -> NewTenant:
        """A new tenant and its first admin key (`.admin_key.key`, shown this once). Root admins only."""
        return parse(NewTenant, self._send(calls.create_tenant(tenant_id, name, quotas)))

    def list_tenants(self) -> list[Tenant]:
        """Every tenant of the deployment. Root admins only."""
        return parse_list(Tenant, self._send(calls.list_tenants()))

    def get_tenant(self, tenant_id: str) -> Tenant:
        """A tenant and its quotas: root admins read any, a tenant's admins their own."""
        return parse(Tenant, self._send(calls.get_tenant(tenant_id)))

    def update_tenant(
        self, tenant_id: str, *, name: str | None = None, quotas: Quotas | None = None
    ) -> Tenant:
        """Rename a tenant or set its quotas; `quotas` replaces them as a whole. Root admins only."""
        return parse(Tenant, self._send(calls.update_tenant(tenant_id, name, quotas)))

    def create_tenant_key(
        self, tenant_id: str, name: str, *, role: str = "member", expires_at: datetime | None = None
    ) -> NewApiKey:
        """A key of another tenant, e.g. for one that lost its admin keys. Root admins only."""
        return parse(NewApiKey, self._send(calls.create_tenant_key(tenant_id, name, role, expires_at)))

    def create_environment(self, spec: dict[str, Any]) -> Environment:
        """A new environment at version 1: `spec` holds its id and name (optional) and the sandbox's
        image, runtime, limits, workspace_size, network and secrets (docs/environments.md)."""
        return parse(Environment, self._send(calls.create_environment(spec)))

    def new_environment_version(self, environment_id: str, spec: dict[str, Any]) -> Environment:
        """The environment's next version, from a whole spec; runs already started keep theirs."""
        return parse(Environment, self._send(calls.new_environment_version(environment_id, spec)))

    def list_environments(
        self, *, include_archived: bool = False, limit: int | None = None, cursor: str | None = None
    ) -> Page[Environment]:
        """One page of the tenant's environments, newest first, each at its latest version."""
        call = calls.list_environments(include_archived, limit, cursor)
        return parse(Page[Environment], self._send(call))

    def get_environment(self, environment_id: str, *, version: int | None = None) -> Environment:
        return parse(Environment, self._send(calls.get_environment(environment_id, version)))

    def list_environment_versions(self, environment_id: str) -> list[EnvironmentVersion]:
        """Every version of the environment, newest first."""
        return parse_list(EnvironmentVersion, self._send(calls.list_environment_versions(environment_id)))

    def archive_environment(self, environment_id: str) -> Environment:
        return parse(Environment, self._send(calls.archive_environment(environment_id)))

    def set_secret(self, name: str, value: str) -> Secret:
        """Store (or replace) a secret; the server seals it and never shows it again."""
        return parse(Secret, self._send(calls.set_secret(name, value)))

    def list_secrets(self) -> list[Secret]:
        """The tenant's secrets by name; never their values."""
        return parse_list(Secret, self._send(calls.list_secrets()))

    def delete_secret(self, name: str) -> None:
        self._send(calls.delete_secret(name))

    def read_audit(self, query: AuditQuery | None = None) -> AuditPage:
        """One page of the tenant's audit log, oldest first (admins only); see `AuditQuery`."""
        return parse(AuditPage, self._send(calls.read_audit(query or AuditQuery())))

    def iter_audit(self, query: AuditQuery | None = None) -> Iterator[AuditEntry]:
        """Every audit entry `query` matches, page after page."""
        query = query or AuditQuery()
        while True:
            page = self.read_audit(query)
            yield from page.data
            if page.next_after is None or not page.data:
                return
            query = replace(query, after=page.next_after)

    def list_hands(self) -> list[HandsWorker]:
        return parse_list(HandsWorker, self._send(calls.list_hands()))

    def usage(
        self, *, since: date | None = None, until: date | None = None, all_tenants: bool = False
    ) -> UsageReport:
        """Tokens, cost, tool calls and sandbox seconds per agent and per UTC day, from `since` to
        `until` (both included; this calendar month by default). `all_tenants` (admins of the root
        tenant) reports every tenant's."""
        return parse(UsageReport, self._send(calls.usage(since, until, all_tenants)))

    def health(self, *, ready: bool = False) -> Any:
        """`/healthz` (the process is up) or, with `ready`, `/readyz` (it can serve)."""
        return self._send(calls.health(ready))

    def _send(self, call: Call) -> Any:
        try:
            response = self._http.request(call.method, call.path, **call.request_options())
        except httpx.TransportError as error:
            raise connection_error(error, self.base_url) from None
        return decode(response)

    @contextmanager
    def _stream(self, call: Call) -> Iterator[httpx.Response]:
        try:
            with self._http.stream(call.method, call.path, **call.request_options()) as response:
                if response.is_error:
                    response.read()
                    decode(response)
                yield response
        except httpx.TransportError as error:
            raise connection_error(error, self.base_url) from None

    def _stream_once(
        self, run_id: str, cursor: StreamCursor, backoff: Backoff
    ) -> Generator[Event, None, bool]:
        """Follow one connection; returns True once the run has ended, False if the stream broke off."""
        call = calls.stream_events(run_id, cursor.last_seq)
        options = call.request_options()
        with connect_sse(
            self._http, call.method, call.path, timeout=self._stream_timeout, **options
        ) as source:
            if source.response.is_error:
                source.response.read()
                decode(source.response)
            backoff.connected()
            for message in source.iter_sse():
                event = decode_message(message)
                if event is None or not cursor.is_new(event):
                    continue
                if cursor.missing_before(event):
                    yield from self._backfill(run_id, cursor, event)
                cursor.advance(event)
                yield event
                if event.is_terminal and self._is_latest_end(run_id, event):
                    return True
        return False

    def _backfill(self, run_id: str, cursor: StreamCursor, event: Event) -> Iterator[Event]:
        # The server normally closes gaps itself; reading the log keeps the client exact regardless.
        assert event.seq is not None
        while cursor.last_seq < event.seq - 1:
            page = self.list_events(run_id, after=cursor.last_seq, limit=event.seq - 1 - cursor.last_seq)
            missing = [e for e in page.data if e.seq is not None and cursor.last_seq < e.seq < event.seq]
            if not missing:
                return
            for earlier in missing:
                cursor.advance(earlier)
                yield earlier

    def _is_latest_end(self, run_id: str, event: Event) -> bool:
        # A message can reopen a finished run, so an end event only ends the stream if nothing follows it.
        try:
            run = self.get_run(run_id)
        except LoopdError:
            return True
        return is_latest_end(run, event)
