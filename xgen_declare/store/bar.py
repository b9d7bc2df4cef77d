"""Progress of one source's download: the progress-bar class huggingface_hub's `http_get` creates per file
(`tqdm_class`) turned into (bytes done, bytes total) callbacks over the whole source."""

from __future__ import annotations

from typing import Callable

__all__ = ["Bar", "ProgressFn"]

ProgressFn = Callable[[int, int], None]  # (bytes done, bytes total)


class Bar:
    """The progress-bar class huggingface_hub creates per file (`tqdm_class`): forwards byte counts to the
    callback as (done, total) over the whole source."""

    progress: ProgressFn | None = None
    resumed: Callable[[int], None] | None = None  # told the bytes a resumed file already had (not fetched now)
    base = total = 0

    @classmethod
    def for_file(cls, progress: ProgressFn | None, base: int, total: int,
                 resumed: Callable[[int], None] | None = None) -> type:
        return type("_FileBar", (cls,), {"progress": staticmethod(progress) if progress else None,
                                         "base": base, "total": total,
                                         "resumed": staticmethod(resumed) if resumed else None})

    def __init__(self, *args, initial: int = 0, **kwargs) -> None:
        self.n = initial
        if initial and self.resumed is not None:
            self.resumed(initial)

    def update(self, n: int = 1) -> None:
        self.n += n
        if self.progress is not None:
            self.progress(min(self.base + self.n, self.total), self.total)

    def close(self) -> None:
        pass

    def __enter__(self) -> "Bar":
        return self

    def __exit__(self, *exc) -> None:
        pass
