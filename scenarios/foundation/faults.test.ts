/**
 * Every fault changes what a probe observes, and undoing it restores it. The probe: node-1's host
 * network to node-2 (192.168.1.2) over ICMP and TCP, and node-2's own egress to the internet.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Lab } from '../../harness/lab/lab.js';
import { startTestLab } from '../../harness/testing/lab.js';
import { LabError } from '../../harness/util/errors.js';
import { pollUntil } from '../../harness/util/poll.js';

let lab: Lab;
beforeAll(async () => {
  lab = await startTestLab('foundation', 'flt');
});
afterAll(async () => {
  await lab?.down();
});

async function reachable(): Promise<boolean> {
  const r = await lab.probe('node-1', '192.168.1.2', { proto: 'icmp', timeoutMs: 400 });
  return r.replyReceived;
}

/** Restoring may take a moment (ARP, a booting container): poll, with a deadline. */
async function becomesReachable(): Promise<void> {
  await pollUntil(reachable, { what: 'node-2 to answer node-1 again', timeoutMs: 15_000, intervalMs: 100 });
}

describe('faults on node-2', () => {
  it('starts healthy', async () => {
    expect(await reachable()).toBe(true);
    const r = await lab.probe('node-2', '8.8.8.8', { proto: 'tcp' });
    expect(r).toMatchObject({ observedSource: '192.168.1.2', replyReceived: true });
  });

  it('kill (SIGKILL) takes it away; start boots and re-wires it, pods included', async () => {
    await lab.faults.kill('node-2');
    try {
      expect((await lab.container('node-2').inspect()).State.Running).toBe(false);
      expect(await reachable()).toBe(false);
    } finally {
      await lab.faults.start('node-2'); // undone even when an assertion failed: the next cases need node-2
    }
    await becomesReachable();
    const pod = await lab.probe('alice/frontend-1', '10.10.11.1', { proto: 'udp' });
    expect(pod).toMatchObject({ observedSource: '10.10.10.1', replyReceived: true });
  });

  it('stop (clean shutdown): its programs get SIGTERM and exit, its links go down, then it goes away; start brings it back', async () => {
    // a program of the node that writes down the SIGTERM it got (in the container's own filesystem, kept across the stop)
    await lab.exec('node-2', ['rm', '-f', '/var/tmp/flt-term', '/var/tmp/flt-ready']);
    await lab.spawn('node-2', ['sh', '-c', 'trap "echo TERM > /var/tmp/flt-term; exit 0" TERM; : > /var/tmp/flt-ready; while :; do sleep 0.05; done']);
    await pollUntil(async () => (await lab.exec('node-2', ['test', '-e', '/var/tmp/flt-ready'], { check: false })).exitCode === 0, {
      what: "node-2's program to trap SIGTERM",
      timeoutMs: 5_000,
      intervalMs: 50,
    });
    const how = await lab.faults.stop('node-2', 5);
    try {
      expect(how).toBe('clean');
      expect(await reachable()).toBe(false);
      // 0: the node's init ended it after its programs exited and every link went down (137: killed)
      expect((await lab.container('node-2').inspect()).State.ExitCode).toBe(0);
    } finally {
      await lab.faults.start('node-2');
    }
    expect((await lab.exec('node-2', ['cat', '/var/tmp/flt-term'])).stdout.trim()).toBe('TERM');
    await becomesReachable();
  });

  it('stop of a node whose program ignores SIGTERM: powered off once the grace is over; start brings it back', async () => {
    await lab.spawn('node-2', ['sh', '-c', "trap '' TERM; exec sleep 600"]);
    // the exact command line: the shell's own ("... exec sleep 600") is there before its trap is
    await pollUntil(async () => (await lab.exec('node-2', ['pgrep', '-x', '-f', 'sleep 600'], { check: false })).exitCode === 0, {
      what: "node-2's program ignoring SIGTERM to run",
      timeoutMs: 5_000,
      intervalMs: 50,
    });
    const t0 = Date.now();
    const how = await lab.faults.stop('node-2', 1);
    const took = Date.now() - t0;
    try {
      expect(how).toBe('powered-off');
      expect(await reachable()).toBe(false);
      expect((await lab.container('node-2').inspect()).State.ExitCode, 'SIGKILLed (128 + 9)').toBe(137);
      expect(took, 'stop waited the grace before the power-off').toBeGreaterThanOrEqual(1_000);
    } finally {
      await lab.faults.start('node-2');
    }
    await becomesReachable();
  });

  it('pause hangs it: its kernel still answers ping, its processes answer nothing; unpause resumes it', async () => {
    const target = lab.responderFor('192.168.1.2')!;
    await lab.ensureResponder(target);
    await lab.faults.pause('node-2');
    try {
      expect((await lab.container('node-2').inspect()).State.Paused).toBe(true);
      // A hung node: every process is frozen, but the kernel still answers ICMP echo and ARP.
      expect(await reachable()).toBe(true);
      const service = await lab.probe('node-1', '192.168.1.2', { proto: 'udp', timeoutMs: 400 });
      expect(service.replyReceived).toBe(false);
    } finally {
      await lab.faults.unpause('node-2');
    }
    await pollUntil(async () => (await lab.probe('node-1', '192.168.1.2', { proto: 'udp', timeoutMs: 400 })).replyReceived, {
      what: "node-2's responder to answer after unpause",
      timeoutMs: 10_000,
    });
  });

  it('partition cuts it off the segment while its link stays up; heal restores it', async () => {
    await lab.faults.partition('node-2');
    try {
      expect(await lab.faults.partitioned('node-2')).toBe(true);
      expect(await reachable()).toBe(false);
      const link = await lab.exec('node-2', ['cat', '/sys/class/net/eth0/operstate']);
      expect(link.stdout.trim()).toBe('up');
      // Its own egress is cut too.
      const out = await lab.probe('node-2', '8.8.8.8', { proto: 'udp', timeoutMs: 400 });
      expect(out.replyReceived).toBe(false);
      expect(out.observedSource).toBeUndefined();
    } finally {
      await lab.faults.heal('node-2');
    }
    expect(await lab.faults.partitioned('node-2')).toBe(false);
    await becomesReachable();
  });

  it('100% loss drops everything; restore brings replies back; 50% loses some', async () => {
    await lab.faults.degrade('node-2', { lossPercent: 100 });
    try {
      expect(await reachable()).toBe(false);
    } finally {
      await lab.faults.restore('node-2');
    }
    await becomesReachable();
    await lab.faults.degrade('node-2', { lossPercent: 50 });
    let ratio: number;
    try {
      const p = await lab.continuousProbe('node-1', '192.168.1.2', { proto: 'udp', intervalMs: 10, timeoutMs: 300 });
      await pollUntil(async () => (await p.records()).length >= 100, { what: '100 probe packets settled', timeoutMs: 20_000, intervalMs: 100 });
      const t = await p.stop();
      ratio = t.packets.filter((x) => x.replied).length / t.packets.length;
    } finally {
      await lab.faults.restore('node-2');
    }
    // Each round trip survives with probability 0.25 (two directions at 50%).
    expect(ratio).toBeGreaterThan(0.05);
    expect(ratio).toBeLessThan(0.6);
    await becomesReachable();
  });

  it('delay adds latency where the kernel has netem, and says clearly when it does not', async () => {
    const before = await lab.probe('node-1', '192.168.1.2', { proto: 'udp' });
    expect(before.replyReceived).toBe(true);
    let supported = true;
    try {
      await lab.faults.degrade('node-2', { delayMs: 100 });
    } catch (error) {
      supported = false;
      expect(error).toBeInstanceOf(LabError);
      expect((error as Error).message).toMatch(/sch_netem/);
    }
    try {
      if (supported) {
        const slow = await lab.probe('node-1', '192.168.1.2', { proto: 'udp' });
        expect(slow.rttMs).toBeGreaterThanOrEqual(200);
      }
    } finally {
      await lab.faults.restore('node-2');
    }
    const after = await lab.probe('node-1', '192.168.1.2', { proto: 'udp' });
    expect(after.replyReceived).toBe(true);
    expect(after.rttMs).toBeLessThan(100);
  });

  it('restarting a process: its service is gone while stopped and back after restart', async () => {
    const target = lab.responderFor('192.168.1.2')!;
    await lab.ensureResponder(target);
    const name = Lab.responderProcess(target);
    expect((await lab.probe('node-1', '192.168.1.2', { proto: 'tcp' })).replyReceived).toBe(true);
    await lab.faults.stopProcess('node-2', name);
    try {
      const down = await lab.probe('node-1', '192.168.1.2', { proto: 'tcp', timeoutMs: 500 });
      expect(down.replyReceived).toBe(false);
      expect(down.error).toBe('ECONNREFUSED');
    } finally {
      await lab.faults.restartProcess('node-2', name);
    }
    await pollUntil(async () => (await lab.probe('node-1', '192.168.1.2', { proto: 'tcp' })).replyReceived, {
      what: 'the restarted responder to answer',
      timeoutMs: 10_000,
    });
  });

  it('refuses faults on things that are not nodes, naming them', async () => {
    await expect(lab.faults.kill('node-9')).rejects.toThrow(/node: .*is not a node of lab/);
    await expect(lab.faults.degrade('node-2', { lossPercent: 150 })).rejects.toThrow(/lossPercent: must be 0-100/);
  });
});
