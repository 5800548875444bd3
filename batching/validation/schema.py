"""Checks that a structured-outputs JSON schema is one the service accepts in strict mode.

A batch only reports a bad schema per request, hours later; checking it up front fails the file
in seconds instead. The rules are OpenAI's "supported schemas" for `strict: true`: the root is an
object, every object sets `additionalProperties: false` and lists every property in `required`,
only the supported types and keywords appear, within the nesting and size limits.
"""

from __future__ import annotations

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing: batchctl start-up
if TYPE_CHECKING:
    from typing import Any


MAX_DEPTH = 10
MAX_PROPERTIES = 5000
MAX_ENUM_VALUES = 1000
TYPES = frozenset({"string", "number", "integer", "boolean", "object", "array", "null"})
# Keywords strict mode rejects; anything else unknown is left to the service.
UNSUPPORTED = frozenset(
    {
        "allOf",
        "oneOf",
        "not",
        "if",
        "then",
        "else",
        "dependentRequired",
        "dependentSchemas",
        "patternProperties",
        "unevaluatedProperties",
        "unevaluatedItems",
        "propertyNames",
    }
)


class SchemaError(ValueError):
    """The schema breaks a strict-mode rule; the message names the place and the fix."""


def check_json_schema(fmt: dict[str, Any], where: str) -> list[str]:
    """Check a `{name, schema, strict}` object; return the schema's top-level property names.

    `where` is the path of `fmt` in the request, used in messages. Strict-mode rules apply only
    when `strict` is true: without it the service accepts any object schema.
    """
    name = fmt.get("name")
    if not isinstance(name, str) or not name:
        raise SchemaError(f"{where}.name is missing: give the schema a name (a-z, 0-9, _ or -)")
    schema = fmt.get("schema")
    if not isinstance(schema, dict):
        raise SchemaError(f"{where}.schema must be a JSON schema object")
    if schema.get("type") != "object" or "anyOf" in schema:
        raise SchemaError(f'{where}.schema must have "type": "object" at the root')
    strict = fmt.get("strict", False)
    if not isinstance(strict, bool):
        raise SchemaError(f"{where}.strict must be true or false")
    if strict:
        _Strict(schema, f"{where}.schema").check(schema, f"{where}.schema", 1)
    properties = schema.get("properties")
    return list(properties) if isinstance(properties, dict) else []


class _Strict:
    """One walk over a schema, counting properties across the whole tree."""

    def __init__(self, root: dict[str, Any], root_path: str) -> None:
        self._root = root
        self._root_path = root_path
        self._properties = 0

    def check(self, node: Any, path: str, depth: int) -> None:
        if not isinstance(node, dict):
            raise SchemaError(f"{path} must be a schema object")
        if depth > MAX_DEPTH:
            raise SchemaError(f"{path} nests deeper than {MAX_DEPTH} levels: flatten the schema")
        bad = UNSUPPORTED.intersection(node)
        if bad:
            raise SchemaError(
                f"{path} uses {', '.join(sorted(bad))}, not supported in strict mode; "
                "use anyOf or separate properties"
            )
        if not self._check_composite(node, path, depth):
            self._check_typed(node, path, depth)

    def _check_composite(self, node: dict[str, Any], path: str, depth: int) -> bool:
        """Definitions, references and anyOf; True when the node is a reference or an anyOf."""
        for key in ("$defs", "definitions"):
            defs = node.get(key, {})
            if not isinstance(defs, dict):
                raise SchemaError(f"{path}.{key} must be an object of schemas")
            for name, sub in defs.items():
                self.check(sub, f"{path}.{key}.{name}", depth)
        if "$ref" in node:
            self._check_ref(node["$ref"], path)
            return True
        if "anyOf" in node:
            branches = node["anyOf"]
            if not isinstance(branches, list) or not branches:
                raise SchemaError(f"{path}.anyOf must be a non-empty list of schemas")
            for i, sub in enumerate(branches):
                self.check(sub, f"{path}.anyOf[{i}]", depth + 1)
            return True
        return False

    def _check_typed(self, node: dict[str, Any], path: str, depth: int) -> None:
        self._check_enum(node, path)
        types = node.get("type")
        if types is None and ("enum" in node or "const" in node):
            return
        names = types if isinstance(types, list) else [types]
        if not names or not all(isinstance(t, str) and t in TYPES for t in names):
            raise SchemaError(
                f"{path}.type must be one of {', '.join(sorted(TYPES))} (or a list of them), "
                f"not {types!r}"
            )
        if "object" in names:
            self._check_object(node, path, depth)
        if "array" in names:
            if "items" not in node:
                raise SchemaError(f"{path} is an array without items: add an items schema")
            self.check(node["items"], f"{path}.items", depth + 1)

    def _check_object(self, node: dict[str, Any], path: str, depth: int) -> None:
        if node.get("additionalProperties") is not False:
            raise SchemaError(f'{path} must set "additionalProperties": false (strict mode)')
        properties = node.get("properties", {})
        if not isinstance(properties, dict):
            raise SchemaError(f"{path}.properties must be an object")
        required = node.get("required", [])
        if not isinstance(required, list):
            raise SchemaError(f"{path}.required must be a list of property names")
        missing = [p for p in properties if p not in required]
        if missing:
            raise SchemaError(
                f"{path}.required must list every property in strict mode; missing: "
                f"{', '.join(missing)} (make a property optional with a null type instead)"
            )
        unknown = [p for p in required if p not in properties]
        if unknown:
            raise SchemaError(f"{path}.required names undefined properties: {unknown}")
        self._properties += len(properties)
        if self._properties > MAX_PROPERTIES:
            raise SchemaError(f"{self._root_path} has more than {MAX_PROPERTIES} properties")
        for name, sub in properties.items():
            self.check(sub, f"{path}.properties.{name}", depth + 1)

    def _check_enum(self, node: dict[str, Any], path: str) -> None:
        if "enum" not in node:
            return
        values = node["enum"]
        if not isinstance(values, list) or not values:
            raise SchemaError(f"{path}.enum must be a non-empty list")
        if len(values) > MAX_ENUM_VALUES:
            raise SchemaError(f"{path}.enum has more than {MAX_ENUM_VALUES} values")

    def _check_ref(self, ref: Any, path: str) -> None:
        if not isinstance(ref, str) or not ref.startswith("#"):
            raise SchemaError(f"{path}.$ref must point inside the schema (start with #)")
        target: Any = self._root
        for part in filter(None, ref[1:].split("/")):
            if not isinstance(target, dict) or part not in target:
                raise SchemaError(f"{path}.$ref {ref!r} points to nothing")
            target = target[part]
