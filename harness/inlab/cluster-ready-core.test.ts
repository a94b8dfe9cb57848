import { describe, expect, it } from 'vitest';
import type { KubeObject } from '../../lib/kube/types.js';
import { nodesNotUp } from './cluster-ready-core.js';

const node = (name: string, state?: string): KubeObject =>
  ({ apiVersion: 'networking.gke.io/v1alpha1', kind: 'AnthosNetworkGatewayNode', metadata: { name }, ...(state ? { status: { state } } : {}) }) as KubeObject;

describe('nodesNotUp', () => {
  it('is empty when every listed node is Up (other nodes do not matter)', () => {
    expect(nodesNotUp(['node-1', 'node-2'], [node('node-1', 'Up'), node('node-2', 'Up'), node('node-3', 'Down')])).toEqual([]);
  });

  it('names each node that is missing, has no state yet or is not Up, with what it is', () => {
    expect(nodesNotUp(['cp-1', 'node-1', 'node-2', 'node-3'], [node('cp-1', 'Up'), node('node-1'), node('node-2', 'Down')])).toEqual([
      'node-1 (?)',
      'node-2 (Down)',
      'node-3 (no AnthosNetworkGatewayNode)',
    ]);
  });
});
