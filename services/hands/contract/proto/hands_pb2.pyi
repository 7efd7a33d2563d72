# mypy: ignore-errors
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class ExecuteRequest(_message.Message):
    __slots__ = ("run_id", "call_id", "tool", "input_json", "timeout_seconds", "base_snapshot", "workspace_bytes", "tenant", "root_run_id", "profile")
    RUN_ID_FIELD_NUMBER: _ClassVar[int]
    CALL_ID_FIELD_NUMBER: _ClassVar[int]
    TOOL_FIELD_NUMBER: _ClassVar[int]
    INPUT_JSON_FIELD_NUMBER: _ClassVar[int]
    TIMEOUT_SECONDS_FIELD_NUMBER: _ClassVar[int]
    BASE_SNAPSHOT_FIELD_NUMBER: _ClassVar[int]
    WORKSPACE_BYTES_FIELD_NUMBER: _ClassVar[int]
    TENANT_FIELD_NUMBER: _ClassVar[int]
    ROOT_RUN_ID_FIELD_NUMBER: _ClassVar[int]
    PROFILE_FIELD_NUMBER: _ClassVar[int]
    run_id: str
    call_id: str
    tool: str
    input_json: str
    timeout_seconds: float
    base_snapshot: str
    workspace_bytes: int
    tenant: str
    root_run_id: str
    profile: SandboxProfile
    def __init__(self, run_id: _Optional[str] = ..., call_id: _Optional[str] = ..., tool: _Optional[str] = ..., input_json: _Optional[str] = ..., timeout_seconds: _Optional[float] = ..., base_snapshot: _Optional[str] = ..., workspace_bytes: _Optional[int] = ..., tenant: _Optional[str] = ..., root_run_id: _Optional[str] = ..., profile: _Optional[_Union[SandboxProfile, _Mapping]] = ...) -> None: ...

class SandboxProfile(_message.Message):
    __slots__ = ("environment_id", "environment_version", "image", "runtime", "cpus", "memory_bytes", "pids", "network")
    ENVIRONMENT_ID_FIELD_NUMBER: _ClassVar[int]
    ENVIRONMENT_VERSION_FIELD_NUMBER: _ClassVar[int]
    IMAGE_FIELD_NUMBER: _ClassVar[int]
    RUNTIME_FIELD_NUMBER: _ClassVar[int]
    CPUS_FIELD_NUMBER: _ClassVar[int]
    MEMORY_BYTES_FIELD_NUMBER: _ClassVar[int]
    PIDS_FIELD_NUMBER: _ClassVar[int]
    NETWORK_FIELD_NUMBER: _ClassVar[int]
    environment_id: str
    environment_version: int
    image: str
    runtime: str
    cpus: float
    memory_bytes: int
    pids: int
    network: NetworkPolicy
    def __init__(self, environment_id: _Optional[str] = ..., environment_version: _Optional[int] = ..., image: _Optional[str] = ..., runtime: _Optional[str] = ..., cpus: _Optional[float] = ..., memory_bytes: _Optional[int] = ..., pids: _Optional[int] = ..., network: _Optional[_Union[NetworkPolicy, _Mapping]] = ...) -> None: ...

class NetworkPolicy(_message.Message):
    __slots__ = ("mode", "allow", "inject", "byte_budget")
    MODE_FIELD_NUMBER: _ClassVar[int]
    ALLOW_FIELD_NUMBER: _ClassVar[int]
    INJECT_FIELD_NUMBER: _ClassVar[int]
    BYTE_BUDGET_FIELD_NUMBER: _ClassVar[int]
    mode: str
    allow: _containers.RepeatedCompositeFieldContainer[HostRule]
    inject: _containers.RepeatedCompositeFieldContainer[SecretInjection]
    byte_budget: int
    def __init__(self, mode: _Optional[str] = ..., allow: _Optional[_Iterable[_Union[HostRule, _Mapping]]] = ..., inject: _Optional[_Iterable[_Union[SecretInjection, _Mapping]]] = ..., byte_budget: _Optional[int] = ...) -> None: ...

