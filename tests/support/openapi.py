"""Reading an app's OpenAPI document in tests: the list operations and their `fields` parameter."""

from __future__ import annotations

import re
from typing import Any


def fields_examples(spec: dict[str, Any]) -> list[tuple[str, str]]:
    """(path, the documented `fields` example) of every list operation of `spec`, each example
    checked against the parameter's published pattern."""
    found = []
    for path, item in spec["paths"].items():
        for parameter in item.get("get", {}).get("parameters", []):
            if parameter["name"] == "fields":
                example = parameter["schema"]["examples"][0]
                assert re.search(parameter["schema"]["pattern"], example), path
                found.append((path, example))
    return found
