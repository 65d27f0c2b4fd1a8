"""The models file: served model names → upstream deployments, routing policy, aliases.

Validated strictly so a typo fails at start (or on reload) with the path of the bad field,
instead of surfacing later as a mysterious 404 or a request to the wrong server.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator


class ModelsFileError(ValueError):
    """The models file is missing, unreadable or invalid; the message names the bad field."""


class DeploymentSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")

    base_url: str
    model: str | None = Field(default=None, description="Upstream served name; default: the model key.")
    api_key_env: str | None = None
    weight: float = Field(default=1.0, gt=0)
    max_concurrency: int = Field(default=1024, gt=0)

    @field_validator("base_url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        if not value.startswith(("http://", "https://")):
            raise ValueError("must start with http:// or https://")
        return value.rstrip("/")

    def api_key(self) -> str | None:
        if self.api_key_env is None:
            return None
        key = os.environ.get(self.api_key_env)
        if not key:
            raise ModelsFileError(f"api_key_env {self.api_key_env!r} is not set in the environment")
        return key


class RoutingSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")

    policy: Literal["least_outstanding", "session", "prefix"] = "least_outstanding"
    prefix_messages: int = Field(default=2, gt=0, description="Leading messages hashed by `prefix`.")
    max_load_factor: float = Field(
        default=2.0, ge=1.0, description="Affinity yields when a replica exceeds this * mean load + 1."
    )


class ModelSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")

    deployments: list[DeploymentSpec] = Field(min_length=1)
    routing: RoutingSpec = Field(default_factory=RoutingSpec)
    context_window: int | None = Field(default=None, gt=0)
    owned_by: str = "nova"


class ModelsFile(BaseModel):
    model_config = ConfigDict(extra="forbid")

    models: dict[str, ModelSpec] = Field(min_length=1)
    aliases: dict[str, str] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _aliases_resolve(self) -> ModelsFile:
        for alias, target in self.aliases.items():
            if target not in self.models:
                raise ValueError(f"alias {alias!r} points to unknown model {target!r}")
            if alias in self.models:
                raise ValueError(f"alias {alias!r} shadows a model of the same name")
        return self


def _format(err: ValidationError, source: str) -> str:
    lines = []
    for e in err.errors():
        loc = ".".join(str(p) for p in e["loc"]) or "(root)"
        lines.append(f"  {loc}: {e['msg']}")
    return f"invalid models file {source}:\n" + "\n".join(lines)


def parse_models(data: object, source: str = "<memory>") -> ModelsFile:
    try:
        spec = ModelsFile.model_validate(data)
    except ValidationError as err:
        raise ModelsFileError(_format(err, source)) from None
    for name, model in spec.models.items():
        for i, dep in enumerate(model.deployments):
            try:
                dep.api_key()
            except ModelsFileError as err:
                where = f"models.{name}.deployments.{i}"
                raise ModelsFileError(f"invalid models file {source}: {where}: {err}") from None
    return spec


def load_models_file(path: Path) -> ModelsFile:
    try:
        text = path.read_text()
    except OSError as err:
        raise ModelsFileError(f"cannot read models file {path}: {err.strerror}") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as err:
        raise ModelsFileError(f"models file {path} is not valid YAML: {err}") from None
    return parse_models(data, str(path))
