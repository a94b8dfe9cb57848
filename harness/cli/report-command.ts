/**
 * `egresslab report`: builds the run report again from what a run left in an artifacts folder
 * (run.json, failovers/, failures/) — e.g. a CI job's downloaded artifacts, or to write it elsewhere.
 * `npm test` writes artifacts/report.html itself (harness/testing/report-reporter.ts).
 */
import { existsSync } from 'node:fs';
import { join, relative, resolve } from 'node:path';
import { parseCommand, type CommandSpec } from '../util/args.js';
import { ValidationError } from '../util/errors.js';
import { artifactsDir } from '../util/paths.js';
import { REPORT_PATHS } from '../report/run-data.js';
import { writeReport } from '../report/write-report.js';

/** The report command's flags and help. */
export const REPORT_SPECS: Record<string, CommandSpec> = {
  report: {
    flags: {
      artifacts: { value: true, arg: 'DIR' },
      out: { value: true, arg: 'FILE' },
    },
    about: `  Builds the run report, one self-contained HTML page, from what a test run left in an artifacts
  folder (default: artifacts/, or EGRESSLAB_ARTIFACTS): every test file and test with its verdict and
  failure messages, each failover timeline (SVG, outage, sources, leaks), links to the diagnostics
  and pcaps of failed tests. npm test writes artifacts/report.html by itself; this rebuilds it, e.g.
  from a CI job's artifacts. --out defaults to report.html in that folder.
  Example: npx egresslab report --artifacts ci-artifacts --out /tmp/report.html`,
  },
};

/** `egresslab report`: writes the report; exit 2 when the folder holds no run data at all. */
export async function reportCmd(argv: string[]): Promise<number> {
  const { flags } = parseCommand('report', REPORT_SPECS.report!, argv);
  const dir = resolve((flags.artifacts as string | undefined) ?? artifactsDir());
  if (!existsSync(dir)) throw new ValidationError('report', [{ path: '--artifacts', value: flags.artifacts ?? dir, message: 'no such folder' }]);
  if (![REPORT_PATHS.run, REPORT_PATHS.failovers, REPORT_PATHS.failures].some((p) => existsSync(join(dir, p)))) {
    throw new ValidationError('report', [
      {
        path: '--artifacts',
        value: flags.artifacts ?? dir,
        message: `holds no run data (${REPORT_PATHS.run}, ${REPORT_PATHS.failovers}/ or ${REPORT_PATHS.failures}/): run the tests first (npm test)`,
      },
    ]);
  }
  const out = resolve((flags.out as string | undefined) ?? join(dir, REPORT_PATHS.report));
  const r = writeReport(dir, out);
  const shown = relative(process.cwd(), r.file);
  process.stdout.write(
    `${shown && !shown.startsWith('..') ? shown : r.file}: ${(r.bytes / 1024).toFixed(0)} kB, ${r.tests} ${r.tests === 1 ? 'test' : 'tests'}, ${r.failovers} failover ${r.failovers === 1 ? 'timeline' : 'timelines'}${r.hasRun ? '' : ` (no ${REPORT_PATHS.run}: failovers and diagnostics only)`}\n`,
  );
  return 0;
}
