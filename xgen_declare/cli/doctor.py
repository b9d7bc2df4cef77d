"""`xgen-declare doctor [DIR]...`: why doesn't it work here? Every finding ok / warn / fail with its fix."""

from __future__ import annotations

import os

import click

from xgen_declare.doctor import DoctorHost, run_doctor
from xgen_declare.cli.common import PATHS, get_globals, global_options, output_option, print_json

MARK = {"ok": "ok  ", "warn": "WARN", "fail": "FAIL"}


def format_findings(findings) -> str:
    width = max(len(f.check) for f in findings)
    lines = []
    for f in findings:
        lines.append(f"{MARK[f.status]}  {f.check.ljust(width)}  {f.message}")
        if f.fix and f.status != "ok":
            lines.append(f"{' ' * (width + 8)}fix: {f.fix}")
    return "\n".join(lines)


def summary(findings) -> dict[str, int]:
    return {s: sum(f.status == s for f in findings) for s in ("ok", "warn", "fail")}


@click.command(short_help="Check this host, the backends, the manifests and the daemon")
@click.argument("dirs", nargs=-1, metavar="[DIR]...", type=PATHS)
@output_option(("text", "json"), "text")
@click.option("--dev-root", metavar="DIR", help="Root of the device nodes to check [env: XGEN_DEV_ROOT; default: /dev]")
@global_options
def command(dirs: tuple[str, ...], output: str, dev_root: str | None) -> int:
    """Answer "why doesn't it work here": GPUs and how they were found (NVML, nvidia-smi, KFD sysfs),
    access to /dev/kfd, /dev/dri/renderD* and /dev/nvidia*, each backend's binary, version, flag dialect
    and build (GPU backends, devices, RPC worker), whether vLLM imports and its platform, the config and
    the manifests of DIR (default: the dirs the state dir records) and whether they can run here, the
    port range (free, ours, or held by whom), the state dir (writable, lock holder, disk space), inotify
    limits, and the daemon (pid, uptime, API address) with its models.

    \b
    Each finding is ok, WARN or FAIL, a failure with its fix in one line. Exit code 1 when anything
    fails. JSON: {"findings": [{check, status, message, fix}], "summary": {ok, warn, fail}}.
    """
    g = get_globals()
    host = DoctorHost(sysfs_root=g.sysfs(), proc_root=g.proc(),
                      dev_root=dev_root or os.environ.get("XGEN_DEV_ROOT") or "/dev")
    findings = run_doctor(list(dirs), config_path=g.config_path(), resolve_state_dir=g.resolve_state_dir, host=host)
    counts = summary(findings)
    if output == "json":
        print_json({"findings": [f.to_json() for f in findings], "summary": counts})
    else:
        click.echo(format_findings(findings))
        click.echo(f"\n{counts['fail']} fail, {counts['warn']} warn, {counts['ok']} ok")
    return 1 if counts["fail"] else 0
