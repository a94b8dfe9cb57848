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
 *
 * Fast path (issue 17). The `yaml` library needs 150-300 ms (about 2 s on a loaded lab node) for
 * a 10,000-CIDR list, blocking the agent's event loop. The common shape, a top-level
 * `nonMasqueradeCIDRs:` key followed by a block sequence of CIDR-looking scalars, is therefore cut
 * out of the text and read by hand (fastDecode below); the small rest goes through the library
 * with a placeholder in the list's place, and the result is used only when the library confirms
 * the placeholder sits where the list was. Anything else takes the library path on the whole text,
 * so the result (value, errors, warnings) is always the library path's; the property tests in
 * config-fast.test.ts compare the two.
 */
import { isMap, isScalar, isSeq, parseAllDocuments, stringify as stringifyYaml } from 'yaml';
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

export type ParseResult = { ok: true; config: MasqConfig; source: ConfigSource; warnings: ConfigIssue[] } | { ok: false; errors: ConfigIssue[] };

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
const FIELDS: readonly FieldName[] = ['nonMasqueradeCIDRs', 'cidrLimit', 'masqLinkLocal', 'masqLinkLocalIPv6', 'resyncInterval'];

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
    s = v === undefined ? 'undefined' : (JSON.stringify(v) ?? String(v));
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

type Decoded = { ok: true; value: unknown } | { ok: false; error: ConfigIssue };

/** YAML/JSON text -> JS value, the way upstream turns the file into JSON. `fast`: try fastDecode first. */
function decodeText(text: string, fast: boolean): Decoded & { path: DecodePath } {
  const trimmed = text.replace(GO_LEADING_SPACE, '');
  if (trimmed.startsWith('{')) {
    try {
      return { ok: true, value: JSON.parse(text) as unknown, path: 'json' };
    } catch (e) {
      return {
        ok: false,
        error: { field: '(file)', value: showValue(firstLine(trimmed)), message: `invalid JSON: ${(e as Error).message}` },
        path: 'json',
      };
    }
  }
  if (!fast) return { ...decodeYaml(text, trimmed), path: 'library' };
  const f = fastDecode(text);
  if (f.ok) return { ok: true, value: f.value, path: 'fast' };
  return { ...decodeYaml(text, trimmed), path: `library: ${f.reason}` };
}