class HostRule(_message.Message):
    __slots__ = ("pattern", "ports")
    PATTERN_FIELD_NUMBER: _ClassVar[int]
    PORTS_FIELD_NUMBER: _ClassVar[int]
    pattern: str
    ports: _containers.RepeatedScalarFieldContainer[int]
    def __init__(self, pattern: _Optional[str] = ..., ports: _Optional[_Iterable[int]] = ...) -> None: ...

class SecretInjection(_message.Message):
    __slots__ = ("secret_name", "host", "header", "value_template", "sealed_value", "placeholder", "env_name")
    SECRET_NAME_FIELD_NUMBER: _ClassVar[int]
    HOST_FIELD_NUMBER: _ClassVar[int]
    HEADER_FIELD_NUMBER: _ClassVar[int]
    VALUE_TEMPLATE_FIELD_NUMBER: _ClassVar[int]
    SEALED_VALUE_FIELD_NUMBER: _ClassVar[int]
    PLACEHOLDER_FIELD_NUMBER: _ClassVar[int]
    ENV_NAME_FIELD_NUMBER: _ClassVar[int]
    secret_name: str
    host: str
    header: str
    value_template: str
    sealed_value: bytes
    placeholder: str
    env_name: str
    def __init__(self, secret_name: _Optional[str] = ..., host: _Optional[str] = ..., header: _Optional[str] = ..., value_template: _Optional[str] = ..., sealed_value: _Optional[bytes] = ..., placeholder: _Optional[str] = ..., env_name: _Optional[str] = ...) -> None: ...

class EgressDecision(_message.Message):
    __slots__ = ("allowed", "host", "port", "reason", "bytes_sent", "bytes_received", "at")
    ALLOWED_FIELD_NUMBER: _ClassVar[int]
    HOST_FIELD_NUMBER: _ClassVar[int]
    PORT_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    BYTES_SENT_FIELD_NUMBER: _ClassVar[int]
    BYTES_RECEIVED_FIELD_NUMBER: _ClassVar[int]
    AT_FIELD_NUMBER: _ClassVar[int]
    allowed: bool
    host: str
    port: int
    reason: str
    bytes_sent: int
    bytes_received: int
    at: float
    def __init__(self, allowed: _Optional[bool] = ..., host: _Optional[str] = ..., port: _Optional[int] = ..., reason: _Optional[str] = ..., bytes_sent: _Optional[int] = ..., bytes_received: _Optional[int] = ..., at: _Optional[float] = ...) -> None: ...

class OutputChunk(_message.Message):
    __slots__ = ("stream", "data")
    STREAM_FIELD_NUMBER: _ClassVar[int]
    DATA_FIELD_NUMBER: _ClassVar[int]
    stream: str
    data: str
    def __init__(self, stream: _Optional[str] = ..., data: _Optional[str] = ...) -> None: ...

