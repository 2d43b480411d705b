"""Request bodies: depth-checked before decoding, then decoded strictly into the handler's struct.

Litestar's own path decodes JSON to Python objects and converts them with `strict=False`,
which turns `"limit": "10"` into 10 and `1700000000` into a datetime. `EdgeRequest` (the
app's request class) instead decodes the body straight into the handler's `data` type with
`strict=True`, so a wrong type is a 422 naming the field, and refuses bodies nested deeper
than `MAX_JSON_DEPTH` with a 400 before any recursive decoding can run out of stack.
"""

from __future__ import annotations

import re
from itertools import accumulate
from typing import Any

import msgspec
from litestar import Request
from litestar.exceptions import ClientException, ValidationException

MAX_JSON_DEPTH = 64
"""Arrays and objects nested deeper than this are refused (the body itself is level 1)."""

# A JSON string, escapes included; possessive, so it cannot backtrack.
_JSON_STRING = re.compile(rb'"(?:[^"\\]++|\\.)*+"', re.DOTALL)
# Brackets to +1 / -1 (as signed bytes); every other byte is deleted.
_DEPTH_STEPS = bytes.maketrans(b"[{]}", b"\x01\x01\xff\xff")
_NOT_BRACKETS = bytes(set(range(256)) - set(b"[]{}"))

_AT_PATH = re.compile(r"^(?P<message>.*) - at `\$(?P<path>[^`]*)`$", re.DOTALL)
_CHILD_FIELD = re.compile(r"(?:missing required|unknown) field `([^`]+)`")
_NAMED_BY_CHECK = re.compile(r"^([a-z_][a-z0-9_]*): ")


def json_depth(body: bytes) -> int:
    """How deeply arrays and objects nest in a JSON document (brackets inside strings ignored)."""
    steps = _JSON_STRING.sub(b"", body).translate(_DEPTH_STEPS, _NOT_BRACKETS)
    return max(accumulate(memoryview(steps).cast("b")), default=0)


def check_depth(body: bytes) -> None:
    if body.count(b"[") + body.count(b"{") <= MAX_JSON_DEPTH:
        return  # cannot be too deep: the cheap test for almost every body
    if json_depth(body) > MAX_JSON_DEPTH:
        raise ClientException(f"JSON nested deeper than {MAX_JSON_DEPTH} levels")


def field_of(path: str, message: str) -> str:
    """The public name of the field a msgspec error is about, e.g. `episodes[0].content`.

    msgspec reports a missing or unknown field, and a struct-level check, against the
    object that holds it; our own checks start their message with the field's name.
    """
    base = path.lstrip(".")
    child = _CHILD_FIELD.search(message) or _NAMED_BY_CHECK.match(message)
    if child is not None:
        return f"{base}.{child[1]}" if base else child[1]
    return base or "body"


def validation_error(exc: msgspec.ValidationError) -> ValidationException:
    text = str(exc)
    located = _AT_PATH.match(text)
    message, path = (located["message"], located["path"]) if located else (text, "")
    return ValidationException(
        "Invalid request body",
        extra=[{"field": field_of(path, message), "message": message, "source": "body"}],
    )


class EdgeRequest(Request[Any, Any, Any]):
    """The app's request class: strict, depth-limited JSON bodies."""

    async def json(self) -> Any:
        body = await self.body()
        if body:
            check_depth(body)
        target = self.route_handler.parsed_data_field
        if not body or target is None or not isinstance(target.annotation, type):
            return await super().json()
        if not issubclass(target.annotation, msgspec.Struct):
            return await super().json()
        try:
            return msgspec.json.decode(body, type=target.annotation, strict=True)
        except msgspec.ValidationError as exc:
            raise validation_error(exc) from None
        except msgspec.DecodeError as exc:
            raise ClientException(str(exc)) from None
