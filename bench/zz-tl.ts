import { Lab } from '../harness/lab/lab.js';
import { topologyFromArg } from '../harness/topology/load.js';
import { R } from '../lib/kube/client.js';
import { processLog } from '../harness/lab/process.js';
import { randomDisjointCidrs } from './cidrs.js';
import { masqConfigYaml } from '../harness/cluster/masq.js';
import { pollUntil } from '../harness/util/poll.js';
import { MASQ_TABLE, NONMASQ_SET } from '../agent/masq/constants.js';
const lab = await Lab.up({ topology: topologyFromArg('standard-agent'), id: `tl-${process.pid}` });
try {
  const api = await lab.api({ timeoutMs: 30000 });
  const big = randomDisjointCidrs(10000, 42);
  let cm: any = await api.create(R.configmaps, { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'ip-masq-agent', namespace: 'kube-system' }, data: { config: masqConfigYaml({ nonMasqueradeCIDRs: [] }) } });
  await new Promise((r) => setTimeout(r, 3000));
  for (let i = 0; i < 2; i++) {
    const cidrs = i % 2 ? [] : big;
    const probe = big.at(-1)!.split('/')[0];
    const w0 = Date.now();
    console.log('write sent', new Date(w0).toISOString());
    const w = api.update(R.configmaps, { ...cm, data: { config: masqConfigYaml({ nonMasqueradeCIDRs: cidrs }) } });
    const seen = await Promise.all(['node-1','node-2','node-3'].map((n) => pollUntil(async () => (await lab.exec(n, ['nft', 'get', 'element', 'ip', MASQ_TABLE, NONMASQ_SET, `{ ${probe} }`], { check: false })).exitCode === 0, { what: 'x', timeoutMs: 30000, intervalMs: 10, accept: (v) => v === (i % 2 === 0) }).then(() => new Date().toISOString())));
    cm = await w;
    console.log('kernel seen', seen);
    await new Promise((r) => setTimeout(r, 2000));
  }
  for (const n of ['node-1', 'node-2']) {
    const log = await processLog(lab, n, 'agent');
    console.log(`--- ${n}`); console.log(log.split('\n').slice(-14).join('\n'));
  }
  const clog = await processLog(lab, 'control-plane', 'controller').catch((e) => String(e));
  console.log('--- controller'); console.log(String(clog).split('\n').slice(-10).join('\n'));
} finally { await lab.down(); }
