"""GET one file's body into the store's partial file, resuming with Range: huggingface_hub's `http_get`, as the
store needs it, reading the body in 1 MiB pieces.

Why not `http_get` itself: it asks httpx for 10 MiB pieces (`constants.DOWNLOAD_CHUNK_SIZE`), which httpx
gathers in a growing BytesIO and copies twice more; that costs about as much CPU as the download itself
(bench/README.md, store_fetch.py: 256 MiB on loopback, 1.2 s of CPU at 10 MiB, 0.6 s at 1 MiB, sha256
included), and a kill loses up to 10 MiB instead of 1. Setting the constant would change every other
huggingface_hub call in the process. Everything else is as `http_get` does it: its client and timeout,
408/429 retried with back-off (`http_stream_backoff`), errors raised by `hf_raise_for_status`, a connection
dropped or timed out mid-body resumed with Range from what was written (RETRIES times without progress), a
server that ignores Range rewinds the file, the size checked at the end, one progress bar (`bar`, a tqdm-like
class: `bar(total=, initial=)`, `.update(n)`) across the retries.
"""

from __future__ import annotations

import time
from typing import BinaryIO

__all__ = ["get_into", "hub_http", "CHUNK", "RETRIES"]

CHUNK = 1 << 20
RETRIES = 5
RETRY_WAIT = 1.0  # seconds before a resume, as http_get waits


def hub_http():
    """The HTTP library huggingface_hub itself uses: httpx2 from 2.0, httpx in 1.x (pyproject allows both; the
    LiteLLM bench's venv gets 1.x). Its session raises that library's errors and takes its Timeout."""
    from huggingface_hub.utils import _http

    return getattr(_http, "httpx2", None) or _http.httpx


def get_into(url: str, out: BinaryIO, *, resume: int, headers: dict, expected_size: int | None, bar: type) -> None:
    """Append the body of `url` from byte `resume` to `out` (which holds the first `resume` bytes)."""
    http = hub_http()
    from huggingface_hub import constants
    from huggingface_hub.utils import hf_raise_for_status, http_stream_backoff

    if expected_size is not None and resume == expected_size:
        return
    progress = bar(total=expected_size, initial=resume)
    tries = RETRIES
    while True:
        asked = {**headers, "Range": f"bytes={resume}-"} if resume else dict(headers)
        try:
            with http_stream_backoff(method="GET", url=url, headers=asked, timeout=constants.HF_HUB_DOWNLOAD_TIMEOUT,
                                     retry_on_exceptions=(), retry_on_status_codes=(408, 429)) as response:
                hf_raise_for_status(response)
                if resume and response.status_code == 200:  # Range ignored: the whole file comes again
                    out.seek(0)
                    out.truncate()
                    progress.update(-resume)
                    resume = 0
                for chunk in response.iter_bytes(chunk_size=CHUNK):
                    if chunk:
                        progress.update(len(chunk))
                        out.write(chunk)
                        resume += len(chunk)
                        tries = RETRIES  # data came: the count of tries without progress starts again
            break
        except (http.ConnectError, http.TimeoutException, http.RemoteProtocolError):
            if tries <= 0:
                raise
            tries -= 1
            time.sleep(RETRY_WAIT)
    if expected_size is not None and resume != expected_size:
        raise OSError(f"Consistency check failed: file should be of size {expected_size} but has size {resume} "
                      f"({url}); a network error while downloading it: retry")
