import { PutItemCommand, DescribeTargetHealthCommand } from '@aws-sdk/client-dynamodb';
import { DescribeTargetHealthCommand as DTH } from '@aws-sdk/client-elastic-load-balancing-v2';
import { LocalStack } from './lib/local/local-stack';
import { startTargetServer, get } from './test/integration/data-plane-harness';
import { contractItem } from './test/support/local-harness';
(async () => {
  const t0 = Date.now();
  const s = await LocalStack.start({ reconcileIntervalMs: 1000, dataPlane: { timeScale: 0.1 }, onError: (w, e) => console.log('ERR', w, (e as Error).message),
    })
  console.log('started', Date.now() - t0, s.state.loadBalancerEndpoint);
  const a = await startTargetServer('a');
  try {
    console.log(await get(s.state.loadBalancerEndpoint!, '/agents/vision/x'));
    await s.dynamodb.send(new PutItemCommand({ TableName: s.state.tableName, Item: contractItem({ address: '127.0.0.1', port: a.port, capabilities: ['vision'] }) }) as any);
    const w = Date.now();
    for (let i = 0; i < 40; i++) {
      const h = await s.elbv2.send(new DTH({ TargetGroupArn: s.state.targetGroups.vision }));
      const r = await get(s.state.loadBalancerEndpoint!, '/agents/vision/x', { 'x-agent-capability': 'VISION' });
      console.log(Date.now() - w, JSON.stringify(h.TargetHealthDescriptions?.map((d) => d.TargetHealth)), r.status, r.name);
      if (r.status === 200 && i > 5) break;
      await new Promise((r) => setTimeout(r, 50));
    }
    console.log(s.dataPlane!.source.calls);
    console.log(await get(s.state.loadBalancerEndpoint!, '/nothing'));
  } finally { await a.close(); await s.stop(); }
})();
