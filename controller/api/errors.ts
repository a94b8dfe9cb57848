// Kubernetes Status errors with the right HTTP codes and reasons.
import { formatProblem, type FieldProblem } from '../logic/validation.js';
import type { Status } from '../../lib/kube/types.js';

export class ApiError extends Error {
  constructor(
    readonly code: number,
    readonly reason: string,
    message: string,
    readonly details?: Status['details'],
  ) {
    super(message);
  }

  toStatus(): Status {
    const s: Status = { kind: 'Status', apiVersion: 'v1', metadata: {}, status: 'Failure', message: this.message, reason: this.reason, code: this.code };
    if (this.details) s.details = this.details;
    return s;
  }
}

export interface Qualified {
  /** plural resource, e.g. "egressnatpolicies" */
  resource: string;
  group: string;
  kind: string;
}

export function qualifiedResource(q: Qualified): string {
  return q.group ? `${q.resource}.${q.group}` : q.resource;
}

export function qualifiedKind(q: Qualified): string {
  return q.group ? `${q.kind}.${q.group}` : q.kind;
}

export const errors = {
  badRequest: (msg: string) => new ApiError(400, 'BadRequest', msg),
  unauthorized: () => new ApiError(401, 'Unauthorized', 'Unauthorized'),
  forbidden: (user: string, verb: string, q: Qualified, name: string | undefined, ns: string | undefined, why: string) =>
    new ApiError(
      403,
      'Forbidden',
      `${qualifiedResource(q)}${name ? ` "${name}"` : ''} is forbidden: User "${user}" cannot ${verb} resource "${q.resource}" in API group "${q.group}"${
        ns ? ` in the namespace "${ns}"` : ' at the cluster scope'
      }: ${why}`,
      { name, group: q.group, kind: q.resource },
    ),
  notFound: (q: Qualified, name: string, extra = '') =>
    new ApiError(404, 'NotFound', `${qualifiedResource(q)} "${name}" not found${extra}`, { name, group: q.group, kind: q.resource }),
  pathNotFound: (path: string) => new ApiError(404, 'NotFound', `the server could not find the requested resource (${path})`),
  alreadyExists: (q: Qualified, name: string, extra = '') =>
    new ApiError(409, 'AlreadyExists', `${qualifiedResource(q)} "${name}" already exists${extra}`, { name, group: q.group, kind: q.resource }),
  conflict: (q: Qualified, name: string, why = 'the object has been modified; please apply your changes to the latest version and try again') =>
    new ApiError(409, 'Conflict', `Operation cannot be fulfilled on ${qualifiedResource(q)} "${name}": ${why}`, { name, group: q.group, kind: q.resource }),
  invalid: (q: Qualified, name: string, problems: readonly FieldProblem[]) => {
    const msgs = problems.map(formatProblem);
    const joined = msgs.length === 1 ? msgs[0]! : `[${msgs.join(', ')}]`;
    return new ApiError(422, 'Invalid', `${qualifiedKind(q)} "${name}" is invalid: ${joined}`, {
      name,
      group: q.group,
      kind: q.kind,
      causes: problems.map((p, i) => ({ reason: p.type, message: msgs[i]!.slice(p.field.length + 2), field: p.field })),
    });
  },
  methodNotAllowed: (msg: string) => new ApiError(405, 'MethodNotAllowed', msg),
  unsupportedMediaType: (ct: string, accepted: readonly string[]) =>
    new ApiError(
      415,
      'UnsupportedMediaType',
      `the body of the request was in an unknown format (${ct}) - accepted media types include: ${accepted.join(', ')}`,
    ),
  gone: (msg: string) => new ApiError(410, 'Expired', msg),
  internal: (msg: string) => new ApiError(500, 'InternalError', `Internal error occurred: ${msg}`),
};
