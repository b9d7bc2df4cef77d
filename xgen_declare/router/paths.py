"""The path a `/v1/*` request is forwarded to: it stays under the backend's `/v1/` (pure).

The server hands the route a path already percent-decoded once (`%2e%2e` -> `..`, `..%2f` -> `../`),
and the upstream URL would resolve dot segments (`/v1/../../props` -> `/props`): any backend path,
with the model's upstream key attached. So a path with a `.` or `..` segment is refused, whether it
came plain or encoded (decoded again until nothing changes, `\\` counted as a separator as some servers
do), and the path that is sent is percent-encoded again, so the backend decodes exactly what was checked.
"""

from __future__ import annotations

from urllib.parse import quote, unquote

from xgen_declare.router.errors import RouterError, clip

__all__ = ["upstream_path"]

SAFE = "/:@!$&'()*+,;=-._~"  # RFC 3986 pchar and '/', kept as they are
DECODE_ROUNDS = 4


def _dot_segment(path: str) -> bool:
    for _ in range(DECODE_ROUNDS):
        if any(seg in (".", "..") for seg in path.replace("\\", "/").split("/")):
            return True
        decoded = unquote(path)
        if decoded == path:
            return False
        path = decoded
    return True  # still encoded after several rounds: nothing a client means


def upstream_path(path: str) -> str:
    """`path` (after `/v1/`, decoded once) -> the path to request from the backend, `/v1/...`, encoded;
    RouterError 400 if it would leave `/v1/`."""
    if _dot_segment(path):
        raise RouterError(400, f"the path /v1/{clip(path)} has `.` or `..` segments (plain or percent-encoded); "
                          "the router forwards only paths under /v1/", code="invalid_path")
    return "/v1/" + quote(path, safe=SAFE)
