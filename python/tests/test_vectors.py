"""The lease contract's language-neutral vectors (test/vectors/*.json, format in
test/vectors/README.md) against the Python package: the same files run against the Node core
(test/unit/lease-vectors.test.ts). Every file in the directory is run; a kind this runner does not
know fails."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Dict, List, Tuple

import pytest

from agent_lb.address import AddressPolicy, canonical_address, format_target
from agent_lb.agents import DiscoveredAgent, discover_from
from agent_lb.codec import decode_lease, decode_rejection, decode_rotation, is_live, rejection_reasons
from agent_lb.contract import DEFAULT_ALLOWED_CIDRS, HEALTH_FILTERS, MEMBER_ATTR, REGISTRY_STATE, REJECTION_REASONS
from agent_lb.progress import out_of_rotation_progress, serving_progress

VECTORS = Path(__file__).resolve().parents[2] / "test" / "vectors"
KINDS = ("canonicalAddress", "targetKey", "validate", "liveness", "rotation", "rejection", "serving", "outOfRotation", "discover")
META = ("$comment", "format", "validItem", "rejectionReasons", "registryState", "members")
FILES = sorted(VECTORS.glob("*.json"))


def _load(path: Path) -> Dict[str, Any]:
    return json.loads(path.read_text(encoding="utf-8"))


def _cases(kind: str) -> List[Tuple[str, Dict[str, Any], Dict[str, Any]]]:
    out = []
    for path in FILES:
        doc = _load(path)
        for i, case in enumerate(doc.get(kind, [])):
            out.append((f"{path.name} {kind}[{i}] {case.get('name', '')}".strip(), case, doc))
    return out


def _params(kind: str):  # type: ignore[no-untyped-def]
    return [pytest.param(case, doc, id=label) for label, case, doc in _cases(kind)]


def _item(case: Dict[str, Any], doc: Dict[str, Any]) -> Any:
    if "item" in case:
        return case["item"]
    item = dict(doc.get("validItem", {}))
    for key, value in case.get("patch", {}).items():
        if value is None:
            item.pop(key, None)
        else:
            item[key] = value
    return item


def _rotation(raw: Any):  # type: ignore[no-untyped-def]
    return {c: {"state": e.state, "since": e.since} for c, e in decode_rotation(raw).items()}


def test_the_vector_directory_holds_files() -> None:
    assert FILES, f"no vectors in {VECTORS}"


@pytest.mark.parametrize("path", FILES, ids=[p.name for p in FILES])
def test_each_file_has_format_1_and_only_known_kinds(path: Path) -> None:
    doc = _load(path)
    assert doc.get("format") == 1
    assert [k for k in doc if k not in META and k not in KINDS] == []


def test_the_reason_codes_are_the_ones_the_files_list() -> None:
    listed = [doc["rejectionReasons"] for doc in map(_load, FILES) if "rejectionReasons" in doc]
    assert listed
    for reasons in listed:
        assert list(REJECTION_REASONS) == reasons


def test_the_registry_state_names_are_the_ones_the_files_list() -> None:
    listed = [doc["registryState"] for doc in map(_load, FILES) if "registryState" in doc]
    assert listed
    member_attributes = [v for k, v in vars(MEMBER_ATTR).items() if not k.startswith("_")]
    for names in listed:
        assert {
            "partitionKey": REGISTRY_STATE.partition_key,
            "sortKey": REGISTRY_STATE.sort_key,
            "membersPartitionPrefix": REGISTRY_STATE.members_partition_prefix,
            "tableEnv": REGISTRY_STATE.table_env,
            "memberAttributes": member_attributes,
            "healthFilters": list(HEALTH_FILTERS),
        } == names


@pytest.mark.parametrize("kind", KINDS)
def test_every_kind_has_cases(kind: str) -> None:
    assert _cases(kind), kind


@pytest.mark.parametrize("case,doc", _params("canonicalAddress"))
def test_canonical_address(case: Dict[str, Any], doc: Dict[str, Any]) -> None:
    assert canonical_address(case["input"]) == case["canonical"]


@pytest.mark.parametrize("case,doc", _params("targetKey"))
def test_target_key(case: Dict[str, Any], doc: Dict[str, Any]) -> None:
    assert format_target(case["address"], case["port"]) == case["key"]


@pytest.mark.parametrize("case,doc", _params("validate"))
def test_validate(case: Dict[str, Any], doc: Dict[str, Any]) -> None:
    policy = case.get("policy", {})
    decoded = decode_lease(_item(case, doc), AddressPolicy(policy.get("allowedCidrs", DEFAULT_ALLOWED_CIDRS), allow_loopback=policy.get("allowLoopback") is True))
    assert ([] if decoded.ok else rejection_reasons(decoded.rejections)) == case["reasons"]


@pytest.mark.parametrize("case,doc", _params("liveness"))
def test_liveness(case: Dict[str, Any], doc: Dict[str, Any]) -> None:
    assert is_live(case["status"], case["expiresAt"], case["now"]) is case["live"]


@pytest.mark.parametrize("case,doc", _params("rotation"))
def test_rotation(case: Dict[str, Any], doc: Dict[str, Any]) -> None:
    assert _rotation(case.get("raw")) == case["entries"]


@pytest.mark.parametrize("case,doc", _params("rejection"))
def test_rejection(case: Dict[str, Any], doc: Dict[str, Any]) -> None:
    decoded = decode_rejection(case.get("raw"))
    as_json = None
    if decoded is not None:
        as_json = {"reason": decoded.reason, "message": decoded.message, "since": decoded.since}
        if decoded.capabilities is not None:
            as_json["capabilities"] = list(decoded.capabilities)
    assert as_json == case["decoded"]


@pytest.mark.parametrize("case,doc", _params("serving"))
def test_serving(case: Dict[str, Any], doc: Dict[str, Any]) -> None:
    progress = serving_progress(decode_rotation(case.get("rotation")), case["capabilities"], decode_rejection(case.get("rejection")))
    assert (case["status"] == "active" and progress.done) is case["serving"]


@pytest.mark.parametrize("case,doc", _params("outOfRotation"))
def test_out_of_rotation(case: Dict[str, Any], doc: Dict[str, Any]) -> None:
    progress = out_of_rotation_progress(decode_rotation(case.get("rotation")), case["capabilities"], case["notBefore"], decode_rejection(case.get("rejection")))
    assert progress.done is case["out"]


def _as_json(agent: DiscoveredAgent) -> Dict[str, Any]:
    """An agent under the vectors' (the Node SDK's) names, keys absent when none."""
    names = {"agent_id": "agentId", "availability_zone": "availabilityZone"}
    return {names.get(k, k): v for k, v in vars(agent).items() if v is not None}


@pytest.mark.parametrize("case,doc", _params("discover"))
def test_discover(case: Dict[str, Any], doc: Dict[str, Any]) -> None:
    agents = discover_from(case.get("members", doc.get("members")), case.get("health", "healthy"), case.get("filter"))
    assert [a.target for a in agents] == case["targets"]
    if "agents" in case:
        assert [_as_json(a) for a in agents] == case["agents"]
        # The same types as JSON's: an integral number is an int, never a float or a Decimal.
        assert [type(a.port) for a in agents] == [int] * len(agents)
