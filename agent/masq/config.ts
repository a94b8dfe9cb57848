/**
 * ip-masq-agent config parsing, matching upstream kubernetes-sigs/ip-masq-agent
 * (cmd/ip-masq-agent/ip-masq-agent.go: syncConfig + MasqConfig.validate), decision by decision:
 *
 *  - Absent file (stat says ENOENT) -> all defaults.                                    [upstream]
 *  - Text starting with "{" (after Unicode whitespace) is JSON, parsed as-is; anything else is YAML,
 *    converted to JSON first (apimachinery util/yaml.ToJSON -> sigs.k8s.io/yaml, i.e. go-yaml v2,
 *    YAML 1.1: yes/no/on/off/y/n are booleans, timestamps stay strings, duplicate keys: last wins,
 *    only the first document counts). A flow mapping "{a: b}" is therefore parsed as JSON and
 *    refused, exactly as upstream does.                                                 [upstream]
 *  - An empty (or comment-only) file decodes to null -> all defaults.                    [upstream]
 *  - Decoding is Go encoding/json into the defaults: only keys present overwrite; unknown keys are
 *    IGNORED (not strict); key matching is case-insensitive (Go prefers an exact match, then
 *    accepts a case-folded one); for repeated keys the last one wins.                   [upstream]
 *  - `null` for a list sets it to nil: `nonMasqueradeCIDRs:` with no value means NO exempt
 *    destinations (not the defaults). `null` for a bool keeps the default. `null` for
 *    resyncInterval is an error (upstream's Duration.UnmarshalJSON wants a string).      [upstream]
 *  - Wrong JSON type anywhere (number where a list belongs, "true" as a string for a bool, a
 *    number for resyncInterval, ...) refuses the whole file.                             [upstream]
 *  - resyncInterval: Go time.ParseDuration ("60s", "1m", "1h2m3.5s", "500ms", "-1s", "0").
 *  - Every CIDR must parse (net.ParseCIDR) and be aligned (10.0.0.1/8 refused); IPv6 CIDRs are
 *    refused unless IPv6 is enabled (upstream: --enable-ipv6).                           [upstream]
 *  - cidrLimit: upstream defaults to 64 and refuses longer lists. Here the default is NO limit
 *    (the set-based datapath has no per-CIDR cost; issue #5), but an explicit `cidrLimit` in the
 *    file is still honoured the upstream way (`len > cidrLimit` refuses).               [deviation]
 *
 * Upstream stops at the first error; we collect all of them (same outcome: the file is refused).
 */
import { parseAllDocuments } from 'yaml';
import { formatCidr, parseCidr } from '../../lib/net/addresses.js';
import { DEFAULT_NON_MASQUERADE_CIDRS, DEFAULT_RESYNC_INTERVAL_MS, MAX_RESYNC_INTERVAL_MS } from './constants.js';
import { nsToMs, parseGoDuration } from './duration.js';
import { sha16 } from '../hash.js';

export interface MasqConfig {
  /** Validated CIDR strings, in file order, as written (normalisation happens at render time). */
  nonMasqueradeCIDRs: string[];
  masqLinkLocal: boolean;
  masqLinkLocalIPv6: boolean;
  /** Parsed resyncInterval in milliseconds (Go allows sub-ms and negative values; see agent). */
  resyncIntervalMs: number;
  /** null = no limit (our default); a number only when the file sets cidrLimit. */
  cidrLimit: number | null;
}

export interface ConfigIssue {
  /** JSON-ish path of the offending key, e.g. "nonMasqueradeCIDRs[2]", or "(file)". */
  field: string;
  /** The offending value, rendered as JSON (strings quoted), truncated. */
  value: string;
  message: string;
}

export type ConfigSource = 'defaults' | 'file';

export type ParseResult =
  | { ok: true; config: MasqConfig; source: ConfigSource; warnings: ConfigIssue[] }
  | { ok: false; errors: ConfigIssue[] };

export interface ParseOptions {
  /** Upstream --enable-ipv6. Default false: IPv6 CIDRs are refused. */
  enableIPv6?: boolean;
}

export function defaultMasqConfig(): MasqConfig {
  return {
    nonMasqueradeCIDRs: [...DEFAULT_NON_MASQUERADE_CIDRS],
    masqLinkLocal: false,
    masqLinkLocalIPv6: false,
    resyncIntervalMs: DEFAULT_RESYNC_INTERVAL_MS,
    cidrLimit: null,
  };
}

type FieldName = 'nonMasqueradeCIDRs' | 'cidrLimit' | 'masqLinkLocal' | 'masqLinkLocalIPv6' | 'resyncInterval';
const FIELDS: readonly FieldName[] = [
  'nonMasqueradeCIDRs',
  'cidrLimit',
  'masqLinkLocal',
  'masqLinkLocalIPv6',
  'resyncInterval',
];

