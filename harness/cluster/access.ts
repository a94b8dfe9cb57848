/**
 * Reaching a lab's API server from the host: an in-process forward on 127.0.0.1 (one per Lab
 * object, opened on first use, closed by lab.down()), a typed client and an admin kubeconfig.
 */
import { containerName, type LabRuntime } from '../lab/runtime.js';
import { KubeClient } from '../../lib/kube/client.js';
import { kubeconfigYaml } from '../../lib/kube/kubeconfig.js';
import { Forward } from './port-forward.js';
import { controlPlaneNode, readClusterInfo, type ClusterInfo } from './cluster.js';

interface Access {
  info: ClusterInfo;
  forward: Forward;
  clients: KubeClient[];
}

const handles = new WeakMap<LabRuntime, Promise<Access>>();

/** Opens (once per Lab object) the forward to the lab's API server. */
export function clusterAccess(lab: LabRuntime): Promise<Access> {
  let h = handles.get(lab);
  if (!h) {
    h = (async () => {
      const info = await readClusterInfo(lab);
      const forward = await Forward.start({ container: containerName(lab.id, controlPlaneNode(lab.topology).name), targetPort: info.port });
      return { info, forward, clients: [] };
    })();
    handles.set(lab, h);
    h.catch(() => handles.delete(lab));
  }
  return h;
}

export function kubeconfigText(labId: string, info: ClusterInfo, server: string): string {
  return kubeconfigYaml({ server, caCert: info.caCert, token: info.adminToken, clusterName: `egresslab-${labId}`, userName: 'admin' });
}

/** A typed admin client through the forward (closed with the lab). */
export async function clusterApi(lab: LabRuntime, options: { timeoutMs?: number } = {}): Promise<KubeClient> {
  const a = await clusterAccess(lab);
  const c = new KubeClient({ server: a.forward.url, token: a.info.adminToken, ca: a.info.caCert, timeoutMs: options.timeoutMs ?? 10_000 });
  a.clients.push(c);
  return c;
}

/** Admin kubeconfig pointing at this process's forward (https://127.0.0.1:<port>). */
export async function clusterKubeconfig(lab: LabRuntime): Promise<string> {
  const a = await clusterAccess(lab);
  return kubeconfigText(lab.id, a.info, a.forward.url);
}

export async function closeClusterAccess(lab: LabRuntime): Promise<void> {
  const h = handles.get(lab);
  if (!h) return;
  handles.delete(lab);
  const a = await h.catch(() => undefined);
  if (!a) return;
  for (const c of a.clients) c.close();
  await a.forward.close();
}
