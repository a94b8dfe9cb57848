// Admission-time (structural) validation of the networking.gke.io objects (pure).
// Each problem names the field path and the offending value, as Kubernetes field errors do.
// References (is egressSourceIP a floating IP, assigned to an Up node, ...) are NOT checked here:
// they are evaluated continuously by the controller (see gateway-reconcile.ts), so that `kubectl apply -f DIR`
// works whatever the order of the files.
import { isIPv4, nonUnicastReason, parseCidr4 } from '../../lib/net/addresses.js';
import { validateLabelSelector, validateLabels, type FieldProblem } from '../../lib/kube/selectors.js';

export type { FieldProblem } from '../../lib/kube/selectors.js';

/** Formats one problem the way Kubernetes' field.Error does. */
export function formatProblem(p: FieldProblem): string {
  const v = JSON.stringify(p.value);
  switch (p.type) {
    case 'FieldValueRequired':
      return `${p.field}: Required value${p.detail ? `: ${p.detail}` : ''}`;
    case 'FieldValueNotSupported':
      return `${p.field}: Unsupported value: ${v}${p.detail ? `: ${p.detail}` : ''}`;
    case 'FieldValueDuplicate':
      return `${p.field}: Duplicate value: ${v}${p.detail ? `: ${p.detail}` : ''}`;
    default:
      return `${p.field}: Invalid value: ${v}${p.detail ? `: ${p.detail}` : ''}`;
  }
}

type Obj = Record<string, unknown>;

