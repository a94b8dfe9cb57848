// What `prune` removes (issue 12): the decision, without an engine.
import { describe, expect, it } from 'vitest';
import { LABEL } from '../docker/client.js';
import { BUILDING_KEY, pruneVerdicts } from './registry.js';

const ALIVE = 'host:100';
const DEAD = 'host:200';
const alive = (owner: string | undefined) => owner === ALIVE;

/** The labels of one lab object (container or volume). */
function obj(lab: string, key: string, owner: string, persistent: boolean): Record<string, string> {
  return { [LABEL.lab]: lab, [LABEL.key]: key, [LABEL.role]: key, [LABEL.owner]: owner, [LABEL.persistent]: String(persistent) };
}

describe('pruneVerdicts', () => {
  it('removes a half-built lab of a killed "up" (persistent, still marked as building, owner gone); keeps a finished one', () => {
    const objects = [
      // "up" was killed after the payload volume and a few containers
      obj('half', BUILDING_KEY, DEAD, true),
      obj('half', 'payload', DEAD, true),
      obj('half', 'router', DEAD, true),
      obj('half', 'switch', DEAD, true),
      // a lab "up" finished: its building marker is gone
      obj('done', 'payload', DEAD, true),
      obj('done', 'router', DEAD, true),
    ];
    expect(pruneVerdicts(objects, alive, false)).toEqual([
      { id: 'done', remove: false, why: 'kept: brought up by "egresslab up" ("egresslab down --lab done" removes it)' },
      { id: 'half', remove: true, why: `half-built: the "egresslab up" that was building it (${DEAD}) is gone` },
    ]);
  });

  it('keeps a lab whose owner runs (an "up" in progress, a test), removes one of a crashed test run, and --all removes everything', () => {
    const objects = [
      obj('building', BUILDING_KEY, ALIVE, true),
      obj('building', 'router', ALIVE, true),
      obj('test', 'router', ALIVE, false),
      obj('crashed', 'node-1', DEAD, false),
      obj('orphan', 'payload', DEAD, false),
    ];
    expect(pruneVerdicts(objects, alive, false)).toEqual([
      { id: 'building', remove: false, why: `kept: its owner ${ALIVE} is running` },
      { id: 'crashed', remove: true, why: `its owner ${DEAD} is gone` },
      { id: 'orphan', remove: true, why: `its owner ${DEAD} is gone` },
      { id: 'test', remove: false, why: `kept: its owner ${ALIVE} is running` },
    ]);
    expect(pruneVerdicts(objects, alive, true).every((v) => v.remove && v.why === '--all')).toBe(true);
  });

  it('ignores objects without a lab label', () => {
    expect(pruneVerdicts([{ [LABEL.key]: 'router' }], alive, true)).toEqual([]);
  });
});
