/**
 * Finding and removing lab objects by label: teardown, `down`, and `prune` of crashed runs.
 *
 * What a lab is: every container and volume labelled `egresslab.lab=<id>`. A lab started by `up`
 * (persistent) outlives its process on purpose, so `prune` leaves it; but an `up` killed half-way
 * leaves a persistent lab that is not one anybody asked to keep. `up` therefore marks a persistent
 * lab as building (a volume with key BUILDING_KEY, created before anything else) and removes the
 * mark once the lab is up: a persistent lab still marked, whose owner is gone, is half-built and is
 * pruned (pruneVerdicts, the decision, pure).
 */
import { hostname } from 'node:os';
import { docker, LABEL, isNotFound } from '../docker/client.js';
import { pollUntil } from '../util/poll.js';
import { removeLabState, stopForwarder } from '../cluster/background-forward.js';

/** The key of the volume that marks a persistent lab as still being brought up. */
export const BUILDING_KEY = 'building';

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

/** The name of the volume that marks a lab as building. */
function buildingMarkName(labId: string): string {
  return `egl-${labId}-${BUILDING_KEY}`;
}

/** Marks a (persistent) lab as building: before any other object of it is created. */
export async function markBuilding(labId: string, labels: Record<string, string>): Promise<void> {
  await docker().createVolume({ Name: buildingMarkName(labId), Labels: { ...labels, [LABEL.key]: BUILDING_KEY, [LABEL.role]: 'marker' } });
}

/** The lab is up: `prune` keeps it from now on (when persistent). */
export async function markBuilt(labId: string): Promise<void> {
  try {
    await docker().getVolume(buildingMarkName(labId)).remove();
  } catch (error) {
    if (!isNotFound(error)) throw error;
  }
}

export interface PruneVerdict {
  id: string;
  remove: boolean;
  why: string;
}

/**
 * What `prune` does with each lab, from the labels of its containers and volumes: a lab whose owner
 * runs is kept; a persistent one (`up`) is kept once built, removed while still marked as building
 * (its `up` was killed); any other is a crashed run's leftover. `all`: every lab. Sorted by id. Pure.
 */
export function pruneVerdicts(objects: readonly Record<string, string>[], isAlive: (owner: string | undefined) => boolean, all: boolean): PruneVerdict[] {
  const labs = new Map<string, Record<string, string>[]>();
  for (const o of objects) {
    const id = o[LABEL.lab];
    if (id) labs.set(id, [...(labs.get(id) ?? []), o]);
  }
  return [...labs.entries()]
    .sort(([a], [b]) => a.localeCompare(b))
    .map(([id, objs]): PruneVerdict => {
      if (all) return { id, remove: true, why: '--all' };
      const owner = objs.find((o) => o[LABEL.owner])?.[LABEL.owner];
      if (isAlive(owner)) return { id, remove: false, why: `kept: its owner ${owner} is running` };
      const persistent = objs.some((o) => o[LABEL.persistent] === 'true');
      const building = objs.some((o) => o[LABEL.key] === BUILDING_KEY);
      if (persistent && !building) return { id, remove: false, why: `kept: brought up by "egresslab up" ("egresslab down --lab ${id}" removes it)` };
      if (persistent) return { id, remove: true, why: `half-built: the "egresslab up" that was building it (${owner ?? 'unknown'}) is gone` };
      return { id, remove: true, why: `its owner ${owner ?? '(none)'} is gone` };
    });
}

/** Removes every container, network and volume carrying the lab's label; how many containers and volumes. Idempotent. */
export async function removeLabObjects(labId: string): Promise<{ containers: number; volumes: number }> {
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
  await Promise.all(
    networks.map((n) =>
      d
        .getNetwork(n.Id)
        .remove()
        .catch(() => {}),
    ),
  );
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
  return { containers: containers.length, volumes: (volumes.Volumes ?? []).length };
}

/**
 * Everything of a lab: its API forwarder, its containers, networks and volumes, and its state
 * files (the kubeconfig with the admin token, the forwarder's state and log).
 */
export async function removeLab(labId: string): Promise<{ containers: number; volumes: number; forwarder: boolean; files: string[] }> {
  const forwarder = await stopForwarder(labId);
  const objects = await removeLabObjects(labId);
  return { ...objects, forwarder, files: removeLabState(labId) };
}

/**
 * Removes leftovers of crashed runs (pruneVerdicts): labs whose creating process is gone and that
 * were not meant to stay, half-built ones included, found by their containers' and volumes' labels
 * (a crash between the payload volume and the containers leaves a lab made of a volume only).
 * `onRemove` hears each removed lab and why. Returns the removed ids.
 */
export async function prune(options: { all?: boolean; onRemove?: (id: string, why: string) => void } = {}): Promise<string[]> {
  const [containers, volumes] = await Promise.all([
    docker().listContainers({ all: true, filters: { label: [LABEL.lab] } }),
    docker().listVolumes({ filters: { label: [LABEL.lab] } }),
  ]);
  const objects = [...containers.map((c) => c.Labels ?? {}), ...(volumes.Volumes ?? []).map((v) => v.Labels ?? {})];
  const removed: string[] = [];
  for (const v of pruneVerdicts(objects, ownerAlive, Boolean(options.all))) {
    if (!v.remove) continue;
    await removeLab(v.id);
    removed.push(v.id);
    options.onRemove?.(v.id, v.why);
  }
  return removed;
}
