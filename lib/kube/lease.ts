// Node lease renewal (what each node's agent runs): kube-node-lease/<node>, renewed every
// `intervalMs`; the controller declares the node Down when renewals stop (see controller/logic/liveness.ts).
import type { KubeObject } from './types.js';
import { KubeApiError, R, type KubeClient } from './client.js';
import { LEASE_HEARTBEAT_ANNOTATION, NODE_LEASE_NAMESPACE } from './well-known.js';

export { NODE_LEASE_NAMESPACE };

function microTime(d: Date): string {
  return d.toISOString().replace(/\.(\d{3})Z$/, '.$1000Z');
}

/**
 * Creates or renews the node's Lease once. With `heartbeatIntervalMs`, the Lease says whether the
 * agent sends heartbeats (LEASE_HEARTBEAT_ANNOTATION; 0: none).
 */
export async function renewLease(
  client: KubeClient,
  node: string,
  leaseDurationSeconds = 1,
  now = new Date(),
  heartbeatIntervalMs?: number,
  signal?: AbortSignal,
): Promise<KubeObject> {
  const spec = { holderIdentity: node, leaseDurationSeconds, renewTime: microTime(now) };
  const annotations = heartbeatIntervalMs === undefined ? undefined : { [LEASE_HEARTBEAT_ANNOTATION]: String(heartbeatIntervalMs) };
  try {
    return await client.patch(
      R.leases,
      node,
      { ...(annotations ? { metadata: { annotations } } : {}), spec },
      { namespace: NODE_LEASE_NAMESPACE, ...(signal ? { signal } : {}) },
    );
  } catch (e) {
    if (!(e instanceof KubeApiError) || e.code !== 404) throw e;
    return client.create(R.leases, {
      apiVersion: 'coordination.k8s.io/v1',
      kind: 'Lease',
      metadata: { name: node, namespace: NODE_LEASE_NAMESPACE, ...(annotations ? { annotations } : {}) },
      spec: { ...spec, acquireTime: spec.renewTime },
    });
  }
}

export interface LeaseRenewer {
  stop(): Promise<void>;
  /** successful renewals so far */
  readonly renewals: number;
  /** Date.now() when the last successful renewal was acknowledged (0 before the first) */
  readonly lastRenewal: number;
}

export function startLeaseRenewer(
  client: KubeClient,
  node: string,
  intervalMs: number,
  onError: (e: unknown) => void = () => {},
  heartbeatIntervalMs?: number,
): LeaseRenewer {
  let stopped = false;
  let renewals = 0;
  let lastRenewal = 0;
  let timer: NodeJS.Timeout | undefined;
  let inflight: Promise<void> = Promise.resolve();
  // stop() gives up a renewal in flight (an API server behind a partition: up to the client's timeout)
  const stopper = new AbortController();
  const tick = (): void => {
    if (stopped) return;
    inflight = renewLease(client, node, Math.max(1, Math.ceil((intervalMs * 3) / 1000)), new Date(), heartbeatIntervalMs, stopper.signal)
      .then(() => {
        renewals++;
        lastRenewal = Date.now();
      })
      .catch((e: unknown) => {
        if (!stopped) onError(e);
      })
      .finally(() => {
        if (!stopped) timer = setTimeout(tick, intervalMs);
      });
  };
  tick();
  return {
    get renewals() {
      return renewals;
    },
    get lastRenewal() {
      return lastRenewal;
    },
    async stop() {
      stopped = true;
      if (timer) clearTimeout(timer);
      stopper.abort();
      await inflight;
    },
  };
}
