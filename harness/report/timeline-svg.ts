/**
 * A failover timeline as a self-contained SVG (no dependencies, no scripts, no external fonts):
 * one row per probe on a shared time axis; each packet a mark at its send time, filled with the
 * colour of the source the far end observed it with (legend), hollow grey when it was lost and seen
 * nowhere, hollow in its source's colour when seen but not answered; outages shaded with their
 * duration and lost count; leaks (a source outside the row's allowed set) drawn as red marks.
 * Pure: Timeline in, text out.
 */
import type { Timeline } from '../probe/timeline.js';
import { summarize } from './failover.js';

/** One row of a timeline SVG: a timeline, its label, and the sources that are not leaks. */
export interface TimelineRow {
  timeline: Timeline;
  /** Row label; default "proto from -> to". */
  label?: string;
  /** Sources that are not leaks. Absent: no leak marking for this row. */
  allowedSources?: readonly string[];
}

/** Title, width and default allowed sources of a timeline SVG. */
export interface TimelineSvgOptions {
  title?: string;
  /** Total width in px (default 1100). */
  width?: number;
  /** Used for rows without their own allowedSources. */
  allowedSources?: readonly string[];
}

export const LEAK_COLOUR = '#d62728';
export const LOST_COLOUR = '#9e9e9e';
/** Colour-blind friendly; red is reserved for leaks. */
const PALETTE = ['#1f77b4', '#2ca02c', '#ff7f0e', '#9467bd', '#17becf', '#8c564b', '#e377c2', '#bcbd22', '#7f7f7f', '#393b79'];

/** Escapes text for XML content and attributes. */
export function escapeXml(s: string): string {
  return s.replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&apos;' })[c]!);
}

const fmt = (n: number) => (Math.round(n * 10) / 10).toString();

function niceStep(spanMs: number, target: number): number {
  const raw = spanMs / Math.max(1, target);
  const pow = 10 ** Math.floor(Math.log10(Math.max(raw, 1)));
  for (const m of [1, 2, 5, 10]) if (m * pow >= raw) return m * pow;
  return 10 * pow;
}

function durationText(ms: number): string {
  return ms >= 1000 ? `${(ms / 1000).toFixed(ms >= 10_000 ? 1 : 2)} s` : `${Math.round(ms)} ms`;
}

/** Widest a character of the 12 px sans-serif label font gets (capitals and digits), in px. */
const LABEL_CHAR_PX = 7.2;

/**
 * A row label in at most two lines of `max` characters, the first cut at a space (a word longer than
 * a line is cut inside it); a second line that does not fit ends in "…" (the whole label stays in
 * the SVG as its <title>).
 */
export function labelLines(label: string, max: number): string[] {
  if (label.length <= max) return [label];
  const space = label.lastIndexOf(' ', max);
  const at = space > 0 ? space : max;
  const rest = label.slice(at).trimStart();
  return [label.slice(0, at), rest.length <= max ? rest : `${rest.slice(0, Math.max(0, max - 1))}…`];
}

/**
 * Renders one or more timelines as an SVG: a row per timeline, a mark per packet coloured by the source the far end saw, outages shaded, leaks red.
 *
 * @example
 * ```ts
 * const svg = renderTimelineSvg(
 *   [
 *     { timeline: alice, label: 'alice udp', allowedSources: ['192.168.1.100'] },
 *     { timeline: bob, label: 'bob tcp' }, // no leak marking
 *   ],
 *   { title: 'failover of node-1' },
 * );
 * writeFileSync('failover.svg', svg);
 * ```
 */