/** Go encoding/json field lookup: exact name first, then a case-insensitive match. */
function lookupField(key: string): FieldName | undefined {
  const exact = FIELDS.find((f) => f === key);
  if (exact) return exact;
  const k = key.toLowerCase();
  return FIELDS.find((f) => f.toLowerCase() === k);
}

export function showValue(v: unknown): string {
  let s: string;
  try {
    s = v === undefined ? 'undefined' : JSON.stringify(v) ?? String(v);
  } catch {
    s = String(v);
  }
  return s.length > 120 ? `${s.slice(0, 117)}...` : s;
}

function jsonKind(v: unknown): string {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'array';
  if (typeof v === 'object') return 'object';
  return typeof v; // string | number | boolean
}

function typeError(field: string, v: unknown, goType: string): ConfigIssue {
  // Mirrors encoding/json's UnmarshalTypeError wording.
  return {
    field,
    value: showValue(v),
    message: `${field}: cannot unmarshal ${jsonKind(v)} ${showValue(v)} into Go struct field MasqConfig.${field} of type ${goType}`,
  };
}

// Go unicode.IsSpace (used by apimachinery hasJSONPrefix via bytes.TrimLeftFunc).
const GO_LEADING_SPACE = /^[\t\n\v\f\r \u0085\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]*/;

/** YAML/JSON text -> JS value, the way upstream turns the file into JSON. */
function decodeText(text: string): { ok: true; value: unknown } | { ok: false; error: ConfigIssue } {
  const trimmed = text.replace(GO_LEADING_SPACE, '');
  if (trimmed.startsWith('{')) {
    try {
      return { ok: true, value: JSON.parse(text) as unknown };
    } catch (e) {
      return { ok: false, error: { field: '(file)', value: showValue(firstLine(trimmed)), message: `invalid JSON: ${(e as Error).message}` } };
    }
  }
  const docs = parseAllDocuments(text, {
    version: '1.1',
    uniqueKeys: false,
    merge: true,
    // go-yaml v2 keeps timestamps as strings when decoding into interface{} and has no
    // sexagesimal ints/floats.
    customTags: (tags) =>
      tags.filter((t) => {
        if (typeof t === 'string') return t !== 'timestamp' && t !== 'intTime' && t !== 'floatTime';
        return t.tag !== 'tag:yaml.org,2002:timestamp' && (t as { format?: string }).format !== 'TIME';
      }),
  });
  const first = Array.isArray(docs) ? docs[0] : undefined;
  if (!first) return { ok: true, value: null }; // empty stream
  if (first.errors.length > 0) {
    const e = first.errors[0]!;
    return { ok: false, error: { field: '(file)', value: showValue(firstLine(trimmed)), message: `invalid YAML: ${e.message.split('\n')[0]}` } };
  }
  try {
    return { ok: true, value: first.toJS({ maxAliasCount: 1000 }) as unknown };
  } catch (e) {
    return { ok: false, error: { field: '(file)', value: showValue(firstLine(trimmed)), message: `invalid YAML: ${(e as Error).message}` } };
  }
}

function firstLine(s: string): string {
  const l = s.split('\n')[0] ?? '';
  return l.length > 60 ? `${l.slice(0, 57)}...` : l;
}

/**
 * Parse the config file contents. `text === null` means the file does not exist.
 */
