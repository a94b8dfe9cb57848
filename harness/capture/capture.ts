/**
 * Packet capture on any lab interface (tcpdump into a pcap file inside the container), copied to
 * the host's artifacts folder when stopped and decoded for assertions.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import type { LabRuntime, Place } from '../lab/runtime.js';
import { processLog, startProcess, stopProcess } from '../lab/process.js';
import { decodePacket, readPcap, type DecodedPacket } from '../pcap/pcap.js';
import { RUN_DIR, parseTcpdumpStats } from '../inlab/protocol.js';
import { LabError } from '../util/errors.js';
import { pollUntil } from '../util/poll.js';
import { artifactsDir } from '../util/paths.js';
import { WIRER } from '../topology/plan.js';
import { HOST_NETNS_PID } from '../lab/wiring.js';

/** What a Capture records: tcpdump filter, snap length, or the host's network namespace. */
export interface CaptureOptions {
  /** tcpdump filter expression. */
  filter?: string;
  /** Capture in the host's network namespace instead (through the wirer): to prove nothing leaves the lab. */
  hostNetns?: boolean;
  snaplen?: number;
}

/** A stopped capture: the pcap on the host and its decoded packets. */
export interface CaptureResult {
  /** The pcap copied to the host. */
  file: string;
  packets: DecodedPacket[];
  /** What tcpdump said the kernel dropped (always 0: stop() throws otherwise). */
  droppedByKernel: number;
}

/**
 * The kernel drop count tcpdump printed when it exited ("N packets dropped by kernel"), from its log;
 * undefined when the line is missing (tcpdump did not end normally: it crashed or was killed).
 */
export function kernelDrops(log: string): number | undefined {
  return parseTcpdumpStats(log)?.dropped;
}

/**
 * Whether a capture's packets can be trusted: it dropped none, and tcpdump ended normally. A capture
 * that missed packets proves nothing about the ones it missed (the leak may be among them), so this
 * is an error of the test, never "nothing observed". Returns the drop count (0).
 */
export function checkCaptureLog(log: string, where: string): number {
  const dropped = kernelDrops(log);
  if (dropped === undefined) {
    const tail = log.trim().split('\n').slice(-5).join(' | ');
    throw new LabError(
      `the capture at ${where} ended without tcpdump's statistics (did tcpdump crash?): its packets cannot be trusted${tail ? `; its log: ${tail}` : ''}`,
    );
  }
  if (dropped > 0)
    throw new LabError(
      `the capture at ${where} dropped ${dropped} packet${dropped === 1 ? '' : 's'} (kernel): what it saw proves nothing about the ones it missed`,
    );
  return dropped;
}

/** A tcpdump capture on one interface of a node or pod, decoded when stopped. */
export class Capture {
  private result?: Promise<CaptureResult>;
  private constructor(
    private readonly lab: LabRuntime,
    readonly place: Place,
    readonly iface: string,
    private readonly id: string,
  ) {}

  private get remote(): string {
    return `${RUN_DIR}/${this.id}.pcap`;
  }

  /** Starts tcpdump on `iface` at `where` (node, pod, or the host with `hostNetns`) and waits until it listens. */
  static async start(lab: LabRuntime, where: string, iface: string, options: CaptureOptions = {}): Promise<Capture> {
    const place: Place = options.hostNetns ? { container: WIRER, label: 'host' } : lab.place(where);
    const id = `cap-${randomBytes(4).toString('hex')}`;
    const c = new Capture(lab, place, iface, id);
    const argv = [
      ...(options.hostNetns ? ['sh', '-c', `exec nsenter -t ${HOST_NETNS_PID} -n "$@"`, 'sh'] : []),
      // --immediate-mode: packets reach the file as they arrive (not in ~1 s batches, the last of
      // which tcpdump drops when stopped right after the traffic).
      'tcpdump',
      '-i',
      iface,
      '-n',
      '-U',
      '--immediate-mode',
      '-s',
      String(options.snaplen ?? 262),
      '-w',
      c.remote,
      ...(options.filter ? [options.filter] : []),
    ];
    await startProcess(lab, place, id, argv);
    // tcpdump writes the file header once it is capturing.
    await pollUntil(
      async () =>
        (await lab.exec(place.container, ['sh', '-c', `test $(stat -c %s ${c.remote} 2>/dev/null || echo 0) -ge 24`], { check: false })).exitCode === 0,
      {
        what: `capture on ${place.label}:${iface} to start`,
        timeoutMs: 10_000,
      },
    );
    return c;
  }

  /**
   * Stops tcpdump, copies the pcap to artifacts/<lab>/captures/, decodes it. Idempotent. Throws a
   * LabError (after the copy, which stays for diagnosis) when the kernel dropped packets or tcpdump did
   * not print its statistics.
   */
  stop(): Promise<CaptureResult> {
    this.result ??= (async () => {
      await stopProcess(this.lab, this.place.container, this.id, 'INT');
      // tcpdump prints its statistics on stderr as it exits: the log has them once it is gone
      const log = await processLog(this.lab, this.place.container, this.id);
      const r = await this.lab.exec(this.place.container, ['base64', '-w0', this.remote]);
      const content = Buffer.from(r.stdout.trim(), 'base64');
      const dir = join(artifactsDir(), this.lab.id, 'captures');
      mkdirSync(dir, { recursive: true });
      const file = join(dir, `${this.place.label.replace(/[^A-Za-z0-9.-]+/g, '_')}-${this.iface}-${this.id}.pcap`);
      writeFileSync(file, content);
      await this.lab.exec(this.place.container, ['rm', '-f', this.remote], { check: false });
      const droppedByKernel = checkCaptureLog(log, `${this.place.label}:${this.iface} (pcap ${file})`);
      return { file, packets: readPcap(content).map(decodePacket), droppedByKernel };
    })();
    return this.result;
  }
}
