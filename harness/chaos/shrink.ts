/**
 * Shrinking a failing chaos schedule (issue 15): fewer steps, shorter durations, earlier starts,
 * fewer nodes — while a `stillFails` callback (in a lab: re-run the schedule and check that the same
 * invariant breaks) says it still fails. Steps go by delta debugging (ddmin: drop halves, quarters,
 * ..., single steps); durations and start times by fast-check's own integer shrinker (the values it
 * tries towards the smallest allowed); nodes by moving a node's steps onto another node already in
 * the schedule. Every candidate meets the topology's constraints before it is tried. Pure apart
 * from the callback.
 */
import fc from 'fast-check';
import { INSTANT_KINDS, MIN_DURATION_MS, constraintIssues, stepNode, type ChaosUniverse, type Schedule, type Step } from './schedule.js';

/** Limits of a shrink. */
export interface ShrinkOptions {
  /** most calls of stillFails (default 200): each is a lab run, so this bounds the time */
  maxRuns?: number;
  /** how many integer shrink candidates to try per duration or start (default 16: enough to reach the exact boundary of a 10 s duration) */
  candidatesPerValue?: number;
  /** asked before each run: true ends the shrink there (a time budget, an abort), as an exhausted budget */
  stop?: () => boolean;
}

/** The smallest failing schedule found, and what it took. */
export interface ShrinkResult {
  schedule: Schedule;
  /** calls of stillFails */
  runs: number;
  /** steps before and after */
  stepsBefore: number;
  stepsAfter: number;
  /** the run budget ran out before a fixpoint */
  exhausted: boolean;
}

/** Distinct nodes a schedule's steps act on. */
export function nodesInvolved(s: Schedule): string[] {
  return [...new Set(s.steps.map(stepNode).filter((n): n is string => n !== undefined))].sort();
}

/** The values fast-check's integer shrinker tries for `value` in [min, value], smallest first as it proposes them. */
function integerCandidates(value: number, min: number, count: number): number[] {
  if (value <= min) return [];
  const arb = fc.integer({ min, max: value });
  const out: number[] = [];
  for (const v of arb.shrink(value, undefined)) {
    if (out.length >= count) break;
    if (v.value < value) out.push(v.value);
  }
  return out;
}

const sortSteps = (steps: Step[]): Step[] => [...steps].sort((a, b) => a.at - b.at);

/**
 * Shrinks `schedule` while `stillFails` holds. `schedule` itself is assumed to fail (it is not
 * re-run). Greedy: each pass keeps the first smaller candidate that still fails, until no pass finds
 * one or `maxRuns` calls were made.
 */
export async function shrinkSchedule(
  schedule: Schedule,
  u: ChaosUniverse,
  stillFails: (s: Schedule) => Promise<boolean>,
  o: ShrinkOptions = {},
): Promise<ShrinkResult> {
  const maxRuns = o.maxRuns ?? 200;
  const perValue = o.candidatesPerValue ?? 16;
  let runs = 0;
  let stopped = false;
  let current: Schedule = { ...schedule, steps: sortSteps(schedule.steps) };
  delete current.seed;
  const tried = new Set<string>();

  /** Tries a candidate: valid, new, within budget, and still failing → it becomes the current schedule. */
  const attempt = async (steps: Step[]): Promise<boolean> => {
    if (runs >= maxRuns || stopped) return false;
    const candidate: Schedule = { version: 1, topology: current.topology, steps: sortSteps(steps) };
    const key = JSON.stringify(candidate.steps);
    if (tried.has(key) || constraintIssues(candidate, u).length) return false;
    tried.add(key);
    if (o.stop?.()) {
      stopped = true;
      return false;
    }
    runs++;
    if (!(await stillFails(candidate))) return false;
    current = candidate;
    return true;
  };

  // ddmin over the steps: remove chunks of size n/2, n/4, ..., 1
  const removeSteps = async (): Promise<boolean> => {
    let progress = false;
    let chunk = Math.max(1, Math.floor(current.steps.length / 2));
    while (chunk >= 1) {
      let removed = false;
      for (let start = 0; start < current.steps.length; start += chunk) {
        const steps = [...current.steps.slice(0, start), ...current.steps.slice(start + chunk)];
        if (await attempt(steps)) {
          removed = progress = true;
          start -= chunk; // the same position now holds the next chunk
        }
      }
      if (!removed) chunk = Math.floor(chunk / 2);
      if (current.steps.length === 0) break;
    }
    return progress;
  };

  const shrinkValues = async (): Promise<boolean> => {
    let progress = false;
    for (let i = 0; i < current.steps.length; i++) {
      const s = current.steps[i]!;
      if (!INSTANT_KINDS.has(s.kind) && !s.keep) {
        for (const d of integerCandidates(s.durationMs, MIN_DURATION_MS, perValue)) {
          if (await attempt(current.steps.map((x, j) => (j === i ? { ...x, durationMs: d } : x)))) {
            progress = true;
            break;
          }
        }
      }
      const now = current.steps[i]!;
      const earliest = i > 0 ? current.steps[i - 1]!.at : 0;
      for (const at of integerCandidates(now.at, earliest, perValue)) {
        if (await attempt(current.steps.map((x, j) => (j === i ? { ...x, at } : x)))) {
          progress = true;
          break;
        }
      }
    }
    return progress;
  };

  const mergeNodes = async (): Promise<boolean> => {
    const nodes = nodesInvolved(current);
    for (const from of [...nodes].reverse()) {
      for (const to of nodes) {
        if (to === from) continue;
        const steps = current.steps.map((x) => (stepNode(x) === from ? ({ ...x, node: to } as Step) : x));
        if (await attempt(steps)) return true;
      }
    }
    return false;
  };

  for (;;) {
    const a = await removeSteps();
    const b = await mergeNodes();
    const c = await shrinkValues();
    if ((!a && !b && !c) || runs >= maxRuns || stopped) break;
  }
  return { schedule: current, runs, stepsBefore: schedule.steps.length, stepsAfter: current.steps.length, exhausted: runs >= maxRuns || stopped };
}
