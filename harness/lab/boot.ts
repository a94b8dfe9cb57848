/**
 * A lab node's boot hooks: what the node's init runs when the node boots, before the lab wires its
 * links and pods and before its programs (agent, controller) start, like a systemd unit ordered
 * before the kubelet (and its CNI, which wires the pods) on a real node. The lab knows nothing of what the hooks do; the system under test installs
 * them (the agent keeps its gateway forward fence there: agent/gateway/render.ts renderBootFence).
 * The first boot has none: a fresh node's programs install what they need.
 */
import type { LabRuntime } from './runtime.js';
import { LabError } from '../util/errors.js';

/** Where a lab node keeps its boot hooks (`*.sh`, run in name order); the agent config points here. */
export const NODE_BOOT_HOOK_DIR = '/etc/egresslab/boot.d';

/**
 * The shell text that runs every `*.sh` hook of `dir` in name order. A hook that fails stops the
 * boot: exit 1, with the hook's name and its output on stderr.
 */
export function bootHooksScript(dir: string = NODE_BOOT_HOOK_DIR): string {
  const q = `'${dir.replace(/'/g, `'\\''`)}'`;
  return [`for f in ${q}/*.sh; do`, '  [ -f "$f" ] || continue', '  out=$(sh "$f" 2>&1) || { echo "boot hook $f failed: $out" >&2; exit 1; }', 'done'].join(
    '\n',
  );
}

/** Runs a node's boot hooks (before its links and pods are wired and its programs start). */
export async function runBootHooks(lab: LabRuntime, node: string): Promise<void> {
  const r = await lab.exec(node, ['sh', '-c', bootHooksScript()], { check: false });
  if (r.exitCode !== 0) throw new LabError(`lab ${lab.id}: ${node} did not boot: ${r.stderr.trim() || `exit ${r.exitCode}`}`);
}
