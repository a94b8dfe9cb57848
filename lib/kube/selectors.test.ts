import { describe, expect, it } from 'vitest';
import {
  fieldRequirementsMatch,
  labelSelectorMatches,
  parseFieldSelectorString,
  parseLabelSelectorString,
  requirementsMatch,
  SelectorSyntaxError,
  validateLabelSelector,
} from './selectors.js';

describe('label selector objects', () => {
  it('matchLabels: every label must match', () => {
    expect(labelSelectorMatches({ matchLabels: { role: 'frontend' } }, { role: 'frontend', x: 'y' })).toBe(true);
    expect(labelSelectorMatches({ matchLabels: { role: 'frontend' } }, { role: 'backend' })).toBe(false);
    expect(labelSelectorMatches({ matchLabels: { role: 'frontend', tier: 'a' } }, { role: 'frontend' })).toBe(false);
  });

  it('an empty or absent selector matches everything', () => {
    expect(labelSelectorMatches({}, {})).toBe(true);
    expect(labelSelectorMatches(undefined, { a: 'b' })).toBe(true);
  });

  it('matchExpressions: In, NotIn, Exists, DoesNotExist', () => {
    const l = { env: 'prod', team: 'a' };
    expect(labelSelectorMatches({ matchExpressions: [{ key: 'env', operator: 'In', values: ['prod', 'stage'] }] }, l)).toBe(true);
    expect(labelSelectorMatches({ matchExpressions: [{ key: 'env', operator: 'NotIn', values: ['prod'] }] }, l)).toBe(false);
    expect(labelSelectorMatches({ matchExpressions: [{ key: 'missing', operator: 'NotIn', values: ['x'] }] }, l)).toBe(true);
    expect(labelSelectorMatches({ matchExpressions: [{ key: 'team', operator: 'Exists' }] }, l)).toBe(true);
    expect(labelSelectorMatches({ matchExpressions: [{ key: 'team', operator: 'DoesNotExist' }] }, l)).toBe(false);
    expect(labelSelectorMatches({ matchLabels: { env: 'prod' }, matchExpressions: [{ key: 'team', operator: 'In', values: ['b'] }] }, l)).toBe(false);
  });

  it('validation names the field and the value', () => {
    const p = validateLabelSelector(
      { matchLabels: { 'bad key!': 'v' }, matchExpressions: [{ key: 'a', operator: 'Near', values: [] }] },
      'spec.egress[0].podSelector',
    );
    expect(p.map((x) => [x.field, x.value])).toEqual([
      ['spec.egress[0].podSelector.matchLabels', 'bad key!'],
      ['spec.egress[0].podSelector.matchExpressions[0].operator', 'Near'],
    ]);
    expect(validateLabelSelector({ matchExpressions: [{ key: 'a', operator: 'In' }] }, 's')[0]).toMatchObject({
      field: 's.matchExpressions[0].values',
      type: 'FieldValueRequired',
    });
    expect(validateLabelSelector({ matchLabels: { a: 'x'.repeat(64) } }, 's')[0]).toMatchObject({ field: 's.matchLabels[a]' });
  });
});

describe('selector strings (?labelSelector=, ?fieldSelector=)', () => {
  it('parses equality, inequality, set and existence forms', () => {
    const r = parseLabelSelectorString('a=b,c!=d, e in (x, y),f notin (z),g,!h,i==j');
    expect(r).toEqual([
      { key: 'a', op: 'In', values: ['b'] },
      { key: 'c', op: 'NotIn', values: ['d'] },
      { key: 'e', op: 'In', values: ['x', 'y'] },
      { key: 'f', op: 'NotIn', values: ['z'] },
      { key: 'g', op: 'Exists', values: [] },
      { key: 'h', op: 'DoesNotExist', values: [] },
      { key: 'i', op: 'In', values: ['j'] },
    ]);
    expect(requirementsMatch(r, { a: 'b', c: 'x', e: 'y', g: '', i: 'j' })).toBe(true);
    expect(requirementsMatch(r, { a: 'b', c: 'x', e: 'y', g: '', i: 'j', h: '1' })).toBe(false);
  });

  it('rejects malformed selectors', () => {
    expect(() => parseLabelSelectorString('a in x')).toThrow(SelectorSyntaxError);
    expect(() => parseLabelSelectorString('a=b,,')).toThrow(SelectorSyntaxError);
    expect(() => parseLabelSelectorString('-bad=1')).toThrow(SelectorSyntaxError);
  });

  it('field selectors match dotted paths', () => {
    const ev = { metadata: { name: 'e1', namespace: 'default' }, involvedObject: { kind: 'EgressNATPolicy', name: 'egress', namespace: '' } };
    expect(
      fieldRequirementsMatch(parseFieldSelectorString('involvedObject.name=egress,involvedObject.namespace=,involvedObject.kind=EgressNATPolicy'), ev),
    ).toBe(true);
    expect(fieldRequirementsMatch(parseFieldSelectorString('metadata.name!=e1'), ev)).toBe(false);
  });
});
