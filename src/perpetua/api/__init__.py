"""The JSON API under /api/v1: thin routes that call the same services as the
console, described by the OpenAPI document at /api/v1/openapi.json."""
