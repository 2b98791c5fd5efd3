import { describe, expect, it } from 'vitest';
import { ConfigError, parseRuntimeConfig } from '../../lib/core';

const ok = { tableName: 't', capabilities: { vision: { targetGroupArn: 'arn:tg', targetType: 'ip' } } };

describe('parseRuntimeConfig', () => {
  it('applies defaults for allowed CIDRs, the safety valve and repeat', () => {
    expect(parseRuntimeConfig(JSON.stringify(ok))).toEqual({
      tableName: 't',
      routing: { capabilities: { vision: { targetGroupArn: 'arn:tg', targetType: 'ip' } }, allowedCidrs: ['10.0.0.0/8', '172.16.0.0/12', '192.168.0.0/16', '100.64.0.0/10'] },
      safetyValveShare: 0.5,
      reconcileRepeatSeconds: 0,
    });
  });

  it.each([
    [undefined, 'AGENT_LB_CONFIG: is not set'],
    ['{', 'AGENT_LB_CONFIG: is not valid JSON'],
    [JSON.stringify({ ...ok, tableName: '' }), 'AGENT_LB_CONFIG: tableName must be a non-empty string, got ""'],
    [JSON.stringify({ ...ok, capabilities: { Vision: { targetGroupArn: 'a' } } }), 'AGENT_LB_CONFIG: capability name "Vision" must match ^[a-z0-9][a-z0-9_-]{0,62}$'],
    [JSON.stringify({ ...ok, capabilities: { v: { targetGroupArn: 'a', targetType: 'lambda' } } }), 'AGENT_LB_CONFIG: capability "v" targetType "lambda" must be "ip" or "instance"'],
    [JSON.stringify({ ...ok, allowedCidrs: ['10.0.0.0/33'] }), 'AGENT_LB_CONFIG: invalid CIDR "10.0.0.0/33": expected <IPv4>/<0-32> or <IPv6>/<0-128>'],
    [JSON.stringify({ ...ok, safetyValveShare: 0 }), 'AGENT_LB_CONFIG: safetyValveShare 0 must be a number in (0, 1]'],
    [JSON.stringify({ ...ok, reconcileRepeatSeconds: 900 }), 'AGENT_LB_CONFIG: reconcileRepeatSeconds 900 must be an integer in 0–600'],
  ])('rejects %s with a message naming the value', (text, message) => {
    expect(() => parseRuntimeConfig(text)).toThrow(ConfigError);
    expect(() => parseRuntimeConfig(text)).toThrow(message);
  });
});
