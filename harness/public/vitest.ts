/**
 * `egresslab/vitest`: what a vitest test file uses around its lab — one lab per file
 * (startTestLab), the diagnostics of failing tests (recordArtifactsOnFailure, withArtifacts),
 * timelines kept for the artifacts (recordTimeline, saveTimeline). Importing it also registers the
 * custom matchers (as `egresslab/matchers` does), with their types.
 */
import './matchers.js';

export { startTestLab } from '../testing/lab.js';
export {
  recordArtifactsOnFailure,
  withArtifacts,
  collectDiagnostics,
  artifactFolder,
  recordTimeline,
  saveTimeline,
  type DiagnosticsReport,
  type CollectOptions,
  type SaveTimelineOptions,
} from '../testing/artifacts.js';
export { artifactsDir } from '../util/paths.js';
