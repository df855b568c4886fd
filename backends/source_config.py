"""A source's configuration as its family reads it: options and secrets, merged flat, checked by the options model."""

from __future__ import annotations

from typing import TypeVar

from pydantic import BaseModel, ValidationError

from nexus_flight.core.errors import ConfigError
from nexus_flight.core.source import SourceSpec

Config = TypeVar("Config", bound=BaseModel)


def source_config(model: type[Config], spec: SourceSpec) -> Config:
    """Validate a source's options and secrets with its family's options model.

    Raises:
        ConfigError: every problem, by field; never the value given, which may be a secret.

    """
    try:
        return model.model_validate({**spec.options, **spec.secrets})
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc']) or 'config'}: {err['msg']}" for err in exc.errors()
        )
        raise ConfigError(f"[{spec.kind}] invalid configuration: {problems}", source=spec.name) from None


def secret_values(spec: SourceSpec) -> list[str]:
    """Return the source's secret values, to scrub from engine messages."""
    return [value for value in spec.secrets.values() if value]
