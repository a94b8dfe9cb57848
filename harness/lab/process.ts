/**
 * Processes the lab runs inside its containers (responders, agents, the controller, captures):
 * started detached with a pid file and a log, so that any process of ours (another CLI call too)
 * can stop or restart exactly that process, by pid.
 */
import { inPlace, type LabRuntime, type Place } from './runtime.js';
import { RUN_DIR } from '../inlab/protocol.js';
import { pollUntil } from '../util/poll.js';
import { LabError } from '../util/errors.js';

export const LOG_DIR = '/var/log/egresslab';
const NAME = /^[A-Za-z0-9._-]{1,100}$/;

function files(name: string): { pid: string; cmd: string; log: string } {
  if (!NAME.test(name)) throw new LabError(`bad process name ${JSON.stringify(name)}: letters, digits, ".", "_" and "-" only`);
  return { pid: `${RUN_DIR}/${name}.pid`, cmd: `${RUN_DIR}/${name}.cmd`, log: `${LOG_DIR}/${name}.log` };
}

/** How spawnWithPidFile runs a command: its pid file, where its output goes, what to call it in a timeout. */
export interface PidFileSpawn {
  pidFile: string;
  /** stdout and stderr go to this file */
  output: string;
  /** append to `output` (a log) instead of truncating it */
  append?: boolean;
  /** for the timeout message: "<what> to start" */
  what: string;
}

/**
 * Starts `argv` detached at `place` (inside the pod's netns when the place has one) by a shell that
 * writes its pid to `pidFile` and then execs the command, and waits until the pid file is written.
 * The one place a process is started with a pid file (managed processes, continuous probes without a helper).
 */
export async function spawnWithPidFile(lab: LabRuntime, place: Place, argv: readonly string[], o: PidFileSpawn): Promise<void> {
  await lab.spawn(place.container, ['sh', '-c', `echo $$ > ${o.pidFile}; exec "$@" ${o.append ? '>>' : '>'} ${o.output} 2>&1`, 'sh', ...inPlace(place, argv)]);
  await pollUntil(async () => (await lab.exec(place.container, ['test', '-s', o.pidFile], { check: false })).exitCode === 0, {
    what: `${o.what} to start`,
    timeoutMs: 10_000,
  });
}

/** Starts `argv` in the background at `place` (inside the pod's netns when the place has one) as the managed process `name`. */
export async function startProcess(lab: LabRuntime, place: Place, name: string, argv: string[]): Promise<void> {
  const f = files(name);
  await lab.exec(place.container, ['sh', '-c', `mkdir -p ${RUN_DIR} ${LOG_DIR} && rm -f ${f.pid} && cat > ${f.cmd}`], {
    stdin: JSON.stringify(inPlace(place, argv)),
  });
  await spawnWithPidFile(lab, place, argv, { pidFile: f.pid, output: f.log, append: true, what: `process ${name} in ${place.label}` });
}

/** Whether the named background process runs in the container. */
export async function processRunning(lab: LabRuntime, container: string, name: string): Promise<boolean> {
  const f = files(name);
  const r = await lab.exec(container, ['sh', '-c', `test -s ${f.pid} && kill -0 $(cat ${f.pid}) 2>/dev/null`], { check: false });
  return r.exitCode === 0;
}

/** Sends `signal` to the process and waits until it is gone. */
export async function stopProcess(
  lab: LabRuntime,
  container: string,
  name: string,
  signal: 'TERM' | 'KILL' | 'INT' = 'TERM',
  timeoutMs = 10_000,
): Promise<void> {
  const f = files(name);
  if (!(await processRunning(lab, container, name))) return;
  await lab.exec(container, ['sh', '-c', `kill -${signal} $(cat ${f.pid}) 2>/dev/null || true`]);
  await pollUntil(async () => !(await processRunning(lab, container, name)), {
    what: `process ${name} in ${container} to exit after SIG${signal}`,
    timeoutMs,
  });
}

/** Stops the process and starts it again with the command it was started with. */
export async function restartProcess(lab: LabRuntime, container: string, name: string): Promise<void> {
  const f = files(name);
  const r = await lab.exec(container, ['cat', f.cmd], { check: false });
  if (r.exitCode !== 0) throw new LabError(`no process named ${name} was started in ${container}`);
  // the recorded command already holds its netns prefix: start it at the container itself
  const argv = JSON.parse(r.stdout) as string[];
  await stopProcess(lab, container, name);
  await startProcess(lab, { container, label: container }, name, argv);
}

/** The log of the named background process (empty when it has none). */
export async function processLog(lab: LabRuntime, container: string, name: string): Promise<string> {
  const r = await lab.exec(container, ['cat', files(name).log], { check: false });
  return r.stdout;
}
