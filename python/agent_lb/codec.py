"""Reading and writing lease items (DynamoDB JSON, as boto3's client sends and receives them).
Mirrors ``lib/core/lease-codec.ts`` and ``lib/core/rejection.ts``: the same checks, the same
reason codes, proven by the shared test vectors. Nothing here raises on untrusted input: every
problem becomes a ``LeaseRejection``; malformed registry feedback is dropped."""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, field
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

from .address import AddressPolicy, format_target, js_number, quote_untrusted
from .contract import CAPABILITY_NAME, LEASE_ATTR, MAX_EPOCH_SECONDS, MAX_METADATA_BYTES, MAX_PORT, MIN_EPOCH_MS, MIN_PORT, ROTATION_STATES
from .errors import InvalidLeaseError, LeaseRejection

Item = Mapping[str, Any]

# DynamoDB numbers as text: what `Number()` would also read ("0x50", " 80", "Infinity") is refused.
_DECIMAL = re.compile(r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")
_TYPE_NAMES = {"S": "String (S)", "N": "Number (N)", "SS": "String Set (SS)", "M": "Map (M)"}
_REASON_CODE = re.compile(r"[a-z][a-z0-9-]{0,62}")


@dataclass(frozen=True)
class RotationEntry:
    """One capability's entry of ``rotation``: the target's state in that group, since when (epoch ms, the registry's clock)."""

    state: str
    since: int


@dataclass(frozen=True)
class Rejection:
    """The registry's ``rejection``: why it refuses the lease (``capabilities`` is ``None``) or
    only the capabilities listed. ``reason`` is a stable code (``invalid``, ``unknown-capability``,
    ``target-type-mismatch``; a newer registry may add others), ``message`` one line for people,
    ``since`` epoch ms."""

    reason: str
    message: str
    since: int
    capabilities: Optional[Tuple[str, ...]] = None

    def same_verdict(self, other: Optional["Rejection"]) -> bool:
        """The same reason, message and capabilities (``since`` aside)."""
        return other is not None and (self.reason, self.message, self.capabilities) == (other.reason, other.message, other.capabilities)


@dataclass(frozen=True)
class Lease:
    """A decoded, structurally valid lease."""

    target: str
    address: str
    port: int
    capabilities: Tuple[str, ...]
    expires_at: int
    lease_token: str
    agent_id: str
    status: str
    renewed_at: int
    registered_at: int
    availability_zone: Optional[str] = None
    metadata: Optional[Dict[str, Any]] = None
    rotation: Dict[str, RotationEntry] = field(default_factory=dict)
    rejection: Optional[Rejection] = None


@dataclass(frozen=True)
class DecodeResult:
    ok: bool
    lease: Optional[Lease] = None
    rejections: Tuple[LeaseRejection, ...] = ()


def _type_of(value: Any) -> str:
    if not isinstance(value, dict):
        return "not an attribute value"
    keys = list(value.keys())
    if len(keys) == 1 and isinstance(keys[0], str) and re.fullmatch(r"[A-Z]{1,4}", keys[0]):
        return keys[0]
    if len(keys) == 1:
        return quote_untrusted(keys[0])
    shown = ",".join(quote_untrusted(k, 20) for k in keys[:5])
    return "{" + shown + (",…" if len(keys) > 5 else "") + "}"


class _ItemReader:
    """Reads the contract's attributes, collecting every problem rather than stopping at the first."""

    def __init__(self, item: Mapping[str, Any], target: Optional[str]) -> None:
        self.item = item
        self.target = target
        self.rejections: List[LeaseRejection] = []

    def reject(self, reason: str, message: str) -> None:
        self.rejections.append(LeaseRejection(reason, message, self.target))

    def _field(self, name: str, type_: str, optional: bool) -> Any:
        raw = self.item.get(name)
        if name not in self.item or (optional and isinstance(raw, dict) and raw.get("NULL") is True):
            if not optional:
                self.reject("MISSING_ATTRIBUTE", f'attribute "{name}" is missing')
            return None
        value = raw.get(type_) if isinstance(raw, dict) else None
        if type_ in ("S", "N"):
            shaped = isinstance(value, str)
        elif type_ == "SS":
            shaped = isinstance(value, list)
        else:
            shaped = isinstance(value, dict)
        if value is None or not shaped or _type_of(raw) != type_:
            self.reject("WRONG_TYPE", f'attribute "{name}" must be {_TYPE_NAMES[type_]}, got {_type_of(raw)}')
            return None
        return value

    def string(self, name: str, optional: bool = False) -> Optional[str]:
        value = self._field(name, "S", optional)
        if value is not None and len(value) == 0:
            self.reject("WRONG_TYPE", f'attribute "{name}" must not be empty')
            return None
        return value

    def number(self, name: str, reason: str = "WRONG_TYPE") -> Optional[float]:
        text = self._field(name, "N", False)
        if text is None:
            return None
        value = float(text) if _DECIMAL.fullmatch(text) else math.nan
        if not math.isfinite(value):
            self.reject(reason, f'attribute "{name}" is not a finite decimal number: {quote_untrusted(text)}')
            return None
        return value

    def string_set(self, name: str) -> Optional[List[str]]:
        value = self._field(name, "SS", False)
        if value is None:
            return None
        if not all(isinstance(v, str) for v in value):
            self.reject("WRONG_TYPE", f'attribute "{name}" must hold only strings')
            return None
        return list(value)

    def map(self, name: str) -> Optional[Dict[str, Any]]:
        return self._field(name, "M", True)


def _js_json(value: Any) -> Any:
    """Bytes as JavaScript's JSON.stringify writes a Uint8Array (an object of indices)."""
    if isinstance(value, (bytes, bytearray)):
        return {str(i): b for i, b in enumerate(value)}
    raise TypeError(f"not JSON: {type(value).__name__}")


def _json_bytes(value: Any) -> Optional[int]:
    """Size of ``value`` as JavaScript's JSON.stringify writes it, in UTF-8 bytes; ``None`` when it cannot be written."""
    try:
        text = json.dumps(value, ensure_ascii=False, separators=(",", ":"), default=_js_json, allow_nan=False)
    except (TypeError, ValueError):
        return None
    # A lone surrogate is escaped as \\uXXXX by JavaScript (six bytes), not encoded.
    return len(text.encode("utf-8", "surrogatepass")) + 3 * sum(1 for ch in text if 0xD800 <= ord(ch) <= 0xDFFF)


def _is_integer(value: float) -> bool:
    return math.isfinite(value) and value == int(value)


def decode_lease(item: Any, policy: AddressPolicy) -> DecodeResult:
    """Decodes and validates an untrusted lease item. Never raises: every problem becomes a
    rejection with its reason code. Routing checks (capabilities this deployment routes, target
    types) are the registry's: it writes what it refuses into ``rejection``."""
    if not isinstance(item, dict):
        return DecodeResult(False, rejections=(LeaseRejection("WRONG_TYPE", "lease item is not a map of attributes"),))
    raw_target = item.get(LEASE_ATTR.target)
    target_key = raw_target.get("S") if isinstance(raw_target, dict) and isinstance(raw_target.get("S"), str) else None
    r = _ItemReader(item, target_key)

    target = r.string(LEASE_ATTR.target)
    address = r.string(LEASE_ATTR.address)
    port = r.number(LEASE_ATTR.port, "BAD_PORT")
    capabilities = r.string_set(LEASE_ATTR.capabilities)
    expires_at = r.number(LEASE_ATTR.expires_at, "BAD_EXPIRY")
    lease_token = r.string(LEASE_ATTR.lease_token)
    agent_id = r.string(LEASE_ATTR.agent_id)
    status = r.string(LEASE_ATTR.status)
    renewed_at = r.number(LEASE_ATTR.renewed_at)
    registered_at = r.number(LEASE_ATTR.registered_at)
    availability_zone = r.string(LEASE_ATTR.availability_zone, True)
    metadata = r.map(LEASE_ATTR.metadata)

    if port is not None and (not _is_integer(port) or port < MIN_PORT or port > MAX_PORT):
        r.reject("BAD_PORT", f"port {js_number(port)} is outside {MIN_PORT}–{MAX_PORT}")
    if address is not None:
        check = policy.check(address)
        if not check.ok:
            r.reject("BAD_ADDRESS" if check.malformed else "ADDRESS_NOT_ALLOWED", check.message)
    if target is not None and address is not None and port is not None:
        expected = format_target(address, int(port) if _is_integer(port) else port)
        if target != expected:
            r.reject("TARGET_MISMATCH", f"target {quote_untrusted(target)} does not match address and port (expected {quote_untrusted(expected)})")
    if capabilities is not None:
        if len(capabilities) == 0:
            r.reject("BAD_CAPABILITIES", "capabilities must not be empty")
        bad = [c for c in capabilities if not CAPABILITY_NAME.fullmatch(c)]
        if bad:
            shown = ", ".join(quote_untrusted(c, 70) for c in bad[:5]) + (f" and {len(bad) - 5} more" if len(bad) > 5 else "")
            r.reject("BAD_CAPABILITIES", f"capability names {shown} do not match ^[a-z0-9][a-z0-9_-]{{0,62}}$")
    if expires_at is not None and (not _is_integer(expires_at) or expires_at <= 0 or expires_at > MAX_EPOCH_SECONDS):
        hint = " (looks like milliseconds; the TTL attribute takes epoch seconds)" if expires_at > MAX_EPOCH_SECONDS else ""
        r.reject("BAD_EXPIRY", f"expiresAt {js_number(expires_at)} is not a positive integer of epoch seconds{hint}")
    if status is not None and status not in ("active", "draining"):
        r.reject("BAD_STATUS", f'status {quote_untrusted(status)} must be "active" or "draining"')
    size = 0 if metadata is None else _json_bytes(metadata)
    if size is None:
        r.reject("WRONG_TYPE", 'attribute "metadata" cannot be serialized as JSON')
    elif size > MAX_METADATA_BYTES:
        r.reject("METADATA_TOO_LARGE", f"metadata is {size} bytes, limit {MAX_METADATA_BYTES}")

    if r.rejections:
        return DecodeResult(False, rejections=tuple(r.rejections))
    assert target is not None and address is not None and port is not None and capabilities is not None
    assert expires_at is not None and lease_token is not None and agent_id is not None and status is not None
    assert renewed_at is not None and registered_at is not None
    return DecodeResult(
        True,
        Lease(
            target=target,
            address=address,
            port=int(port),
            capabilities=tuple(sorted(capabilities)),
            expires_at=int(expires_at),
            lease_token=lease_token,
            agent_id=agent_id,
            status=status,
            renewed_at=int(renewed_at),
            registered_at=int(registered_at),
            availability_zone=availability_zone,
            metadata=metadata,
            rotation=decode_rotation(item.get(LEASE_ATTR.rotation)),
            rejection=decode_rejection(item.get(LEASE_ATTR.rejection)),
        ),
    )


def is_live(status: str, expires_at: float, now_seconds: float) -> bool:
    """A lease is live when it is active and its expiry (epoch seconds) is in the future: the one rule everything is measured against."""
    return status == "active" and expires_at > now_seconds


def _scalar(value: Any, type_: str) -> Optional[str]:
    if not isinstance(value, dict) or len(value) != 1:
        return None
    text = value.get(type_)
    return text if isinstance(text, str) else None


def decode_rotation(raw: Any) -> Dict[str, RotationEntry]:
    """The well-formed entries of the registry's ``rotation`` attribute (capability → state,
    since); malformed entries are dropped, never a reason to fail."""
    if not isinstance(raw, dict) or len(raw) != 1 or not isinstance(raw.get("M"), dict):
        return {}
    entries: Dict[str, RotationEntry] = {}
    for capability, value in raw["M"].items():
        if not isinstance(capability, str) or not CAPABILITY_NAME.fullmatch(capability):
            continue
        entry = value.get("M") if isinstance(value, dict) and len(value) == 1 else None
        if not isinstance(entry, dict):
            continue
        state = _scalar(entry.get("state"), "S")
        since_text = _scalar(entry.get("since"), "N")
        if state not in ROTATION_STATES or since_text is None or not _DECIMAL.fullmatch(since_text):
            continue
        since = float(since_text)
        if not _is_integer(since) or since < 0 or since > 2**53 - 1 or since < MIN_EPOCH_MS:
            continue
        entries[capability] = RotationEntry(state, int(since))
    return entries


def decode_rejection(raw: Any) -> Optional[Rejection]:
    """The registry's ``rejection`` attribute, or ``None`` when it is absent or malformed: a
    reason code (known or not), a message, ``since`` in whole epoch ms, optional capabilities
    (a String Set of capability names). Other keys are ignored."""
    if not isinstance(raw, dict) or len(raw) != 1 or not isinstance(raw.get("M"), dict):
        return None
    m = raw["M"]
    reason = _scalar(m.get("reason"), "S")
    message = _scalar(m.get("message"), "S")
    since_text = _scalar(m.get("since"), "N")
    if reason is None or not _REASON_CODE.fullmatch(reason) or message is None or since_text is None or not re.fullmatch(r"[0-9]{1,16}", since_text):
        return None
    since = int(since_text)
    if since > 2**53 - 1 or since < MIN_EPOCH_MS:
        return None
    capabilities: Optional[Tuple[str, ...]] = None
    if "capabilities" in m:
        value = m["capabilities"]
        names = value.get("SS") if isinstance(value, dict) and len(value) == 1 else None
        if not isinstance(names, list) or not names or not all(isinstance(c, str) and CAPABILITY_NAME.fullmatch(c) for c in names):
            return None
        capabilities = tuple(sorted(set(names)))
    return Rejection(reason, message, since, capabilities)


def encode_lease(lease: Lease) -> Dict[str, Any]:
    """The item an agent writes (DynamoDB JSON). Never ``rotation`` or ``rejection``: only the registry writes those."""
    item: Dict[str, Any] = {
        LEASE_ATTR.target: {"S": lease.target},
        LEASE_ATTR.address: {"S": lease.address},
        LEASE_ATTR.port: {"N": str(lease.port)},
        LEASE_ATTR.capabilities: {"SS": list(lease.capabilities)},
        LEASE_ATTR.expires_at: {"N": str(lease.expires_at)},
        LEASE_ATTR.lease_token: {"S": lease.lease_token},
        LEASE_ATTR.agent_id: {"S": lease.agent_id},
        LEASE_ATTR.status: {"S": lease.status},
        LEASE_ATTR.renewed_at: {"N": str(lease.renewed_at)},
        LEASE_ATTR.registered_at: {"N": str(lease.registered_at)},
    }
    if lease.availability_zone is not None:
        item[LEASE_ATTR.availability_zone] = {"S": lease.availability_zone}
    if lease.metadata is not None:
        item[LEASE_ATTR.metadata] = {"M": lease.metadata}
    return item


def encode_valid_lease(lease: Lease, policy: AddressPolicy) -> Dict[str, Any]:
    """Encodes and validates through the same rules the registry applies; raises ``InvalidLeaseError``."""
    item = encode_lease(lease)
    decoded = decode_lease(item, policy)
    if not decoded.ok:
        raise InvalidLeaseError(decoded.rejections, context={"target": lease.target})
    return item


def rejection_reasons(rejections: Sequence[LeaseRejection]) -> List[str]:
    """The sorted set of reason codes, as the test vectors list them."""
    return sorted({r.reason for r in rejections})
