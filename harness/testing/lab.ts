/**
 * Test helpers: a lab per test file with a unique id, removed in afterAll, plus address helpers.
 */
import { randomBytes } from 'node:crypto';
import { Lab } from '../lab/lab.js';
import { topologyFrom } from '../topology/load.js';
import type { Topology } from '../topology/types.js';
import { parseTopology } from '../topology/validate.js';

import { cidrTextContains } from '../../lib/net/addresses.js';
import { DEFAULT_NON_MASQUERADE_CIDRS } from '../../lib/kube/well-known.js';
import { announceKept, keepMode, shouldKeep } from './keep.js';
import { clusterApi } from '../cluster/access.js';
import { CONTROLLER_PROCESS, controlPlaneNode } from '../cluster/cluster.js';
import { LOG_DIR } from '../lab/process.js';
import { R } from '../../lib/kube/client.js';
import { auditLiveness, recordAudit } from './liveness-audit.js';

/** Reads the lab's Events and records its liveness audit (cluster labs only; never fails a teardown). */
async function auditLab(lab: Lab, file: string | undefined): Promise<void> {
  if (!lab.topology.cluster) return;
  // a test may have removed its lab itself (egresslab down): nothing left to audit
  if (!(await lab.exists(controlPlaneNode(lab.topology).name).catch(() => false))) return;
  try {
    const api = await clusterApi(lab, { timeoutMs: 5000 });
    const events = (await api.list(R.events)).items;
    const audit = auditLiveness(lab.id, events, lab.faults.injected);
    // something unexplained: keep the evidence to find its cause (the controller's own account of
    // each transition, with the failure detector's figures, beside the faults and when they were injected)
    if (audit.details.length)
      audit.evidence = await livenessEvidence(lab).catch((e: unknown) => [`controller log unreadable: ${e instanceof Error ? e.message : String(e)}`]);
    recordAudit({ ...audit, ...(file ? { file } : {}) });
  } catch (e) {
    process.stderr.write(`egresslab: liveness audit of lab ${lab.id} failed: ${e instanceof Error ? e.message : String(e)}\n`);
  }
}

/** The controller's liveness and allocator lines and the faults injected, in time order (the audit's evidence). */
async function livenessEvidence(lab: Lab): Promise<string[]> {
  const cp = controlPlaneNode(lab.topology).name;
  const r = await lab.exec(cp, ['sh', '-c', `grep -E 'liveness:|allocator:|stalled|fenced' ${LOG_DIR}/${CONTROLLER_PROCESS}.log | tail -n 200`], {
    check: false,
    timeoutMs: 5000,
  });
  const faults = lab.faults.injected.map((f) => `${new Date(f.at).toISOString()} fault ${f.kind} on ${f.node}`);
  // both kinds of line start with an ISO time: sorted as text, they are in time order
  return [...faults, ...r.stdout.split('\n').filter(Boolean)].sort();
}

function currentTestFile(): string | undefined {
  const state = (globalThis as { expect?: { getState?: () => { testPath?: string } } }).expect?.getState?.();
  return state?.testPath?.replace(/^.*?\/(scenarios|harness|agent|controller)\//, '$1/');
}

/**
 * A lab for one test file, with a unique id (`<prefix>-<6 hex digits>`). The topology is a fixture
 * name, a file path (relative to the working directory) or a topology object (see topologyFrom);
 * `overrides` replace top-level fields. With EGRESSLAB_KEEP set (harness/testing/keep.ts;
 * `egresslab run` sets it) the lab is persistent and its down() keeps it when a test of the file
 * failed (or always).
 *
 * @example
 * ```ts
 * let lab: Lab;
 * beforeAll(async () => { lab = await startTestLab('lab/topology.yaml', 'egress'); });
 * afterAll(async () => { await lab?.down(); });
 * ```
 */
export async function startTestLab(
  fixture: string | Topology | Record<string, unknown> = 'default',
  prefix = 't',
  overrides: Record<string, unknown> = {},
): Promise<Lab> {
  const id = `${prefix}-${randomBytes(3).toString('hex')}`;
  const mode = keepMode();
  const base = topologyFrom(fixture);
  const name = typeof fixture === 'string' ? fixture : `topology ${base.name}`;
  const topology = Object.keys(overrides).length ? parseTopology({ ...base, ...overrides }, `${name} with overrides`) : base;
  const lab = await Lab.up({ topology, id, persistent: mode !== 'never' });
  const file = currentTestFile();
  const plainDown = lab.down.bind(lab);
  let audited = false;
  const down = async (): Promise<void> => {
    try {
      if (!audited) {
        audited = true;
        await auditLab(lab, file);
      }
    } finally {
      await plainDown();
    }
  };
  lab.down = down;
  if (mode !== 'never') {
    lab.down = async () => {
      if (!shouldKeep(mode)) return down();
      await lab.release();
      announceKept(lab.id);
    };
  }
  return lab;
}

const NOT_PUBLIC = [...DEFAULT_NON_MASQUERADE_CIDRS, '0.0.0.0/8', '127.0.0.0/8', '169.254.0.0/16', '224.0.0.0/3'];

/** A random public unicast address (outside every private, reserved and lab range). */
export function randomPublicAddress(): string {
  for (;;) {
    const ip = [1 + Math.floor(Math.random() * 223), ...Array.from({ length: 3 }, () => Math.floor(Math.random() * 256))];
    ip[3] = Math.max(1, Math.min(254, ip[3]!));
    const s = ip.join('.');
    if (!NOT_PUBLIC.some((c) => cidrTextContains(c, s))) return s;
  }
}
