"""The static half of ``docs/conformance.md``: Parley's OpenAPI document against OpenAI's.

Both documents are boiled down to the same digest: per endpoint (method and path, path
parameters written ``{}``), its request fields (body properties, and query parameters
written ``?name``) and its response fields (the properties of its first 2xx JSON answer),
each with a signature: its JSON types and, where it has one, its closed set of values. A
field's nested fields go one level down (``reasoning.effort``, ``data[].id``).

``$ref`` is followed; ``allOf``, ``anyOf`` and ``oneOf`` are merged simply: a field is there
when any branch has it, its types are those of every branch, and its values are closed only
when no branch is a string without an enum. ``integer`` counts as ``number``.

OpenAI's digest is kept in ``bench/conformance_openai.json`` (written from OpenAI's
``openapi.yaml`` by ``bench/conformance.py``), so that the comparison, and the test that
checks it against ``docs/conformance.md``, need only this repository.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
OPENAI_DIGEST = ROOT / "bench" / "conformance_openai.json"
OPENAI_SPEC = Path("/work/shared/openai-openapi/openapi.yaml")

#: The OpenAI route families Parley serves (``parley.server.errors.OPENAI_PATHS``), in the
#: report's order.
FAMILIES = (
    "/responses",
    "/conversations",
    "/chat/completions",
    "/assistants",
    "/threads",
    "/files",
    "/uploads",
    "/vector_stores",
    "/containers",
    "/embeddings",
    "/models",
)

#: The headline rows: each protocol and the route families it takes in.
PROTOCOLS: dict[str, tuple[str, ...]] = {
    "Responses + Conversations": ("/responses", "/conversations"),
    "Chat Completions": ("/chat/completions",),
    "Assistants v2": ("/assistants", "/threads"),
    "Files, Uploads, Vector Stores, Containers": (
        "/files",
        "/uploads",
        "/vector_stores",
        "/containers",
    ),
    "Embeddings, Models": ("/embeddings", "/models"),
}

_METHODS = ("get", "post", "delete", "put", "patch")

#: A field's signature: its JSON types (sorted; empty: any) and its closed values (or None).
Sig = tuple[tuple[str, ...], tuple[str, ...] | None]


@dataclass
class Endpoint:
    """One operation: its request and response fields, ``response`` None when its answer
    is not described field by field (free-form, or no JSON body)."""

    family: str
    path: str
    request: dict[str, Sig] = field(default_factory=dict)
    response: dict[str, Sig] | None = None


# ------------------------------------------------------------------------------ digests


def family_of(path: str) -> str | None:
    """The route family of an OpenAI path (``/v1`` already cut), or None."""
    for family in FAMILIES:
        if path == family or path.startswith(f"{family}/"):
            return family
    return None


def endpoint_key(method: str, path: str) -> str:
    """``POST /threads/{}/runs``: the method, and the path with its parameters unnamed."""
    parts = ["{}" if p.startswith("{") else p for p in path.split("/")]
    return f"{method.upper()} {'/'.join(parts)}"


class _Shapes:
    """Signatures and fields of one document's schemas."""

    def __init__(self, document: Mapping[str, Any]) -> None:
        self.document = document

    def resolve(self, schema: Any) -> dict[str, Any]:
        seen = 0
        while isinstance(schema, Mapping) and "$ref" in schema and seen < 50:
            node: Any = self.document
            for part in str(schema["$ref"]).removeprefix("#/").split("/"):
                node = node[part]
            schema, seen = node, seen + 1
        return dict(schema) if isinstance(schema, Mapping) else {}

    def branches(self, schema: Any) -> Iterator[dict[str, Any]]:
        """The schema and every branch of its ``allOf``/``anyOf``/``oneOf``, flattened."""
        schema = self.resolve(schema)
        yield schema
        for key in ("allOf", "anyOf", "oneOf"):
            for branch in schema.get(key) or ():
                yield from self.branches(branch)

    def sig(self, schema: Any) -> Sig:
        types: set[str] = set()
        values: set[str] = set()
        open_strings = False
        for branch in self.branches(schema):
            own = branch.get("type")
            own_types = set(own) if isinstance(own, list) else {own} if own else set()
            if branch.get("nullable"):
                own_types.add("null")
            literals = list(branch.get("enum") or [])
            if "const" in branch:
                literals.append(branch["const"])
            for value in literals:
                if value is None:
                    own_types.add("null")
                else:
                    values.add(str(value).lower() if isinstance(value, bool) else str(value))
                    own_types.add(_json_type(value))
            if not own_types and (branch.get("properties") or branch.get("additionalProperties")):
                own_types.add("object")
            if "string" in own_types and not literals:
                open_strings = True
            types |= own_types
        types = {"number" if t == "integer" else t for t in types}
        closed = tuple(sorted(values)) if values and not open_strings else None
        return tuple(sorted(types)), closed

    def properties(self, schema: Any) -> dict[str, Any]:
        """Every property any branch names (the first branch's schema for each name)."""
        props: dict[str, Any] = {}
        for branch in self.branches(schema):
            for name, sub in (branch.get("properties") or {}).items():
                props.setdefault(name, sub)
        return props

    def items(self, schema: Any) -> list[Any]:
        return [b["items"] for b in self.branches(schema) if isinstance(b.get("items"), Mapping)]

    def fields(self, schema: Any) -> dict[str, Sig]:
        """The object's fields and, one level down, its objects' and arrays' fields."""
        out: dict[str, Sig] = {}
        for name, sub in self.properties(schema).items():
            out[name] = self.sig(sub)
            for inner, inner_schema in self.properties(sub).items():
                out[f"{name}.{inner}"] = self.sig(inner_schema)
            for item in self.items(sub):
                for inner, inner_schema in self.properties(item).items():
                    out.setdefault(f"{name}[].{inner}", self.sig(inner_schema))
        return out


