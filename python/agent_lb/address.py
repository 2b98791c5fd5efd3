"""Addresses a lease may carry: their canonical text (one endpoint, one key) and the policy of
which ones a load balancer may be pointed at. Mirrors ``lib/core/address-policy.ts``: the same
syntax as Node's ``net.isIP`` (its regular expressions, ported), RFC 5952 text for IPv6, the same
always-refused ranges."""

from __future__ import annotations

import ipaddress
import json
import re
from dataclasses import dataclass
from decimal import Decimal
from typing import Dict, List, Optional, Sequence, Tuple, Union

from .contract import DEFAULT_ALLOWED_CIDRS
from .errors import ConfigError

_V4_SEG = r"(?:25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9][0-9]|[0-9])"
_V4 = rf"(?:{_V4_SEG}\.){{3}}{_V4_SEG}"
_V6_SEG = r"(?:[0-9a-fA-F]{1,4})"
_IPV4 = re.compile(_V4)
_IPV6 = re.compile(
    "(?:"
    rf"(?:{_V6_SEG}:){{7}}(?:{_V6_SEG}|:)|"
    rf"(?:{_V6_SEG}:){{6}}(?:{_V4}|:{_V6_SEG}|:)|"
    rf"(?:{_V6_SEG}:){{5}}(?::{_V4}|(?::{_V6_SEG}){{1,2}}|:)|"
    rf"(?:{_V6_SEG}:){{4}}(?:(?::{_V6_SEG}){{0,1}}:{_V4}|(?::{_V6_SEG}){{1,3}}|:)|"
    rf"(?:{_V6_SEG}:){{3}}(?:(?::{_V6_SEG}){{0,2}}:{_V4}|(?::{_V6_SEG}){{1,4}}|:)|"
    rf"(?:{_V6_SEG}:){{2}}(?:(?::{_V6_SEG}){{0,3}}:{_V4}|(?::{_V6_SEG}){{1,5}}|:)|"
    rf"(?:{_V6_SEG}:){{1}}(?:(?::{_V6_SEG}){{0,4}}:{_V4}|(?::{_V6_SEG}){{1,6}}|:)|"
    rf"(?::(?:(?::{_V6_SEG}){{0,5}}:{_V4}|(?::{_V6_SEG}){{1,7}}|:))"
    r")(?:%[0-9a-zA-Z\-.:]{1,})?"
)
_INSTANCE_ID = re.compile(r"i-(?:[0-9a-f]{8}|[0-9a-f]{17})")
_MAPPED = ipaddress.IPv6Network("::ffff:0:0/96")

# Never a valid target, whatever the configuration says.
_ALWAYS_REFUSED: Tuple[Tuple[str, str], ...] = (
    ("0.0.0.0/8", "unspecified"),
    ("127.0.0.0/8", "loopback"),
    ("169.254.0.0/16", "link-local"),
    ("224.0.0.0/4", "multicast"),
    ("240.0.0.0/4", "reserved"),
    ("::/128", "unspecified"),
    ("::1/128", "loopback"),
    ("fe80::/10", "link-local"),
    ("ff00::/8", "multicast"),
)

Network = Union[ipaddress.IPv4Network, ipaddress.IPv6Network]


def quote_untrusted(value: object, max_chars: int = 120) -> str:
    """A value agent-lb does not control, for a message: JSON-quoted (control characters escaped) and cut short."""
    try:
        text = json.dumps(value, ensure_ascii=False)
    except (TypeError, ValueError):
        text = repr(value)
    # JSON escapes C0 controls only: C1 controls (U+009B is a one-character CSI), line separators,
    # bidirectional overrides and zero-width characters would reach a terminal raw.
    text = _BEYOND_JSON.sub(lambda m: f"\\u{ord(m.group(0)):04x}", text)
    return text if len(text) <= max_chars else f"{text[:max_chars]}…({len(text)} characters)"


_BEYOND_JSON = re.compile("[\u007f-\u009f\u00ad\u061c\u180e\u200b-\u200f\u2028-\u202e\u2060-\u206f\ufeff\ufff9-\ufffb]")


def ip_family(text: str) -> int:
    """4 or 6 when ``text`` is an IP address as Node's ``net.isIP`` reads it (IPv6 may carry a zone), else 0."""
    if not isinstance(text, str):
        return 0
    if _IPV4.fullmatch(text):
        return 4
    if _IPV6.fullmatch(text):
        return 6
    return 0


def _rfc5952(value: int) -> str:
    """Eight groups in lower-case hex, the leftmost longest run of two or more zero groups as ``::``."""
    groups = [(value >> (16 * (7 - i))) & 0xFFFF for i in range(8)]
    best_start, best_len, start = -1, 0, -1
    for i, g in enumerate(groups + [1]):
        if g == 0 and i < 8:
            if start < 0:
                start = i
        elif start >= 0:
            if i - start > best_len:
                best_start, best_len = start, i - start
            start = -1
    text = [format(g, "x") for g in groups]
    if best_len < 2:
        return ":".join(text)
    return ":".join(text[:best_start]) + "::" + ":".join(text[best_start + best_len :])


def _canonical_ipv6(text: str) -> Optional[str]:
    try:
        return _rfc5952(int(ipaddress.IPv6Address(text)))
    except ValueError:
        return None


def canonical_address(text: str) -> Optional[str]:
    """The canonical text of an address, as a lease must carry it: IPv4 as it is, IPv6 in RFC
    5952 form (``FD00:0::5`` → ``fd00::5``; hexadecimal only, so ``::ffff:10.0.0.1`` →
    ``::ffff:a00:1``), an EC2 instance id as it is. ``None`` for anything else, an IPv6 address
    with a zone index included."""
    if not isinstance(text, str):
        return None
    if _INSTANCE_ID.fullmatch(text):
        return text
    family = ip_family(text)
    if family == 4:
        return text
    if family == 6 and "%" not in text:
        return _canonical_ipv6(text)
    return None


