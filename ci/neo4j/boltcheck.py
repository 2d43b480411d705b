#!/usr/bin/env python3
"""Minimal Bolt client (stdlib only) used by ci/neo4j.sh to check readiness.

Logs in with basic auth over Bolt 4.4 and runs ``RETURN 1``: a real query
through the real protocol, without needing the neo4j driver to be installed.

Usage: boltcheck.py HOST PORT USER PASSWORD
Exit: 0 query answered, 1 not reachable / protocol error, 2 authentication refused.
"""

from __future__ import annotations

import socket
import struct
import sys
from typing import Any

MAGIC = b"\x60\x60\xb0\x17"
# Propose Bolt 4.4 only: HELLO carries the credentials (5.1+ splits it into LOGON).
VERSIONS = b"\x00\x00\x04\x04" + b"\x00" * 12

HELLO, RUN, PULL, GOODBYE = 0x01, 0x10, 0x3F, 0x02
SUCCESS, RECORD, FAILURE = 0x70, 0x71, 0x7F


def pack(value: object) -> bytes:
    if value is None:
        return b"\xc0"
    if isinstance(value, bool):
        return b"\xc3" if value else b"\xc2"
    if isinstance(value, int):
        if -16 <= value < 128:
            return struct.pack(">b", value)
        return b"\xcb" + struct.pack(">q", value)
    if isinstance(value, str):
        data = value.encode()
        n = len(data)
        if n < 16:
            return bytes([0x80 + n]) + data
        if n < 256:
            return b"\xd0" + bytes([n]) + data
        return b"\xd1" + struct.pack(">H", n) + data
    if isinstance(value, dict):
        assert len(value) < 16
        out = bytes([0xA0 + len(value)])
        for k, v in value.items():
            out += pack(k) + pack(v)
        return out
    raise TypeError(type(value))


def message(signature: int, *fields: object) -> bytes:
    body = bytes([0xB0 + len(fields), signature]) + b"".join(pack(f) for f in fields)
    return struct.pack(">H", len(body)) + body + b"\x00\x00"


class Reader:
    def __init__(self, data: bytes) -> None:
        self.data, self.pos = data, 0

    def take(self, n: int) -> bytes:
        chunk = self.data[self.pos : self.pos + n]
        self.pos += n
        return chunk

    def unpack(self) -> object:
        m = self.take(1)[0]
        hi = m & 0xF0
        if m < 0x80:
            return m
        if m >= 0xF0:
            return m - 0x100
        if hi == 0x80:
            return self.take(m & 0x0F).decode()
        if hi == 0x90:
            return [self.unpack() for _ in range(m & 0x0F)]
        if hi == 0xA0:
            return self._map(m & 0x0F)
        if hi == 0xB0:
            sig = self.take(1)[0]
            return (sig, [self.unpack() for _ in range(m & 0x0F)])
        if m == 0xC0:
            return None
        if m == 0xC1:
            return struct.unpack(">d", self.take(8))[0]
        if m in (0xC2, 0xC3):
            return m == 0xC3
        ints = {0xC8: ">b", 0xC9: ">h", 0xCA: ">i", 0xCB: ">q"}
        if m in ints:
            fmt = ints[m]
            return struct.unpack(fmt, self.take(struct.calcsize(fmt)))[0]
        sizes = {0: ">B", 1: ">H", 2: ">I"}
        if m in (0xCC, 0xCD, 0xCE, 0xD0, 0xD1, 0xD2, 0xD4, 0xD5, 0xD6, 0xD8, 0xD9, 0xDA):
            fmt = sizes[m & 0x03]
            n = struct.unpack(fmt, self.take(struct.calcsize(fmt)))[0]
            if m <= 0xCE:
                return self.take(n)
            if m <= 0xD2:
                return self.take(n).decode()
            if m <= 0xD6:
                return [self.unpack() for _ in range(n)]
            return self._map(n)
        raise ValueError(f"unsupported PackStream marker 0x{m:02x}")

    def _map(self, n: int) -> dict[object, object]:
        out: dict[object, object] = {}
        for _ in range(n):
            key = self.unpack()
            out[key] = self.unpack()
        return out


def recv_exact(sock: socket.socket, n: int) -> bytes:
    buf = b""
    while len(buf) < n:
        chunk = sock.recv(n - len(buf))
        if not chunk:
            raise ConnectionError("connection closed by server")
        buf += chunk
    return buf


def recv_message(sock: socket.socket) -> tuple[int, list[Any]]:
    body = b""
    while True:
        (size,) = struct.unpack(">H", recv_exact(sock, 2))
        if size == 0:
            if body:
                break
            continue  # NOOP keep-alive chunk
        body += recv_exact(sock, size)
    value = Reader(body).unpack()
    if not isinstance(value, tuple):
        raise ValueError("response is not a Bolt message")
    sig, fields = value
    return sig, fields


def main() -> int:
    host, port, user, password = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
    try:
        with socket.create_connection((host, port), timeout=10) as sock:
            sock.sendall(MAGIC + VERSIONS)
            if recv_exact(sock, 4) != b"\x00\x00\x04\x04":
                print("server did not agree on Bolt 4.4", file=sys.stderr)
                return 1
            sock.sendall(
                message(
                    HELLO,
                    {
                        "user_agent": "memstack-boltcheck/1",
                        "scheme": "basic",
                        "principal": user,
                        "credentials": password,
                    },
                )
            )
            sig, fields = recv_message(sock)
            if sig == FAILURE:
                meta = fields[0] if fields else {}
                print(f"login refused: {meta.get('code')}: {meta.get('message')}", file=sys.stderr)
                return 2 if "Security" in str(meta.get("code")) else 1
            sock.sendall(message(RUN, "RETURN 1 AS n", {}, {}) + message(PULL, {"n": -1}))
            records = []
            while True:
                sig, fields = recv_message(sock)
                if sig == RECORD:
                    records.append(fields[0])
                elif sig == FAILURE:
                    print(f"query failed: {fields[0]}", file=sys.stderr)
                    return 1
                elif sig == SUCCESS and "has_more" not in fields[0] and "fields" not in fields[0]:
                    break  # summary of PULL
            sock.sendall(message(GOODBYE))
    except (OSError, ValueError) as exc:
        print(f"bolt://{host}:{port} not answering: {exc}", file=sys.stderr)
        return 1
    if records != [[1]]:
        print(f"unexpected result {records!r}", file=sys.stderr)
        return 1
    print(f"bolt://{host}:{port} answered RETURN 1 as {user}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
