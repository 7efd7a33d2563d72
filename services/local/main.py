"""The embedded local stack as a process (`loopd-server up` and `loopd-server demo`): serve it until
stopped, or run the demo agent on it to completion with live events."""

from __future__ import annotations

import asyncio
import logging
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import typer
import yaml
from loopd.config import ConfigFile, default_path
from loopd.errors import LoopdError

from services.core.process import configure_logging, run
from services.core.settings import Settings
from services.local.postgres import free_port
from services.local.stack import LocalStack


def up(settings: Settings | None = None) -> None:
    """Serve the API on LOOPD_HOST:LOOPD_PORT until SIGINT or SIGTERM (uvicorn's own handlers)."""
    settings = settings or Settings()
    configure_logging()

    async def serve() -> None:
        async with LocalStack(settings) as stack:
            typer.echo(f"loopd is up at {stack.url} (Ctrl-C to stop)")
            if stack.new_admin_key:
                # Shown this once; it stays in the data folder (mode 0600) for the stack's next start.
                typer.echo(f"admin API key of tenant {stack.settings.tenant}: {stack.admin_key}")
            if settings.admin_key is None:
                _share_admin_key(stack, ConfigFile(settings.config or default_path()))
            await stack.wait_closed()

    run(serve())


def _share_admin_key(stack: LocalStack, config: ConfigFile) -> None:
    """Let the `loopd` CLI on this machine find the stack's admin key, filed under the stack's URL."""
    try:
        if share_admin_key(config, stack.url, stack.admin_key, new=stack.new_admin_key):
            typer.echo(f"the loopd CLI on this machine finds it in {config.path}")
    except (OSError, LoopdError) as error:
        # The stack serves all the same; the CLI can still be given the key by hand.
        typer.echo(f"could not store the admin key in {config.path}: {error}", err=True)


def share_admin_key(config: ConfigFile, url: str, key: str, *, new: bool) -> bool:
    """Store `key` for `url` if the stack just made it or the config has no key for `url` yet.

    A key the config already holds for `url` is left alone, unless the stack is new: then the old
    one belonged to a stack that is gone. True when the key was stored.
    """
    if not new and config.api_key(url) is not None:
        return False
    config.store_key(url, key)
    return True


def demo(task: str, agent: Path, settings: Settings | None = None) -> int:
    """Run the demo agent on a fresh stack; the exit status of its `loopd run --follow`."""
    settings = settings or Settings()
    if "port" not in settings.model_fields_set:
        # A free port, so the demo runs beside a stack that is already up.
        settings = settings.model_copy(update={"port": free_port()})
    configure_logging(logging.WARNING, timestamps=False)
    spec_file = _demo_spec(agent, settings)
    return run(_run_demo(settings, task, spec_file))


async def _run_demo(settings: Settings, task: str, spec_file: Path) -> int:
    async with LocalStack(settings) as stack:
        typer.echo(f"loopd local stack at {stack.url}; running the demo agent ({spec_file.name})\n")
        env = {**os.environ, "LOOPD_URL": stack.url, "LOOPD_API_KEY": stack.admin_key}
        loopd = shutil.which("loopd", path=str(Path(sys.executable).parent)) or "loopd"
        followed = await asyncio.to_thread(
            subprocess.run, [loopd, "run", task, "--agent", str(spec_file), "--follow"], env=env, check=False
        )
        # The client is synchronous and the gateway serves from this loop: ask from a thread.
        run_id = await asyncio.to_thread(_last_run_id, stack.url, stack.admin_key)
        if run_id is not None:
            target = settings.data_dir.resolve() / "demo-artifacts" / run_id
            await asyncio.to_thread(
                subprocess.run, [loopd, "artifacts", run_id, "--download", str(target)], env=env, check=False
            )
            typer.echo(f"\nartifacts of {run_id} are in {target}")
        return followed.returncode


def _last_run_id(url: str, key: str) -> str | None:
    from loopd import Client

    with Client(url, api_key=key) as client:
        runs = client.list_runs(limit=1)
    return runs.data[0].id if runs.data else None


def _demo_spec(agent: Path, settings: Settings) -> Path:
    """The demo spec, switched to a real model when LOOPD_MODEL is set."""
    if not settings.model:
        return agent
    provider = settings.model.partition("/")[0]
    # OpenAI-compatible local servers (vLLM, Ollama, llama.cpp) need no key; Anthropic always does.
    if provider == "anthropic" and settings.anthropic_api_key is None:
        typer.echo(f"LOOPD_MODEL={settings.model} needs LOOPD_ANTHROPIC_API_KEY", err=True)
        raise typer.Exit(2)
    spec = yaml.safe_load(agent.read_text())
    spec["model"] = settings.model
    spec.pop("script", None)
    with tempfile.NamedTemporaryFile("w", suffix=".yaml", delete=False, prefix="loopd-demo-") as handle:
        yaml.safe_dump(spec, handle)
    return Path(handle.name)