function isObj(v: unknown): v is Obj {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

const DNS1123_SUBDOMAIN = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;
const DNS1123_LABEL = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;

const CONFIG_KEY = /^[-._a-zA-Z0-9]+$/;

/**
 * ConfigMap `data` / `binaryData` (core/v1): maps of valid keys to strings, as kube-apiserver
 * refuses anything else (a YAML map written where a `|` block was meant used to be stored, and the
 * ip-masq-agent then silently fell back to its default list on every node).
 */
export function validateConfigMapData(obj: Obj): FieldProblem[] {
  const out: FieldProblem[] = [];
  const seen = new Set<string>();
  for (const field of ['data', 'binaryData'] as const) {
    const m = obj[field];
    if (m === undefined || m === null) continue;
    if (!isObj(m)) {
      out.push({ field, value: m, type: 'FieldValueInvalid', detail: 'must be a map of keys to string values' });
      continue;
    }
    for (const [k, v] of Object.entries(m)) {
      if (k.length > 253 || !CONFIG_KEY.test(k))
        out.push({
          field: `${field}[${k}]`,
          value: k,
          type: 'FieldValueInvalid',
          detail: "a valid config key must consist of alphanumeric characters, '-', '_' or '.'",
        });
      if (typeof v !== 'string')
        out.push({
          field: `${field}[${k}]`,
          value: v,
          type: 'FieldValueInvalid',
          detail: `must be a string (got ${Array.isArray(v) ? 'a list' : v === null ? 'null' : typeof v === 'object' ? 'a map' : typeof v}); write a multi-line value as a YAML block (key: |)`,
        });
      if (seen.has(k)) out.push({ field: `${field}[${k}]`, value: k, type: 'FieldValueDuplicate', detail: 'the key is in both data and binaryData' });
      seen.add(k);
    }
  }
  return out;
}

/** The problem of an IPv4 address that cannot be a host's unicast address (cidr.ts nonUnicastReason), or null. */
function unicastProblem(field: string, ip: string): FieldProblem | null {
  const why = nonUnicastReason(ip);
  return why ? { field, value: ip, type: 'FieldValueInvalid', detail: `must be a unicast address, not ${why}` } : null;
}

/** Generic metadata checks applied to every object. */
export function validateObjectMeta(obj: Obj, opts: { namespaced: boolean; nameIsLabel?: boolean }): FieldProblem[] {
  const out: FieldProblem[] = [];
  const md = obj.metadata;
  if (!isObj(md)) return [{ field: 'metadata', value: md, type: 'FieldValueRequired', detail: 'metadata is required' }];
  const name = md.name;
  if (typeof name !== 'string' || name === '') {
    out.push({ field: 'metadata.name', value: name ?? '', type: 'FieldValueRequired', detail: 'name or generateName is required' });
  } else if (name.length > 253 || !(opts.nameIsLabel ? DNS1123_LABEL : DNS1123_SUBDOMAIN).test(name) || (opts.nameIsLabel && name.length > 63)) {
    out.push({
      field: 'metadata.name',
      value: name,
      type: 'FieldValueInvalid',
      detail: opts.nameIsLabel
        ? "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character"
        : "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character",
    });
  }
  out.push(...validateLabels(md.labels, 'metadata.labels'));
  if (md.annotations !== undefined && md.annotations !== null) {
    if (!isObj(md.annotations)) {
      out.push({ field: 'metadata.annotations', value: md.annotations, type: 'FieldValueInvalid', detail: 'must be a map of string keys to string values' });
    } else {
      for (const [k, v] of Object.entries(md.annotations)) {
        if (typeof v !== 'string') out.push({ field: `metadata.annotations[${k}]`, value: v, type: 'FieldValueInvalid', detail: 'must be a string' });
      }
    }
  }
  return out;
}

function requireList(spec: Obj, key: string, path: string, out: FieldProblem[], min = 1): unknown[] | undefined {
  const v = spec[key];
  if (v === undefined || v === null) {
    out.push({
      field: path,
      value: v ?? null,
      type: 'FieldValueRequired',
      detail: min > 0 ? `at least ${min === 1 ? 'one entry' : `${min} entries`} required` : 'required',
    });
    return undefined;
  }
  if (!Array.isArray(v)) {
    out.push({ field: path, value: v, type: 'FieldValueInvalid', detail: 'must be a list' });
    return undefined;
  }
  if (v.length < min) {
    out.push({ field: path, value: v, type: 'FieldValueRequired', detail: 'at least one entry required' });
    return undefined;
  }
  return v;
}

function checkCidrList(list: unknown[], path: string, out: FieldProblem[], elem: (x: unknown) => unknown = (x) => x, elemPath = ''): void {
  const seen = new Map<string, number>();
  list.forEach((raw, i) => {
    const v = elem(raw);
    const p = `${path}[${i}]${elemPath}`;
    const c = parseCidr4(v);
    if (!c.ok) {
      if (v === undefined || v === null || v === '') out.push({ field: p, value: v ?? '', type: 'FieldValueRequired', detail: 'a CIDR is required' });
      else out.push({ field: p, value: v, type: 'FieldValueInvalid', detail: c.reason });
      return;
    }
    const prev = seen.get(c.value.text);
    if (prev !== undefined) out.push({ field: p, value: v, type: 'FieldValueDuplicate', detail: `same CIDR as ${path}[${prev}]${elemPath}` });
    else seen.set(c.value.text, i);
  });
}

export interface PolicyRef {
  name: string;
  egressSourceIP: string;
}

/** EgressNATPolicy networking.gke.io/v1alpha1 (the egress NAT gateway policy). */
export function validateEgressNATPolicyV1alpha1(obj: Obj, others: readonly PolicyRef[] = []): FieldProblem[] {
  const out: FieldProblem[] = [];
  const spec = obj.spec;
  if (!isObj(spec)) {
    return [{ field: 'spec', value: spec ?? null, type: 'FieldValueRequired', detail: 'spec with egress, destinationCIDRs and egressSourceIP is required' }];
  }
  const known = new Set(['egress', 'destinationCIDRs', 'egressSourceIP']);
  for (const k of Object.keys(spec)) {
    if (!known.has(k))
      out.push({ field: `spec.${k}`, value: k, type: 'FieldValueNotSupported', detail: 'unknown field; supported: egress, destinationCIDRs, egressSourceIP' });
  }
  const egress = requireList(spec, 'egress', 'spec.egress', out);
  egress?.forEach((rule, i) => {
    const p = `spec.egress[${i}]`;
    if (!isObj(rule)) {
      out.push({ field: p, value: rule, type: 'FieldValueInvalid', detail: 'must be an object with namespaceSelector and/or podSelector' });
      return;
    }
    for (const k of Object.keys(rule)) {
      if (k !== 'namespaceSelector' && k !== 'podSelector') {
        out.push({ field: `${p}.${k}`, value: k, type: 'FieldValueNotSupported', detail: 'unknown field; supported: namespaceSelector, podSelector' });
      }
    }
    if (rule.namespaceSelector === undefined && rule.podSelector === undefined) {
      out.push({ field: p, value: rule, type: 'FieldValueRequired', detail: 'a rule needs a namespaceSelector and/or a podSelector' });
    }
    out.push(...validateLabelSelector(rule.namespaceSelector, `${p}.namespaceSelector`));
    out.push(...validateLabelSelector(rule.podSelector, `${p}.podSelector`));
  });
  const cidrs = requireList(spec, 'destinationCIDRs', 'spec.destinationCIDRs', out);
  if (cidrs) checkCidrList(cidrs, 'spec.destinationCIDRs', out);
  const ip = spec.egressSourceIP;
  const notUnicast = isIPv4(ip) ? unicastProblem('spec.egressSourceIP', ip) : null;
  if (ip === undefined || ip === null || ip === '') {
    out.push({
      field: 'spec.egressSourceIP',
      value: ip ?? '',
      type: 'FieldValueRequired',
      detail: 'an IPv4 address (one of the gateway floating IPs) is required',
    });
  } else if (!isIPv4(ip)) {
    out.push({
      field: 'spec.egressSourceIP',
      value: ip,
      type: 'FieldValueInvalid',
      detail: typeof ip === 'string' && ip.includes(':') ? 'must be an IPv4 address (the egress NAT gateway is IPv4 only)' : 'must be a valid IPv4 address',
    });
  } else if (notUnicast) {
    out.push(notUnicast);
  } else {
    const name = isObj(obj.metadata) ? obj.metadata.name : undefined;
    const clash = others.find((o) => o.name !== name && o.egressSourceIP === ip);
    if (clash) {
      out.push({
        field: 'spec.egressSourceIP',
        value: ip,
        type: 'FieldValueDuplicate',
        detail: `already used by EgressNATPolicy "${clash.name}"; two policies may not share an egressSourceIP`,
      });
    }
  }
  return out;
}

/** EgressNATPolicy networking.gke.io/v1 (Autopilot: action NoSNAT + destinations[].cidr). */
export function validateEgressNATPolicyV1(obj: Obj): FieldProblem[] {
  const out: FieldProblem[] = [];
  const spec = obj.spec;
  if (!isObj(spec)) return [{ field: 'spec', value: spec ?? null, type: 'FieldValueRequired', detail: 'spec with action and destinations is required' }];
  for (const k of Object.keys(spec)) {
    if (k !== 'action' && k !== 'destinations') {
      out.push({ field: `spec.${k}`, value: k, type: 'FieldValueNotSupported', detail: 'unknown field; supported: action, destinations' });
    }
  }
  if (spec.action === undefined || spec.action === null || spec.action === '') {
    out.push({ field: 'spec.action', value: spec.action ?? '', type: 'FieldValueRequired', detail: 'supported values: "NoSNAT"' });
  } else if (spec.action !== 'NoSNAT') {
    out.push({ field: 'spec.action', value: spec.action, type: 'FieldValueNotSupported', detail: 'supported values: "NoSNAT"' });
  }
  const dests = requireList(spec, 'destinations', 'spec.destinations', out, 0);
  if (dests) {
    dests.forEach((d, i) => {
      if (!isObj(d)) out.push({ field: `spec.destinations[${i}]`, value: d, type: 'FieldValueInvalid', detail: 'must be an object with a cidr' });
    });
    checkCidrList(dests, 'spec.destinations', out, (d) => (isObj(d) ? d.cidr : undefined), '.cidr');
  }
  return out;
}

/** AnthosNetworkGateway networking.gke.io/v1alpha1. */
export function validateAnthosNetworkGateway(obj: Obj): FieldProblem[] {
  const out: FieldProblem[] = [];
  const spec = obj.spec;
  if (!isObj(spec)) return [{ field: 'spec', value: spec ?? null, type: 'FieldValueRequired', detail: 'spec.floatingIPs is required' }];
  const ips = requireList(spec, 'floatingIPs', 'spec.floatingIPs', out, 0);
  const seen = new Map<string, number>();
  ips?.forEach((ip, i) => {
    const p = `spec.floatingIPs[${i}]`;
    if (!isIPv4(ip)) {
      out.push({
        field: p,
        value: ip,
        type: 'FieldValueInvalid',
        detail: typeof ip === 'string' && ip.includes(':') ? 'must be an IPv4 address (IPv6 is not supported)' : 'must be a valid IPv4 address',
      });
      return;
    }
    const notUnicast = unicastProblem(p, ip);
    if (notUnicast) {
      out.push(notUnicast);
      return;
    }
    const prev = seen.get(ip);
    if (prev !== undefined) out.push({ field: p, value: ip, type: 'FieldValueDuplicate', detail: `same address as spec.floatingIPs[${prev}]` });
    else seen.set(ip, i);
  });
  return out;
}
