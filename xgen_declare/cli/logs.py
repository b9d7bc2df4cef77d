"""`xgen-declare logs NAME [-f] [-n N]`: the backend's stdout+stderr from the state dir.

The log is opened once, never through a symlink (readers/bounded.py, follow=False): a link planted at
NAME.log is refused (exit 1), never followed to its target. Control characters in the backend's output
(terminal escapes) are printed escaped (`names.escape_controls`): a log line never drives the terminal.
A corrupt record is reported on stderr and skipped (the log of NAME.log is shown).
"""

from __future__ import annotations

import codecs
import os
import sys
import time

import click

from xgen_declare.errors import ModelNotFound
from xgen_declare.names import check_model_names, escape_controls
from xgen_declare.processes.state_store import StateStore
from xgen_declare.readers.bounded import opened
from xgen_declare.cli.common import complete_model_names, eprint, get_globals, global_options

FOLLOW_POLL = 0.2
FOLLOW_CHUNK = 1 << 20


def printable(text: str) -> str:
    """Log text with its line breaks kept and every other control character escaped."""
    return "\n".join(escape_controls(line) for line in text.split("\n"))


@click.command(short_help="Print a model's log")
@click.argument("name", shell_complete=complete_model_names)
@click.option("-f", "--follow", is_flag=True, help="Keep printing new lines (Ctrl-C to stop)")
@click.option("-n", "--lines", "lines", type=int, default=50, show_default=True, help="Lines to show first")
@global_options
def command(name: str, follow: bool, lines: int) -> int:
    """Print the last lines of NAME's log (STATE_DIR/logs/NAME.log; rotated copies are NAME.log.1 ...)."""
    check_model_names([name])
    g = get_globals()
    store = StateStore(g.resolve_state_dir(g.load_config() if g.config_path() else None))
    path = store.model_log(name)
    for problem in store.problems:
        eprint(problem)
    try:
        with opened(path, follow=False) as f:
            _print_tail(f, lines)
            if follow:
                _follow(f)
    except FileNotFoundError:
        raise ModelNotFound(f"no log for {name!r} in {store.logs_dir} (known: "
                            f"{', '.join(sorted(store.load_all())) or 'none'})") from None
    return 0


def _print_tail(f, lines: int) -> None:
    size = os.fstat(f.fileno()).st_size
    f.seek(max(0, size - max(64 * 1024, lines * 512)))
    text = f.read().decode(errors="replace").rstrip("\n")
    shown = text.split("\n")[-lines:] if lines > 0 and text else []
    if shown:
        click.echo("\n".join(escape_controls(line) for line in shown))


def _follow(f) -> None:
    f.seek(0, os.SEEK_END)
    text = codecs.getincrementaldecoder("utf-8")(errors="replace")  # a character cut between pieces stays whole
    while True:
        chunk = f.read(FOLLOW_CHUNK)  # a burst of output is printed in pieces, never read whole into memory
        if chunk:
            sys.stdout.write(printable(text.decode(chunk)))
            sys.stdout.flush()
            continue
        if os.fstat(f.fileno()).st_size < f.tell():  # rotated (copy-truncate): start from the top
            f.seek(0)
        time.sleep(FOLLOW_POLL)
