"""How each v1 API call is phrased (method, path, query, body, headers), and how answers are read.

Both the sync and the async client send these same `Call`s, so the two cannot drift apart.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import date, datetime
from typing import Any, TypeVar
from urllib.parse import quote

import httpx
from pydantic import BaseModel, ValidationError

from loopd.downloads import quote_artifact_path
from loopd.errors import LoopdError, ProtocolError, api_error_from_response
from loopd.models import TenantQuotas

DEFAULT_URL = "http://127.0.0.1:8080"
USER_AGENT = "loopd-python"

ModelT = TypeVar("ModelT", bound=BaseModel)
Quotas = TenantQuotas | dict[str, Any]


@dataclass(frozen=True)
class AuditQuery:
    """Which audit entries to read: each filter narrows, `after` pages on by entry id."""

    action: str | None = None
    object_type: str | None = None
    object_id: str | None = None
    key_id: str | None = None
    after: int = 0
    limit: int | None = None


@dataclass(frozen=True)
class Call:
    method: str
    path: str
    params: dict[str, Any] = field(default_factory=dict)
    json: Any = None
    headers: dict[str, str] = field(default_factory=dict)

    def request_options(self) -> dict[str, Any]:
        """Keyword arguments for httpx's `request`/`stream`; unset query values are left out."""
        options: dict[str, Any] = {"params": {k: v for k, v in self.params.items() if v is not None}}
        if self.json is not None:
            options["json"] = self.json
        if self.headers:
            options["headers"] = self.headers
        return options


def chosen_key(api_key: str | None, token: str | None) -> str | None:
    """The API key a client sends: `api_key`, or `token`, its older name."""
    if api_key and token and api_key != token:
        raise LoopdError("give the key as api_key or as token, not two different ones", code="two_keys")
    return api_key or token or None


def http_options(
    base_url: str, api_key: str | None, timeout: float, headers: dict[str, str] | None
) -> dict[str, Any]:
    """Keyword arguments shared by the sync and async httpx clients."""
    merged = {"User-Agent": USER_AGENT, "Accept": "application/json", **(headers or {})}
    if api_key:
        merged["Authorization"] = f"Bearer {api_key}"
    return {"base_url": base_url.rstrip("/"), "headers": merged, "timeout": timeout}


def _segment(value: str) -> str:
    return quote(value, safe="")


def create_agent(spec: dict[str, Any], agent_id: str | None) -> Call:
    body = {**spec, "id": agent_id} if agent_id else dict(spec)
    return Call("POST", "/v1/agents", json=body)


def update_agent(agent_id: str, spec: dict[str, Any]) -> Call:
    body = {key: value for key, value in spec.items() if key != "id"}
    return Call("PUT", f"/v1/agents/{_segment(agent_id)}", json=body)


def list_agents(limit: int | None, cursor: str | None) -> Call:
    return Call("GET", "/v1/agents", params={"limit": limit, "cursor": cursor})


def get_agent(agent_id: str, version: int | None) -> Call:
    return Call("GET", f"/v1/agents/{_segment(agent_id)}", params={"version": version})


def create_run(
    user_input: str,
    *,
    agent: dict[str, Any] | None,
    agent_id: str | None,
    agent_version: int | None,
    metadata: dict[str, Any] | None,
    idempotency_key: str | None,
    budget: dict[str, Any] | None = None,
    environment: dict[str, Any] | None = None,
) -> Call:
    body: dict[str, Any] = {"input": user_input, "metadata": metadata or {}}
    if environment is not None:
        body["environment"] = environment
    if budget:
        body["budget"] = {key: value for key, value in budget.items() if value is not None}
    if agent is not None:
        body["agent"] = agent
    if agent_id is not None:
        body["agent_id"] = agent_id
    if agent_version is not None:
        body["agent_version"] = agent_version
    headers = {"Idempotency-Key": idempotency_key} if idempotency_key else {}
    return Call("POST", "/v1/runs", json=body, headers=headers)


def list_runs(status: str | None, limit: int | None, cursor: str | None) -> Call:
    return Call("GET", "/v1/runs", params={"status": status, "limit": limit, "cursor": cursor})


def get_run(run_id: str) -> Call:
    return Call("GET", f"/v1/runs/{_segment(run_id)}")


