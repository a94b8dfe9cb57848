/**
 * A schedule as the executor runs it (issue 15), pure: every step done at its time and undone after
 * its duration (unless kept; instant steps have no undo), in time order, each action on a lane —
 * the node it acts on, or the API — so that actions on one lane run one after the other while the
 * lanes run side by side; and the undo of whatever is still in force when a run ends early.
 */
import { INSTANT_KINDS, stepNode, type Schedule, type Step } from './schedule.js';

/** One action of a run: step `step` done or undone at `at` ms after the start, on `lane`. */
export interface PlannedAction {
  at: number;
  step: number;
  phase: 'do' | 'undo';
  /** actions of one lane never overlap: a node's name, or "api" (churn and controller restarts: the API is down while the controller restarts) */
  lane: string;
}

/** The lane of a step: its node, else the API. */
export function laneOf(s: Step): string {
  return stepNode(s) ?? 'api';
}

/**
 * The actions of a schedule in the order they start: by time; at one time, undos before dos (a node
 * freed at t may be broken again at t), then by step. Kept and instant steps have no undo.
 */
export function executionPlan(schedule: Schedule): PlannedAction[] {
  const out: PlannedAction[] = [];
  schedule.steps.forEach((s, i) => {
    out.push({ at: s.at, step: i, phase: 'do', lane: laneOf(s) });
    if (!s.keep && !INSTANT_KINDS.has(s.kind)) out.push({ at: s.at + s.durationMs, step: i, phase: 'undo', lane: laneOf(s) });
  });
  return out.sort((a, b) => a.at - b.at || (a.phase === b.phase ? 0 : a.phase === 'undo' ? -1 : 1) || a.step - b.step);
}

/**
 * What to undo when a run stops with `done` steps done and `undone` undone (an error, an abort):
 * every done step that has an undo and was not undone yet, latest first.
 */
export function pendingUndos(schedule: Schedule, done: ReadonlySet<number>, undone: ReadonlySet<number>): number[] {
  return [...done]
    .filter((i) => !undone.has(i) && !schedule.steps[i]!.keep && !INSTANT_KINDS.has(schedule.steps[i]!.kind))
    .sort((a, b) => schedule.steps[b]!.at - schedule.steps[a]!.at || b - a);
}

/** Whether a step takes its node off the wire (its probes must be read before: /run is a tmpfs, a booted node has lost them). */
export function takesNodeDown(s: Step): boolean {
  return s.kind === 'node-kill' || s.kind === 'node-stop';
}
