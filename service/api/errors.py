"""Every error leaves as application/problem+json (RFC 9457) with the right title and detail.

This is the one place where refusals become HTTP: Litestar's own exceptions, validation
errors, and the domain's errors (`service.memory.errors`: NotFound 404, Busy 409 and
Unavailable 503, the last two with Retry-After).
"""

from __future__ import annotations

import re
from enum import Enum
from http import HTTPStatus
from typing import Any

import msgspec
import psycopg
from litestar import Request, Response, Router
from litestar.exceptions import HTTPException, ValidationException
from litestar.openapi import ResponseSpec
from litestar.status_codes import (
    HTTP_404_NOT_FOUND,
    HTTP_409_CONFLICT,
    HTTP_422_UNPROCESSABLE_ENTITY,
    HTTP_500_INTERNAL_SERVER_ERROR,
    HTTP_503_SERVICE_UNAVAILABLE,
)
from loguru import logger

from service.memory.errors import Busy, DomainError, NotFound, Unavailable

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
_NAMED_BY_CHECK = re.compile(r"^([a-z_][a-z0-9_]*): ")
# Our text fields' patterns only forbid blank values and NUL; say so instead of the regex.
_REGEX_MESSAGE = re.compile(r"Expected `str` matching regex '.*'")
_PLAIN_TEXT_RULE = "Expected text with a visible character and no NUL (U+0000)"


def _field_name(key: str, message: str) -> str:
    """The field at fault: msgspec reports an unknown field, or a struct-level check, against
    the parent object; our own checks start their message with the field's name."""
    named = _NAMED_BY_CHECK.match(message)
    if named is not None and key in ("data", "body"):
        return named[1]
    unknown = _UNKNOWN_FIELD.search(message)
    if unknown is None:
        return key
    parent = "" if key in ("data", "body") else key
    return f"{parent}.{unknown[1]}" if parent else unknown[1]


def _public_name(request: Request[Any, Any, Any] | None, key: str) -> tuple[str, str | None]:
    """A handler parameter's public name and where it comes from: `Idempotency-Key` (header),
    not the Python name `idempotency_key`."""
    handler = request.scope.get("route_handler") if request is not None else None
    signature = getattr(handler, "parsed_fn_signature", None)
    definition = signature.parameters.get(key) if signature is not None else None
    kwarg = getattr(definition, "kwarg_definition", None)
    for source in ("header", "query", "cookie"):
        name = getattr(kwarg, source, None)
        if isinstance(name, str) and name:
            return name, source
    name, param_type = getattr(kwarg, "name", None), getattr(kwarg, "param_type", None)
    if isinstance(name, str) and name and param_type is not None:  # HeaderParameter(name=...) and kin
        return name, _source(param_type)
    return key, None


def _source(value: Any) -> str:
    return str(value.value if isinstance(value, Enum) else value or "body")


def _field_errors(extra: Any, request: Request[Any, Any, Any] | None = None) -> list[FieldError]:
    errors: list[FieldError] = []
    for item in extra if isinstance(extra, list) else []:
        if isinstance(item, dict):
            message = _REGEX_MESSAGE.sub(_PLAIN_TEXT_RULE, str(item.get("message", "invalid value")))
            key = str(item.get("key") or "body")
            source = _source(item.get("source"))
            if key == "data":  # Litestar's name for the body: here, no body where one is required
                key, message = "body", "Expected a JSON object, got no body"
            name, public_source = _public_name(request, key)
            errors.append(
                FieldError(
                    field=str(item["field"]) if "field" in item else _field_name(name, message),
                    message=message,
                    source=public_source or source,
                )
            )
    return errors


def validation_handler(request: Request[Any, Any, Any], exc: ValidationException) -> Response[Problem]:
    errors = _field_errors(exc.extra, request)
    fields = ", ".join(sorted({e.field for e in errors})) or "the request"
    return problem_response(
        HTTP_422_UNPROCESSABLE_ENTITY,
        f"Invalid value for {fields}",
        instance=request.url.path,
        errors=errors or None,
    )


def _refusal(
    request: Request[Any, Any, Any],
    exc: Exception,
    status: int,
    detail: str,
    *,
    errors: list[FieldError] | None = None,
    headers: dict[str, str] | None = None,
) -> Response[Problem]:
    phrase = HTTPStatus(status).phrase
    if status >= HTTP_500_INTERNAL_SERVER_ERROR:
        logger.opt(exception=exc).error("{status} on {path}", status=status, path=request.url.path)
    return problem_response(
        status,
        detail if detail and detail != phrase else phrase,
        instance=request.url.path,
        errors=errors,
        headers=headers,
    )


def http_exception_handler(request: Request[Any, Any, Any], exc: HTTPException) -> Response[Problem]:
    errors = _field_errors(exc.extra, request) or None
    return _refusal(request, exc, exc.status_code, exc.detail, errors=errors, headers=exc.headers)


# The domain's refusals (service.memory.errors) and their HTTP status; subclasses inherit theirs.
DOMAIN_STATUS: dict[type[DomainError], int] = {
    NotFound: HTTP_404_NOT_FOUND,
    Busy: HTTP_409_CONFLICT,
    Unavailable: HTTP_503_SERVICE_UNAVAILABLE,
}


def domain_error_handler(request: Request[Any, Any, Any], exc: DomainError) -> Response[Problem]:
    status = next(
        (DOMAIN_STATUS[kind] for kind in type(exc).__mro__ if kind in DOMAIN_STATUS),
        HTTP_500_INTERNAL_SERVER_ERROR,
    )
    headers = {"Retry-After": str(exc.retry_after)} if exc.retry_after is not None else None
    return _refusal(request, exc, status, exc.detail, headers=headers)


def data_error_handler(request: Request[Any, Any, Any], exc: psycopg.DataError) -> Response[Problem]:
    """A value PostgreSQL refuses to store (e.g. a NUL character) that slipped past validation."""
    logger.warning("rejected a value PostgreSQL cannot store: {error}", error=type(exc).__name__)
    return problem_response(
        HTTP_422_UNPROCESSABLE_ENTITY,
        "A value in the request cannot be stored (for example a NUL character)",
        instance=request.url.path,
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
    DomainError: domain_error_handler,
    psycopg.DataError: data_error_handler,
    Exception: unhandled_exception_handler,
}


def problem_spec(description: str) -> ResponseSpec:
    """An error response as documented in the OpenAPI schema: problem+json."""
    return ResponseSpec(
        data_container=Problem,
        description=description,
        media_type=PROBLEM_MEDIA_TYPE,
        generate_examples=False,
    )


_COMMON_PROBLEMS = {
    400: "Malformed request (e.g. a body that is not JSON)",
    401: "Missing, unknown or revoked API key",
    404: "No such object for this tenant (another tenant's objects are 404 too)",
    422: "Invalid parameters or body; `errors` names each field",
    429: "Rate limit exceeded; see Retry-After",
}


def document_problems(router: Router) -> Router:
    """Document the problem+json errors every route under the router can answer with.

    Route-specific ones (409, 503, ...) are declared by the handlers themselves and win.
    """
    for route in router.routes:
        for handler in getattr(route, "route_handlers", ()):
            common = {code: problem_spec(text) for code, text in _COMMON_PROBLEMS.items()}
            if handler.http_methods & {"POST", "PUT", "PATCH"}:
                common[413] = problem_spec("Request body larger than API_MAX_BODY_BYTES")
            handler.responses = {**common, **(handler.responses or {})}
    return router
