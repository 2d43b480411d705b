"""Every error leaves as application/problem+json (RFC 9457) with the right title and detail."""

from __future__ import annotations

import re
from http import HTTPStatus
from typing import Any

import msgspec
from litestar import Request, Response
from litestar.exceptions import HTTPException, ValidationException
from litestar.status_codes import HTTP_422_UNPROCESSABLE_ENTITY, HTTP_500_INTERNAL_SERVER_ERROR
from loguru import logger

PROBLEM_MEDIA_TYPE = "application/problem+json"


class FieldError(msgspec.Struct, frozen=True):
    field: str
    message: str
    source: str = "body"


class Problem(msgspec.Struct, frozen=True, omit_defaults=True):
    title: str
    status: int
    detail: str
    type: str = "about:blank"
    instance: str | None = None
    errors: list[FieldError] | None = None


def problem_response(
    status: int,
    detail: str,
    *,
    instance: str | None = None,
    errors: list[FieldError] | None = None,
    headers: dict[str, str] | None = None,
) -> Response[Problem]:
    return Response(
        Problem(
            title=HTTPStatus(status).phrase, status=status, detail=detail, instance=instance, errors=errors
        ),
        status_code=status,
        media_type=PROBLEM_MEDIA_TYPE,
        headers=headers,
    )


_UNKNOWN_FIELD = re.compile(r"unknown field `([^`]+)`")


def _field_name(key: str, message: str) -> str:
    """The field at fault: msgspec reports an unknown field against its parent object."""
    unknown = _UNKNOWN_FIELD.search(message)
    if unknown is None:
        return key
    parent = "" if key in ("data", "body") else key
    return f"{parent}.{unknown[1]}" if parent else unknown[1]


def _field_errors(extra: Any) -> list[FieldError]:
    errors: list[FieldError] = []
    for item in extra if isinstance(extra, list) else []:
        if isinstance(item, dict):
            message = str(item.get("message", "invalid value"))
            errors.append(
                FieldError(
                    field=_field_name(str(item.get("key") or "body"), message),
                    message=message,
                    source=str(item.get("source", "body")),
                )
            )
    return errors


def validation_handler(request: Request[Any, Any, Any], exc: ValidationException) -> Response[Problem]:
    errors = _field_errors(exc.extra)
    fields = ", ".join(sorted({e.field for e in errors})) or "the request"
    return problem_response(
        HTTP_422_UNPROCESSABLE_ENTITY,
        f"Invalid value for {fields}",
        instance=request.url.path,
        errors=errors or None,
    )


def http_exception_handler(request: Request[Any, Any, Any], exc: HTTPException) -> Response[Problem]:
    status = exc.status_code
    phrase = HTTPStatus(status).phrase
    detail = exc.detail if exc.detail and exc.detail != phrase else phrase
    if status >= HTTP_500_INTERNAL_SERVER_ERROR:
        logger.opt(exception=exc).error("{status} on {path}", status=status, path=request.url.path)
    return problem_response(
        status,
        detail,
        instance=request.url.path,
        errors=_field_errors(exc.extra) or None,
        headers=exc.headers,
    )


def unhandled_exception_handler(request: Request[Any, Any, Any], exc: Exception) -> Response[Problem]:
    # Always logged with the traceback; the client gets no internals, only where to look.
    logger.opt(exception=exc).error("unhandled error on {path}", path=request.url.path)
    return problem_response(
        HTTP_500_INTERNAL_SERVER_ERROR,
        "The server failed to handle the request; it has been logged.",
        instance=request.url.path,
    )


EXCEPTION_HANDLERS = {
    ValidationException: validation_handler,
    HTTPException: http_exception_handler,
    Exception: unhandled_exception_handler,
}
