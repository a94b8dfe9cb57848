import { startTestController } from '../controller/testing.js';
import { R } from '../lib/kube/client.js';
import { randomDisjointCidrs } from './cidrs.js';
import { masqConfigYaml } from '../harness/cluster/masq.js';
const t = await startTestController();
const big = masqConfigYaml({ nonMasqueradeCIDRs: randomDisjointCidrs(10000, 42) });
const small = masqConfigYaml({ nonMasqueradeCIDRs: [] });
let cm: any = await t.admin.create(R.configmaps, { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'ip-masq-agent', namespace: 'kube-system' }, data: { config: small } });
const nodes = [t.admin, t.admin, t.admin];
let got: number[] = [];
let w0 = 0;
const infs = nodes.map((c, i) => c.informer(R.configmaps, { namespace: 'kube-system' }, { onUpdate: () => { got[i] = performance.now() - w0; } }));
await Promise.all(infs.map((i) => i.hasSynced()));
for (let r = 0; r < 40; r++) {
  got = [];
  w0 = performance.now();
  cm = await t.admin.update(R.configmaps, { ...cm, data: { config: r % 2 ? small : big } });
  const ans = performance.now() - w0;
  while (got.filter((x) => x !== undefined).length < 3) await new Promise((r) => setTimeout(r, 1));
  if (r > 33) console.log(`round ${r} ${r % 2 ? 'small' : 'big'}: answered ${ans.toFixed(1)} ms, informers ${got.map((x) => x.toFixed(1)).join(' ')}`);
}
infs.forEach((i) => i.stop());
await t.close();