def list_events(run_id: str, after: int, limit: int | None) -> Call:
    return Call("GET", f"/v1/runs/{_segment(run_id)}/events", params={"after": after, "limit": limit})


def stream_events(run_id: str, last_seq: int) -> Call:
    # The header is what a browser EventSource would send; `after` covers proxies that drop it.
    headers = {"Last-Event-ID": str(last_seq)} if last_seq else {}
    return Call(
        "GET", f"/v1/runs/{_segment(run_id)}/events/stream", params={"after": last_seq}, headers=headers
    )


def send_message(run_id: str, content: Any) -> Call:
    # The same call carries a plain message and an `ask_user` answer, which may be any JSON value.
    return Call("POST", f"/v1/runs/{_segment(run_id)}/messages", json={"content": content})


def decide_approval(run_id: str, call_id: str, decision: str, message: str | None) -> Call:
    body: dict[str, Any] = {"decision": decision}
    if message is not None:
        body["message"] = message
    return Call("POST", f"/v1/runs/{_segment(run_id)}/approvals/{_segment(call_id)}", json=body)


def interrupt(run_id: str, message: str | None) -> Call:
    body = {"message": message} if message is not None else {}
    return Call("POST", f"/v1/runs/{_segment(run_id)}/interrupt", json=body)


def raise_budget(run_id: str, limits: dict[str, Any]) -> Call:
    body = {key: value for key, value in limits.items() if value is not None}
    if not body:
        raise LoopdError("name at least one limit to raise", code="invalid_budget")
    return Call("POST", f"/v1/runs/{_segment(run_id)}/budget", json=body)


def fork(
    run_id: str, at_seq: int, *, model: str | None, system: str | None, tool_result: dict[str, Any] | None
) -> Call:
    overrides: dict[str, Any] = {}
    if model is not None:
        overrides["model"] = model
    if system is not None:
        overrides["system"] = system
    if tool_result is not None:
        overrides["tool_result"] = tool_result
    body = {"at_seq": at_seq, "overrides": overrides}
    return Call("POST", f"/v1/runs/{_segment(run_id)}/fork", json=body)


def diff(run_a: str, run_b: str) -> Call:
    return Call("GET", f"/v1/runs/{_segment(run_a)}/diff/{_segment(run_b)}")


def submit_tool_result(run_id: str, call_id: str, output: str, ok: bool) -> Call:
    return Call(
        "POST",
        f"/v1/runs/{_segment(run_id)}/tool_results/{_segment(call_id)}",
        json={"output": output, "ok": ok},
    )


def cancel_run(run_id: str, reason: str | None) -> Call:
    return Call("POST", f"/v1/runs/{_segment(run_id)}/cancel", json={"reason": reason} if reason else None)


def list_artifacts(run_id: str) -> Call:
    return Call("GET", f"/v1/runs/{_segment(run_id)}/artifacts")


def get_artifact(run_id: str, path: str) -> Call:
    return Call(
        "GET",
        f"/v1/runs/{_segment(run_id)}/artifacts/{quote_artifact_path(path)}",
        headers={"Accept": "application/octet-stream"},
    )


def list_hands() -> Call:
    return Call("GET", "/v1/hands")


def create_key(name: str, role: str, expires_at: datetime | None) -> Call:
    return Call("POST", "/v1/keys", json=_key_body(name, role, expires_at))


def _key_body(name: str, role: str, expires_at: datetime | None) -> dict[str, Any]:
    body: dict[str, Any] = {"name": name, "role": role}
    if expires_at is not None:
        if expires_at.tzinfo is None:
            raise LoopdError("expires_at needs a time zone (e.g. UTC)", code="invalid_expiry")
        body["expires_at"] = expires_at.isoformat()
    return body


def list_keys() -> Call:
    return Call("GET", "/v1/keys")


def revoke_key(key_id: str) -> Call:
    return Call("DELETE", f"/v1/keys/{_segment(key_id)}")


def create_tenant(tenant_id: str, name: str | None, quotas: Quotas | None) -> Call:
    body: dict[str, Any] = {"id": tenant_id}
    if name is not None:
        body["name"] = name
    if quotas is not None:
        body["quotas"] = _quotas_body(quotas)
    return Call("POST", "/v1/tenants", json=body)


