// Authentication (static bearer tokens) and authorization.
//
// Tokens file: the kube-apiserver static token file format, one line per token:
//     token,user,uid,"group1,group2"
// Blank lines and lines starting with # are ignored.
//
// Authorization:
//   - group system:masters: everything;
//   - user system:node:<name> (a node's agent): read everything; write only its own Lease
//     (kube-node-lease/<name>), its own AnthosNetworkGatewayNode (<name>, in the gateway namespace)
//     and Events whose involvedObject is its own Node, both before and after the write (as
//     NodeRestriction checks the stored object: a node cannot take over another node's Event);
//   - any other authenticated user: read-only.
import { readFileSync } from 'node:fs';
import type { ResourceDef } from './resources.js';
import type { KubeObject } from '../../lib/kube/types.js';
import { NODE_LEASE_NAMESPACE } from '../../lib/kube/well-known.js';

export interface UserInfo {
  name: string;
  uid: string;
  groups: string[];
}

export type Verb = 'get' | 'list' | 'watch' | 'create' | 'update' | 'patch' | 'delete';

export function parseTokensFile(text: string): Map<string, UserInfo> {
  const out = new Map<string, UserInfo>();
  text.split(/\r?\n/).forEach((raw, i) => {
    const line = raw.trim();
    if (line === '' || line.startsWith('#')) return;
    const fields = parseCsvLine(line);
    if (fields.length < 2 || !fields[0] || !fields[1]) throw new Error(`tokens file line ${i + 1}: expected token,user[,uid[,"groups"]]`);
    const groups = (fields[3] ?? '')
      .split(',')
      .map((g) => g.trim())
      .filter(Boolean);
    out.set(fields[0], { name: fields[1], uid: fields[2] || fields[1], groups });
  });
  return out;
}

function parseCsvLine(line: string): string[] {
  const out: string[] = [];
  let cur = '';
  let quoted = false;
  for (let i = 0; i < line.length; i++) {
    const c = line[i]!;
    if (quoted) {
      if (c === '"' && line[i + 1] === '"') {
        cur += '"';
        i++;
      } else if (c === '"') quoted = false;
      else cur += c;
    } else if (c === '"') quoted = true;
    else if (c === ',') {
      out.push(cur.trim());
      cur = '';
    } else cur += c;
  }
  out.push(cur.trim());
  return out;
}

export class TokenAuthenticator {
  constructor(private tokens: Map<string, UserInfo>) {}

  static fromFile(path: string): TokenAuthenticator {
    return new TokenAuthenticator(parseTokensFile(readFileSync(path, 'utf8')));
  }

  reload(tokens: Map<string, UserInfo>): void {
    this.tokens = tokens;
  }

  authenticate(authorization: string | undefined): UserInfo | undefined {
    if (!authorization) return undefined;
    const m = /^Bearer\s+(\S+)\s*$/i.exec(authorization);
    if (!m) return undefined;
    const u = this.tokens.get(m[1]!);
    if (!u) return undefined;
    return { ...u, groups: [...u.groups, 'system:authenticated'] };
  }
}

export function nodeNameOf(user: UserInfo): string | undefined {
  const m = /^system:node:(.+)$/.exec(user.name);
  return m ? m[1] : undefined;
}

const READ_VERBS: readonly Verb[] = ['get', 'list', 'watch'];

export interface AuthzRequest {
  user: UserInfo;
  verb: Verb;
  resource: ResourceDef;
  namespace?: string;
  name?: string;
  subresource?: string;
  /** the object after the write (create/update/patch) or before it (delete), for object-level rules */
  object?: KubeObject;
  /** the stored object an update replaces: a node may not take over another node's object (NodeRestriction) */
  old?: KubeObject;
  /** the one namespace where a node writes its AnthosNetworkGatewayNode (default kube-system) */
  gatewayNamespace?: string;
}

function involvedOf(o: KubeObject): string {
  const io = (o as { involvedObject?: { kind?: unknown; name?: unknown } }).involvedObject;
  return io ? `${String(io.kind)} "${String(io.name)}"` : 'missing';
}

function aboutNode(o: KubeObject, node: string): boolean {
  const io = (o as { involvedObject?: { kind?: unknown; name?: unknown } }).involvedObject;
  return !!io && io.kind === 'Node' && io.name === node;
}

/** Returns undefined when allowed, else the reason for a 403. */
export function authorize(req: AuthzRequest): string | undefined {
  const { user, verb, resource } = req;
  if (user.groups.includes('system:masters')) return undefined;
  if (READ_VERBS.includes(verb)) return undefined;
  const node = nodeNameOf(user);
  if (node === undefined) return 'this identity is read-only (only system:masters may write)';
  const own = `a node may only write its own Lease (${NODE_LEASE_NAMESPACE}/${node}), its own AnthosNetworkGatewayNode (${node}) and Events about its own Node`;
  if (resource.group === 'coordination.k8s.io' && resource.plural === 'leases') {
    if (req.namespace === NODE_LEASE_NAMESPACE && req.name === node) return undefined;
    return own;
  }
  if (resource.group === 'networking.gke.io' && resource.plural === 'anthosnetworkgatewaynodes') {
    const gwNs = req.gatewayNamespace ?? 'kube-system';
    if (req.name === node && verb !== 'delete' && (req.namespace === undefined || req.namespace === gwNs)) return undefined;
    if (req.name === node && verb !== 'delete') return `${own}, in namespace ${gwNs} only (not ${JSON.stringify(req.namespace)})`;
    return own;
  }
  if (resource.group === '' && resource.plural === 'events') {
    if (verb === 'delete') return own;
    // NodeRestriction checks the stored object too: an Event about another node stays that node's,
    // whatever the new involvedObject says
    if (req.old !== undefined && !aboutNode(req.old, node)) return `${own}; the stored Event's involvedObject is ${involvedOf(req.old)}`;
    if (req.object === undefined) return undefined; // object-level check follows once the object is known
    if (aboutNode(req.object, node)) return undefined;
    return `${own}; this Event's involvedObject is ${involvedOf(req.object)}`;
  }
  return own;
}