export function renderTimelineSvg(input: Timeline | TimelineRow | (Timeline | TimelineRow)[], options: TimelineSvgOptions = {}): string {
  const rows: TimelineRow[] = (Array.isArray(input) ? input : [input]).map((x) => ('timeline' in x ? x : { timeline: x }));
  const width = options.width ?? 1100;
  const labelOf = (r: TimelineRow): string =>
    r.label ?? `${r.timeline.proto} ${r.timeline.from} -> ${r.timeline.to}${r.timeline.port ? `:${r.timeline.port}` : ''}`;
  // The label column is as wide as the longest label needs (12 px sans-serif: at most ~7.2 px per
  // character), within 160 px and 45 % of the width; a longer label wraps (see labelLines).
  const left = Math.round(Math.min(width * 0.45, Math.max(160, ...rows.map((r) => labelOf(r).length * LABEL_CHAR_PX + 16))));
  const right = 30;
  const top = options.title ? 46 : 20;
  const rowH = 64;
  const plotW = width - left - right;

  // Shared time axis over every packet (and every unattributed observation).
  const times = rows.flatMap((r) => [...r.timeline.packets.map((p) => p.t), ...r.timeline.unattributed.map((o) => o.t)]);
  const maxInterval = Math.max(1, ...rows.map((r) => r.timeline.intervalMs));
  const t0 = times.length ? Math.min(...times) : 0;
  const t1 = times.length ? Math.max(...times) + maxInterval : 1000;
  const span = Math.max(1, t1 - t0);
  const x = (t: number) => left + ((t - t0) / span) * plotW;

  // Colours by source, in order of first appearance.
  const colours = new Map<string, string>();
  const counts = new Map<string, number>();
  for (const r of rows) {
    for (const p of r.timeline.packets) for (const s of p.observedSources) counts.set(s, (counts.get(s) ?? 0) + 1);
    for (const o of r.timeline.unattributed) counts.set(o.src, (counts.get(o.src) ?? 0) + 1);
  }
  for (const s of counts.keys()) colours.set(s, PALETTE[colours.size % PALETTE.length]!);

  const body: string[] = [];
  let leakTotal = 0;
  let lostTotal = 0;
  rows.forEach((row, i) => {
    const t = row.timeline;
    const y0 = top + i * rowH;
    const cy = y0 + rowH / 2;
    const allowed = row.allowedSources ?? options.allowedSources;
    const report = summarize(t, allowed);
    const leaked = report.leaks ?? { count: 0, packets: [], unattributed: [] };
    const leakSeqs = new Set(leaked.packets.map((p) => p.seq));
    const label = labelOf(row);
    body.push(`<g class="row" data-from="${escapeXml(t.from)}" data-to="${escapeXml(t.to)}">`);
    body.push(`<rect x="${left}" y="${y0 + 4}" width="${plotW}" height="${rowH - 8}" fill="#fafafa" stroke="#e0e0e0"/>`);
    const lines = labelLines(label, Math.floor((left - 16) / LABEL_CHAR_PX));
    lines.forEach((line, k) =>
      body.push(
        `<text x="${left - 8}" y="${cy - 4 - (lines.length - 1 - k) * 14}" text-anchor="end" class="label">${k === 0 ? `<title>${escapeXml(label)}</title>` : ''}${escapeXml(line)}</text>`,
      ),
    );
    const answered = report.answered;
    body.push(
      `<text x="${left - 8}" y="${cy + 12}" text-anchor="end" class="sub">${t.packets.length} packets / ${t.intervalMs} ms, ${answered} answered${leaked.count ? `, ${leaked.count} leaked` : ''}</text>`,
    );

    // Outages under the marks.
    const pk = t.packets;
    for (const o of report.outages) {
      const firstIdx = pk.findIndex((p) => p.seq === o.firstSeq);
      const lastIdx = pk.findIndex((p) => p.seq === o.lastSeq);
      const from = firstIdx > 0 ? pk[firstIdx - 1]!.t : o.start - t.intervalMs / 2;
      const to = lastIdx >= 0 && lastIdx + 1 < pk.length ? pk[lastIdx + 1]!.t : o.end + t.intervalMs / 2;
      const open = lastIdx === pk.length - 1;
      const xa = x(from);
      const w = Math.max(2, x(to) - xa);
      const text = `${durationText(o.durationMs)} (${o.lost} lost${open ? ', not resumed' : ''})`;
      body.push(
        `<rect class="outage" x="${fmt(xa)}" y="${y0 + 6}" width="${fmt(w)}" height="${rowH - 12}" fill="#ffcc80" fill-opacity="0.45"><title>outage seq ${o.firstSeq}-${o.lastSeq}: ${escapeXml(text)}</title></rect>`,
      );
      body.push(`<text class="outage-label" x="${fmt(xa + w / 2)}" y="${y0 + 16}" text-anchor="middle">${escapeXml(text)}</text>`);
    }

    // Packets.
    const r = Math.max(1.5, Math.min(4, (plotW / Math.max(1, span / t.intervalMs)) * 0.45));
    for (const p of pk) {
      const cx = fmt(x(p.t));
      const src = p.observedSources[0];
      const title = `seq ${p.seq} at +${((p.t - t0) / 1000).toFixed(3)} s: ${p.replied ? `answered${p.rttMs !== undefined ? ` in ${fmt(p.rttMs)} ms` : ''}` : 'no reply'}; observed ${p.observedSources.join(', ') || 'nowhere'}`;
      if (leakSeqs.has(p.seq)) {
        leakTotal++;
        body.push(
          `<rect class="leak" x="${fmt(x(p.t) - r)}" y="${fmt(cy - 3 * r)}" width="${fmt(2 * r)}" height="${fmt(6 * r)}" fill="${LEAK_COLOUR}" stroke="${LEAK_COLOUR}"><title>LEAK ${escapeXml(title)}</title></rect>`,
        );
      } else if (!p.replied) {
        lostTotal++;
        const stroke = src ? colours.get(src)! : LOST_COLOUR;
        body.push(
          `<circle class="lost" cx="${cx}" cy="${cy}" r="${fmt(r)}" fill="none" stroke="${stroke}" stroke-width="1"><title>${escapeXml(title)}</title></circle>`,
        );
      } else {
        const fill = src ? colours.get(src)! : '#000000';
        body.push(`<circle class="pkt" cx="${cx}" cy="${cy}" r="${fmt(r)}" fill="${fill}"><title>${escapeXml(title)}</title></circle>`);
      }
    }
    for (const o of leaked.unattributed) {
      leakTotal++;
      body.push(
        `<rect class="leak" x="${fmt(x(o.t) - r)}" y="${fmt(cy - 3 * r)}" width="${fmt(2 * r)}" height="${fmt(6 * r)}" fill="${LEAK_COLOUR}" stroke="${LEAK_COLOUR}"><title>LEAK unmatched ${escapeXml(`${o.p} from ${o.src}`)}</title></rect>`,
      );
    }
    body.push('</g>');
  });

  // Time axis.
  const axisY = top + rows.length * rowH + 6;
  const step = niceStep(span, 10);
  const axis: string[] = [`<line x1="${left}" y1="${axisY}" x2="${left + plotW}" y2="${axisY}" stroke="#444"/>`];
  for (let v = 0; v <= span; v += step) {
    const xv = fmt(x(t0 + v));
    axis.push(`<line x1="${xv}" y1="${axisY}" x2="${xv}" y2="${axisY + 5}" stroke="#444"/>`);
    axis.push(
      `<text x="${xv}" y="${axisY + 17}" text-anchor="middle" class="tick">${step >= 1000 ? `${v / 1000} s` : `${(v / 1000).toFixed(step >= 100 ? 1 : 2)} s`}</text>`,
    );
  }
  axis.push(
    `<text x="${left + plotW}" y="${axisY + 32}" text-anchor="end" class="sub">time since ${escapeXml(times.length ? new Date(t0).toISOString() : 'start')}</text>`,
  );

  // Legend.
  const legendY = axisY + 50;
  const legend: string[] = [];
  let lx = left;
  const item = (mark: string, text: string) => {
    legend.push(
      `<g class="legend-item">${mark.replaceAll('LX', String(lx))}<text x="${lx + 14}" y="${legendY + 4}" class="legend">${escapeXml(text)}</text></g>`,
    );
    lx += 24 + text.length * 6.6;
  };
  for (const [s, c] of colours) item(`<circle cx="LX" cy="${legendY}" r="5" fill="${c}"/>`, `${s} (${counts.get(s)})`);
  item(`<circle cx="LX" cy="${legendY}" r="5" fill="none" stroke="${LOST_COLOUR}"/>`, `lost (${lostTotal})`);
  item(`<rect x="${lx - 4}" y="${legendY - 9}" width="8" height="18" fill="${LEAK_COLOUR}"/>`, `leak: source not allowed (${leakTotal})`);
  item(`<rect x="${lx - 6}" y="${legendY - 7}" width="12" height="14" fill="#ffcc80" fill-opacity="0.45"/>`, 'outage');

  const height = legendY + 24;
  return [
    `<?xml version="1.0" encoding="UTF-8"?>`,
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" font-family="sans-serif">`,
    `<style>.label{font-size:12px;fill:#222}.sub{font-size:10px;fill:#666}.tick{font-size:10px;fill:#444}.legend{font-size:11px;fill:#222}.outage-label{font-size:10px;fill:#8a4b00}.title{font-size:15px;font-weight:bold}</style>`,
    `<rect x="0" y="0" width="${width}" height="${height}" fill="#ffffff"/>`,
    ...(options.title ? [`<text x="${left}" y="26" class="title">${escapeXml(options.title)}</text>`] : []),
    ...body,
    ...axis,
    ...legend,
    `</svg>`,
    '',
  ].join('\n');
}
