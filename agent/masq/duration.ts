/**
 * A faithful port of Go's time.ParseDuration (Go 1.21+ semantics), which is what upstream
 * ip-masq-agent uses for `resyncInterval`: "[-+]?([0-9]*(\.[0-9]*)?[a-z]+)+", units ns, us, µs
 * (U+00B5), μs (U+03BC), ms, s, m, h; a lone "0" needs no unit; overflow past int64 nanoseconds is an
 * error; fraction digits beyond int64 precision are dropped, not refused. Nanoseconds are kept as a
 * bigint so that nothing is lost before the caller decides what to do with them.
 */

const U64_MAX_SIGNED_PLUS1 = 1n << 63n; // 1<<63 as in Go
const INT64_MAX = (1n << 63n) - 1n;

const UNIT_NS: ReadonlyMap<string, bigint> = new Map([
  ['ns', 1n],
  ['us', 1_000n],
  ['\u00b5s', 1_000n], // micro sign
  ['\u03bcs', 1_000n], // greek small letter mu
  ['ms', 1_000_000n],
  ['s', 1_000_000_000n],
  ['m', 60n * 1_000_000_000n],
  ['h', 3600n * 1_000_000_000n],
]);

export type DurationResult = { ok: true; ns: bigint } | { ok: false; message: string };

function quote(s: string): string {
  return JSON.stringify(s);
}

function isDigit(c: string | undefined): boolean {
  return c !== undefined && c >= '0' && c <= '9';
}

export function parseGoDuration(orig: string): DurationResult {
  const invalid = (): DurationResult => ({ ok: false, message: `time: invalid duration ${quote(orig)}` });
  let s = orig;
  let d = 0n;
  let neg = false;

  if (s !== '') {
    const c = s[0];
    if (c === '-' || c === '+') {
      neg = c === '-';
      s = s.slice(1);
    }
  }
  if (s === '0') return { ok: true, ns: 0n };
  if (s === '') return invalid();

  while (s !== '') {
    let v = 0n;
    let f = 0n;
    let scale = 1;

    if (!(s[0] === '.' || isDigit(s[0]))) return invalid();

    // leadingInt: [0-9]*
    const pl = s.length;
    let i = 0;
    for (; i < s.length && isDigit(s[i]); i++) {
      if (v > U64_MAX_SIGNED_PLUS1 / 10n) return invalid();
      v = v * 10n + BigInt(s.charCodeAt(i) - 48);
      if (v > U64_MAX_SIGNED_PLUS1) return invalid();
    }
    s = s.slice(i);
    const pre = pl !== s.length;

    // (\.[0-9]*)?
    let post = false;
    if (s !== '' && s[0] === '.') {
      s = s.slice(1);
      const pl2 = s.length;
      let j = 0;
      let overflow = false;
      for (; j < s.length && isDigit(s[j]); j++) {
        if (overflow) continue;
        if (f > INT64_MAX / 10n) {
          overflow = true;
          continue;
        }
        const y = f * 10n + BigInt(s.charCodeAt(j) - 48);
        if (y > U64_MAX_SIGNED_PLUS1) {
          overflow = true;
          continue;
        }
        f = y;
        scale *= 10;
      }
      s = s.slice(j);
      post = pl2 !== s.length;
    }
    if (!pre && !post) return invalid();

    // unit: everything up to the next '.' or digit
    let k = 0;
    for (; k < s.length; k++) {
      const c = s[k];
      if (c === '.' || isDigit(c)) break;
    }
    if (k === 0) return { ok: false, message: `time: missing unit in duration ${quote(orig)}` };
    const u = s.slice(0, k);
    s = s.slice(k);
    const unit = UNIT_NS.get(u);
    if (unit === undefined) {
      return { ok: false, message: `time: unknown unit ${quote(u)} in duration ${quote(orig)}` };
    }
    if (v > U64_MAX_SIGNED_PLUS1 / unit) return invalid();
    v *= unit;
    if (f > 0n) {
      // Go: v += uint64(float64(f) * (float64(unit) / scale))
      v += BigInt(Math.trunc(Number(f) * (Number(unit) / scale)));
      if (v > U64_MAX_SIGNED_PLUS1) return invalid();
    }
    d += v;
    if (d > U64_MAX_SIGNED_PLUS1) return invalid();
  }
  if (neg) return { ok: true, ns: -d };
  if (d > INT64_MAX) return invalid();
  return { ok: true, ns: d };
}

/** Nanoseconds (bigint) to milliseconds (number, may be fractional). */
export function nsToMs(ns: bigint): number {
  return Number(ns) / 1e6;
}

/** Go's Duration.String() is not needed; this renders a compact human form for logs/state. */
export function formatMs(ms: number): string {
  if (ms !== 0 && Math.abs(ms) < 1) return `${ms * 1000}us`;
  if (Math.abs(ms) < 1000) return `${ms}ms`;
  return `${ms / 1000}s`;
}
