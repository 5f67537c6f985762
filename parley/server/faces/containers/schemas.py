"""The Containers API's objects, as OpenAI's document has them (``CreateContainerBody``,
``ContainerResource``, ``CreateContainerFileBody``, ``ContainerFileResource``).

A request body refuses unknown fields. ``expires_after.minutes`` runs from 1 to
``MAX_MINUTES`` (14 days, the bound of the server's own default,
``code_interpreter_idle_minutes``). Containers here have no network: ``network_policy``
``{"type": "disabled"}`` is taken (and is what every container shows), an allowlist is
refused by name; so are ``skills``, which Parley has none of.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any, Literal

from pydantic import BaseModel, Field, StrictInt, StrictStr, model_validator

from parley.errors import InvalidRequest
from parley.server.faces.kit.bodies import Body
from parley.store.records import Container, ContainerFile

MemoryLimit = Literal["1g", "4g", "16g", "64g"]
FileId = Annotated[StrictStr, Field(min_length=1, max_length=64)]
#: The longest ``expires_after.minutes``: 14 days.
MAX_MINUTES = 20_160
#: How many files a container's creation may copy in.
MAX_FILES = 100


class ExpiresAfter(Body):
    """When the container expires: ``minutes`` after it was last active (``anchor``)."""

    anchor: Literal["last_active_at"]
    minutes: Annotated[StrictInt, Field(ge=1, le=MAX_MINUTES)]


class NetworkDisabled(Body):
    type: Literal["disabled"]


class ContainerCreate(Body):
    """``POST /v1/containers`` (OpenAI's ``CreateContainerBody``)."""

    name: Annotated[StrictStr, Field(max_length=256)]
    file_ids: Annotated[list[FileId], Field(max_length=MAX_FILES)] | None = None
    expires_after: ExpiresAfter | None = None
    memory_limit: MemoryLimit | None = None
    network_policy: NetworkDisabled | None = None
    skills: list[dict[str, Any]] | None = None

    @model_validator(mode="before")
    @classmethod
    def _what_containers_have(cls, data: Any) -> Any:
        """Refuse, by name, what containers here cannot have: a network, or skills."""
        if not isinstance(data, Mapping):
            return data
        policy = data.get("network_policy")
        if isinstance(policy, Mapping) and policy.get("type") == "allowlist":
            raise InvalidRequest(
                "Containers on this server have no network: 'network_policy' may only be "
                '{"type": "disabled"}, not an allowlist.',
                code="unsupported_network_policy",
                param="network_policy",
            )
        if data.get("skills"):
            raise InvalidRequest(
                "Skills are not supported on this server: give no 'skills'.",
                code="unsupported",
                param="skills",
            )
        return data


class ContainerFileCreate(Body):
    """``POST /v1/containers/{id}/files`` as JSON: a copy of one of the user's files."""

    file_id: FileId


class ExpiresAfterPublic(BaseModel):
    anchor: Literal["last_active_at"] = "last_active_at"
    minutes: int


class NetworkPolicyPublic(BaseModel):
    type: Literal["disabled"] = "disabled"


class ContainerPublic(BaseModel):
    """A container (OpenAI's ``ContainerResource``)."""

    id: str
    object: Literal["container"] = "container"
    created_at: int
    status: Literal["running", "expired"]
    expires_after: ExpiresAfterPublic
    last_active_at: int
    memory_limit: MemoryLimit
    name: str
    network_policy: NetworkPolicyPublic = Field(default_factory=NetworkPolicyPublic)

    @classmethod
    def of(cls, found: Container) -> ContainerPublic:
        return cls(
            id=found.id,
            created_at=int(found.created_at),
            status="expired" if found.status == "expired" else "running",
            expires_after=ExpiresAfterPublic(minutes=found.expires_after_minutes),
            last_active_at=int(found.last_active_at),
            memory_limit=found.memory_limit,  # type: ignore[arg-type]  # one of them, stored
            name=found.name,
        )


class ContainerFilePublic(BaseModel):
    """A file in a container (OpenAI's ``ContainerFileResource``)."""

    id: str
    object: Literal["container.file"] = "container.file"
    created_at: int
    bytes: int
    container_id: str
    path: str
    source: Literal["user", "assistant"]

    @classmethod
    def of(cls, found: ContainerFile) -> ContainerFilePublic:
        return cls(
            id=found.id,
            created_at=int(found.created_at),
            bytes=found.bytes,
            container_id=found.container_id,
            path=found.path,
            source="assistant" if found.source == "assistant" else "user",
        )
