"""What ``parley web`` reads from the environment."""

from __future__ import annotations

from pydantic_settings import BaseSettings, SettingsConfigDict


class WebSettings(BaseSettings):
    """What ``parley web`` reads from the environment: ``PARLEY_WEB_SECRET``, the key that
    signs its session cookies (a random one kept in the data directory when unset)."""

    model_config = SettingsConfigDict(env_prefix="PARLEY_WEB_", extra="ignore")

    secret: str | None = None
