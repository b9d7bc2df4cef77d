"""Port assignment: explicit ports as given; others keep the port the state already holds for them,
and new ones take the lowest free port of the range. A model never moves because others come or go.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from xgen_declare.errors import PortRangeExhausted

EPHEMERAL_DEFAULT = (32768, 60999)  # Linux's ip_local_port_range default


@dataclass(frozen=True)
class PortAssignment:
    port: int
    source: str  # "manifest" | "state" | "preview" | "assigned"


NO_PORT = PortAssignment(0, "none")  # a disabled model, or one the range had no room for: it never starts


def exhausted_text(start: int, end: int) -> str:
    return f"no free port in {start}-{end}"


def assign_ports(wanted: dict[str, int | None], start: int, end: int,
                 held: dict[str, int] | None = None, *, preview: bool = False,
                 taken: set[int] | None = None) -> dict[str, PortAssignment]:
    """`fit_ports`, all or nothing: PortRangeExhausted when a model finds no port."""
    out, missing = fit_ports(wanted, start, end, held, preview=preview, taken=taken)
    if missing:
        raise PortRangeExhausted(
            f"{exhausted_text(start, end)} for: {', '.join(missing)} "
            f"(widen ports: in xgen-declare.yaml, or give these models an explicit spec.port)")
    return out


def fit_ports(wanted: dict[str, int | None], start: int, end: int,
              held: dict[str, int] | None = None, *, preview: bool = False,
              taken: set[int] | None = None) -> tuple[dict[str, PortAssignment], list[str]]:
    """`wanted`: name -> explicit port or None. `held`: name -> port from the state.
    `taken`: ports that must not be handed out (e.g. found busy). Deterministic: new names in
    sorted order. Returns the assignments and the names (sorted) the range had no port left for:
    those only; the others keep or get theirs."""
    held = held or {}
    out: dict[str, PortAssignment] = {}
    used: set[int] = set(taken or ())
    for name, port in wanted.items():
        if port is not None:
            out[name] = PortAssignment(port, "manifest")
            used.add(port)
    for name in sorted(wanted):
        if name in out:
            continue
        port = held.get(name)
        if port is not None and start <= port <= end and port not in used:
            out[name] = PortAssignment(port, "state")
            used.add(port)
    free = (p for p in range(start, end + 1) if p not in used)
    missing = []
    for name in sorted(wanted):
        if name in out:
            continue
        port = next(free, None)
        if port is None:
            missing.append(name)
            continue
        out[name] = PortAssignment(port, "preview" if preview else "assigned")
    return out, missing


def ephemeral_range(proc_root: str = "/proc") -> tuple[int, int]:
    """The kernel's ip_local_port_range: where outgoing connections take their local ports. A server cannot
    bind a port an outgoing connection holds (open, or in TIME_WAIT for a minute after), SO_REUSEADDR
    or not, so model ports are best kept out of it (or reserved)."""
    try:
        lo, hi = Path(proc_root, "sys/net/ipv4/ip_local_port_range").read_text().split()
        return int(lo), int(hi)
    except (OSError, ValueError):
        return EPHEMERAL_DEFAULT


def reserved_ports(proc_root: str = "/proc") -> set[int]:
    """net.ipv4.ip_local_reserved_ports ("8001-8020,9000"): ports outgoing connections never take."""
    try:
        text = Path(proc_root, "sys/net/ipv4/ip_local_reserved_ports").read_text().strip()
    except OSError:
        return set()
    out: set[int] = set()
    for part in filter(None, (x.strip() for x in text.split(","))):
        lo, _, hi = part.partition("-")
        try:
            out.update(range(int(lo), int(hi or lo) + 1))
        except ValueError:
            continue
    return out
