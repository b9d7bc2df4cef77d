"""Entry point: builds the click group from the verb registry and maps errors to exit codes.

Exit codes: one meaning each, listed in errors.EXIT_CODES (shown by `--help` and in README "Exit
codes"). An error carries its code (`XgenError.exit_code`); click's usage errors are 2; anything else
is a bug: 70, with a one-line message (XGEN_DEBUG=1 for the traceback); Ctrl-C is 130.
"""

from __future__ import annotations

import importlib
import os
import sys
import textwrap

import click

from xgen_declare import __version__
from xgen_declare.errors import EXIT_CODES, ExitCode, ProblemsError, XgenError
from xgen_declare.cli.common import Globals, global_options

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
    "history": "history",
    "restart": "restart",
    "down": "down",
    "up": "up",
    "export": "export",
    "events": "events",
    "doctor": "doctor",
    "sync": "sync",
    "source": "source",
    "pin": "pin",
    "unpin": "unpin",
    "pull": "pull",
    "store": "store",
    "fleet": "fleet",
}


def exit_code_help() -> str:
    """The table of errors.EXIT_CODES for `--help` (\b: click keeps these lines as they are)."""
    lines = [textwrap.fill(text, 96, initial_indent=f"{int(code):>5}  ", subsequent_indent=" " * 7)
             for code, text in EXIT_CODES.items()]
    return "\b\nExit codes:\n" + "\n".join(lines)


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100},
             epilog=exit_code_help())
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
        return ExitCode.USAGE if isinstance(exc, click.UsageError) else exc.exit_code
    except click.exceptions.Abort:
        click.echo("aborted", err=True)
        return ExitCode.INTERRUPTED
    except ProblemsError as exc:
        for p in exc.problems:
            click.echo(p.format(), err=True)
        return exc.exit_code
    except XgenError as exc:
        click.echo(f"error: {exc}", err=True)
        return exc.exit_code
    except KeyboardInterrupt:
        return ExitCode.INTERRUPTED
    except BrokenPipeError:
        return 0
    except Exception as exc:  # a bug: say so plainly, traceback only on request
        if os.environ.get("XGEN_DEBUG"):
            raise
        click.echo(f"internal error: {type(exc).__name__}: {exc} (this is a bug in xgen-declare; "
                   "rerun with XGEN_DEBUG=1 for a traceback and report it)", err=True)
        return ExitCode.INTERNAL


def entry() -> None:  # pragma: no cover
    sys.exit(main())


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
