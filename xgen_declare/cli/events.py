"""`xgen-declare events`: follow the management API's event stream (needs `run --api`)."""

from __future__ import annotations

import json
import time

import click
import httpx

from xgen_declare.errors import XgenError
from xgen_declare.cli.common import get_globals, global_options, output_option


def format_event(ev: dict) -> str:
    """One line: `HH:MM:SS MODEL: OLD -> NEW (reason)`, `... restart #N`, `... error: ...`."""
    when = time.strftime("%H:%M:%S", time.localtime(ev.get("time") or time.time()))
    model, kind = ev.get("model", "-"), ev.get("type")
    if kind == "state":
        reason = f" ({ev['reason']})" if ev.get("reason") else ""
        text = f"{ev.get('old')} -> {ev.get('new')}{reason}"
    elif kind == "restart":
        text = f"restart #{ev.get('restarts')}"
    elif kind == "error":
        text = f"error ({ev.get('state')}): {(ev.get('error') or '').splitlines()[0] if ev.get('error') else ''}"
    elif kind == "manifest_invalid":
        text = f"manifest invalid: {ev.get('error')}"
    elif kind == "manifest_valid":
        text = "manifest valid again"
    elif kind == "on_demand_start":  # the router's (docs/router.md)
        text = "on-demand start" + (f" (evicted {', '.join(ev['evicted'])})" if ev.get("evicted") else "")
    elif kind == "idle_stop":
        text = f"idle stop: no request for {ev.get('idle_seconds')}s (idle_timeout {ev.get('idle_timeout'):g}s)"
    elif kind == "eviction":
        text = f"evicted to make room for {ev.get('to_make_room_for')}"
    elif kind in ("rollout_started", "rollout_succeeded"):
        text = f"{kind.replace('_', ' ')}: {ev.get('from_hash')} -> {ev.get('to_hash')}"
    elif kind == "rollout_failed":
        text = f"rollout failed: {ev.get('from_hash')} -> {ev.get('to_hash')}: {ev.get('error')}"
    elif kind == "rolled_back":
        text = f"rolled back to {ev.get('to_hash')} ({ev.get('failed_hash')} failed)"
    else:
        text = f"{kind} " + json.dumps({k: v for k, v in ev.items() if k not in ("id", "time", "type", "model")})
    return f"{when} {model}: {text}"


def read_events(lines):
    """SSE lines -> event dicts (the `data:` of each event)."""
    data: list[str] = []
    for line in lines:
        if line == "":
            if data:
                yield json.loads("\n".join(data))
            data = []
        elif line.startswith("data:"):
            data.append(line[5:].lstrip())


@click.command(short_help="Print the daemon's events (state changes, restarts, errors) as they happen")
@click.option("--url", metavar="URL", help="The API [default: http://api.host:api.port from the config]")
@click.option("--since", type=int, metavar="ID", help="Replay the events after ID that the daemon still holds "
              "(0: all of them)")
@click.option("--timeout", type=float, metavar="SECONDS", help="Stop after this many seconds")
@output_option(("text", "json"), "text")
@global_options
def command(url: str | None, since: int | None, timeout: float | None, output: str) -> int:
    """Follow GET /api/management/events of a daemon started with `run --api` and print one line per
    event (`-o json`: one JSON object per line). Ends on Ctrl-C, --timeout or when the daemon stops."""
    if url is None:
        api = get_globals().load_config().api
        host = "127.0.0.1" if api.host in ("0.0.0.0", "::") else api.host
        url = f"http://{f'[{host}]' if ':' in host else host}:{api.port}"
    params: dict = {}
    if since is not None:
        params["since"] = since
    if timeout is not None:
        params["timeout"] = timeout
    try:
        with httpx.stream("GET", url.rstrip("/") + "/api/management/events", params=params,
                          timeout=httpx.Timeout(10.0, read=None)) as resp:
            if resp.status_code != 200:
                resp.read()
                raise XgenError(f"{url}: HTTP {resp.status_code}: {resp.text[:300]}")
            for ev in read_events(resp.iter_lines()):
                click.echo(json.dumps(ev) if output == "json" else format_event(ev))
    except httpx.HTTPError as exc:
        raise XgenError(f"cannot follow events at {url}: {exc} (is `xgen-declare run DIR --api` running?)") from None
    return 0
