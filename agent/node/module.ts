/**
 * The node agent is a set of modules started in order by agent/node/agent.ts (one file per feature
 * under agent/node/) and stopped in reverse order: lease, projection, gateway, masq. A feature is
 * added by writing one more module and listing it in `buildModules`.
 */
import type { KubeClient } from '../../lib/kube/client.js';
import type { AgentConfig } from '../config.js';
import type { NodeEventRecorder } from './node-events.js';

export interface NodeModuleContext {
  readonly config: AgentConfig;
  /** API client authenticated as system:node:<nodeName> */
  readonly client: KubeClient;
  /** Kubernetes Events about this node's Node object */
  readonly events: NodeEventRecorder;
  /** one log line (stdout): `<iso> agent[<node>] <module>: <message>` */
  log(module: string, message: string): void;
  /** something status-worthy changed: rewrite the status file soon */
  statusChanged(): void;
  /**
   * Whether this node holds a floating IP right now (set by the gateway module, read by the lease
   * module's beacon): a holder's liveness must be detected within the failover budget, a node that
   * holds nothing can beat slowly (issue 10: an idle lab must cost next to nothing).
   */
  readonly holding: Signal<boolean>;
  /**
   * From the controller's heartbeat acknowledgements (the lease module's beacon is the source): a
   * time before which it cannot declare this node Down, and a counter of the times it had the node
   * Down. The gateway module never lets its ARP fence outlive the first, and re-reads what it holds
   * when the second moves.
   */
  readonly licence: Licence;
  /**
   * Aborted when the agent is told to stop (SIGTERM): a module still starting gives up what it waits
   * for (first sync, first heartbeat) so that the stop does not wait for it (chaos seed 627642971:
   * an agent restarted during a partition did not exit within 10 s of SIGTERM).
   */
  readonly stopping: AbortSignal;
}

/** What the controller's acknowledgements say (NodeModuleContext.licence). */
export interface LicenceSource {
  /** Date.now() ms; undefined: nothing acknowledged yet */
  until(): number | undefined;
  /** times the controller had this node Down, as the acknowledgements told */
  downs(): number;
  /** arms the heartbeat thread's ARP fence keeper (beacon.ts setFence), or disarms it (null) */
  arm?(f: { table: string; ips: readonly string[]; marginMs: number; maxMs: number; downs: number } | null): void;
}

/** Where the licence is read; without a source (no beacon), nothing is known (undefined, 0). */
export class Licence {
  private source: LicenceSource | undefined;
  setSource(s: LicenceSource | undefined): void {
    this.source = s;
  }
  until(): number | undefined {
    return this.source?.until();
  }
  downs(): number {
    return this.source?.downs() ?? 0;
  }
  arm(f: { table: string; ips: readonly string[]; marginMs: number; maxMs: number; downs: number } | null): void {
    this.source?.arm?.(f);
  }
}

/** A value that modules set and others follow (no event bus: one value, its listeners). */
export class Signal<T> {
  private readonly listeners: ((v: T) => void)[] = [];
  constructor(private current: T) {}

  get value(): T {
    return this.current;
  }

  set(v: T): void {
    if (Object.is(v, this.current)) return;
    this.current = v;
    for (const l of this.listeners) l(v);
  }

  on(listener: (v: T) => void): void {
    this.listeners.push(listener);
  }
}

export interface NodeModule {
  /** short name used in logs and as the key in the status file */
  readonly name: string;
  /** Starts the feature. Resolves when it is running (or has given up waiting for something optional). */
  start(): Promise<void>;
  /** Stops cleanly (SIGTERM path). Must not throw. */
  stop(): Promise<void>;
  /** JSON-serialisable status for agent-status.json */
  status(): Record<string, unknown>;
  /**
   * Whether the module's rules for this node's pods are in the kernel (a first apply succeeded).
   * The agent lifts the boot hook's pod guard once every module that has this says so; a module
   * without it programs nothing of the pods' traffic.
   */
  programmed?(): boolean;
}

export function errorMessage(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}
