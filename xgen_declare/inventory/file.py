"""Read an inventory file (`--inventory FILE`): the YAML/JSON that `xgen-declare inventory` prints."""

from __future__ import annotations

from pathlib import Path

from pydantic import ValidationError

from xgen_declare.errors import InventoryFileError, Problem
from xgen_declare.readers.validation_errors import problems_from_validation
from xgen_declare.readers.yamlsource import load_documents
from xgen_declare.inventory.model import Inventory


def load_inventory_file(path: str) -> Inventory:
    docs, problems = load_documents(Path(path))
    if problems:
        raise InventoryFileError(problems)
    if len(docs) != 1 or not isinstance(docs[0].data, dict):
        line = docs[0].line if docs else None
        raise InventoryFileError([Problem(path, line, "", "an inventory file holds exactly one mapping",
                                          "create one with `xgen-declare inventory -o yaml > host.yaml`")])
    try:
        inv = Inventory.model_validate(docs[0].data)
    except ValidationError as exc:
        raise InventoryFileError(problems_from_validation(exc, docs[0], Inventory)) from None
    indices = [g.index for g in inv.gpus]
    if len(set(indices)) != len(indices):
        raise InventoryFileError([Problem(path, docs[0].line_of(("gpus",)), "gpus", "GPU indices repeat",
                                          "give each GPU a unique index")])
    return inv
