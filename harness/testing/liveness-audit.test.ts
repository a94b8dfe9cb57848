import { describe, expect, it } from 'vitest';
import { auditLiveness } from './liveness-audit.js';
import type { KubeObject } from '../../lib/kube/types.js';

const ev = (reason: string, name: string, message: string, count = 1): KubeObject =>
  ({ apiVersion: 'v1', kind: 'Event', metadata: { name: `${name}.${reason}` }, reason, message, count, involvedObject: { kind: 'Node', name } }) as unknown as KubeObject;

describe('liveness audit', () => {
  it('explains a NodeDown and a move by a fault on that node, and counts the rest as spurious', () => {
    const events = [
      ev('NodeDown', 'node-1', 'node node-1 did not renew its lease within 600 ms: Down'),
      ev('FloatingIPMoved', 'default', 'floating IP 192.168.1.100 moved from node node-1 to node node-2'),
      ev('NodeDown', 'node-3', 'node node-3 did not renew its lease within 600 ms: Down', 2),
      ev('FloatingIPMoved', 'default', 'floating IP 192.168.1.101 moved from node node-3 to node node-2'),
      ev('NodeUp', 'node-3', 'node node-3 renewed its lease: Up', 3),
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
    const a = auditLiveness('lab-y', [ev('NodeDown', 'node-2', 'x', 3)], [{ node: 'node-2', kind: 'pause', at: 0 }, { node: 'node-2', kind: 'kill', at: 1 }]);
    expect(a.unexplainedNodeDown).toBe(1);
    expect(a.unexplainedMoves).toBe(0);
  });
});
