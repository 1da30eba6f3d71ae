"""`python -m unionhub_contracts.snapshot [--write DIR]`: the JSON Schema of every message's
`data`, one file per topic and type, committed so that changes are reviewed and checked."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from .catalogue import MESSAGES


def schemas() -> dict[str, dict[str, Any]]:
    """`{"<topic>/<type>.json": schema}` for every message of the catalogue."""
    return {
        f"{topic}/{type_name}.json": spec.data.model_json_schema(mode="validation")
        for topic, types in MESSAGES.items()
        for type_name, spec in types.items()
    }


def write(directory: Path) -> int:
    for name, schema in schemas().items():
        target = directory / name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(json.dumps(schema, indent=2, sort_keys=True) + "\n")
    return len(schemas())


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--write", type=Path, required=True, help="the snapshot directory")
    args = parser.parse_args()
    print(f"wrote {write(args.write)} schemas to {args.write}")