export function parseMasqConfig(text: string | null, opts: ParseOptions = {}): ParseResult {
  const config = defaultMasqConfig();
  if (text === null) return { ok: true, config, source: 'defaults', warnings: [] };

  const decoded = decodeText(text);
  if (!decoded.ok) return { ok: false, errors: [decoded.error] };
  const doc = decoded.value;
  const errors: ConfigIssue[] = [];
  const warnings: ConfigIssue[] = [];

  if (doc === null || doc === undefined) return { ok: true, config, source: 'file', warnings };
  if (typeof doc !== 'object' || Array.isArray(doc)) {
    return {
      ok: false,
      errors: [{ field: '(file)', value: showValue(doc), message: `cannot unmarshal ${jsonKind(doc)} into Go value of type main.MasqConfig` }],
    };
  }

  for (const [key, raw] of Object.entries(doc as Record<string, unknown>)) {
    const field = lookupField(key);
    if (!field) {
      warnings.push({ field: key, value: showValue(raw), message: `unknown key ${JSON.stringify(key)} ignored (upstream ignores unknown keys too)` });
      continue;
    }
    if (field !== key) {
      warnings.push({ field: key, value: showValue(raw), message: `key ${JSON.stringify(key)} matched ${field} case-insensitively (as Go encoding/json does)` });
    }
    switch (field) {
      case 'nonMasqueradeCIDRs': {
        if (raw === null) {
          config.nonMasqueradeCIDRs = []; // Go: null sets a slice to nil
          break;
        }
        if (!Array.isArray(raw)) {
          errors.push(typeError(field, raw, '[]string'));
          break;
        }
        const list: string[] = [];
        raw.forEach((item: unknown, i: number) => {
          if (item === null) list.push(''); // Go: null into string is a no-op -> ""
          else if (typeof item === 'string') list.push(item);
          else errors.push(typeError(`${field}[${i}]`, item, 'string'));
        });
        config.nonMasqueradeCIDRs = list;
        break;
      }
      case 'masqLinkLocal':
      case 'masqLinkLocalIPv6': {
        if (raw === null) break; // Go: null into bool is a no-op
        if (typeof raw !== 'boolean') {
          errors.push(typeError(field, raw, 'bool'));
          break;
        }
        config[field] = raw;
        break;
      }
      case 'cidrLimit': {
        if (raw === null) break;
        if (typeof raw !== 'number' || !Number.isSafeInteger(raw)) {
          errors.push(typeError(field, raw, 'int'));
          break;
        }
        config.cidrLimit = raw;
        break;
      }
      case 'resyncInterval': {
        if (typeof raw !== 'string') {
          errors.push({
            field,
            value: showValue(raw),
            message: `resyncInterval: expected string value for unmarshal to field of type Duration, got ${JSON.stringify(showValue(raw))}`,
          });
          break;
        }
        const d = parseGoDuration(raw);
        if (!d.ok) {
          errors.push({ field, value: showValue(raw), message: `resyncInterval: ${d.message}` });
          break;
        }
        config.resyncIntervalMs = nsToMs(d.ns);
        if (config.resyncIntervalMs > MAX_RESYNC_INTERVAL_MS) {
          warnings.push({
            field,
            value: showValue(raw),
            message: `resyncInterval ${raw} is longer than the longest timer (${MAX_RESYNC_INTERVAL_MS} ms, 24.8 days): resyncing every ${MAX_RESYNC_INTERVAL_MS} ms`,
          });
        }
        break;
      }
    }
  }

  // Type errors are reported before validation, like Unmarshal failing before validate().
  if (errors.length > 0) return { ok: false, errors };

  // validate(): limit, then each CIDR in order.
  if (config.cidrLimit !== null && config.nonMasqueradeCIDRs.length > config.cidrLimit) {
    errors.push({
      field: 'nonMasqueradeCIDRs',
      value: `${config.nonMasqueradeCIDRs.length} CIDRs`,
      message: `the daemon can only accept up to ${config.cidrLimit} CIDRs (cidrLimit), but got ${config.nonMasqueradeCIDRs.length} CIDRs (excluding link local)`,
    });
  }
  config.nonMasqueradeCIDRs.forEach((cidr, i) => {
    const field = `nonMasqueradeCIDRs[${i}]`;
    const p = parseCidr(cidr);
    if (!p.ok) {
      errors.push({ field, value: showValue(cidr), message: `CIDR ${JSON.stringify(cidr)} could not be parsed, ${p.message}` });
      return;
    }
    if (!p.aligned) {
      const ip = cidr.slice(0, cidr.indexOf('/'));
      const net = formatCidr(p.cidr);
      errors.push({
        field,
        value: showValue(cidr),
        message: `CIDR ${JSON.stringify(cidr)} is not aligned to a CIDR block, ip: ${JSON.stringify(ip)} network: ${JSON.stringify(net)}`,
      });
      return;
    }
    if (p.cidr.family === 6 && !opts.enableIPv6) {
      errors.push({
        field,
        value: showValue(cidr),
        message: `ipv6 is not enabled, but ipv6 cidr ${cidr} provided. Enable ipv6 using --enable-ipv6 agent flag`,
      });
    }
  });
  if (errors.length > 0) return { ok: false, errors };
  return { ok: true, config, source: 'file', warnings };
}

/** One-line summary of an error list, for logs: field=... value=...: message; ... */
export function formatIssues(issues: readonly ConfigIssue[]): string {
  return issues.map((e) => `field=${e.field} value=${e.value}: ${e.message}`).join('; ');
}

/** Canonical JSON of a config (stable key order), used for hashing. */
/** The config hash agents report (status masq.configHash) for a config file's text (null: no file). */
export function masqConfigHash(text: string | null): string | null {
  const parsed = parseMasqConfig(text);
  return parsed.ok ? sha16(canonicalConfigJson(parsed.config)) : null;
}

export function canonicalConfigJson(c: MasqConfig): string {
  return JSON.stringify({
    nonMasqueradeCIDRs: c.nonMasqueradeCIDRs,
    masqLinkLocal: c.masqLinkLocal,
    masqLinkLocalIPv6: c.masqLinkLocalIPv6,
    resyncIntervalMs: c.resyncIntervalMs,
    cidrLimit: c.cidrLimit,
  });
}
