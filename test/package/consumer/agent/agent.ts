// An agent that installed agent-lb for the SDK alone.
import { AgentLease, installShutdownHandlers, LeaseHeldError } from 'agent-lb/sdk';

export async function start(tableName: string): Promise<AgentLease> {
  const lease = new AgentLease({ tableName, address: '10.0.3.17', port: 8080, capabilities: ['vision'], ttl: 30 });
  lease.on('lost', (err) => console.warn('lease lost, re-acquiring', err.message));
  try {
    await lease.acquire();
  } catch (error) {
    if (error instanceof LeaseHeldError) console.warn(error.code, error.message);
    throw error;
  }
  installShutdownHandlers(lease);
  return lease;
}
