/**
 * Finding and removing lab objects by label: teardown, `down`, and `prune` of crashed runs.
 */
import { hostname } from 'node:os';
import { docker, LABEL, isNotFound } from '../docker/client.js';

export interface LabSummary {
  id: string;
  containers: { key: string; role: string; state: string; id: string }[];
  persistent: boolean;
  owner: string;
  created: string;
  ownerAlive: boolean;
}

function ownerAlive(owner: string | undefined): boolean {
  if (!owner) return false;
  const [host, pid] = owner.split(':');
  if (host !== hostname()) return true; // cannot tell: assume alive
  try {
    process.kill(Number(pid), 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}

export async function listLabs(): Promise<LabSummary[]> {
  const all = await docker().listContainers({ all: true, filters: { label: [LABEL.lab] } });
  const labs = new Map<string, LabSummary>();
  for (const c of all) {
    const id = c.Labels[LABEL.lab]!;
    let lab = labs.get(id);
    if (!lab) {
      lab = {
        id,
        containers: [],
        persistent: c.Labels[LABEL.persistent] === 'true',
        owner: c.Labels[LABEL.owner] ?? '',
        created: c.Labels[LABEL.created] ?? '',
        ownerAlive: ownerAlive(c.Labels[LABEL.owner]),
      };
      labs.set(id, lab);
    }
    lab.containers.push({ key: c.Labels[LABEL.key] ?? '?', role: c.Labels[LABEL.role] ?? '?', state: c.State, id: c.Id });
  }
  return [...labs.values()].sort((a, b) => a.id.localeCompare(b.id));
}

/** Removes every container, network and volume carrying the lab's label. Idempotent. */
export async function removeLabObjects(labId: string): Promise<number> {
  const d = docker();
  const filter = { label: [`${LABEL.lab}=${labId}`] };
  const containers = await d.listContainers({ all: true, filters: filter });
  await Promise.all(
    containers.map(async (c) => {
      try {
        await d.getContainer(c.Id).remove({ force: true, v: true });
      } catch (error) {
        if (!isNotFound(error) && !/already in progress/.test(String(error))) throw error;
      }
    }),
  );
  const networks = await d.listNetworks({ filters: filter });
  await Promise.all(networks.map((n) => d.getNetwork(n.Id).remove().catch(() => {})));
  const volumes = await d.listVolumes({ filters: filter });
  await Promise.all((volumes.Volumes ?? []).map((v) => d.getVolume(v.Name).remove().catch(() => {})));
  return containers.length;
}

/** Removes leftovers of crashed runs: labs whose creating process is gone and that were not meant to stay. */
export async function prune(options: { all?: boolean } = {}): Promise<string[]> {
  const removed: string[] = [];
  for (const lab of await listLabs()) {
    if (options.all || (!lab.persistent && !lab.ownerAlive)) {
      await removeLabObjects(lab.id);
      removed.push(lab.id);
    }
  }
  return removed;
}
