/**
 * Errors that carry what failed and why, in the style of execa: the message names the command or
 * field, the value, and what to do next; the cause is kept.
 *
 * FieldIssue is the one shape of a validation problem in the harness (topology, flags, lab and probe
 * options, manifests, the in-lab probe client's options): which field, the value found, what is wrong.
 */

export interface FieldIssue {
  /** Dotted path of the offending field, e.g. `nodes[1].address`. */
  path: string;
  /** The value found there (rendered with JSON.stringify in messages). */
  value: unknown;
  message: string;
}

function renderValue(value: unknown): string {
  if (value === undefined) return '(absent)';
  try {
    const s = JSON.stringify(value);
    return s.length > 80 ? `${s.slice(0, 77)}...` : s;
  } catch {
    return String(value);
  }
}

/** One field issue as text: field path, message and the value. */
export function issueText(issue: FieldIssue): string {
  return `${issue.path}: ${issue.message} (value: ${renderValue(issue.value)})`;
}

/** One field issue as a line: source, field path, message and the value. */
export function formatIssue(source: string, issue: FieldIssue): string {
  return `${source}: ${issueText(issue)}`;
}

/** A bad input (topology, flag, manifest): names every offending field; nothing was changed. */
export class ValidationError extends Error {
  override name = 'ValidationError';
  constructor(
    readonly source: string,
    readonly issues: FieldIssue[],
  ) {
    super(issues.map((i) => formatIssue(source, i)).join('\n'));
  }
}

/** A command run inside a lab container (or on the host) that failed. */
export class CommandError extends Error {
  override name = 'CommandError';
  constructor(
    readonly where: string,
    readonly command: string[],
    readonly exitCode: number | null,
    readonly stdout: string,
    readonly stderr: string,
    options?: { cause?: unknown },
  ) {
    const tail = (stderr.trim() || stdout.trim()).split('\n').slice(-8).join('\n');
    super(`command failed in ${where} (exit ${exitCode ?? 'signal'}): ${command.join(' ')}${tail ? `\n${tail}` : ''}`, options);
  }
}

/** A condition polled with a deadline that never became true. */
export class TimeoutError extends Error {
  override name = 'TimeoutError';
  constructor(
    readonly what: string,
    readonly timeoutMs: number,
    readonly lastSeen?: unknown,
    options?: { cause?: unknown },
  ) {
    super(`timed out after ${timeoutMs} ms waiting for ${what}${lastSeen !== undefined ? `; last seen: ${renderValue(lastSeen)}` : ''}`, options);
  }
}

/** The lab cannot do what was asked (missing kernel feature, unknown lab, ...). */
export class LabError extends Error {
  override name = 'LabError';
}
