"""The static half of ``docs/conformance.md`` as Markdown, with the reasons where Parley
differs from OpenAI's document on purpose.

A request field's reason is its rule in the options check's tables
(``parley.server.faces.kit.options``: supported, passed on, hint, refused, the same notes as
``docs/compatibility.md``); endpoints, response fields and the request fields no face table
names take theirs from the small tables here (``ENDPOINTS``, ``FIELDS``, ``UNDESCRIBED``).
"""

from __future__ import annotations

from collections.abc import Iterable

from conformance_static import (
    FAMILIES,
    PROTOCOLS,
    EndpointResult,
    Row,
    compare,
    load_openai_digest,
    parley_digest,
    top,
)

from parley.server.faces.kit.options import FACES, UNFILLED, Rule

BEGIN = "<!-- static comparison: begin -->"
END = "<!-- static comparison: end -->"

#: Route family -> the options check's face whose table rules on its request fields.
FACE_OF = {
    "/responses": "responses",
    "/chat/completions": "chat",
    "/assistants": "assistants",
    "/threads": "assistants",
}

_NOT_STORED = (
    "Chat completions are not stored (`store: true` is refused): there is nothing to list, "
    "read, update or delete; use /v1/responses to keep answers"
)

#: Why an endpoint of OpenAI's document is not served.
ENDPOINTS: dict[str, str] = {
    "GET /chat/completions": _NOT_STORED,
    "GET /chat/completions/{}": _NOT_STORED,
    "POST /chat/completions/{}": _NOT_STORED,
    "DELETE /chat/completions/{}": _NOT_STORED,
    "GET /chat/completions/{}/messages": _NOT_STORED,
    "POST /responses/input_tokens": "Not served: Parley counts no tokens before a turn",
    "DELETE /models/{}": (
        "Models come from the server's configured providers; there are no fine-tuned "
        "models to delete"
    ),
}

_UNKNOWN = "Not taken: a body field Parley does not know is a 400 that names it"

_NO_NETWORK = (
    'Containers here have no network: `network_policy` is `{"type": "disabled"}`; an '
    "allowlist is refused by name"
)

#: (route family, field) -> why a field is missing or different, where no face table says.
FIELDS: dict[tuple[str, str], str] = {
    ("/responses", "prompt"): f"Parley keeps no prompt templates. {_UNKNOWN}",
    ("/responses", "moderation"): _UNKNOWN,
    ("/responses", "prompt_cache_options"): _UNKNOWN,
    ("/responses", "prompt_cache_retention"): _UNKNOWN,
    ("/responses", "service_tier"): _UNKNOWN,
    ("/chat/completions", "moderation"): _UNKNOWN,
    ("/chat/completions", "prompt_cache_options"): _UNKNOWN,
    ("/containers", "network_policy.allowed_domains"): _NO_NETWORK,
    ("/containers", "network_policy.domain_secrets"): _NO_NETWORK,
    ("/embeddings", "data[].embedding"): (
        "A base64 string when `encoding_format` is `base64`, as OpenAI answers too "
        "(its document names only the array)"
    ),
    ("/files", "expires_after"): (
        "Taken as the form fields `expires_after[anchor]` and `expires_after[seconds]`, "
        "the way OpenAI's SDKs send it"
    ),
}

#: Route family -> why its answers are not described field by field in Parley's document.
UNDESCRIBED: dict[str, str] = {
    "/responses": (
        "Parley's document gives the Responses answers as free-form objects; the Open "
        "Responses runner checks their shape (live results)"
    ),
    "/conversations": "Parley's document gives conversations and items as free-form objects",
    "/chat/completions": "Parley's document gives the completion as a free-form object",
    "/models": "Parley's document gives the model list and model as free-form objects",
}

_FREE_FORM = "a free-form object in Parley's document"


def rule_text(rule: Rule) -> str:
    kind = f"{rule.kind} ({rule.when})" if rule.when else rule.kind
    return f"{kind}: {rule.note}" if rule.note else kind


