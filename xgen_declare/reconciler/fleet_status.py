"""A fleet at a glance, live (`xgen-declare fleet status --hosts hosts.yaml`): every host's management API
asked at once, one table of every model on every host with its state and the commit it was started from,
and the source commit each host serves, so that "is commit abc serving everywhere?" has an answer.

    hosts.yaml
      timeout: 5s                      # per host (default 5s)
      hosts:
        - {name: gpu-a100-01, url: http://10.0.0.5:8090, token_file: tokens/a100}
        - {name: mi300x-1, url: https://mi300x-1.lab:8090, token_file: /etc/xgen/mi300x.token}

A token file is read bounded (readers/bounded.py), relative to hosts.yaml, sent as `Authorization: Bearer`
and never printed. Per host: GET /api/management/models (state, provenance), /source (the commit served,
the last poll and a refusal; 404: the host serves a local dir) and /plan (what the host would still change).
A host that does not answer in time, refuses, or answers nonsense is one line, never a crash.
"""

from __future__ import annotations

import asyncio
import os
from dataclasses import dataclass, field
from typing import Any

import httpx
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from xgen_declare.errors import InventoryFileError, Problem
from xgen_declare.manifests.fields import parse_duration
from xgen_declare.names import NAME_RE
from xgen_declare.readers.bounded import FileRefused
from xgen_declare.readers.secret import read_secret
from xgen_declare.readers.validation_errors import problems_from_validation
from xgen_declare.readers.yamlsource import load_documents

__all__ = ["FleetStatus", "HostStatus", "HostsFile", "ask_hosts", "load_hosts", "serves_commit"]

P = "/api/management"
TOKEN_LIMIT = 64 * 1024
MAX_HOSTS = 256
CHANGES = ("start", "restart", "stop", "update")
SETTLED_OK = ("Ready", "Stopped", "Idle")  # a model in any other state is not serving what it should


