"""Errors in the service's shape, `{"error": {"code", "message", ...}}`, so SDKs map them right."""

from __future__ import annotations

from typing import Any

RESOURCE_NOT_FOUND = "Resource not found"
ACCESS_DENIED = (
    "Access denied due to invalid subscription key or wrong API endpoint. Make sure to provide "
    "a valid key for an active subscription and use a correct regional API endpoint for your "
    "resource."
)


class ApiError(Exception):
    """Raised anywhere in a request; the app turns it into the service's error response."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        *,
        param: str | None = None,
        error_type: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.param = param
        self.error_type = error_type
        self.headers = headers or {}

    def body(self) -> dict[str, Any]:
        error: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.status not in (401, 404):  # the service's 401/404 bodies carry only code+message
            error["param"] = self.param
            error["type"] = self.error_type or "invalid_request_error"
        return {"error": error}


def not_found(message: str = RESOURCE_NOT_FOUND) -> ApiError:
    return ApiError(404, "404", message)


def bad_request(
    message: str, *, code: str = "invalid_request", param: str | None = None
) -> ApiError:
    return ApiError(400, code, message, param=param)
