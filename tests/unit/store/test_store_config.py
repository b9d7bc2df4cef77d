"""The `store:` section of xgen-declare.yaml: dir, min_free (a percentage or a size), offline."""

from __future__ import annotations

import pytest

from xgen_declare.config import load_config
from xgen_declare.errors import ConfigError


def config_of(tmp_path, text: str):
    path = tmp_path / "xgen-declare.yaml"
    path.write_text(text)
    return load_config(str(path))


def test_defaults_and_values(tmp_path):
    cfg = config_of(tmp_path, "ports: {start: 8001, end: 8002}\n")
    assert (cfg.store.dir, cfg.store.min_free, cfg.store.offline) == (None, "10%", False)
    assert cfg.store.min_free_bytes(1000) == 100
    cfg = config_of(tmp_path, "store:\n  dir: models\n  min_free: 20GiB\n  offline: true\n")
    assert cfg.resolve(cfg.store.dir) == str(tmp_path / "models")
    assert cfg.store.min_free_bytes(1) == 20 * 2**30 and cfg.store.offline


@pytest.mark.parametrize("value,message", [
    ("lots", 'must be a percentage of the filesystem or a size; write e.g. "10%", "20GiB" or "500MB"'),
    ("100%", 'a percentage must be from 0 to below 100; write e.g. "10%"'),
])
def test_bad_min_free_names_file_line_field(tmp_path, value, message):
    with pytest.raises(ConfigError) as err:
        config_of(tmp_path, f"store:\n  min_free: {value}\n")
    [p] = err.value.problems
    head, _, hint = message.partition("; ")
    assert (p.line, p.field, p.message, p.hint) == (2, "store.min_free", head, hint)
