"""The admin API's one error type: carries its HTTP status, rendered as JSON by the middleware."""

from __future__ import annotations

from typing import Any


class ApiError(Exception):
    """An admin API error: carries its HTTP status; rendered as JSON by the error middleware."""

    def __init__(self, status: int, message: str, details: Any = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.details = details


def bad_request(field: str, problem: str) -> ApiError:
    """A 400: its details are always a list of `{"field": ..., "problem": ...}` objects."""
    return ApiError(400, "Bad Request", [{"field": field, "problem": problem}])
