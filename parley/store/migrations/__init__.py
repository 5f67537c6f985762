"""Alembic migrations. ``HEAD`` names the newest revision; a test checks it against the
revision files, so a start on an up-to-date database needs no Alembic import."""

HEAD = "0023"