def format_target(address: str, port: Union[int, float]) -> str:
    """The lease key: ``a.b.c.d:port``, ``[v6]:port`` or ``i-…:port``."""
    port_text = js_number(port) if isinstance(port, float) else str(port)
    return f"[{address}]:{port_text}" if ip_family(address) == 6 else f"{address}:{port_text}"


def js_number(value: float) -> str:
    """A number as JavaScript's ``String(number)`` writes it, so a key built here equals the Node one."""
    if value != value:
        return "NaN"
    if value in (float("inf"), float("-inf")):
        return "Infinity" if value > 0 else "-Infinity"
    if value == 0:
        return "0"
    sign = "-" if value < 0 else ""
    # Both languages print the shortest digits that round-trip; only the layout differs.
    _, digit_tuple, exponent = Decimal(repr(abs(value))).normalize().as_tuple()
    digits = "".join(map(str, digit_tuple))
    k = len(digits)
    n = k + int(exponent)  # the decimal point sits after the n-th digit
    if k <= n <= 21:
        return sign + digits + "0" * (n - k)
    if 0 < n <= 21:
        return sign + digits[:n] + "." + digits[n:]
    if -6 < n <= 0:
        return sign + "0." + "0" * (-n) + digits
    e = n - 1
    head = digits[0] + ("." + digits[1:] if k > 1 else "")
    return f"{sign}{head}e{'+' if e >= 0 else '-'}{abs(e)}"


def parse_cidr(cidr: str) -> Network:
    """A CIDR as Node's core reads it (``<IPv4>/<0-32>`` or ``<IPv6>/<0-128>``, host bits allowed)."""
    match = re.fullmatch(r"([^/]+)/([0-9]{1,3})", cidr) if isinstance(cidr, str) else None
    family = ip_family(match.group(1)) if match else 0
    if not match or family == 0 or int(match.group(2)) > (32 if family == 4 else 128):
        raise ConfigError(f'invalid CIDR "{cidr}": expected <IPv4>/<0-32> or <IPv6>/<0-128>')
    return ipaddress.ip_network(f"{match.group(1).split('%')[0]}/{match.group(2)}", strict=False)


@dataclass(frozen=True)
class AddressCheck:
    """``ok``; else ``malformed`` (not an address at all) or refused, with a message."""

    ok: bool
    kind: Optional[str] = None
    malformed: bool = False
    message: str = ""


class AddressPolicy:
    """Which target addresses a lease may point the load balancer at: the allowed ranges (the
    defaults, or a deployment's ``allowedCidrs``), never loopback (unless ``allow_loopback``, for
    local mode), link-local, multicast or unspecified addresses."""

    def __init__(self, allowed_cidrs: Sequence[str] = DEFAULT_ALLOWED_CIDRS, *, allow_loopback: bool = False) -> None:
        self.allowed_cidrs: Tuple[str, ...] = tuple(allowed_cidrs)
        extra = ("127.0.0.0/8", "::1/128") if allow_loopback else ()
        self._allowed: List[Network] = [parse_cidr(c) for c in (*self.allowed_cidrs, *extra)]
        self._refused: List[Tuple[Network, str]] = [(parse_cidr(c), what) for c, what in _ALWAYS_REFUSED if not (allow_loopback and what == "loopback")]
        self._verdicts: Dict[str, AddressCheck] = {}

    def check(self, address: str) -> AddressCheck:
        known = self._verdicts.get(address)
        if known is not None:
            return known
        verdict = self._judge(address)
        if len(address) <= 64:
            if len(self._verdicts) >= 50_000:
                self._verdicts.clear()
            self._verdicts[address] = verdict
        return verdict

    def _judge(self, address: str) -> AddressCheck:
        quoted = quote_untrusted(address)
        if _INSTANCE_ID.fullmatch(address):
            return AddressCheck(True, "instance")
        family = ip_family(address)
        if family == 0:
            return AddressCheck(False, malformed=True, message=f"address {quoted} is neither an IP address nor an EC2 instance id (i-…)")
        if family == 6:
            if "%" in address:
                return AddressCheck(False, malformed=True, message=f"address {quoted} has a zone index (%…), which means nothing to a load balancer")
            try:
                ip6 = ipaddress.IPv6Address(address)
            except ValueError:
                return AddressCheck(False, malformed=True, message=f"address {quoted} is not an IPv6 address")
            if address.lower().startswith("::ffff:") or ip6 in _MAPPED:
                return AddressCheck(False, message=f"address {quoted} is an IPv4-mapped IPv6 address; write the IPv4 form")
            canonical = _rfc5952(int(ip6))
            if canonical != address:
                return AddressCheck(False, malformed=True, message=f'address {quoted} is not in canonical IPv6 form (RFC 5952): write "{canonical}"')
            ip: Union[ipaddress.IPv4Address, ipaddress.IPv6Address] = ip6
        else:
            ip = ipaddress.IPv4Address(address)
        for network, what in self._refused:
            if ip.version == network.version and ip in network:
                return AddressCheck(False, message=f"address {quoted} is {what} and can never be a target")
        if not any(ip.version == n.version and ip in n for n in self._allowed):
            return AddressCheck(False, message=f"address {quoted} is outside the allowed ranges ({', '.join(self.allowed_cidrs)})")
        return AddressCheck(True, "ipv6" if family == 6 else "ipv4")
