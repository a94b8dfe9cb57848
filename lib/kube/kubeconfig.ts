// kubeconfig text for a server URL, its CA certificate and a bearer token.
import { stringify } from 'yaml';

export interface KubeconfigSpec {
  server: string;
  /** PEM of the CA that signed the serving certificate (omit for http://) */
  caCert?: string;
  token: string;
  clusterName?: string;
  userName?: string;
  namespace?: string;
}

export function kubeconfigYaml(s: KubeconfigSpec): string {
  const cluster = s.clusterName ?? 'egresslab';
  const user = s.userName ?? 'admin';
  const clusterEntry: Record<string, string> = { server: s.server };
  if (s.caCert) clusterEntry['certificate-authority-data'] = Buffer.from(s.caCert).toString('base64');
  return stringify({
    apiVersion: 'v1',
    kind: 'Config',
    clusters: [{ name: cluster, cluster: clusterEntry }],
    users: [{ name: user, user: { token: s.token } }],
    contexts: [{ name: cluster, context: { cluster, user, ...(s.namespace ? { namespace: s.namespace } : {}) } }],
    'current-context': cluster,
    preferences: {},
  });
}
