"""store/preflight.py: the disk check before any byte is fetched, and a store dir that cannot be written."""

from __future__ import annotations

from pathlib import Path

import pytest

from xgen_declare.config import Store
from xgen_declare.errors import FetchError
from xgen_declare.store.preflight import check_space, store_writable

GiB = 2**30


def usage(total: int, free: int):
    return lambda path: (total, total - free, free)


def test_fits_above_min_free(tmp_path):
    check_space(5 * GiB, tmp_path, Store(), usage(100 * GiB, 16 * GiB))  # 11 GiB left >= 10 %
    check_space(5 * GiB, tmp_path, Store(min_free="1GiB"), usage(100 * GiB, 6 * GiB))


def test_does_not_fit_names_need_free_dir_and_min_free(tmp_path):
    with pytest.raises(FetchError) as err:
        check_space(int(14.2 * GiB), tmp_path / "models", Store(min_free="10%"), usage(100 * GiB, int(9.8 * GiB)))
    assert err.value.blocked
    assert str(err.value) == (f"needs 14.2 GiB, 9.8 GiB free on {tmp_path / 'models'} (store.min_free 10% of 100.0 GiB = 10.0 GiB); free "
                              "space (xgen-declare store gc), lower store.min_free or move store.dir")
    # CI's disk: 20 GiB free of 252 GiB is under 10 %, so even 293 KiB is refused; the message says what 10 % is
    with pytest.raises(FetchError, match=r"^needs 293 KiB, 20\.0 GiB free on .* \(store\.min_free 10% of 252\.0 GiB "
                       r"= 25\.2 GiB\); "):
        check_space(293 * 1024, tmp_path, Store(), usage(252 * GiB, 20 * GiB))
    with pytest.raises(FetchError, match=r"^needs 1\.0 GiB, 10\.0 GiB free on .* \(store\.min_free 20GiB\)"):
        check_space(GiB, tmp_path, Store(min_free="20GiB"), usage(100 * GiB, 10 * GiB))


def test_store_dir_that_cannot_be_created(tmp_path):
    (tmp_path / "file").write_text("x")
    with pytest.raises(FetchError) as err:
        store_writable(tmp_path / "file" / "store")
    assert err.value.blocked and str(err.value) == (
        f"cannot create the store directory {tmp_path / 'file' / 'store'}: Not a directory; create it, or set "
        "store.dir to a writable directory")
    store_writable(tmp_path / "new" / "store")
    assert Path(tmp_path / "new" / "store").is_dir()
