"""Entry point: builds the click group from the verb registry and maps errors to exit codes.

Exit codes (decided here only): 0 ok; 1 invalid input (manifests, config, inventory) or a verb's own
failure; 2 usage or other xgen-declare errors; 70 internal error (a bug: set XGEN_DEBUG=1 for the
traceback); 130 interrupted.
"""

from __future__ import annotations

import importlib
import os
import sys

import click

from .. import __version__
from ..errors import ProblemsError, XgenError
from .common import Globals, global_options

# verb name -> module in this package exposing `command` (a click.Command)
VERBS = {
    "validate": "validate",
    "render": "render",
    "schema": "schema",
    "gpus": "gpus",
    "backends": "backends",
    "inventory": "inventory",
    "fit": "fit",
    "plan": "plan",
    "apply": "apply",
    "run": "run",
    "status": "status",
    "logs": "logs",
    "restart": "restart",
    "down": "down",
    "up": "up",
    "export": "export",
    "events": "events",
    "doctor": "doctor",
}


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, "--version", prog_name="xgen-declare")
@global_options
@click.pass_context
def cli(ctx: click.Context) -> None:
    """Declarative LLM serving on your own GPU hosts.

    Write one YAML manifest per model; xgen-declare validates it, picks a backend for this host's GPUs
    (llama-server, llama-cpp-python or vLLM), renders the exact command and keeps it running.

    \b
    Config repo workflow:
      xgen-declare validate manifests/          # all problems of all files, FILE:LINE: field: message
      xgen-declare render manifests/ -o shell   # the exact commands, quoted
      xgen-declare schema > model.schema.json   # for yaml-language-server / CI
    """
    if ctx.obj is None:
        ctx.obj = Globals()


for _verb, _module in VERBS.items():
    cli.add_command(importlib.import_module(f".{_module}", __package__).command, _verb)


def main(argv: list[str] | None = None) -> int:
    try:
        rc = cli.main(args=argv, prog_name="xgen-declare", standalone_mode=False)
        return rc if isinstance(rc, int) else 0
    except click.exceptions.Exit as exc:
        return exc.exit_code
    except click.ClickException as exc:
        exc.show()
        return exc.exit_code
    except click.exceptions.Abort:
        click.echo("aborted", err=True)
        return 130
    except ProblemsError as exc:
        for p in exc.problems:
            click.echo(p.format(), err=True)
        return exc.exit_code
    except XgenError as exc:
        click.echo(f"error: {exc}", err=True)
        return exc.exit_code
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        return 0
    except Exception as exc:  # a bug: say so plainly, traceback only on request
        if os.environ.get("XGEN_DEBUG"):
            raise
        click.echo(f"internal error: {type(exc).__name__}: {exc} (this is a bug in xgen-declare; "
                   "rerun with XGEN_DEBUG=1 for a traceback and report it)", err=True)
        return 70


def entry() -> None:  # pragma: no cover
    sys.exit(main())


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