def reason(family: str, row: Row, *, request: bool = True) -> str:
    """The reason shown beside a missing or different field: the difference, then the
    note of ``FIELDS``, else (a request's) the face's rule, or its parent's."""
    face = FACE_OF.get(family) if request else None
    rule = FACES[face].get(row.name) if face else None
    parts = [row.detail] if row.detail else []
    parent = row.name.split(".")[0].removesuffix("[]")
    parent_rule = FACES[face].get(parent) if face and parent != row.name else None
    if (family, row.name) in FIELDS:
        parts.append(FIELDS[(family, row.name)])
    elif rule is not None and (rule.kind != "supported" or rule.note):
        parts.append(rule_text(rule))
    elif parent_rule is not None:
        parts.append(f"`{parent}` is {rule_text(parent_rule)}")
    elif not request:
        pass
    elif row.status == "missing" and row.name.startswith("?"):
        parts.append("a query parameter Parley's document does not name")
    elif row.status == "missing" and parent == row.name:
        parts.append(_UNKNOWN)
    return "; ".join(parts)


def _count(rows: Iterable[Row]) -> tuple[int, int]:
    rows = list(rows)
    return sum(r.status == "present" for r in rows), len(rows)


def _ratio(pair: tuple[int, int]) -> str:
    return f"{pair[0]}/{pair[1]}"


def _sum(pairs: Iterable[tuple[int, int]]) -> tuple[int, int]:
    pairs = list(pairs)
    return sum(p[0] for p in pairs), sum(p[1] for p in pairs)


def _described(result: EndpointResult) -> list[Row]:
    return [r for r in top(result.response) if r.status != "undescribed"]


def headline(results: list[EndpointResult]) -> dict[str, tuple[tuple[int, int], ...]]:
    """Protocol -> (endpoints, request fields, response fields, answers described), each
    (present, total); fields top level only, response fields of the answers Parley's
    document describes; answers: of the served endpoints whose OpenAI answer has fields."""
    out = {}
    for protocol, families in PROTOCOLS.items():
        mine = [r for r in results if r.family in families]
        served = [r for r in mine if r.present]
        endpoints = (len(served), len(mine))
        request = _sum(_count(top(r.request)) for r in served)
        response = _sum(_count(_described(r)) for r in served)
        answers = [r for r in served if top(r.response)]
        described = (sum(bool(_described(r)) for r in answers), len(answers))
        out[protocol] = (endpoints, request, response, described)
    return out


def totals(results: list[EndpointResult]) -> tuple[tuple[int, int], ...]:
    rows = list(headline(results).values())
    return tuple(_sum(row[i] for row in rows) for i in range(4))


def readme_line(results: list[EndpointResult]) -> str:
    """README.md's line in its list of docs: the headline numbers, all protocols together."""
    endpoints, request, response, _ = totals(results)
    return (
        "- [docs/conformance.md](docs/conformance.md): conformance with OpenAI's OpenAPI "
        f"document ({_ratio(endpoints)} endpoints, {_ratio(request)} request fields, "
        f"{_ratio(response)} described response fields) and the live test results"
    )


def _code(names: Iterable[str]) -> str:
    return ", ".join(f"`{n}`" for n in names)


def _present_list(family: str, rows: list[Row]) -> str:
    """The present top-level fields, each with its rule when it is not ``supported``."""
    face = FACE_OF.get(family)
    shown = []
    for row in rows:
        rule = FACES[face].get(row.name) if face else None
        note = f" ({rule.kind}{f' {rule.when}' if rule.when else ''})" if rule else ""
        shown.append(f"`{row.name}`{note if rule and rule.kind != 'supported' else ''}")
    return ", ".join(shown)


