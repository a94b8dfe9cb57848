/**
 * Finding and removing lab objects by label: teardown, `down`, and `prune` of crashed runs.
 */
import { hostname } from 'node:os';
import { docker, LABEL, isNotFound } from '../docker/client.js';
import { pollUntil } from '../util/poll.js';

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
  // The payload volume: still "in use" for a moment if a container removal is finishing elsewhere.
  await Promise.all(
    (volumes.Volumes ?? []).map((v) =>
      pollUntil(
        async () => {
          try {
            await d.getVolume(v.Name).remove();
            return true;
          } catch (error) {
            if (isNotFound(error)) return true;
            throw error;
          }
        },
        { what: `volume ${v.Name} of lab ${labId} to be removed`, timeoutMs: 10_000, intervalMs: 100 },
      ),
    ),
  );
  return containers.length;
}

/**
 * Removes leftovers of crashed runs: labs whose creating process is gone and that were not meant to
 * stay. A lab's payload volume is created before its containers, so a crash in between leaves a
 * lab made of a volume only: those are found by the volume's labels.
 */
export async function prune(options: { all?: boolean } = {}): Promise<string[]> {
  const removed: string[] = [];
  const labs = await listLabs();
  for (const lab of labs) {
    if (options.all || (!lab.persistent && !lab.ownerAlive)) {
      await removeLabObjects(lab.id);
      removed.push(lab.id);
    }
  }
  const withContainers = new Set(labs.map((l) => l.id));
  const volumes = (await docker().listVolumes({ filters: { label: [LABEL.lab] } })).Volumes ?? [];
  const orphans = new Set<string>();
  for (const v of volumes) {
    const labels = v.Labels ?? {};
    const id = labels[LABEL.lab];
    if (!id || withContainers.has(id) || orphans.has(id)) continue;
    if (options.all || (labels[LABEL.persistent] !== 'true' && !ownerAlive(labels[LABEL.owner]))) orphans.add(id);
  }
  for (const id of orphans) {
    await removeLabObjects(id);
    removed.push(id);
  }
  return removed;
}
