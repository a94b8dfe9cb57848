import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { auditFile, auditLiveness, recordAudit, summarizeAudits } from './liveness-audit.js';
import type { KubeObject } from '../../lib/kube/types.js';

const ev = (reason: string, name: string, message: string, count = 1): KubeObject =>
  ({
    apiVersion: 'v1',
    kind: 'Event',
    metadata: { name: `${name}.${reason}` },
    reason,
    message,
    count,
    involvedObject: { kind: 'Node', name },
  }) as unknown as KubeObject;

describe('liveness audit', () => {
  it('explains a NodeDown and a move by a fault on that node, and counts the rest as spurious', () => {
    const events = [
      ev('NodeDown', 'node-1', 'node node-1 sent no heartbeat and no Lease renewal within its grace period (600 ms when it holds a floating IP): Down'),
      ev('FloatingIPMoved', 'default', 'floating IP 192.168.1.100 moved from node node-1 to node node-2'),
      ev('NodeDown', 'node-3', 'node node-3 sent no heartbeat and no Lease renewal within its grace period (600 ms when it holds a floating IP): Down', 2),
      ev('FloatingIPMoved', 'default', 'floating IP 192.168.1.101 moved from node node-3 to node node-2'),
      ev('NodeUp', 'node-3', 'node node-3 is Up: its heartbeat arrived', 3),
      ev('EgressGatewayFenced', 'node-2', 'no heartbeat from any peer node and the API unreachable'),
      ev('EgressGatewayFenced', 'node-1', 'no heartbeat from any peer node and the API unreachable'),
    ];
    const a = auditLiveness('lab-x', events, [{ node: 'node-1', kind: 'kill', at: 0 }]);
    expect(a.nodeDown).toEqual({ 'node-1': 1, 'node-3': 2 });
    expect(a.movedFrom).toEqual({ 'node-1': 1, 'node-3': 1 });
    expect(a.unexplainedNodeDown).toBe(2);
    expect(a.unexplainedMoves).toBe(1);
    expect(a.unexplainedFences).toBe(1);
    expect(a.details).toEqual([
      'node-3: 2 NodeDown event(s), 0 fault(s) injected on it',
      '1 floating IP move(s) away from node-3, on which no fault was injected',
      'node-2 fenced itself 1 time(s) (believed it was cut off), no fault was injected on it',
    ]);
  });

  it('counts NodeDowns beyond the number of faults on a node as spurious', () => {
    const a = auditLiveness(
      'lab-y',
      [ev('NodeDown', 'node-2', 'x', 3)],
      [
        { node: 'node-2', kind: 'pause', at: 0 },
        { node: 'node-2', kind: 'kill', at: 1 },
      ],
    );
    expect(a.unexplainedNodeDown).toBe(1);
    expect(a.unexplainedMoves).toBe(0);
  });

  describe('the end-of-run summary', () => {
    const saved = process.env.EGRESSLAB_ARTIFACTS;
    let dir = '';
    afterEach(() => {
      if (saved === undefined) delete process.env.EGRESSLAB_ARTIFACTS;
      else process.env.EGRESSLAB_ARTIFACTS = saved;
      if (dir) rmSync(dir, { recursive: true, force: true });
    });
    it('totals the labs, lists each unexplained event by file and points at the evidence kept', () => {
      dir = mkdtempSync(join(tmpdir(), 'audit-'));
      process.env.EGRESSLAB_ARTIFACTS = dir;
      const spurious = auditLiveness(
        'gwlt-1',
        [ev('NodeDown', 'node-3', 'node node-3 sent no heartbeat and no Lease renewal within its grace period (600 ms when it holds a floating IP): Down', 3)],
        [
          { node: 'node-3', kind: 'stop', at: 0 },
          { node: 'node-3', kind: 'partition', at: 1 },
        ],
      );
      spurious.evidence = ['1970-01-01T00:00:00.000Z fault stop on node-3', '2026-12-03T04:00:00.000Z liveness: node node-3 is Down (was Up)'];
      recordAudit({ ...spurious, file: 'scenarios/gateway/long-lived-tcp.test.ts' });
      recordAudit(auditLiveness('quiet-2', [ev('NodeDown', 'node-1', 'x')], [{ node: 'node-1', kind: 'kill', at: 0 }]));
      expect(summarizeAudits()!.split('\n')).toEqual([
        'egresslab liveness audit: 2 cluster lab(s), 3 fault(s) injected, 4 NodeDown event(s); spurious (no fault explains them): 1 NodeDown, 0 floating-IP move(s), 0 self-fence(s)',
        '  scenarios/gateway/long-lived-tcp.test.ts: node-3: 3 NodeDown event(s), 2 fault(s) injected on it',
        `  evidence (faults and the controller's liveness lines) of gwlt-1: ${auditFile()}`,
      ]);
    });
  });
});
