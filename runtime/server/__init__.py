"""The HTTP API (DESIGN.md "HTTP API"): FastAPI routes that build the typed commands of
:mod:`runtime.model.commands` and call one engine use case each. Imported only by
``dataops serve`` and by code that embeds the app (``create_app``)."""

from runtime.server.app import create_app, from_environment

__all__ = ["create_app", "from_environment"]