def _json_type(value: Any) -> str:
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    return "string" if isinstance(value, str) else "object"


def _body(content: Mapping[str, Any]) -> list[Any]:
    """The schemas of a body: JSON's and a form's (both, when both are taken)."""
    kinds = ("application/json", "multipart/form-data", "application/x-www-form-urlencoded")
    return [content[k]["schema"] for k in kinds if isinstance(content.get(k), Mapping)]


def digest(document: Mapping[str, Any], *, prefix: str = "") -> dict[str, Endpoint]:
    """Every endpoint of the OpenAI route families in ``document``, by ``endpoint_key``.
    ``prefix``: cut from each path first (``/v1`` in Parley's). Paths with a query in them
    (OpenAI's ``?beta=true`` variants) are left out."""
    shapes = _Shapes(document)
    out: dict[str, Endpoint] = {}
    for raw_path, item in document.get("paths", {}).items():
        if "?" in raw_path or not raw_path.startswith(prefix):
            continue
        path = raw_path[len(prefix) :]
        family = family_of(path)
        if family is None:
            continue
        for method, operation in item.items():
            if method not in _METHODS:
                continue
            endpoint = Endpoint(family, path)
            content = shapes.resolve(operation.get("requestBody")).get("content") or {}
            for body in _body(content):
                endpoint.request.update(shapes.fields(body))
            for param in operation.get("parameters") or ():
                param = shapes.resolve(param)
                if param.get("in") == "query":
                    endpoint.request[f"?{param['name']}"] = shapes.sig(param.get("schema"))
            endpoint.response = _answer(shapes, operation)
            out[endpoint_key(method, path)] = endpoint
    return out


def _answer(shapes: _Shapes, operation: Mapping[str, Any]) -> dict[str, Sig] | None:
    for status, answer in sorted(operation.get("responses", {}).items()):
        if not str(status).startswith("2"):
            continue
        content = shapes.resolve(answer).get("content") or {}
        json_answer = content.get("application/json")
        if not isinstance(json_answer, Mapping):
            return None
        return shapes.fields(json_answer.get("schema")) or None
    return None


def parley_document() -> dict[str, Any]:
    """The running app's ``/openapi.json``, built in-process."""
    from parley.config import Settings
    from parley.server.app import create_app

    return create_app(Settings(database_url="sqlite://")).openapi()


def parley_digest() -> dict[str, Endpoint]:
    return digest(parley_document(), prefix="/v1")


def openai_digest_from_spec(spec: Path = OPENAI_SPEC) -> dict[str, Any]:
    """OpenAI's digest as kept in ``OPENAI_DIGEST``, from its ``openapi.yaml``."""
    import yaml

    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    document = yaml.load(spec.read_text(), Loader=loader)
    endpoints = digest(document)
    return {
        "source": f"OpenAI's openapi.yaml, version {document['info']['version']}",
        "endpoints": {key: _to_json(e) for key, e in sorted(endpoints.items())},
    }


def _to_json(endpoint: Endpoint) -> dict[str, Any]:
    def sigs(fields: Mapping[str, Sig]) -> dict[str, Any]:
        return {name: [list(t), None if v is None else list(v)] for name, (t, v) in fields.items()}

    return {
        "family": endpoint.family,
        "path": endpoint.path,
        "request": sigs(endpoint.request),
        "response": None if endpoint.response is None else sigs(endpoint.response),
    }


