// Kubernetes Events with de-duplication: a repeat of the same (object, type, reason, message)
// increments `count` and `lastTimestamp` of the existing Event instead of creating a new one.
import { randomBytes } from 'node:crypto';
import { CONTROLLER_USER, type ResourceService } from '../api/service.js';
import type { KubeObject } from '../../lib/kube/types.js';

export const COMPONENT = 'egress-nat-controller';

export class EventRecorder {
  constructor(
    private readonly service: ResourceService,
    private readonly log: (line: string) => void,
  ) {}

  record(involved: KubeObject, type: 'Normal' | 'Warning', reason: string, message: string): void {
    const events = this.service.def('', 'events');
    const ns = involved.metadata.namespace ?? 'default';
    const ref = {
      apiVersion: involved.apiVersion,
      kind: involved.kind,
      name: involved.metadata.name,
      ...(involved.metadata.namespace ? { namespace: involved.metadata.namespace } : {}),
      uid: involved.metadata.uid,
      resourceVersion: involved.metadata.resourceVersion,
    };
    const now = this.service.store.timestamp();
    const ctx = { user: CONTROLLER_USER, internal: true };
    const existing = this.service
      .list(events, 'v1', {
        namespace: ns,
        fieldSelector: `involvedObject.uid=${involved.metadata.uid ?? ''},reason=${reason}`,
      })
      .items.find((e) => e.message === message && e.type === type);
    this.log(
      `event: ${type} ${reason} ${involved.kind}/${ns === 'default' && !involved.metadata.namespace ? '' : `${ns}/`}${involved.metadata.name}: ${message}`,
    );
    if (existing) {
      this.service.patch(
        events,
        'v1',
        ns,
        existing.metadata.name!,
        'application/merge-patch+json',
        { count: Number(existing.count ?? 1) + 1, lastTimestamp: now, involvedObject: ref },
        ctx,
      );
      return;
    }
    this.service.create(
      events,
      'v1',
      ns,
      {
        metadata: { name: `${involved.metadata.name}.${randomBytes(8).toString('hex')}`, namespace: ns },
        involvedObject: ref,
        reason,
        message,
        type,
        count: 1,
        firstTimestamp: now,
        lastTimestamp: now,
        source: { component: COMPONENT },
        reportingComponent: COMPONENT,
        reportingInstance: COMPONENT,
      },
      ctx,
    );
  }
}
