/**
 * The background API forwarder of one lab (started by `egresslab kubeconfig`, see background-forward.ts):
 * listens on 127.0.0.1:<port> and forwards each connection to the API server in the lab's
 * control-plane container. Writes its state file once listening; exits (removing it) on SIGTERM or
 * by itself when the lab is gone.
 * Usage: node background-forward-main.js --lab ID --state FILE [--port N]
 */
import { rmSync, writeFileSync, renameSync, readFileSync } from 'node:fs';
import { Lab, containerName } from '../lab/lab.js';
import { isNotFound } from '../docker/client.js';
import { Forward } from './port-forward.js';
import { API_PORT, controlPlaneNode } from './cluster.js';
import { programArgs } from '../util/args.js';

const CHECK_INTERVAL_MS = 2_000;

const { flags } = programArgs('background-forward-main.js', {
  flags: { lab: { value: true, required: true, arg: 'ID' }, state: { value: true, required: true, arg: 'FILE' }, port: { value: true, int: true } },
  about: "  Forwards 127.0.0.1:PORT to the API server of the lab's control plane; writes its state file once listening.",
});

function log(line: string): void {
  process.stdout.write(`${new Date().toISOString()} forwarder: ${line}\n`);
}

async function main(): Promise<void> {
  const labId = flags.lab!;
  const statePath = flags.state!;
  const lab = await Lab.attach(labId);
  const cp = controlPlaneNode(lab.topology).name;
  const wanted = flags.port ?? 0;
  let forward: Forward;
  try {
    forward = await Forward.start({ container: containerName(lab.id, cp), targetPort: API_PORT, port: wanted, log });
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'EADDRINUSE' || !wanted) throw error;
    log(`port ${wanted} is taken; using a free one`);
    forward = await Forward.start({ container: containerName(lab.id, cp), targetPort: API_PORT, port: 0, log });
  }
  const tmp = `${statePath}.${process.pid}.tmp`;
  writeFileSync(tmp, `${JSON.stringify({ lab: lab.id, pid: process.pid, port: forward.port, startedAt: new Date().toISOString() })}\n`);
  renameSync(tmp, statePath);
  log(`lab ${lab.id}: 127.0.0.1:${forward.port} -> ${cp}:${API_PORT} (pid ${process.pid})`);

  let stopping = false;
  const stop = async (why: string): Promise<void> => {
    if (stopping) return;
    stopping = true;
    log(`stopping: ${why} (${forward.connections} connections served)`);
    try {
      const s = JSON.parse(readFileSync(statePath, 'utf8')) as { pid?: number };
      if (s.pid === process.pid) rmSync(statePath, { force: true });
    } catch {
      // already gone
    }
    await forward.close();
    process.exit(0);
  };
  process.on('SIGTERM', () => void stop('SIGTERM'));
  process.on('SIGINT', () => void stop('SIGINT'));
  // The lab is gone when its control-plane container is (a killed node still exists: keep going).
  setInterval(() => {
    lab
      .container(cp)
      .inspect()
      .catch((error: unknown) => {
        if (isNotFound(error)) void stop(`lab ${lab.id} is gone`);
      });
  }, CHECK_INTERVAL_MS);
}

main().catch((error: unknown) => {
  process.stderr.write(`forwarder: ${(error as Error).stack ?? String(error)}\n`);
  process.exit(1);
});