def load_openai_digest(path: Path = OPENAI_DIGEST) -> tuple[str, dict[str, Endpoint]]:
    """OpenAI's source line and endpoints, from the kept digest."""
    data = json.loads(path.read_text())

    def sigs(fields: Mapping[str, Any]) -> dict[str, Sig]:
        return {n: (tuple(t), None if v is None else tuple(v)) for n, (t, v) in fields.items()}

    endpoints = {
        key: Endpoint(
            e["family"],
            e["path"],
            sigs(e["request"]),
            None if e["response"] is None else sigs(e["response"]),
        )
        for key, e in data["endpoints"].items()
    }
    return str(data["source"]), endpoints


def write_openai_digest(spec: Path = OPENAI_SPEC, path: Path = OPENAI_DIGEST) -> None:
    path.write_text(json.dumps(openai_digest_from_spec(spec), indent=1, sort_keys=True) + "\n")


# ------------------------------------------------------------------------------ comparison


@dataclass(frozen=True)
class Row:
    """One field of one endpoint: ``status`` present, missing, different or undescribed."""

    name: str
    status: str
    detail: str = ""


def _types(sig: Sig) -> set[str]:
    return set(sig[0]) - {"null"}


def _show(sig: Sig) -> str:
    types, values = sig
    shown = " or ".join(t for t in types if t != "null") or "any"
    return f"{shown} ({', '.join(values)})" if values else shown


def compare_request(openai: Sig, parley: Sig) -> str:
    """Why Parley's request field takes less than OpenAI's ("" when it takes it all)."""
    if not _types(openai) or not _types(parley):
        return ""
    lacks = _types(openai) - _types(parley)
    if lacks:
        return f"takes no {' or '.join(sorted(lacks))} (OpenAI: {_show(openai)})"
    (_, theirs), (_, ours) = openai, parley
    if theirs and ours and set(theirs) - set(ours):
        return f"values not taken: {', '.join(sorted(set(theirs) - set(ours)))}"
    if ours and not theirs and "string" in _types(openai):
        return f"takes only {', '.join(ours)} (OpenAI: any string)"
    return ""


def compare_response(openai: Sig, parley: Sig) -> str:
    """What Parley's response field answers that OpenAI's document does not ("" if none)."""
    if not _types(openai) or not _types(parley):
        return ""
    extra = _types(parley) - _types(openai)
    if extra:
        return f"answers {_show(parley)} (OpenAI: {_show(openai)})"
    (_, theirs), (_, ours) = openai, parley
    if theirs and ours and set(ours) - set(theirs):
        return f"values OpenAI does not list: {', '.join(sorted(set(ours) - set(theirs)))}"
    return ""


def compare_fields(
    openai: Mapping[str, Sig], parley: Mapping[str, Sig] | None, *, request: bool
) -> list[Row]:
    """A row per OpenAI field. A nested field is left out when its parent is missing, and
    is ``undescribed`` when Parley's document describes its parent as free-form."""
    rows: list[Row] = []
    for name, theirs in openai.items():
        parent = name.split(".")[0].removesuffix("[]")
        if parent != name and (parley is None or parent not in parley):
            continue
        if parley is None or (parent != name and not _has_nested(parley, parent)):
            rows.append(Row(name, "undescribed"))
        elif name not in parley:
            rows.append(Row(name, "missing"))
        else:
            compare = compare_request if request else compare_response
            why = compare(theirs, parley[name])
            rows.append(Row(name, "different" if why else "present", why))
    return rows


def _has_nested(fields: Mapping[str, Sig], parent: str) -> bool:
    return any(n.startswith((f"{parent}.", f"{parent}[].")) for n in fields)


@dataclass
class EndpointResult:
    key: str
    family: str
    path: str
    present: bool
    request: list[Row]
    response: list[Row]
    own: list[str]


def compare(openai: Mapping[str, Endpoint], parley: Mapping[str, Endpoint]) -> list[EndpointResult]:
    """Every OpenAI endpoint, in the families' order then by path and method."""
    order = {f: i for i, f in enumerate(FAMILIES)}
    keys = sorted(openai, key=lambda k: (order[openai[k].family], k.split(" ")[1], k))
    results = []
    for key in keys:
        theirs, ours = openai[key], parley.get(key)
        if ours is None:
            results.append(EndpointResult(key, theirs.family, theirs.path, False, [], [], []))
            continue
        request = compare_fields(theirs.request, ours.request, request=True)
        response = compare_fields(theirs.response or {}, ours.response, request=False)
        own = sorted(n for n in ours.request if "." not in n and n not in theirs.request)
        results.append(
            EndpointResult(key, theirs.family, theirs.path, True, request, response, own)
        )
    return results


def top(rows: Iterable[Row]) -> list[Row]:
    return [r for r in rows if "." not in r.name]
