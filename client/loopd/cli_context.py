"""What every `loopd` command shares: the connection the root command parsed, and common options."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

import typer

from loopd.client import Client
from loopd.config import ConfigFile

EXIT_ERROR = 2


@dataclass(frozen=True)
class Connection:
    """The gateway to talk to, and the key given on the command line or in the environment, if any."""

    url: str
    api_key: str | None
    config_path: Path

    @property
    def config(self) -> ConfigFile:
        return ConfigFile(self.config_path)

    def key(self) -> str | None:
        """The key to send: the one given, else the config file's for this gateway (read only now)."""
        return self.api_key or self.config.api_key(self.url)

    def client(self) -> Client:
        return Client(self.url, api_key=self.key())


def connection(ctx: typer.Context) -> Connection:
    return ctx.find_object(Connection)  # type: ignore[return-value]


def client_for(ctx: typer.Context) -> Client:
    return connection(ctx).client()


RunId = Annotated[str, typer.Argument(metavar="RUN")]
AsJson = Annotated[bool, typer.Option("--json", help="Print the raw JSON instead of a table.")]
Follow = Annotated[bool, typer.Option("--follow", "-f", help="Print what happens next until the run ends.")]
MaxSteps = Annotated[int | None, typer.Option("--max-steps", min=1, metavar="N", help="Model calls.")]
MaxTokens = Annotated[
    int | None, typer.Option("--max-tokens", min=1, metavar="N", help="Input plus output tokens.")
]
MaxCostUsd = Annotated[
    float | None,
    typer.Option("--max-cost-usd", min=0, metavar="X", help="Spend on the model, in US dollars."),
]
MaxWallTime = Annotated[
    float | None,
    typer.Option("--max-wall-time", min=0, metavar="S", help="Wall-clock seconds for the whole run."),
]


def budget_limits(
    max_steps: int | None, max_tokens: int | None, max_cost_usd: float | None, max_wall_time: float | None
) -> dict[str, int | float]:
    """The limits given on the command line, named as the API names them; unset ones left out."""
    limits = {
        "max_steps": max_steps,
        "max_tokens": max_tokens,
        "max_cost_usd": max_cost_usd,
        "max_wall_time_seconds": max_wall_time,
    }
    return {key: value for key, value in limits.items() if value is not None}
