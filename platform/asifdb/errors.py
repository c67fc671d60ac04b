"""Domain errors. Services raise them; adapters map them to HTTP codes and CLI messages."""


class AsifdbError(Exception):
    """Base of every error a user can act on; the message names the fix."""

    http_status = 400


class ConfigError(AsifdbError):
    """The platform is misconfigured (unreachable database, no pgvector, schema behind)."""

    http_status = 503


class NotFound(AsifdbError):
    http_status = 404


class Conflict(AsifdbError):
    http_status = 409


class InvalidInput(AsifdbError):
    http_status = 422


class Forbidden(AsifdbError):
    http_status = 403


class Unauthorized(AsifdbError):
    http_status = 401


class TooLarge(AsifdbError):
    http_status = 413
