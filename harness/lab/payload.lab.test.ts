/**
 * A lab on an engine reached over TCP, with the in-lab code shipped as a payload volume: what a
 * remote engine (DOCKER_HOST=tcp://… or ssh://…) needs. The engine here is the local one behind a
 * TCP→unix forwarder on 127.0.0.1 in this process (the shared dockerd is not reconfigured), so
 * every Docker call of the lab — containers, exec, the volume, the API forward, capture copies —
 * goes over TCP; EGRESSLAB_PAYLOAD=volume forces the payload (a loopback TCP address alone means
 * "this machine", which would bind).
 */
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { createServer, connect, type AddressInfo, type Server, type Socket } from 'node:net';
import { hostname } from 'node:os';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Lab } from './lab.js';
import { payloadVolumeName } from './payload.js';
import { prune } from './registry.js';
import { LABEL, docker, isNotFound } from '../docker/client.js';
import { startLabContainer } from '../docker/containers.js';
import { ensureImage } from '../docker/image.js';
import { topologyFromArg } from '../topology/load.js';
import { randomPublicAddress } from '../testing/lab.js';
import { clusterStatus } from '../cluster/cluster-status.js';
import { projectRoot } from '../util/paths.js';
import { LabError } from '../util/errors.js';

/** Where the real engine listens (the environment's DOCKER_HOST, else the default socket). */
function realEngine(): { path: string } | { host: string; port: number } {
  const h = process.env.DOCKER_HOST;
  if (!h) return { path: '/var/run/docker.sock' };
  if (h.startsWith('unix://')) return { path: h.slice('unix://'.length) };
  const u = new URL(h);
  if (u.protocol !== 'tcp:' && u.protocol !== 'http:') throw new Error(`this test forwards to a unix or plain tcp engine, not ${h}`);
  return { host: u.hostname, port: Number(u.port || 2375) };
}

describe('a lab through a TCP engine, in volume mode', () => {
  const saved = { DOCKER_HOST: process.env.DOCKER_HOST, EGRESSLAB_PAYLOAD: process.env.EGRESSLAB_PAYLOAD };
  const target = realEngine();
  const sockets = new Set<Socket>();
  let server: Server;
  let port = 0;
  let connections = 0;
  let lab: Lab | undefined;
  const id = `rv-${randomBytes(3).toString('hex')}`;

  beforeAll(async () => {
    // Half-open connections stay open: exec with stdin half-closes its side, then reads the output.
    server = createServer({ allowHalfOpen: true }, (client) => {
      connections++;
      const engine = connect({ ...target, allowHalfOpen: true });
      for (const s of [client, engine]) {
        sockets.add(s);
        s.on('close', () => sockets.delete(s));
        s.on('error', () => {
          client.destroy();
          engine.destroy();
        });
      }
      client.pipe(engine);
      engine.pipe(client);
    });
    await new Promise<void>((resolve) => server.listen({ host: '127.0.0.1', port: 0 }, resolve));
    port = (server.address() as AddressInfo).port;
    process.env.DOCKER_HOST = `tcp://127.0.0.1:${port}`;
    process.env.EGRESSLAB_PAYLOAD = 'volume';
    const topology = topologyFromArg('default');
    lab = await Lab.up({ topology, id });
  });

  afterAll(async () => {
    await lab?.down().catch(() => {});
    for (const s of sockets) s.destroy();
    await new Promise<void>((resolve) => server.close(() => resolve()));
    for (const [k, v] of Object.entries(saved)) {
      if (v === undefined) delete process.env[k];
      else process.env[k] = v;
    }
  });

  it('every Docker call went to the engine DOCKER_HOST names', () => {
    const modem = docker().modem as unknown as { host?: string; port?: string | number; socketPath?: string };
    expect({ host: modem.host, port: Number(modem.port), socketPath: modem.socketPath }).toEqual({ host: '127.0.0.1', port, socketPath: undefined });
    expect(connections).toBeGreaterThan(10);
    expect(lab!.payload).toMatchObject({ mode: 'volume', volume: payloadVolumeName(id) });
    expect(lab!.payload.hash).toMatch(/^[0-9a-f]{64}$/);
    // an engine on another machine cannot see this one's node binary: the image's runs the programs
    expect(lab!.nodeRuntime).toMatchObject({ kind: 'image', reason: expect.stringMatching(/payload volume/) });
  });

  it('no container bind-mounts anything; each lab container mounts the payload volume read-only', async () => {
    const list = await docker().listContainers({ all: true, filters: { label: [`${LABEL.lab}=${id}`] } });
    expect(list.length).toBe(lab!.plan.containers.length + 1); // + the wirer
    for (const c of list) {
      const info = await docker().getContainer(c.Id).inspect();
      const key = info.Config.Labels[LABEL.key];
      expect(
        info.Mounts.filter((m) => m.Type === 'bind'),
        key,
      ).toEqual([]);
      expect(info.HostConfig.Binds ?? [], key).toEqual([]);
      expect(
        info.Mounts.some((m) => m.Source.startsWith(projectRoot())),
        key,
      ).toBe(false);
      if (key === 'wirer') {
        expect(info.Mounts).toEqual([]);
        continue;
      }
      expect(
        info.Mounts.map((m) => ({ type: m.Type, name: m.Name, to: m.Destination, rw: m.RW })),
        key,
      ).toEqual([{ type: 'volume', name: payloadVolumeName(id), to: '/opt/egresslab', rw: false }]);
      expect(info.Config.Labels[LABEL.payload]).toBe(`volume:${lab!.payload.hash!.slice(0, 12)}`);
    }
    const vol = await docker().getVolume(payloadVolumeName(id)).inspect();
    expect(vol.Labels).toMatchObject({ [LABEL.lab]: id, [LABEL.payload]: `volume:${lab!.payload.hash!.slice(0, 12)}` });
    // What the nodes run from: the bundle (one file per program, no node_modules), read-only.
    const r = await lab!.exec('node-1', [
      'sh',
      '-c',
      'cat /opt/egresslab/payload.json; test ! -e /opt/egresslab/node_modules && echo no-node-modules; touch /opt/egresslab/x 2>&1 || true',
    ]);
    expect(JSON.parse(r.stdout.slice(0, r.stdout.lastIndexOf('}') + 1)).entries).toEqual(
      expect.arrayContaining(['agent/main', 'controller/main', 'harness/inlab/responder', 'harness/inlab/probe-client']),
    );
    expect(r.stdout).toContain('no-node-modules');
    expect(r.stdout).toMatch(/Read-only file system/);
  });

  it('the cluster works: pod egress leaves with the node IP, agents run, the API answers through the forward', async () => {
    const to = randomPublicAddress();
    const cap = await lab!.capture('internet', 'any', { filter: `host ${to}` });
    const [udp, tcp] = await Promise.all([lab!.probe('default/client-1', to, { proto: 'udp' }), lab!.probe('default/client-3', to, { proto: 'tcp' })]);
    const { packets, file } = await cap.stop();
    expect(udp).toMatchObject({ observedSource: '192.168.1.1', replyReceived: true, observedBy: 'internet' });
    expect(tcp).toMatchObject({ observedSource: '192.168.1.3', replyReceived: true, observedBy: 'internet' });
    // The capture was copied back to this machine through the API.
    expect(existsSync(file)).toBe(true);
    expect(packets.filter((p) => p.ip?.dst === to).map((p) => p.ip!.src)).toEqual(expect.arrayContaining(['192.168.1.1', '192.168.1.3']));
    const s = await clusterStatus(lab!, await lab!.api(), 'cluster-cluster1');
    expect(s.api).toEqual({ reachable: true });
    expect(s.controller.processRunning).toBe(true);
    expect(s.agents.map((a) => [a.node, a.processRunning, a.phase])).toEqual(lab!.topology.nodes.map((n) => [n.name, true, 'running']));
  });

  it('a killed node boots again from the same volume', async () => {
    await lab!.faults.kill('node-2');
    await lab!.faults.start('node-2');
    const r = await lab!.probe('paul/frontend-2', randomPublicAddress(), { proto: 'udp' });
    expect(r).toMatchObject({ observedSource: '192.168.1.2', replyReceived: true });
  });

  it('down removes the payload volume with everything else', async () => {
    await lab!.down();
    const filters = { label: [`${LABEL.lab}=${id}`] };
    const [containers, volumes] = await Promise.all([docker().listContainers({ all: true, filters }), docker().listVolumes({ filters })]);
    expect(containers).toEqual([]);
    expect(volumes.Volumes ?? []).toEqual([]);
    await expect(docker().getVolume(payloadVolumeName(id)).inspect()).rejects.toSatisfy(isNotFound);
  });
});

