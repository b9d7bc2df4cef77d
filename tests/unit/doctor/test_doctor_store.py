"""`doctor` and the model store (issue 23): reported only when a model has a hub source or the config a
`store:` section; what it holds, free space against store.min_free, partial files (the store's own,
resumed; huggingface_hub's orphans, never resumed), an unwritable store dir."""

from __future__ import annotations

from xgen_declare.config import Config, Store
from xgen_declare.doctor.store import STORE_FIX, store_findings

from .conftest import lines

SHA = "a" * 64
GiB = 2**30


def source_manifest(fake_host, name="hub"):
    (fake_host.manifests / f"{name}.yaml").write_text(
        f"apiVersion: xgen/v1\nkind: Model\nmetadata:\n  name: {name}\nspec:\n  source: hf://org/m-GGUF:Q4_K_M\n")


def store_lines(found):
    return [x for x in lines(found) if x[1] == "store"]


def test_no_source_and_no_store_section_says_nothing(fake_host):
    fake_host.manifest("m1")
    assert store_lines(fake_host.run()) == []


def test_store_contents_free_space_and_partials(fake_host):
    source_manifest(fake_host)
    fake_host.write_config("store: {dir: store, min_free: 1MB}\n")
    blobs = fake_host.manifests / "store" / "models--org--m-GGUF" / "blobs"
    blobs.mkdir(parents=True)
    (blobs / SHA).write_bytes(b"x" * 1000)
    (blobs / ("b" * 64 + ".incomplete")).write_bytes(b"x" * 300)
    orphan = blobs / ("c" * 64 + ".0123abcd.incomplete")
    orphan.write_bytes(b"x" * 200)
    found = fake_host.run()
    got = store_lines(found)
    store = fake_host.manifests / "store"
    assert got[0] == ("ok", "store", f"{store}: 1 repositor(y/ies), 1000 bytes in files; 1 model(s) with a hub or URL "
                                     "source")
    assert got[1][0] == "ok" and got[1][2].startswith(f"{store}: ") and got[1][2].endswith(
        "free (store.min_free 1MB keeps 977 KiB)")
    assert got[2:] == [
        ("ok", "store", "1 partial download(s), 300 bytes: the next fetch resumes them; xgen-declare store gc "
                        "removes those no manifest wants"),
        ("warn", "store", f"1 partial file(s) huggingface_hub left behind, 200 bytes: never resumed (e.g. {orphan})"),
    ]
    [fix] = [f.fix for f in found if f.check == "store" and f.status == "warn"]
    assert fix == ("xgen-declare store gc --all removes them, never one a download is writing (--all also removes "
                   "other tools' files no manifest uses: see store gc --all --dry-run first)")


def test_unwritable_store_dir_fails(fake_host):
    source_manifest(fake_host)
    (fake_host.tmp / "file").write_text("")
    fake_host.write_config(f"store: {{dir: {fake_host.tmp / 'file' / 'store'}}}\n")
    found = [f for f in fake_host.run() if f.check == "store"]
    assert [(f.status, f.message, f.fix) for f in found] == [
        ("fail", f"{fake_host.tmp / 'file' / 'store'}: not writable: Not a directory (it does not exist yet, and "
                 f"{fake_host.tmp / 'file'} cannot be written)", STORE_FIX)]


def test_free_space_below_min_free_and_offline(tmp_path):
    config = Config(store=Store(dir=str(tmp_path), min_free="10%", offline=True))
    found = store_findings(config, [], {}, lambda p: None, disk_usage=lambda p: (100 * GiB, 95 * GiB, 5 * GiB))
    assert [(f.status, f.message) for f in found] == [
        ("ok", f"{tmp_path}: 0 repositor(y/ies), 0 bytes in files; no model with a hub or URL source"),
        ("warn", f"{tmp_path}: 5.0 GiB free, below store.min_free 10% (10.0 GiB): no download can start"),
        ("ok", "offline (store.offline): models use only what the store holds"),
    ]