/** All YAML documents of a text, with the options that make the `yaml` library behave as go-yaml v2. */
function parseYamlStream(text: string): ReturnType<typeof parseAllDocuments> {
  return parseAllDocuments(text, {
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
}

/** The library path: YAML text (not JSON) -> JS value of its first document. */
function decodeYaml(text: string, trimmed: string): Decoded {
  const docs = parseYamlStream(text);
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

// ---------------------------------------------------------------------------------------------
// Fast path for a long `nonMasqueradeCIDRs:` block sequence (issue 17)
//
// Shape recognised (lines end in \n; `␣` is a space):
//
//   nonMasqueradeCIDRs:[␣+[# comment]]          <- at column 0, the first such line of the text
//   <i spaces>-␣+<item>[␣+[# comment]]          <- one or more, all with the same indentation i >= 0
//   ...                                          (blank and comment-only lines may come between)
//   <end>                                        EOF, or a line at column 0 starting with
//                                                [A-Za-z0-9_"'] (after blank/comment-only lines)
//
// where <item> is a plain scalar of [0-9A-Fa-f.:/] that contains a "/" and does not end in ":"
// (YAML 1.1 resolves no such scalar to anything but a string: no int, float, bool or null form
// contains "/", and timestamps are off), or '...' / "..." around [0-9A-Fa-f.:/]* (no escapes
// possible). Comments in the block are printable ASCII.
//
// Why the result equals the library's on the whole text: the block is replaced by the line
// `nonMasqueradeCIDRs: [<placeholder>]` and the rest is parsed by the library. The fast result is
// used only when
//   - the rest parses without errors (otherwise the library reports errors whose line numbers
//     would differ, so the whole text goes to the library);
//   - its document is a block mapping without anchor or tag, and the placeholder key, at the very
//     offset where the block's key was, is one of that mapping's own keys with the one-item flow
//     sequence as its value: so the key line is a top-level key in the original too (what comes
//     before it is the same text), and nothing can refer to the list (it carries no anchor);
//   - the converted object's nonMasqueradeCIDRs is still [<placeholder>] (so no later exact
//     duplicate replaced it; the placeholder string does not occur in the text), and no other key
//     would match nonMasqueradeCIDRs case-insensitively (lookupField). (That last one is caution:
//     such a key is decoded the same either way, but nothing is gained by reasoning about it.)
// The line after the block starts a new top-level key (or the text ends), so no item is
// continued, and the list ends in the original where the flow sequence ends in the rest.
// Everything else (anchors or tags on the list, flow style, CRLF, tabs, document markers,
// directives, a BOM, a line that could continue an item, ...) falls back to the library.

const FAST_KEY = 'nonMasqueradeCIDRs';
const FAST_PLACEHOLDER = 'egresslab-fast-path-placeholder-0d9c2f';
const FAST_KEY_LINE = `${FAST_KEY}: [${FAST_PLACEHOLDER}]`;

/** Why the fast path was not taken (the whole text then goes through the library). */
export type FastPathFallback =
  | 'no-block' // no column-0 `nonMasqueradeCIDRs:` line followed by `- <cidr>` lines
  | 'carriage-return' // CR anywhere (CRLF line endings)
  | 'tab'
  | 'bom'
  | 'document-marker-or-directive' // a line starting with ---, ... or %
  | 'placeholder-in-text'
  | 'block-end-ambiguous' // the first line after the block is not a new column-0 key
  | 'rest-invalid' // the text without the block has YAML errors
  | 'rest-not-block-map' // ... is not a plain block mapping (anchor, tag, flow, sequence, scalar)
  | 'key-not-top-level' // ... the placeholder is not that mapping's own key
  | 'duplicate-key'; // a later nonMasqueradeCIDRs replaced it, or a case variant is there too

/** Which way a text was decoded: JSON, the fast path, or the library (with the reason). */
export type DecodePath = 'json' | 'fast' | 'library' | `library: ${FastPathFallback}`;

// [0-9A-Fa-f.:/]
const CIDR_CHAR = new Uint8Array(128);
for (const c of '0123456789ABCDEFabcdef.:/') CIDR_CHAR[c.charCodeAt(0)] = 1;

const SPACE = 32;
const HASH = 35;

/** Whether text[from, to) is printable ASCII (a comment the library and we read alike). */
function printableAscii(text: string, from: number, to: number): boolean {
  for (let i = from; i < to; i++) {
    const c = text.charCodeAt(i);
    if (c < 0x20 || c > 0x7e) return false;
  }
  return true;
}

/** Whether text[p, end) is `[␣+[# comment]]`: nothing more on the line. `p` is just after a value. */
function restOfLineEmpty(text: string, p: number, end: number): boolean {
  if (p === end) return true;
  if (text.charCodeAt(p) !== SPACE) return false;
  while (p < end && text.charCodeAt(p) === SPACE) p++;
  return p === end || (text.charCodeAt(p) === HASH && printableAscii(text, p + 1, end));
}

/** Whether text[p, end) (p after the indentation) is blank or a comment: a line YAML skips. */
function skippableLine(text: string, p: number, end: number): boolean {
  return p === end || (text.charCodeAt(p) === HASH && printableAscii(text, p + 1, end));
}

/** The value of `-␣+<item>[␣+[# comment]]` in text[p, end) (p after the indentation), or null. */
function itemValue(text: string, p: number, end: number): string | null {
  if (text.charCodeAt(p) !== 45 /* - */ || p + 1 >= end || text.charCodeAt(p + 1) !== SPACE) return null;
  p += 2;
  while (p < end && text.charCodeAt(p) === SPACE) p++;
  const q = text.charCodeAt(p);
  let from: number;
  let to: number;
  if (q === 39 /* ' */ || q === 34 /* " */) {
    from = ++p;
    while (p < end && CIDR_CHAR[text.charCodeAt(p)] === 1) p++;
    if (p >= end || text.charCodeAt(p) !== q) return null;
    to = p++;
  } else {
    from = p;
    let slash = false;
    for (let c: number; p < end && (c = text.charCodeAt(p)) < 128 && CIDR_CHAR[c] === 1; p++) if (c === 47) slash = true;
    to = p;
    // A plain scalar ending in ":" would be a mapping key ({"1:/3": null}).
    if (!slash || text.charCodeAt(to - 1) === 58 /* : */) return null;
  }
  return restOfLineEmpty(text, p, end) ? text.slice(from, to) : null;
}

/** Start of the first column-0 `nonMasqueradeCIDRs:` line, or -1. */
function keyLineStart(text: string): number {
  for (let at = text.indexOf(`${FAST_KEY}:`); at >= 0; at = text.indexOf(`${FAST_KEY}:`, at + 1)) {
    if (at === 0 || text.charCodeAt(at - 1) === 10) return at;
  }
  return -1;
}

const DOC_MARKER_OR_DIRECTIVE = /^(?:---|\.\.\.|%)/m;

type FastDecoded = { ok: true; value: Record<string, unknown> } | { ok: false; reason: FastPathFallback };

/** The fast path (see above): the decoded value, or why the library must decode the whole text. */
function fastDecode(text: string): FastDecoded {
  const no = (reason: FastPathFallback): FastDecoded => ({ ok: false, reason });
  const keyAt = keyLineStart(text);
  if (keyAt < 0) return no('no-block');
  if (text.includes('\r')) return no('carriage-return');
  if (text.includes('\t')) return no('tab');
  if (text.includes('\ufeff')) return no('bom');
  if (DOC_MARKER_OR_DIRECTIVE.test(text)) return no('document-marker-or-directive');
  if (text.includes(FAST_PLACEHOLDER)) return no('placeholder-in-text');

  // The key line.
  const len = text.length;
  let end = text.indexOf('\n', keyAt);
  if (end < 0) return no('no-block');
  if (!restOfLineEmpty(text, keyAt + FAST_KEY.length + 1, end)) return no('no-block');

  // The items.
  const items: string[] = [];
  let indent = -1;
  let cutEnd = -1; // end of the last item line (its \n, or the end of the text)
  let pos = end + 1;
  for (; pos < len; pos = end + 1) {
    end = text.indexOf('\n', pos);
    if (end < 0) end = len;
    let p = pos;
    while (p < end && text.charCodeAt(p) === SPACE) p++;
    if (skippableLine(text, p, end)) continue;
    if (indent >= 0 && p - pos !== indent) break;
    const v = itemValue(text, p, end);
    if (v === null) break;
    indent = p - pos;
    items.push(v);
    cutEnd = end;
  }
  if (items.length === 0) return no('no-block');
  // `pos` is the first line after the block that is neither an item nor blank/comment, if any.
  if (pos < len) {
    const c = text.charCodeAt(pos);
    const newKey = (c >= 65 && c <= 90) || (c >= 97 && c <= 122) || (c >= 48 && c <= 57) || c === 95 /* _ */ || c === 34 || c === 39;
    if (!newKey) return no('block-end-ambiguous');
  }

  const rest = text.slice(0, keyAt) + FAST_KEY_LINE + text.slice(cutEnd);
  const docs = parseYamlStream(rest);
  const doc = Array.isArray(docs) ? docs[0] : undefined;
  if (!doc || doc.errors.length > 0) return no('rest-invalid');
  const map = doc.contents;
  if (!isMap(map) || map.flow || map.anchor !== undefined || map.tag !== undefined) return no('rest-not-block-map');
  const pair = map.items.find((it) => isScalar(it.key) && it.key.range?.[0] === keyAt);
  const key = pair?.key;
  const seq = pair?.value;
  if (
    !isScalar(key) ||
    key.type !== 'PLAIN' ||
    key.value !== FAST_KEY ||
    key.anchor !== undefined ||
    key.tag !== undefined ||
    !isSeq(seq) ||
    !seq.flow ||
    seq.range?.[0] !== keyAt + FAST_KEY.length + 2 ||
    seq.items.length !== 1
  ) {
    return no('key-not-top-level');
  }
  let value: unknown;
  try {
    value = doc.toJS({ maxAliasCount: 1000 }) as unknown;
  } catch {
    return no('rest-invalid');
  }
  if (value === null || typeof value !== 'object' || Array.isArray(value)) return no('rest-not-block-map');
  const obj = value as Record<string, unknown>;
  let matching = 0;
  for (const k of Object.keys(obj)) if (lookupField(k) === FAST_KEY) matching++;
  const placed = obj[FAST_KEY];
  if (matching !== 1 || !Array.isArray(placed) || placed.length !== 1 || placed[0] !== FAST_PLACEHOLDER) {
    return no('duplicate-key');
  }
  obj[FAST_KEY] = items; // an existing own key: its place in the key order does not change
  return { ok: true, value: obj };
}

/**
 * Parse the config file contents. `text === null` means the file does not exist.
 */
export function parseMasqConfig(text: string | null, opts: ParseOptions = {}): ParseResult {
  return parseConfig(text, opts, true);
}

/**
 * @internal parseMasqConfig without the fast path: the `yaml` library decodes every YAML text.
 * The reference the fast path must equal (tests, bench); not for production callers.
 */
export function parseMasqConfigLibraryOnly(text: string | null, opts: ParseOptions = {}): ParseResult {
  return parseConfig(text, opts, false);
}

/** @internal Which way parseMasqConfig decodes a text (JSON, fast path, or library and why): tests, bench. */
export function masqDecodePath(text: string): DecodePath {
  return decodeText(text, true).path;
}

function parseConfig(text: string | null, opts: ParseOptions, fast: boolean): ParseResult {
  const config = defaultMasqConfig();
  if (text === null) return { ok: true, config, source: 'defaults', warnings: [] };

  const decoded = decodeText(text, fast);
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
      warnings.push({
        field: key,
        value: showValue(raw),
        message: `key ${JSON.stringify(key)} matched ${field} case-insensitively (as Go encoding/json does)`,
      });
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
          if (item === null)
            list.push(''); // Go: null into string is a no-op -> ""
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

/** The fields of an ip-masq-agent config a user writes (agent/masq/config.ts reads them). */
export interface MasqConfigInput {
  nonMasqueradeCIDRs?: string[];
  masqLinkLocal?: boolean;
  resyncInterval?: string;
}

/** The ConfigMap's `config` key as a user writes it: YAML, the given fields in the usual order. */
export function masqConfigYaml(c: MasqConfigInput): string {
  const doc: MasqConfigInput = {};
  if (c.nonMasqueradeCIDRs) doc.nonMasqueradeCIDRs = c.nonMasqueradeCIDRs;
  if (c.masqLinkLocal !== undefined) doc.masqLinkLocal = c.masqLinkLocal;
  if (c.resyncInterval !== undefined) doc.resyncInterval = c.resyncInterval;
  return stringifyYaml(doc);
}