def _endpoint(result: EndpointResult) -> list[str]:
    method = result.key.split(" ")[0]
    out = [f"#### `{method} {result.path}`", ""]
    if not result.present:
        why = ENDPOINTS.get(result.key, "Not served")
        return [*out, f"**Missing.** {why}.", ""]
    req_top = top(result.request)
    resp_top = top(result.response)
    lines = []
    if req_top:
        present = [r for r in req_top if r.status == "present"]
        lines.append(
            f"- Request: {_ratio(_count(req_top))} present: {_present_list(result.family, present)}."
        )
    if result.own:
        lines.append(f"- Parley's own request fields: {_code(result.own)}.")
    if resp_top and all(r.status == "undescribed" for r in resp_top):
        lines.append(
            f"- Response: {len(resp_top)} fields, not described: "
            f"{UNDESCRIBED.get(result.family, _FREE_FORM)}."
        )
    elif resp_top:
        lines.append(f"- Response: {_ratio(_count(resp_top))} present.")
    if not req_top and not resp_top:
        lines.append("- No request or response fields.")
    nested = [r for r in result.request + result.response if "." in r.name]
    counted = [r for r in nested if r.status != "undescribed"]
    if counted:
        lines.append(f"- Nested fields, one level down: {_ratio(_count(counted))} present.")
    out += [*lines, ""]
    odd = [
        (side, row)
        for side, rows in (("request", result.request), ("response", result.response))
        for row in rows
        if row.status in ("missing", "different")
    ]
    if odd:
        out += ["| field | side | status | reason |", "|---|---|---|---|"]
        for side, row in odd:
            why = reason(result.family, row, request=side == "request")
            out.append(f"| `{row.name}` | {side} | {row.status} | {why} |")
        out.append("")
    return out


def _unfilled(family: str) -> list[str]:
    face = FACE_OF.get(family)
    if face is None or family == "/threads" or not UNFILLED.get(face):
        return []
    out = [
        "Response fields Parley answers but does not fill (`UNFILLED` in the options check):",
        "",
    ]
    out += [f"- `{name}`: {what}." for name, what in UNFILLED[face].items()]
    return [*out, ""]


def section(source: str, results: list[EndpointResult]) -> str:
    """The static comparison, between ``BEGIN`` and ``END``."""
    out = [
        BEGIN,
        "## Static comparison",
        "",
        f"OpenAI's side: {source} (kept as `bench/conformance_openai.json`). Parley's side: "
        "the app's `/openapi.json`, built in-process. Endpoints of the route families Parley "
        f"serves: {_code(FAMILIES)}.",
        "",
        "A field is **present** when Parley's document has it with every type (and value) "
        "OpenAI's request takes, or answers only types (and values) OpenAI's response names; "
        "**different** when not (the difference is shown); **missing** when absent. A "
        "request's query parameters are fields written `?name`. Fields are counted at the "
        "top level; nested fields (`reasoning.effort`, `data[].id`) are compared one level "
        "down where Parley's document describes the parent, and not counted in the "
        "headline. Response fields are counted for the answers Parley's document describes "
        "field by field; the others (free-form objects in Parley's document: the Responses, "
        "Conversations, Chat Completions and Models answers) are named as not described, "
        "and **answers described** counts them: their shapes are checked by the live tests "
        "instead.",
        "",
        "### Headline",
        "",
        "| protocol | endpoints | request fields | response fields | answers described |",
        "|---|---|---|---|---|",
    ]
    for protocol, numbers in headline(results).items():
        out.append(f"| {protocol} | {' | '.join(_ratio(n) for n in numbers)} |")
    out.append(f"| **all** | {' | '.join(f'**{_ratio(n)}**' for n in totals(results))} |")
    out.append("")
    for protocol, families in PROTOCOLS.items():
        out += [f"### {protocol}", ""]
        for family in families:
            out += _unfilled(family)
            for result in results:
                if result.family == family:
                    out += _endpoint(result)
    out.append(END)
    return "\n".join(out)


def static_results() -> tuple[str, list[EndpointResult]]:
    source, openai = load_openai_digest()
    return source, compare(openai, parley_digest())


def between(text: str, begin: str, end: str) -> str:
    """The part of ``text`` from ``begin`` to ``end``, both kept ("" when absent)."""
    start = text.find(begin)
    stop = text.find(end, start)
    return text[start : stop + len(end)] if start >= 0 and stop >= 0 else ""