class ExecuteResult(_message.Message):
    __slots__ = ("ok", "output", "exit_code", "error", "error_message", "truncated", "duration_ms", "sandbox_id", "sandbox_created", "snapshot_after", "replayed", "output_bytes", "egress")
    OK_FIELD_NUMBER: _ClassVar[int]
    OUTPUT_FIELD_NUMBER: _ClassVar[int]
    EXIT_CODE_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    ERROR_MESSAGE_FIELD_NUMBER: _ClassVar[int]
    TRUNCATED_FIELD_NUMBER: _ClassVar[int]
    DURATION_MS_FIELD_NUMBER: _ClassVar[int]
    SANDBOX_ID_FIELD_NUMBER: _ClassVar[int]
    SANDBOX_CREATED_FIELD_NUMBER: _ClassVar[int]
    SNAPSHOT_AFTER_FIELD_NUMBER: _ClassVar[int]
    REPLAYED_FIELD_NUMBER: _ClassVar[int]
    OUTPUT_BYTES_FIELD_NUMBER: _ClassVar[int]
    EGRESS_FIELD_NUMBER: _ClassVar[int]
    ok: bool
    output: str
    exit_code: int
    error: str
    error_message: str
    truncated: bool
    duration_ms: int
    sandbox_id: str
    sandbox_created: bool
    snapshot_after: str
    replayed: bool
    output_bytes: bytes
    egress: _containers.RepeatedCompositeFieldContainer[EgressDecision]
    def __init__(self, ok: _Optional[bool] = ..., output: _Optional[str] = ..., exit_code: _Optional[int] = ..., error: _Optional[str] = ..., error_message: _Optional[str] = ..., truncated: _Optional[bool] = ..., duration_ms: _Optional[int] = ..., sandbox_id: _Optional[str] = ..., sandbox_created: _Optional[bool] = ..., snapshot_after: _Optional[str] = ..., replayed: _Optional[bool] = ..., output_bytes: _Optional[bytes] = ..., egress: _Optional[_Iterable[_Union[EgressDecision, _Mapping]]] = ...) -> None: ...

class Progress(_message.Message):
    __slots__ = ("phase", "deadline_seconds")
    PHASE_FIELD_NUMBER: _ClassVar[int]
    DEADLINE_SECONDS_FIELD_NUMBER: _ClassVar[int]
    phase: str
    deadline_seconds: float
    def __init__(self, phase: _Optional[str] = ..., deadline_seconds: _Optional[float] = ...) -> None: ...

class ExecuteEvent(_message.Message):
    __slots__ = ("chunk", "result", "progress")
    CHUNK_FIELD_NUMBER: _ClassVar[int]
    RESULT_FIELD_NUMBER: _ClassVar[int]
    PROGRESS_FIELD_NUMBER: _ClassVar[int]
    chunk: OutputChunk
    result: ExecuteResult
    progress: Progress
    def __init__(self, chunk: _Optional[_Union[OutputChunk, _Mapping]] = ..., result: _Optional[_Union[ExecuteResult, _Mapping]] = ..., progress: _Optional[_Union[Progress, _Mapping]] = ...) -> None: ...

class ReleaseRequest(_message.Message):
    __slots__ = ("run_id",)
    RUN_ID_FIELD_NUMBER: _ClassVar[int]
    run_id: str
    def __init__(self, run_id: _Optional[str] = ...) -> None: ...

class ReleaseResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class StatusRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class SandboxStatus(_message.Message):
    __slots__ = ("run_id", "sandbox_id", "created_at", "last_used_at")
    RUN_ID_FIELD_NUMBER: _ClassVar[int]
    SANDBOX_ID_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    LAST_USED_AT_FIELD_NUMBER: _ClassVar[int]
    run_id: str
    sandbox_id: str
    created_at: float
    last_used_at: float
    def __init__(self, run_id: _Optional[str] = ..., sandbox_id: _Optional[str] = ..., created_at: _Optional[float] = ..., last_used_at: _Optional[float] = ...) -> None: ...

class StatusResponse(_message.Message):
    __slots__ = ("hands_id", "slots_total", "slots_free", "sandboxes")
    HANDS_ID_FIELD_NUMBER: _ClassVar[int]
    SLOTS_TOTAL_FIELD_NUMBER: _ClassVar[int]
    SLOTS_FREE_FIELD_NUMBER: _ClassVar[int]
    SANDBOXES_FIELD_NUMBER: _ClassVar[int]
    hands_id: str
    slots_total: int
    slots_free: int
    sandboxes: _containers.RepeatedCompositeFieldContainer[SandboxStatus]
    def __init__(self, hands_id: _Optional[str] = ..., slots_total: _Optional[int] = ..., slots_free: _Optional[int] = ..., sandboxes: _Optional[_Iterable[_Union[SandboxStatus, _Mapping]]] = ...) -> None: ...
