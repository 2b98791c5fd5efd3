import type { AttributeValue, UpdateItemCommandInput } from '@aws-sdk/client-dynamodb';
import { CLOCK_SKEW_ALLOWANCE_SECONDS, LEASE_ATTR, RegistryMap } from '../core/lease-schema';
import { LeaseTokenCondition, RegistryEntry, tokenValue } from '../core/registry-writes';
import { encodeRejection } from '../core/rejection';
import type { RejectionWrite } from '../core/rejection-planner';

/**
 * The UpdateItem of one registry write (lib/core/registry-writes.ts) in DynamoDB's expression
 * language. Pure: the lease store sends it. For each map, either its entries are set (or removed)
 * in place — the condition then asks for the map and, per entry, for no stored entry, a malformed
 * one, one with an older `since`, or one dated in the future (beyond the clock-skew allowance) — or, when the item holds no map, the map is written whole on
 * the condition that there still is none. A `rejection` is set (or removed) whole, on the
 * condition that `renewedAt` is still the one judged (and, for a removal, that there is one to
 * remove). Always on the lease token (`leaseToken = :token`, or none for an item that has none, on
 * an item that exists): a missing item fails the condition, so nothing is ever created or
 * resurrected.
 */

export interface RegistryUpdate {
  readonly input: UpdateItemCommandInput;
  /** The entries the update carries. */
  readonly included: readonly RegistryEntry[];
  /** Removals of entries in a map the item does not hold: nothing to do. */
  readonly skipped: readonly RegistryEntry[];
  /** Whether the update carries the lease's rejection. */
  readonly rejection: boolean;
}

/** `undefined` when nothing is left to write (only removals from maps the item does not hold, and no rejection). */
export function registryUpdate(
  tableName: string,
  target: string,
  leaseToken: LeaseTokenCondition,
  entries: readonly RegistryEntry[],
  maps: ReadonlySet<RegistryMap>,
  rejection?: RejectionWrite,
): RegistryUpdate | undefined {
  const names: Record<string, string> = { '#token': LEASE_ATTR.leaseToken };
  const values: Record<string, AttributeValue> = {};
  const token = tokenValue(leaseToken);
  const conditions: string[] = [];
  if (token === undefined) {
    names['#key'] = LEASE_ATTR.target;
    conditions.push('attribute_exists(#key) AND attribute_not_exists(#token)');
  } else {
    values[':token'] = token as AttributeValue;
    conditions.push('#token = :token');
  }
  const sets: string[] = [];
  const removes: string[] = [];
  const included: RegistryEntry[] = [];
  const skipped: RegistryEntry[] = [];
  const attributes = [...new Set(entries.map((e) => e.attribute))];
  attributes.forEach((attribute, a) => {
    const mine = entries.filter((e) => e.attribute === attribute);
    const name = `#a${a}`;
    if (!maps.has(attribute)) {
      const whole = mine.filter((e) => e.value !== undefined);
      skipped.push(...mine.filter((e) => e.value === undefined));
      if (whole.length === 0) return;
      names[name] = attribute;
      values[':m'] = { S: 'M' };
      values[`:w${a}`] = { M: Object.fromEntries(whole.map((e) => [e.key, e.value as AttributeValue])) };
      // Only the registry writes these attributes: a malformed one (not a map) is replaced.
      conditions.push(`(attribute_not_exists(${name}) OR NOT attribute_type(${name}, :m))`);
      sets.push(`${name} = :w${a}`);
      included.push(...whole);
      return;
    }
    names[name] = attribute;
    names['#since'] = 'since';
    values[':m'] = { S: 'M' };
    values[':n'] = { S: 'N' };
    conditions.push(`attribute_type(${name}, :m)`);
    for (const entry of mine) {
      const i = included.length;
      const path = `${name}.#k${i}`;
      names[`#k${i}`] = entry.key;
      values[`:s${i}`] = { N: String(Math.floor(entry.since)) };
      // An entry dated further ahead than the clock-skew allowance was not written by a registry clock (an agent forged it): replaced like a malformed one.
      values[`:f${i}`] = { N: String(Math.floor(entry.since) + CLOCK_SKEW_ALLOWANCE_SECONDS * 1000) };
      conditions.push(
        `(attribute_not_exists(${path}) OR NOT attribute_type(${path}, :m) OR NOT attribute_type(${path}.#since, :n) OR ${path}.#since < :s${i} OR ${path}.#since > :f${i})`,
      );
      if (entry.value === undefined) removes.push(path);
      else {
        values[`:v${i}`] = entry.value as AttributeValue;
        sets.push(`${path} = :v${i}`);
      }
      included.push(entry);
    }
  });
  if (rejection !== undefined) {
    names['#rejection'] = LEASE_ATTR.rejection;
    names['#renewedAt'] = LEASE_ATTR.renewedAt;
    // The item judged: a verdict on an older write of the agent never lands on a newer one.
    if (rejection.renewedAt === undefined) conditions.push('attribute_not_exists(#renewedAt)');
    else {
      values[':renewedAt'] = rejection.renewedAt as AttributeValue;
      conditions.push('#renewedAt = :renewedAt');
    }
    if (rejection.rejection === undefined) {
      conditions.push('attribute_exists(#rejection)');
      removes.push('#rejection');
    } else {
      values[':rejection'] = encodeRejection(rejection.rejection) as AttributeValue;
      sets.push('#rejection = :rejection');
    }
  }
  if (included.length === 0 && rejection === undefined) return undefined;
  return {
    input: {
      TableName: tableName,
      Key: { [LEASE_ATTR.target]: { S: target } },
      UpdateExpression: [sets.length > 0 ? `SET ${sets.join(', ')}` : '', removes.length > 0 ? `REMOVE ${removes.join(', ')}` : ''].filter(Boolean).join(' '),
      ConditionExpression: conditions.join(' AND '),
      ExpressionAttributeNames: names,
      ...(Object.keys(values).length > 0 ? { ExpressionAttributeValues: values } : {}),
      // The item as it was when the condition failed: gone, superseded, or which entries to write again.
      ReturnValuesOnConditionCheckFailure: 'ALL_OLD',
    },
    included,
    skipped,
    rejection: rejection !== undefined,
  };
}
