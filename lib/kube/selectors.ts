// Kubernetes label selectors (pure): LabelSelector objects (matchLabels + matchExpressions), the
// string syntax used by ?labelSelector= ("a=b,c!=d,e in (x,y),!f,g"), validation with field paths.
// Shared by the controller and the agent (EgressNATPolicy rules, NetworkPolicy peers).

export type Labels = Readonly<Record<string, string>>;

export interface LabelSelectorRequirement {
  key: string;
  operator: 'In' | 'NotIn' | 'Exists' | 'DoesNotExist';
  values?: string[];
}

export interface LabelSelector {
  matchLabels?: Record<string, string>;
  matchExpressions?: LabelSelectorRequirement[];
}

/** One parsed requirement; the string syntax also allows Gt/Lt which we support for completeness. */
export interface Requirement {
  key: string;
  op: 'In' | 'NotIn' | 'Exists' | 'DoesNotExist' | 'Gt' | 'Lt';
  values: string[];
}

export interface FieldProblem {
  field: string;
  value: unknown;
  type: 'FieldValueInvalid' | 'FieldValueRequired' | 'FieldValueNotSupported' | 'FieldValueDuplicate';
  detail: string;
}

const NAME_PART = /^([A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?)$/;
const DNS1123_SUBDOMAIN = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;

/** Validates a label key (optional DNS-subdomain prefix + "/" + name of at most 63 chars). */
export function labelKeyProblem(key: string): string | undefined {
  if (typeof key !== 'string' || key.length === 0) return 'name part must be non-empty';
  const slash = key.lastIndexOf('/');
  const name = slash >= 0 ? key.slice(slash + 1) : key;
  if (slash >= 0) {
    const prefix = key.slice(0, slash);
    if (prefix.length === 0 || prefix.length > 253 || !DNS1123_SUBDOMAIN.test(prefix)) {
      return 'prefix part must be a lowercase RFC 1123 subdomain';
    }
  }
  if (name.length === 0) return 'name part must be non-empty';
  if (name.length > 63) return 'name part must be no more than 63 characters';
  if (!NAME_PART.test(name)) {
    return "name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character";
  }
  return undefined;
}

export function labelValueProblem(value: unknown): string | undefined {
  if (typeof value !== 'string') return 'must be a string';
  if (value === '') return undefined;
  if (value.length > 63) return 'must be no more than 63 characters';
  if (!NAME_PART.test(value)) {
    return "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character";
  }
  return undefined;
}

/** Validates a map of labels (metadata.labels, matchLabels). */
export function validateLabels(labels: unknown, path: string): FieldProblem[] {
  const out: FieldProblem[] = [];
  if (labels === undefined || labels === null) return out;
  if (typeof labels !== 'object' || Array.isArray(labels)) {
    return [{ field: path, value: labels, type: 'FieldValueInvalid', detail: 'must be a map of string keys to string values' }];
  }
  for (const [k, v] of Object.entries(labels as Record<string, unknown>)) {
    const kp = labelKeyProblem(k);
    if (kp) out.push({ field: path, value: k, type: 'FieldValueInvalid', detail: kp });
    const vp = labelValueProblem(v);
    if (vp) out.push({ field: `${path}[${k}]`, value: v, type: 'FieldValueInvalid', detail: vp });
  }
  return out;
}

/** Validates a LabelSelector object; an absent selector is valid (it matches everything). */
export function validateLabelSelector(sel: unknown, path: string): FieldProblem[] {
  if (sel === undefined || sel === null) return [];
  if (typeof sel !== 'object' || Array.isArray(sel)) {
    return [{ field: path, value: sel, type: 'FieldValueInvalid', detail: 'must be a label selector object' }];
  }
  const s = sel as Record<string, unknown>;
  const out: FieldProblem[] = [];
  for (const k of Object.keys(s)) {
    if (k !== 'matchLabels' && k !== 'matchExpressions') {
      out.push({ field: `${path}.${k}`, value: k, type: 'FieldValueNotSupported', detail: 'unknown field; supported: matchLabels, matchExpressions' });
    }
  }
  out.push(...validateLabels(s.matchLabels, `${path}.matchLabels`));
  if (s.matchExpressions !== undefined) {
    if (!Array.isArray(s.matchExpressions)) {
      out.push({ field: `${path}.matchExpressions`, value: s.matchExpressions, type: 'FieldValueInvalid', detail: 'must be a list' });
    } else {
      s.matchExpressions.forEach((e: unknown, i: number) => {
        const p = `${path}.matchExpressions[${i}]`;
        if (typeof e !== 'object' || e === null) {
          out.push({ field: p, value: e, type: 'FieldValueInvalid', detail: 'must be an object' });
          return;
        }
        const r = e as Record<string, unknown>;
        const key = r.key;
        if (typeof key !== 'string' || key === '') out.push({ field: `${p}.key`, value: key, type: 'FieldValueRequired', detail: 'key is required' });
        else {
          const kp = labelKeyProblem(key);
          if (kp) out.push({ field: `${p}.key`, value: key, type: 'FieldValueInvalid', detail: kp });
        }
        const op = r.operator;
        const values = r.values;
        if (op === 'In' || op === 'NotIn') {
          if (!Array.isArray(values) || values.length === 0) {
            out.push({ field: `${p}.values`, value: values, type: 'FieldValueRequired', detail: "must be specified when `operator` is 'In' or 'NotIn'" });
          } else {
            values.forEach((v: unknown, j: number) => {
              const vp = labelValueProblem(v);
              if (vp) out.push({ field: `${p}.values[${j}]`, value: v, type: 'FieldValueInvalid', detail: vp });
            });
          }
        } else if (op === 'Exists' || op === 'DoesNotExist') {
          if (Array.isArray(values) && values.length > 0) {
            out.push({
              field: `${p}.values`,
              value: values,
              type: 'FieldValueInvalid',
              detail: "may not be specified when `operator` is 'Exists' or 'DoesNotExist'",
            });
          }
        } else {
          out.push({ field: `${p}.operator`, value: op, type: 'FieldValueNotSupported', detail: 'supported values: "In", "NotIn", "Exists", "DoesNotExist"' });
        }
      });
    }
  }
  return out;
}

/** Converts a LabelSelector object into requirements (AND). */
export function selectorToRequirements(sel: LabelSelector | undefined | null): Requirement[] {
  if (!sel) return [];
  const reqs: Requirement[] = [];
  for (const [k, v] of Object.entries(sel.matchLabels ?? {})) reqs.push({ key: k, op: 'In', values: [v] });
  for (const e of sel.matchExpressions ?? []) reqs.push({ key: e.key, op: e.operator, values: e.values ?? [] });
  return reqs;
}

export function requirementMatches(r: Requirement, labels: Labels): boolean {
  const has = Object.hasOwn(labels, r.key);
  const v = has ? labels[r.key] : undefined;
  switch (r.op) {
    case 'In':
      return has && r.values.includes(v as string);
    case 'NotIn':
      return !has || !r.values.includes(v as string);
    case 'Exists':
      return has;
    case 'DoesNotExist':
      return !has;
    case 'Gt':
    case 'Lt': {
      if (!has) return false;
      const a = Number(v);
      const b = Number(r.values[0]);
      if (!Number.isInteger(a) || !Number.isInteger(b)) return false;
      return r.op === 'Gt' ? a > b : a < b;
    }
  }
}

export function requirementsMatch(reqs: readonly Requirement[], labels: Labels | undefined): boolean {
  const l = labels ?? {};
  return reqs.every((r) => requirementMatches(r, l));
}

/**
 * Matches a LabelSelector object against labels. An empty selector ({}) matches everything;
 * `undefined`/`null` also matches everything (an omitted selector in a rule selects all).
 */
export function labelSelectorMatches(sel: LabelSelector | undefined | null, labels: Labels | undefined): boolean {
  return requirementsMatch(selectorToRequirements(sel), labels);
}

export class SelectorSyntaxError extends Error {}

/**
 * Parses the Kubernetes label selector string syntax:
 *   key=value, key==value, key!=value, key in (a,b), key notin (a,b), key, !key, key>1, key<1
 */
export function parseLabelSelectorString(input: string): Requirement[] {
  const s = input.trim();
  if (s === '') return [];
  const reqs: Requirement[] = [];
  let i = 0;
  const skipWs = (): void => {
    while (i < s.length && /\s/.test(s[i]!)) i++;
  };
  const readToken = (): string => {
    skipWs();
    const start = i;
    while (i < s.length && !/[\s,=!()<>]/.test(s[i]!)) i++;
    return s.slice(start, i);
  };
  const readValues = (): string[] => {
    skipWs();
    if (s[i] !== '(') throw new SelectorSyntaxError(`expected '(' at position ${i} in ${JSON.stringify(input)}`);
    i++;
    const vals: string[] = [];
    for (;;) {
      const v = readToken();
      vals.push(v);
      skipWs();
      if (s[i] === ',') {
        i++;
        continue;
      }
      if (s[i] === ')') {
        i++;
        break;
      }
      throw new SelectorSyntaxError(`expected ',' or ')' at position ${i} in ${JSON.stringify(input)}`);
    }
    return vals.filter((v, idx) => v !== '' || idx === 0 || vals.length === 1);
  };
  for (;;) {
    skipWs();
    let negated = false;
    if (s[i] === '!') {
      negated = true;
      i++;
    }
    const key = readToken();
    if (key === '') throw new SelectorSyntaxError(`expected a label key at position ${i} in ${JSON.stringify(input)}`);
    const kp = labelKeyProblem(key);
    if (kp) throw new SelectorSyntaxError(`invalid label key ${JSON.stringify(key)}: ${kp}`);
    skipWs();
    if (negated) {
      reqs.push({ key, op: 'DoesNotExist', values: [] });
    } else if (s.startsWith('==', i) || s.startsWith('!=', i) || s[i] === '=') {
      const op = s.startsWith('!=', i) ? 'NotIn' : 'In';
      i += s.startsWith('==', i) || s.startsWith('!=', i) ? 2 : 1;
      const value = readToken();
      const vp = labelValueProblem(value);
      if (vp) throw new SelectorSyntaxError(`invalid label value ${JSON.stringify(value)}: ${vp}`);
      reqs.push({ key, op, values: [value] });
    } else if (s[i] === '>' || s[i] === '<') {
      const op = s[i] === '>' ? 'Gt' : 'Lt';
      i++;
      const value = readToken();
      if (!/^-?\d+$/.test(value)) throw new SelectorSyntaxError(`value for ${op} must be an integer, got ${JSON.stringify(value)}`);
      reqs.push({ key, op, values: [value] });
    } else {
      const save = i;
      const word = readToken();
      if (word === 'in' || word === 'notin') {
        reqs.push({ key, op: word === 'in' ? 'In' : 'NotIn', values: readValues() });
      } else {
        i = save;
        reqs.push({ key, op: 'Exists', values: [] });
      }
    }
    skipWs();
    if (i >= s.length) break;
    if (s[i] !== ',') throw new SelectorSyntaxError(`unexpected ${JSON.stringify(s[i])} at position ${i} in ${JSON.stringify(input)}`);
    i++;
  }
  return reqs;
}

/** Field selectors: "a.b=c,d!=e" on dotted paths of the object (metadata.name, involvedObject.uid, ...). */
export interface FieldRequirement {
  path: string;
  op: '=' | '!=';
  value: string;
}

export function parseFieldSelectorString(input: string): FieldRequirement[] {
  const s = input.trim();
  if (s === '') return [];
  return s.split(',').map((part) => {
    const m = /^\s*([A-Za-z0-9_.\-/]+)\s*(==|=|!=)\s*(.*?)\s*$/.exec(part);
    if (!m) throw new SelectorSyntaxError(`invalid field selector term ${JSON.stringify(part)}`);
    return { path: m[1]!, op: m[2] === '!=' ? '!=' : '=', value: m[3]! };
  });
}

export function fieldValue(obj: unknown, path: string): string {
  let cur: unknown = obj;
  for (const seg of path.split('.')) {
    if (cur === null || typeof cur !== 'object') return '';
    cur = (cur as Record<string, unknown>)[seg];
  }
  if (cur === undefined || cur === null) return '';
  return typeof cur === 'string' ? cur : String(cur);
}

export function fieldRequirementsMatch(reqs: readonly FieldRequirement[], obj: unknown): boolean {
  return reqs.every((r) => (fieldValue(obj, r.path) === r.value) === (r.op === '='));
}
