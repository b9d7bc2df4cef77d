"""`xgen-declare logs NAME [-f] [-n N]`: the backend's stdout+stderr from the state dir."""

from __future__ import annotations

import sys
import time

import click

from xgen_declare.errors import ModelNotFound
from xgen_declare.processes.logfiles import tail
from xgen_declare.names import check_model_names
from xgen_declare.processes.state_store import StateStore
from xgen_declare.cli.common import complete_model_names, get_globals, global_options


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
    if not path.exists():
        raise ModelNotFound(f"no log for {name!r} in {store.logs_dir} (known: "
                            f"{', '.join(sorted(store.load_all())) or 'none'})")
    text = tail(path, lines, max_bytes=max(64 * 1024, lines * 512))
    if text:
        click.echo(text)
    if not follow:
        return 0
    with open(path, "rb") as f:
        f.seek(0, 2)
        pos = f.tell()
        while True:
            chunk = f.read()
            if chunk:
                sys.stdout.write(chunk.decode(errors="replace"))
                sys.stdout.flush()
                pos = f.tell()
                continue
            try:
                if path.stat().st_size < pos:  # rotated (copy-truncate): start from the top
                    f.seek(0)
                    pos = 0
            except OSError:
                pass
            time.sleep(0.2)
