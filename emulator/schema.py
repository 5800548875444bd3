"""A deterministic JSON value that conforms to a JSON schema, for structured-output answers.

Covers what strict structured outputs allow: types (and type lists), `enum`, `const`, objects
with `properties` / `required` / `additionalProperties`, arrays with `items` / `prefixItems` /
`minItems` / `maxItems` / `uniqueItems`, `anyOf` / `oneOf` / `allOf`, local `$ref`s (`#/$defs/...`),
string `format`s and lengths, and numeric bounds. `pattern` is not honoured.
"""

from __future__ import annotations

import math
from typing import Any

MAX_DEPTH = 8
# A schema that recurses through required properties has no finite instance: stop somewhere.
HARD_DEPTH = 4 * MAX_DEPTH
FORMATS = {
    "date-time": "2024-01-01T00:00:00Z",
    "date": "2024-01-01",
    "time": "00:00:00",
    "duration": "P1D",
    "email": "user@example.com",
    "hostname": "example.com",
    "ipv4": "192.0.2.1",
    "ipv6": "2001:db8::1",
    "uri": "https://example.com/",
    "uuid": "00000000-0000-4000-8000-000000000000",
}


def instance(schema: Any) -> Any:
    """A value valid against `schema` (whose local `$ref`s resolve against itself)."""
    return _Generator(schema).value(schema, "value", 0, 0)


class _Generator:
    def __init__(self, root: Any) -> None:
        self.root = root

    def resolve(self, ref: str) -> Any:
        node = self.root
        for raw in ref.removeprefix("#").strip("/").split("/"):
            if raw:
                token = raw.replace("~1", "/").replace("~0", "~")
                node = node[int(token)] if isinstance(node, list) else node[token]
        return node

    def reduce(self, schema: dict[str, Any], depth: int) -> dict[str, Any]:
        """Replace `$ref`, `anyOf` / `oneOf` and `allOf` by one plain schema."""
        for _ in range(HARD_DEPTH):
            if "$ref" in schema:
                target = dict(self.resolve(schema["$ref"]))
                target.update({k: v for k, v in schema.items() if k != "$ref"})
                schema = target
            elif any(isinstance(schema.get(k), list) and schema[k] for k in ("anyOf", "oneOf")):
                options = schema.get("anyOf") or schema["oneOf"]
                rest = {k: v for k, v in schema.items() if k not in ("anyOf", "oneOf")}
                choice = self._pick(options, depth)
                schema = {**rest, **choice} if isinstance(choice, dict) else rest
            elif isinstance(schema.get("allOf"), list):
                schema = _merge(schema)
            else:
                break
        return schema

    def value(self, schema: Any, name: str, index: int, depth: int) -> Any:
        if depth > HARD_DEPTH or schema is False:
            return None
        if not isinstance(schema, dict):
            return f"{name} {index + 1}"
        schema = self.reduce(schema, depth)
        if "const" in schema:
            return schema["const"]
        if isinstance(schema.get("enum"), list) and schema["enum"]:
            return schema["enum"][index % len(schema["enum"])]
        kind = self._kind(schema, depth)
        if kind in ("object", "array"):
            return (
                self.object(schema, depth) if kind == "object" else self.array(schema, name, depth)
            )
        return _scalar(schema, kind, name, index)

    @staticmethod
    def _pick(options: list[Any], depth: int) -> Any:
        """Past MAX_DEPTH prefer a `null` option, which ends recursive schemas."""
        nulls = [o for o in options if isinstance(o, dict) and o.get("type") == "null"]
        others = [o for o in options if o not in nulls]
        if depth >= MAX_DEPTH and nulls:
            return nulls[0]
        return others[0] if others else options[0]

    @staticmethod
    def _kind(schema: dict[str, Any], depth: int) -> str:
        kind = schema.get("type")
        if isinstance(kind, list):
            concrete = [k for k in kind if k != "null"]
            return (
                "null" if (depth >= MAX_DEPTH and "null" in kind) or not concrete else concrete[0]
            )
        if isinstance(kind, str):
            return kind
        if "properties" in schema:
            return "object"
        if "items" in schema or "prefixItems" in schema:
            return "array"
        return "string"

    def object(self, schema: dict[str, Any], depth: int) -> dict[str, Any]:
        properties = schema.get("properties") or {}
        required = schema.get("required") or []
        names = list(properties) if depth < MAX_DEPTH else [n for n in properties if n in required]
        result = {n: self.value(properties[n], n, 0, depth + 1) for n in names}
        extra = schema.get("additionalProperties")
        for n in required:  # required names without a declared property
            if n not in result:
                result[n] = self.value(extra if isinstance(extra, dict) else {}, n, 0, depth + 1)
        return result

    def array(self, schema: dict[str, Any], name: str, depth: int) -> list[Any]:
        prefix = schema.get("prefixItems") or []
        items = schema.get("items", {})
        minimum = int(schema.get("minItems", 0))
        maximum = int(schema.get("maxItems", max(minimum, 2)))
        wanted = minimum if depth >= MAX_DEPTH else max(minimum, min(len(prefix) or 2, maximum))
        result = [self.value(p, name, i, depth + 1) for i, p in enumerate(prefix[:wanted])]
        if items is not False:
            for i in range(len(result), wanted):
                result.append(self.value(items, f"{name}", i, depth + 1))
        return result


def _merge(schema: dict[str, Any]) -> dict[str, Any]:
    """`allOf` as one schema: later parts add properties and required names."""
    merged: dict[str, Any] = {k: v for k, v in schema.items() if k != "allOf"}
    for part in schema["allOf"]:
        if not isinstance(part, dict):
            continue
        for key, value in part.items():
            if key == "properties":
                merged["properties"] = {**merged.get("properties", {}), **value}
            elif key == "required":
                merged["required"] = [*merged.get("required", []), *value]
            else:
                merged.setdefault(key, value)
    return merged


def _scalar(schema: dict[str, Any], kind: str, name: str, index: int) -> Any:
    if kind in ("integer", "number"):
        return _number(schema, kind == "integer", index)
    if kind == "boolean":
        return index % 2 == 0
    if kind == "null":
        return None
    return _string(schema, name, index)


def _number(schema: dict[str, Any], integer: bool, index: int) -> int | float:
    low = schema.get("minimum")
    if "exclusiveMinimum" in schema:
        step = 1 if integer else 0.5
        low = max(low if low is not None else -math.inf, schema["exclusiveMinimum"] + step)
    high = schema.get("maximum")
    if "exclusiveMaximum" in schema:
        step = 1 if integer else 0.5
        high = min(high if high is not None else math.inf, schema["exclusiveMaximum"] - step)
    value: float = (low if low is not None else 1) + index
    if high is not None and value > high:
        value = high if low is None else max(low, high)
    multiple = schema.get("multipleOf")
    if multiple:
        value = math.ceil(value / multiple) * multiple
    if integer:
        return math.ceil(value)
    return float(value) if low is not None or high is not None or multiple else value + 0.5


def _string(schema: dict[str, Any], name: str, index: int) -> str:
    text = FORMATS.get(schema.get("format", ""), f"{name} {index + 1}")
    minimum = int(schema.get("minLength", 0))
    if len(text) < minimum:
        text = text + "x" * (minimum - len(text))
    maximum = schema.get("maxLength")
    if maximum is not None and len(text) > maximum:
        text = text[: int(maximum)]
    return text
