"""Request bodies in Kubernetes' protobuf encoding, decoded to the JSON the API would store.

kubectl v1.32's typed clients (``create namespace``, ``create service``, ``create deployment``,
...) send ``Content-Type: application/vnd.kubernetes.protobuf``: the magic ``k8s\\0`` and a
``runtime.Unknown`` envelope around the typed message. The message schemas are not written
here: every Kubernetes binary registers its ``generated.proto`` descriptors (gzipped
``FileDescriptorProto``s), so they are read from the very kubectl that sends the requests.
A small wire-format reader (varints, fixed, length-delimited) does the rest.
"""

from __future__ import annotations

import base64
import functools
import json
import re
import shutil
import struct
import zlib
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

MAGIC = b"k8s\x00"
CONTENT_TYPE = "application/vnd.kubernetes.protobuf"


# --- wire format ------------------------------------------------------------------------------


def _varint(buf: bytes, i: int) -> tuple[int, int]:
    shift = result = 0
    while True:
        b = buf[i]
        i += 1
        result |= (b & 0x7F) << shift
        if not b & 0x80:
            return result, i
        shift += 7


def fields(buf: bytes) -> list[tuple[int, int, Any]]:
    """``(number, wire type, value)`` for each field: ints for varint/fixed, bytes otherwise."""
    out = []
    i = 0
    while i < len(buf):
        key, i = _varint(buf, i)
        num, wt = key >> 3, key & 7
        if wt == 0:
            val, i = _varint(buf, i)
        elif wt == 1:
            val, i = struct.unpack_from("<q", buf, i)[0], i + 8
        elif wt == 2:
            n, i = _varint(buf, i)
            val, i = buf[i:i + n], i + n
        elif wt == 5:
            val, i = struct.unpack_from("<i", buf, i)[0], i + 4
        else:
            raise ValueError(f"unsupported protobuf wire type {wt}")
        out.append((num, wt, val))
    return out


# --- descriptors ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Field:
    name: str
    number: int
    repeated: bool
    type: int
    type_name: str


@dataclass
class Message:
    name: str  # fully qualified, without the leading dot
    fields: dict[int, Field] = field(default_factory=dict)
    map_entry: bool = False


def _parse_message(buf: bytes, scope: str, into: dict[str, Message]) -> None:
    name = ""
    raw_fields: list[bytes] = []
    nested: list[bytes] = []
    map_entry = False
    for num, _, val in fields(buf):
        if num == 1:
            name = val.decode()
        elif num == 2:
            raw_fields.append(val)
        elif num == 3:
            nested.append(val)
        elif num == 7:
            map_entry = any(n == 7 and v for n, _, v in fields(val))
    full = f"{scope}.{name}"
    msg = Message(full, map_entry=map_entry)
    for f in raw_fields:
        attrs: dict[int, Any] = {n: v for n, _, v in fields(f)}
        msg.fields[attrs[3]] = Field(attrs[1].decode(), attrs[3], attrs.get(4) == 3,
                                     attrs.get(5, 9), attrs.get(6, b"").decode().lstrip("."))
    into[full] = msg
    for n in nested:
        _parse_message(n, full, into)


@functools.cache
def registry(binary: str | None = None) -> dict[str, Message]:
    """Every message type the kubectl binary knows, by fully qualified name."""
    path = binary or shutil.which("kubectl")
    if path is None:
        raise RuntimeError("kubectl not found: protobuf requests cannot be decoded")
    data = Path(path).read_bytes()
    out: dict[str, Message] = {}
    for m in re.finditer(rb"\x1f\x8b\x08\x00\x00\x00\x00\x00", data):
        try:
            raw = zlib.decompressobj(16 + zlib.MAX_WBITS).decompress(data[m.start():m.start()
                                                                          + 4_000_000])
        except zlib.error:
            continue
        if not raw.startswith(b"\n") or b"generated.proto" not in raw[:120]:
            continue
        try:
            top = fields(raw)
        except (IndexError, ValueError, struct.error):
            continue
        package = next((v.decode() for n, _, v in top if n == 2), "")
        for n, _, v in top:
            if n == 4:
                _parse_message(v, package, out)
    return out


# --- decoding ---------------------------------------------------------------------------------

_META = "k8s.io.apimachinery.pkg.apis.meta.v1."


def _time(buf: bytes, micro: bool = False) -> str | None:
    parts = {n: v for n, _, v in fields(buf)}
    if not parts.get(1):
        return None  # the zero time: unset
    when = datetime.fromtimestamp(parts.get(1, 0), UTC)
    if micro:
        return when.strftime("%Y-%m-%dT%H:%M:%S.") + f"{parts.get(2, 0) // 1000:06d}Z"
    return when.strftime("%Y-%m-%dT%H:%M:%SZ")