describe('payload leftovers and a bind mount the engine cannot see', () => {
  it('prune removes a payload volume whose lab never got containers (its owner died)', async () => {
    const child = spawn(process.execPath, ['-e', '0']);
    const deadPid = await new Promise<number>((resolve) => child.on('exit', () => resolve(child.pid!)));
    const id = `orph-${randomBytes(3).toString('hex')}`;
    const labels = { [LABEL.lab]: id, [LABEL.owner]: `${hostname()}:${deadPid}`, [LABEL.persistent]: 'false', [LABEL.role]: 'payload' };
    await docker().createVolume({ Name: payloadVolumeName(id), Labels: labels });
    // A volume of a live owner (a lab being brought up right now) is kept.
    const liveId = `live-${randomBytes(3).toString('hex')}`;
    await docker().createVolume({ Name: payloadVolumeName(liveId), Labels: { ...labels, [LABEL.lab]: liveId, [LABEL.owner]: `${hostname()}:${process.pid}` } });
    try {
      const removed = await prune();
      expect(removed).toContain(id);
      expect(removed).not.toContain(liveId);
      await expect(docker().getVolume(payloadVolumeName(id)).inspect()).rejects.toSatisfy(isNotFound);
      expect((await docker().getVolume(payloadVolumeName(liveId)).inspect()).Name).toBe(payloadVolumeName(liveId));
    } finally {
      await docker()
        .getVolume(payloadVolumeName(liveId))
        .remove()
        .catch(() => {});
      await docker()
        .getVolume(payloadVolumeName(id))
        .remove()
        .catch(() => {});
    }
  });

  it('bind mode on an engine that cannot see the checkout says to use the payload volume', async () => {
    const image = await ensureImage();
    const name = `egl-nobind-${randomBytes(3).toString('hex')}`;
    const missing = `/nonexistent-egresslab-${randomBytes(4).toString('hex')}`;
    const started = startLabContainer({
      name,
      image,
      hostname: 'x',
      command: ['true'],
      labels: { [LABEL.lab]: name },
      mounts: [{ type: 'bind', source: missing, target: '/opt/egresslab' }],
    });
    await expect(started).rejects.toThrow(LabError);
    await expect(started).rejects.toThrow(`the Docker engine cannot see ${missing}`);
    await expect(started).rejects.toThrow('EGRESSLAB_PAYLOAD=volume');
    expect(await docker().listContainers({ all: true, filters: { label: [`${LABEL.lab}=${name}`] } })).toEqual([]);
  });
});
