/**
 * The flags of `agent-lb local` once commander parsed them: what local-command.ts declares and
 * local-run.ts runs with. A file of its own, so the command (which loads the runner lazily) and
 * the runner do not import each other.
 */
export interface LocalFlags {
  agents: number;
  stateFile?: string;
  reconcileInterval: number;
  ttl: number;
  capabilities?: string[];
  crashEvery: number;
  pollInterval: number;
  duration?: number;
  appDir?: string;
  /** Port of the load balancer's endpoint; 0 for a free one. */
  lbPort: number;
  /** Factor on ALB's timing: health checks, deregistration delay, slow start. */
  timeScale: number;
  /** Requests per second the demo client sends through the load balancer (default: 10 with demo agents, else 0). */
  load?: number;
  sickEvery: number;
  /** The cdk.json `--app-dir` names, once checked. */
  cdkJsonPath?: string;
}