class HostEntry(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(description="The host's name in the table (lowercase letters, digits and '-')")
    url: str = Field(description="The host's API, http(s)://HOST:PORT (run --api)")
    token_file: str | None = Field(None, description="A file holding the host's API token (api.token_file there)")

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        if not NAME_RE.match(value):
            raise ValueError("must be lowercase letters, digits and '-' (at most 63), e.g. gpu-a100-01")
        return value

    @field_validator("url")
    @classmethod
    def _url(cls, value: str) -> str:
        try:
            url = httpx.URL(value)
        except (httpx.InvalidURL, TypeError):
            url = None
        if url is None or url.scheme not in ("http", "https") or not url.host or url.query or url.fragment:
            raise ValueError("is not an API URL; give http(s)://HOST:PORT of the host's `run --api`, e.g. "
                             "http://10.0.0.5:8090")
        return value.rstrip("/")


class HostsFile(BaseModel):
    model_config = ConfigDict(extra="forbid")

    timeout: float | str = Field(5.0, description="How long each host may take to answer (5s, 0.5 for half a second)")
    hosts: list[HostEntry] = Field(min_length=1, max_length=MAX_HOSTS)

    @field_validator("timeout")
    @classmethod
    def _timeout(cls, value: float | str) -> float:
        return parse_duration(value)


@dataclass
class Host:
    name: str
    url: str
    token: str | None


def load_hosts(path: str) -> tuple[list[Host], float]:
    """The hosts of hosts.yaml with their tokens read; InventoryFileError (exit 1) naming file:line: field."""
    docs, problems = load_documents(path, what="a hosts file")
    if problems:
        raise InventoryFileError(problems)
    if len(docs) != 1:
        raise InventoryFileError([Problem(path, None, "", f"holds {len(docs)} YAML documents, not one",
                                          "give one mapping with hosts: [{name, url, token_file}, ...]")])
    doc = docs[0]
    try:
        spec = HostsFile.model_validate(doc.data)
    except ValidationError as exc:
        raise InventoryFileError(problems_from_validation(exc, doc, HostsFile)) from None
    out, bad = [], []
    for i, h in enumerate(spec.hosts):
        if any(o.name == h.name for o in out):
            bad.append(Problem(path, doc.line_of(("hosts", i, "name")), f"hosts[{i}].name",
                               f"host {h.name!r} is listed twice", "give each host its own name"))
            continue
        token, problem = _token(path, h.token_file, doc.line_of(("hosts", i, "token_file")), i)
        if problem is not None:
            bad.append(problem)
        out.append(Host(h.name, h.url, token))
    if bad:
        raise InventoryFileError(bad)
    return out, float(spec.timeout)


def _token(hosts_file: str, token_file: str | None, line: int, i: int) -> tuple[str | None, Problem | None]:
    if token_file is None:
        return None, None
    path = os.path.join(os.path.dirname(os.path.abspath(hosts_file)), os.path.expanduser(token_file))
    field_name = f"hosts[{i}].token_file"
    try:
        return read_secret(path, what="a token file", limit=TOKEN_LIMIT, one_line=True), None
    except FileRefused as exc:
        return None, Problem(hosts_file, line, field_name, f"{exc.path}: {exc.reason}", exc.hint)


@dataclass
class HostStatus:
    name: str
    url: str
    error: str | None = None            # unreachable, refused, not an xgen-declare API: the host's one line
    models: list[dict] = field(default_factory=list)
    source: dict | None = None          # GET /source; None: the host serves a local manifests dir
    pending: dict[str, str] = field(default_factory=dict)  # model -> the change its plan would still make

    @property
    def serving(self) -> str | None:
        return ((self.source or {}).get("serving") or {}).get("commit")

    @property
    def refusal(self) -> str | None:
        """The last poll's refusal of a fetched commit (unsigned, bad signature, invalid manifests...)."""
        last = (self.source or {}).get("last_poll") or {}
        if not isinstance(last, dict) or not last.get("error"):
            return None
        fetched = last.get("fetched")
        if last.get("outcome") == "refused" and fetched and fetched != last.get("new"):
            return f"refused {str(fetched)[:12]}: {last['error']}"
        return f"last poll: {last['error']}"

    def to_json(self) -> dict:
        return {"host": self.name, "url": self.url, "error": self.error, "serving": self.serving,
                "refusal": self.refusal if self.error is None else None,
                "models": [{"name": m.get("name"), "state": m.get("state"), "commit": _commit(m),
                            "pending": self.pending.get(str(m.get("name")))} for m in self.models]}


def _commit(model: dict) -> str | None:
    prov = model.get("provenance")
    return prov.get("commit") if isinstance(prov, dict) else None


@dataclass
class FleetStatus:
    hosts: list[HostStatus]

    def to_json(self) -> dict:
        return {"hosts": [h.to_json() for h in self.hosts]}


async def _get(client: httpx.AsyncClient, url: str, path: str) -> Any:
    resp = await client.get(url + P + path)
    if resp.status_code == 404 and path == "/source":
        return None
    if resp.status_code in (401, 403):
        raise _HostError(f"HTTP {resp.status_code}: the token was refused (check token_file against the "
                         "host's api.token_file)")
    if resp.status_code != 200:
        raise _HostError(f"HTTP {resp.status_code} from {path}")
    try:
        return resp.json()
    except ValueError:
        raise _HostError(f"{path} answered no JSON: not an xgen-declare API?") from None


class _HostError(Exception):
    pass


async def _ask(host: Host, timeout: float, transport: httpx.AsyncBaseTransport | None) -> HostStatus:
    headers = {"Authorization": f"Bearer {host.token}"} if host.token else {}
    out = HostStatus(host.name, host.url)
    try:
        async with httpx.AsyncClient(headers=headers, timeout=timeout, transport=transport,
                                     follow_redirects=False, trust_env=False) as client:
            models, source, plan = await asyncio.wait_for(asyncio.gather(
                _get(client, host.url, "/models"), _get(client, host.url, "/source"),
                _get(client, host.url, "/plan")), timeout)
    except (asyncio.TimeoutError, httpx.TimeoutException):
        out.error = f"unreachable: no answer within {timeout:g}s"
        return out
    except httpx.HTTPError as exc:
        out.error = f"unreachable: {type(exc).__name__}: {str(exc)[:200] or 'no detail'}"
        return out
    except _HostError as exc:
        out.error = str(exc)
        return out
    if not isinstance(models, dict) or not isinstance(models.get("models"), list) or \
            not isinstance(plan, dict) or not isinstance(plan.get("actions"), list):
        out.error = "answered JSON that is no xgen-declare status: not an xgen-declare API?"
        return out
    out.models = [m for m in models["models"] if isinstance(m, dict)]
    out.source = source if isinstance(source, dict) else None
    out.pending = {str(a.get("name")): str(a.get("kind")) for a in plan["actions"]
                   if isinstance(a, dict) and a.get("kind") in CHANGES}
    return out


def ask_hosts(hosts: list[Host], timeout: float,
              transport: httpx.AsyncBaseTransport | None = None) -> FleetStatus:
    """Every host asked concurrently, each bounded by `timeout`; in the order of hosts.yaml."""
    async def every() -> list[HostStatus]:
        return list(await asyncio.gather(*(_ask(h, timeout, transport) for h in hosts)))
    return FleetStatus(asyncio.run(every()))


def serves_commit(fleet: FleetStatus, commit: str) -> list[str]:
    """Why `commit` (a prefix of 4+ hex digits) is not serving everywhere: one line per host or model that
    does not serve it; [] when every host serves it and every model there runs the spec it declares."""
    why = []
    for h in fleet.hosts:
        if h.error is not None:
            why.append(f"{h.name}: {h.error}")
            continue
        if h.source is None:
            why.append(f"{h.name}: serves a local manifests dir, not a git source")
            continue
        serving = h.serving
        if serving is None or not serving.startswith(commit):
            why.append(f"{h.name}: serves {serving[:12] if serving else 'no commit yet'}"
                       + (f" ({h.refusal})" if h.refusal else ""))
            continue
        for m in h.models:
            name = m.get("name")
            if h.pending.get(str(name)):
                why.append(f"{h.name}/{name}: not converged yet: its plan would {h.pending[str(name)]} it")
            elif m.get("state") not in SETTLED_OK:
                why.append(f"{h.name}/{name}: {m.get('state')}")
    return why
