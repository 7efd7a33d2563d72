"""Where the command line writes: rich consoles for stdout and stderr, and its error lines.

Errors are always `error <code>: <message>` on stderr, so scripts can match on the code.
"""

from __future__ import annotations

from functools import cache

from rich.console import Console
from rich.text import Text

from loopd.errors import LoopdError

# Piped output is read by scripts and logs; folding long ids at 80 columns would only hurt them.
PIPED_WIDTH = 200


def _console(*, stderr: bool) -> Console:
    # Model output and file names are shown verbatim: "[/x]" or ":smile:" in them are not markup.
    console = Console(stderr=stderr, highlight=False, markup=False, emoji=False)
    if not console.is_terminal:
        console.width = PIPED_WIDTH
    return console


@cache
def out() -> Console:
    return _console(stderr=False)


@cache
def err() -> Console:
    return _console(stderr=True)


def error_line(code: str, message: str) -> Text:
    return Text.assemble(("error", "bold red"), f" {code}: {message}")


def print_error(error: LoopdError) -> None:
    err().print(error_line(error.code, error.message), soft_wrap=True)


def io_error(error: OSError) -> LoopdError:
    """A local file problem (unwritable download directory, unreadable spec) as a loopd error."""
    where = f"{error.filename}: " if error.filename else ""
    return LoopdError(f"{where}{error.strerror or error}", code="io_error")
