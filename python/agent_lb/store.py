"""The lease table behind the contract's conditional writes (boto3's low-level DynamoDB client),
mirroring ``lib/aws/lease-store.ts``. DynamoDB's exceptions become agent-lb errors here: a failed
condition is ``LeaseHeldError`` (acquire) or ``LeaseLostError`` (renew, status), anything else
``LeaseStoreError``; callers never see a botocore exception."""

from __future__ import annotations

from typing import Any, Dict, Mapping, Optional

from botocore.exceptions import BotoCoreError, ClientError

from .contract import LEASE_ATTR
from .errors import LeaseHeldError, LeaseLostError, LeaseStoreError

Item = Dict[str, Any]

_ACQUIRE_CONDITION = "attribute_not_exists(#target) OR #expiresAt < :now OR #leaseToken = :mine"


def _condition_failed(error: BaseException) -> bool:
    return isinstance(error, ClientError) and error.response.get("Error", {}).get("Code") == "ConditionalCheckFailedException"


def _wrap(action: str, table: str, error: BaseException, target: str) -> LeaseStoreError:
    name = error.response.get("Error", {}).get("Code", type(error).__name__) if isinstance(error, ClientError) else type(error).__name__
    return LeaseStoreError(f"{action} on table {table} failed: {name}: {error}", context={"table": table, "target": target})


class LeaseStore:
    """Conditional writes of one agent's lease; each returns what DynamoDB hands back."""

    def __init__(self, client: Any, table_name: str) -> None:
        self.client = client
        self.table_name = table_name

    def _key(self, target: str) -> Dict[str, Any]:
        return {LEASE_ATTR.target: {"S": target}}

    def acquire(self, item: Mapping[str, Any], lease_token: str, now_seconds: int, takeover: bool = False) -> None:
        """PutItem: succeeds when nobody holds the key, the holder's lease expired, or we hold it;
        ``takeover`` drops the condition (same address:port means same endpoint)."""
        target = item[LEASE_ATTR.target]["S"]
        request: Dict[str, Any] = {"TableName": self.table_name, "Item": dict(item)}
        if not takeover:
            request.update(
                ConditionExpression=_ACQUIRE_CONDITION,
                ExpressionAttributeNames={"#target": LEASE_ATTR.target, "#expiresAt": LEASE_ATTR.expires_at, "#leaseToken": LEASE_ATTR.lease_token},
                ExpressionAttributeValues={":now": {"N": str(now_seconds)}, ":mine": {"S": lease_token}},
            )
        try:
            self.client.put_item(**request)
        except (ClientError, BotoCoreError) as error:
            if _condition_failed(error):
                raise LeaseHeldError(target) from error
            raise _wrap("acquire", self.table_name, error, target) from error

    def renew(self, target: str, lease_token: str, expires_at: int, renewed_at_ms: int) -> Optional[Item]:
        """Heartbeat: moves only ``expiresAt``/``renewedAt`` (no routing change, no ELB call) and
        returns the item after the write (``ALL_NEW``: the registry's ``rotation`` and
        ``rejection`` at no read cost)."""
        try:
            out = self.client.update_item(
                TableName=self.table_name,
                Key=self._key(target),
                UpdateExpression="SET #expiresAt = :exp, #renewedAt = :ren",
                ConditionExpression="#leaseToken = :mine",
                ExpressionAttributeNames={"#expiresAt": LEASE_ATTR.expires_at, "#renewedAt": LEASE_ATTR.renewed_at, "#leaseToken": LEASE_ATTR.lease_token},
                ExpressionAttributeValues={":exp": {"N": str(expires_at)}, ":ren": {"N": str(renewed_at_ms)}, ":mine": {"S": lease_token}},
                ReturnValues="ALL_NEW",
            )
        except (ClientError, BotoCoreError) as error:
            if _condition_failed(error):
                raise LeaseLostError(target, "the lease was taken over or swept after expiry") from error
            raise _wrap("renew", self.table_name, error, target) from error
        return out.get("Attributes")

    def set_status(self, target: str, lease_token: str, status: str) -> Optional[Item]:
        """Drain (``draining``) or activate (``active``) a lease we hold; returns the item after the write."""
        try:
            out = self.client.update_item(
                TableName=self.table_name,
                Key=self._key(target),
                UpdateExpression="SET #status = :status",
                ConditionExpression="#leaseToken = :mine",
                ExpressionAttributeNames={"#status": LEASE_ATTR.status, "#leaseToken": LEASE_ATTR.lease_token},
                ExpressionAttributeValues={":status": {"S": status}, ":mine": {"S": lease_token}},
                ReturnValues="ALL_NEW",
            )
        except (ClientError, BotoCoreError) as error:
            if _condition_failed(error):
                raise LeaseLostError(target, "the lease was taken over or swept after expiry") from error
            raise _wrap("set_status", self.table_name, error, target) from error
        return out.get("Attributes")

    def release(self, target: str, lease_token: str) -> bool:
        """DeleteItem, only if we still hold the lease; False when it was no longer ours."""
        try:
            self.client.delete_item(
                TableName=self.table_name,
                Key=self._key(target),
                ConditionExpression="#leaseToken = :mine",
                ExpressionAttributeNames={"#leaseToken": LEASE_ATTR.lease_token},
                ExpressionAttributeValues={":mine": {"S": lease_token}},
            )
        except (ClientError, BotoCoreError) as error:
            if _condition_failed(error):
                return False
            raise _wrap("release", self.table_name, error, target) from error
        return True

    def get(self, target: str) -> Optional[Item]:
        """The item, strongly consistent (1 read request unit for an item ≤ 4 KB)."""
        try:
            out = self.client.get_item(TableName=self.table_name, Key=self._key(target), ConsistentRead=True)
        except (ClientError, BotoCoreError) as error:
            raise _wrap("get", self.table_name, error, target) from error
        return out.get("Item")
