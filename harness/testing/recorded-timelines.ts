/**
 * The timelines a test recorded (recordTimeline, harness/testing/artifacts.ts), kept apart in a
 * module of its own so that the setup file clears them without loading the artifacts code (the
 * setup file runs before every test file of both projects).
 */
import type { RecordedTimeline } from './diagnostics.js';

let recorded: RecordedTimeline[] = [];

export function pushRecordedTimeline(t: RecordedTimeline): void {
  recorded.push(t);
}

/** The timelines recorded since the current test began. */
export function recordedTimelines(): RecordedTimeline[] {
  return [...recorded];
}

/** Forgets the recorded timelines (the setup file calls it as each test file starts; recordArtifactsOnFailure before each test). */
export function clearRecordedTimelines(): void {
  recorded = [];
}
