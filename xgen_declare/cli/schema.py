"""`xgen-declare schema`: JSON Schema of a Model manifest (for yaml-language-server and CI)."""

from __future__ import annotations

import click

from xgen_declare.manifests.request import Manifest
from xgen_declare.cli.common import global_options, print_json


def manifest_schema() -> dict:
    schema = Manifest.model_json_schema()
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema.setdefault("description", "One model per YAML document: apiVersion xgen/v1, kind Model")
    return schema


@click.command(short_help="Print the JSON Schema of a manifest")
@global_options
def command() -> int:
    """Print the JSON Schema of a Model manifest.

    \b
    In editors with yaml-language-server, put this on the first line of a manifest:
      # yaml-language-server: $schema=./model.schema.json
    """
    print_json(manifest_schema())
    return 0