def list_tenants() -> Call:
    return Call("GET", "/v1/tenants")


def get_tenant(tenant_id: str) -> Call:
    return Call("GET", f"/v1/tenants/{_segment(tenant_id)}")


def update_tenant(tenant_id: str, name: str | None, quotas: Quotas | None) -> Call:
    body: dict[str, Any] = {}
    if name is not None:
        body["name"] = name
    if quotas is not None:
        body["quotas"] = _quotas_body(quotas)
    if not body:
        raise LoopdError("name a new name or quotas to change", code="nothing_to_update")
    return Call("PATCH", f"/v1/tenants/{_segment(tenant_id)}", json=body)


def create_tenant_key(tenant_id: str, name: str, role: str, expires_at: datetime | None) -> Call:
    return Call("POST", f"/v1/tenants/{_segment(tenant_id)}/keys", json=_key_body(name, role, expires_at))


def _quotas_body(quotas: Quotas) -> dict[str, Any]:
    # Unset quotas are left out: the server reads a missing one as no limit.
    given = quotas.model_dump(exclude_none=True) if isinstance(quotas, BaseModel) else quotas
    return {key: value for key, value in given.items() if value is not None}


def create_environment(spec: dict[str, Any]) -> Call:
    return Call("POST", "/v1/environments", json=spec)


def new_environment_version(environment_id: str, spec: dict[str, Any]) -> Call:
    return Call("POST", f"/v1/environments/{_segment(environment_id)}/versions", json=spec)


def list_environments(include_archived: bool, limit: int | None, cursor: str | None) -> Call:
    archived = "true" if include_archived else None
    return Call(
        "GET", "/v1/environments", params={"include_archived": archived, "limit": limit, "cursor": cursor}
    )


def get_environment(environment_id: str, version: int | None) -> Call:
    return Call("GET", f"/v1/environments/{_segment(environment_id)}", params={"version": version})


def list_environment_versions(environment_id: str) -> Call:
    return Call("GET", f"/v1/environments/{_segment(environment_id)}/versions")


def archive_environment(environment_id: str) -> Call:
    return Call("POST", f"/v1/environments/{_segment(environment_id)}/archive")


def set_secret(name: str, value: str) -> Call:
    return Call("PUT", f"/v1/secrets/{_segment(name)}", json={"value": value})


def list_secrets() -> Call:
    return Call("GET", "/v1/secrets")


def delete_secret(name: str) -> Call:
    return Call("DELETE", f"/v1/secrets/{_segment(name)}")


def read_audit(audit: AuditQuery) -> Call:
    return Call("GET", "/v1/audit", params=asdict(audit))


def usage(since: date | None, until: date | None, all_tenants: bool) -> Call:
    params: dict[str, Any] = {"since": since, "until": until, "all_tenants": "true" if all_tenants else None}
    return Call(
        "GET", "/v1/usage", params={k: v.isoformat() if isinstance(v, date) else v for k, v in params.items()}
    )


def health(ready: bool) -> Call:
    return Call("GET", "/readyz" if ready else "/healthz")


def decode(response: httpx.Response) -> Any:
    """The JSON body of a successful response; an error status raises LoopdAPIError."""
    if response.is_error:
        raise api_error_from_response(response)
    if not response.content:
        return None
    try:
        return response.json()
    except ValueError:
        raise ProtocolError(
            f"expected JSON from {response.request.url.path}, got {response.text[:200]!r}"
        ) from None


def parse(model: type[ModelT], payload: Any) -> ModelT:
    """Validate a payload into `model`, reporting a contract violation instead of a traceback."""
    try:
        return model.model_validate(payload)
    except ValidationError as error:
        problem = error.errors()[0]
        where = ".".join(str(part) for part in problem["loc"]) or "body"
        raise ProtocolError(
            f"unexpected {model.__name__} from the server: {where}: {problem['msg']}"
        ) from None


def parse_list(model: type[ModelT], payload: Any) -> list[ModelT]:
    """The `data` list of a `{"data": [...]}` envelope."""
    items = payload.get("data") if isinstance(payload, dict) else None
    if not isinstance(items, list):
        raise ProtocolError(f"expected a {{'data': [...]}} list of {model.__name__} from the server")
    return [parse(model, item) for item in items]
