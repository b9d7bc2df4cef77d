"""OpenAI-style error answers: `{"error": {"message", "type", "param", "code"}}`, the shape the
`openai` clients parse. `RouterError` is raised anywhere in the router and turned into one by the
app's handler; nothing else ever reaches a client (no traceback)."""

from __future__ import annotations

from typing import Any

__all__ = ["RouterError", "clip", "error_body", "TYPES"]

CLIP = 200  # characters of a client's text (a model name, a path) echoed in an error; the rest is cut

TYPES = {400: "invalid_request_error", 401: "authentication_error", 403: "invalid_request_error",
         404: "invalid_request_error", 413: "invalid_request_error", 429: "rate_limit_error", 502: "server_error",
         503: "server_error", 504: "server_error"}


def clip(text: str, limit: int = CLIP) -> str:
    """A client's text as an error message may quote it: at most `limit` characters, then an ellipsis."""
    return text if len(text) <= limit else text[:limit] + "…"


def error_body(status: int, message: str, code: str | None = None, param: str | None = None,
               **extra: Any) -> dict:
    return {"error": {"message": message, "type": TYPES.get(status, "server_error"), "param": param,
                      "code": code, **extra}}


class RouterError(Exception):
    def __init__(self, status: int, message: str, code: str | None = None, param: str | None = None,
                 headers: dict[str, str] | None = None, **extra: Any):
        super().__init__(message)
        self.status, self.message, self.code, self.param = status, message, code, param
        self.headers, self.extra = headers, extra

    def body(self) -> dict:
        return error_body(self.status, self.message, self.code, self.param, **self.extra)