def _signed(v: int) -> int:
    """Negative int32/int64 varints arrive as 64-bit two's complement."""
    return v - (1 << 64) if v >= 1 << 63 else v


def _scalar(f: Field, v: Any) -> Any:
    t = f.type
    if t == 9:
        return v.decode()
    if t == 12:
        return base64.b64encode(v).decode()
    if t == 8:
        return bool(v)
    if t in (3, 5, 16, 15):
        return _signed(v)
    if t in (17, 18):
        return (v >> 1) ^ -(v & 1)
    if t == 1:
        return struct.unpack("<d", struct.pack("<q", v))[0]
    if t == 2:
        return struct.unpack("<f", struct.pack("<i", v))[0]
    return v


def _packed(f: Field, v: bytes) -> list[Any]:
    out, i = [], 0
    while i < len(v):
        n, i = _varint(v, i)
        out.append(_scalar(f, n))
    return out


def decode_message(type_name: str, buf: bytes, reg: dict[str, Message]) -> Any:
    """One typed message as JSON (special cases: Time, Quantity, IntOrString, raw JSON)."""
    if type_name in (_META + "Time",):
        return _time(buf)
    if type_name == _META + "MicroTime":
        return _time(buf, micro=True)
    if type_name == "k8s.io.apimachinery.pkg.api.resource.Quantity":
        return next((v.decode() for n, _, v in fields(buf) if n == 1), "0")
    if type_name == "k8s.io.apimachinery.pkg.util.intstr.IntOrString":
        parts = {n: v for n, _, v in fields(buf)}
        return parts.get(3, b"").decode() if parts.get(1) == 1 else _signed(parts.get(2, 0))
    if type_name in ("k8s.io.apimachinery.pkg.runtime.RawExtension", _META + "FieldsV1"):
        raw = next((v for n, _, v in fields(buf) if n == 1), b"")
        return json.loads(raw) if raw else {}
    if type_name == _META + "Duration":
        ns = next((v for n, _, v in fields(buf) if n == 1), 0)
        return f"{ns / 1e9:g}s"
    msg = reg.get(type_name)
    if msg is None:
        raise ValueError(f"unknown protobuf message {type_name}")
    out: dict[str, Any] = {}
    for num, wt, val in fields(buf):
        f = msg.fields.get(num)
        if f is None:
            continue
        if f.type == 11:
            sub = reg.get(f.type_name)
            if sub is not None and sub.map_entry:
                entry = {n: v for n, _, v in fields(val)}
                key = _scalar(sub.fields[1], entry.get(1, b""))
                vf = sub.fields[2]
                value = decode_message(vf.type_name, entry.get(2, b""), reg) if vf.type == 11 \
                    else _scalar(vf, entry.get(2, b"" if vf.type in (9, 12) else 0))
                out.setdefault(f.name, {})[key] = value
                continue
            value = decode_message(f.type_name, val, reg)
        elif wt == 2 and f.type not in (9, 12):
            out.setdefault(f.name, []).extend(_packed(f, val))
            continue
        else:
            value = _scalar(f, val)
        if f.repeated:
            out.setdefault(f.name, []).append(value)
        else:
            out[f.name] = value
    return out


def decode(body: bytes, group_version: str, kind: str) -> dict[str, Any]:
    """A ``k8s\\0``-framed request body as the JSON object it encodes."""
    if not body.startswith(MAGIC):
        raise ValueError("not a Kubernetes protobuf body (no k8s\\0 magic)")
    envelope = {n: v for n, _, v in fields(body[len(MAGIC):])}
    type_meta = {n: v.decode() for n, _, v in fields(envelope.get(1, b""))}
    api_version = type_meta.get(1) or group_version
    kind = type_meta.get(2) or kind
    group, _, version = api_version.rpartition("/")
    package = f"k8s.io.api.{group.split('.')[0] if group else 'core'}.{version}"
    obj = decode_message(f"{package}.{kind}", envelope.get(2, b""), registry())
    return {"apiVersion": api_version, "kind": kind, **_drop_zero(obj)}


def _drop_zero(value: Any) -> Any:
    """Go's generated marshallers write every non-pointer field, zero or not, and the JSON
    encoding omits zero values (``omitempty``): drop them so both encodings store the same.
    (A pointer field set to zero or false is lost with them; kubectl's typed create commands
    do not set any.)"""
    if isinstance(value, dict):
        out = {k: _drop_zero(v) for k, v in value.items()}
        return {k: v for k, v in out.items() if v not in ("", 0, None, {}, [])}
    if isinstance(value, list):
        return [_drop_zero(v) for v in value]
    return value
