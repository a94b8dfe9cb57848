/**
 * Spurious failovers: after each test lab, the API's Events say how often a node was declared Down
 * and a floating IP moved; the lab's fault log says which nodes the test broke. A NodeDown of a node
 * no fault touched, or more NodeDowns of a node than faults injected on it, or a floating IP moved
 * away from a node no fault touched, or a node fencing itself (EgressGatewayFenced) with no fault on
 * it, is the system under test flapping on its own. Every lab's
 * audit is appended to artifacts/liveness-audit.jsonl; the global teardown prints the totals.
 */
import { appendFileSync, mkdirSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import type { KubeObject } from '../../lib/kube/types.js';
import type { InjectedFault } from '../faults/faults.js';
import { artifactsDir } from '../util/paths.js';

export interface LivenessAudit {
  lab: string;
  file?: string;
  /** NodeDown events per node (Event.count summed) */
  nodeDown: Record<string, number>;
  /** FloatingIPMoved events per node the IP moved away from */
  movedFrom: Record<string, number>;
  /** EgressGatewayFenced events per node (a node that believed itself cut off) */
  fenced: Record<string, number>;
  /** faults injected per node */
  faults: Record<string, number>;
  unexplainedNodeDown: number;
  unexplainedMoves: number;
  unexplainedFences: number;
  /** one line per unexplained event */
  details: string[];
  /** when something is unexplained: the faults injected (with times) and the controller's liveness and allocator log lines */
  evidence?: string[];
}

function count(e: KubeObject): number {
  const c = (e as { count?: unknown }).count;
  return typeof c === 'number' && c > 0 ? c : 1;
}

/** Pure: classifies the Events of one lab against the faults injected on it. */
export function auditLiveness(lab: string, events: readonly KubeObject[], faults: readonly InjectedFault[]): LivenessAudit {
  const nodeDown: Record<string, number> = {};
  const movedFrom: Record<string, number> = {};
  const fenced: Record<string, number> = {};
  const faultCount: Record<string, number> = {};
  for (const f of faults) faultCount[f.node] = (faultCount[f.node] ?? 0) + 1;
  for (const e of events) {
    const reason = (e as { reason?: string }).reason;
    const message = String((e as { message?: string }).message ?? '');
    if (reason === 'NodeDown') {
      const node = String((e as { involvedObject?: { name?: string } }).involvedObject?.name ?? '?');
      nodeDown[node] = (nodeDown[node] ?? 0) + count(e);
    } else if (reason === 'EgressGatewayFenced') {
      const node = String((e as { involvedObject?: { name?: string } }).involvedObject?.name ?? '?');
      fenced[node] = (fenced[node] ?? 0) + count(e);
    } else if (reason === 'FloatingIPMoved') {
      const m = / moved from node (\S+) to node /.exec(message);
      const from = m?.[1] ?? '?';
      movedFrom[from] = (movedFrom[from] ?? 0) + count(e);
    }
  }
  const details: string[] = [];
  let unexplainedNodeDown = 0;
  for (const [node, n] of Object.entries(nodeDown)) {
    const extra = n - (faultCount[node] ?? 0);
    if (extra > 0) {
      unexplainedNodeDown += extra;
      details.push(`${node}: ${n} NodeDown event(s), ${faultCount[node] ?? 0} fault(s) injected on it`);
    }
  }
  let unexplainedMoves = 0;
  for (const [node, n] of Object.entries(movedFrom)) {
    if (faultCount[node]) continue;
    unexplainedMoves += n;
    details.push(`${n} floating IP move(s) away from ${node}, on which no fault was injected`);
  }
  let unexplainedFences = 0;
  for (const [node, n] of Object.entries(fenced)) {
    if (faultCount[node]) continue;
    unexplainedFences += n;
    details.push(`${node} fenced itself ${n} time(s) (believed it was cut off), no fault was injected on it`);
  }
  return { lab, nodeDown, movedFrom, fenced, faults: faultCount, unexplainedNodeDown, unexplainedMoves, unexplainedFences, details };
}

export function auditFile(): string {
  return join(artifactsDir(), 'liveness-audit.jsonl');
}

export function recordAudit(a: LivenessAudit): void {
  mkdirSync(artifactsDir(), { recursive: true });
  appendFileSync(auditFile(), `${JSON.stringify(a)}\n`);
}

export function resetAudits(): void {
  rmSync(auditFile(), { force: true });
}

/** The totals line printed at the end of a run (and the per-lab details of anything unexplained). */
export function summarizeAudits(): string | undefined {
  let text: string;
  try {
    text = readFileSync(auditFile(), 'utf8');
  } catch {
    return undefined;
  }
  const audits = text
    .split('\n')
    .filter(Boolean)
    .map((l) => JSON.parse(l) as LivenessAudit);
  const down = audits.reduce((s, a) => s + a.unexplainedNodeDown, 0);
  const moves = audits.reduce((s, a) => s + a.unexplainedMoves, 0);
  const fences = audits.reduce((s, a) => s + (a.unexplainedFences ?? 0), 0);
  const allDown = audits.reduce((s, a) => s + Object.values(a.nodeDown).reduce((x, y) => x + y, 0), 0);
  const faults = audits.reduce((s, a) => s + Object.values(a.faults).reduce((x, y) => x + y, 0), 0);
  const lines = [
    `egresslab liveness audit: ${audits.length} cluster lab(s), ${faults} fault(s) injected, ${allDown} NodeDown event(s); spurious (no fault explains them): ${down} NodeDown, ${moves} floating-IP move(s), ${fences} self-fence(s)`,
  ];
  for (const a of audits) for (const d of a.details) lines.push(`  ${a.file ?? a.lab}: ${d}`);
  const withEvidence = audits.filter((a) => a.evidence?.length).map((a) => a.lab);
  if (withEvidence.length) lines.push(`  evidence (faults and the controller's liveness lines) of ${withEvidence.join(', ')}: ${auditFile()}`);
  return lines.join('\n');
}
