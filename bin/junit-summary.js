#!/usr/bin/env node
// Prints "tests: N passed, N failed, N skipped" from a JUnit XML report (vitest's junit reporter).
import { readFileSync } from 'node:fs';

const file = process.argv[2] ?? 'artifacts/junit.xml';
let xml;
try {
  xml = readFileSync(file, 'utf8');
} catch {
  process.stderr.write(`junit-summary: no report at ${file}\n`);
  process.exit(1);
}
const cases = xml.match(/<testcase\b[\s\S]*?(?:\/>|<\/testcase>)/g) ?? [];
let failed = 0;
let skipped = 0;
for (const c of cases) {
  if (/<(failure|error)\b/.test(c)) failed++;
  else if (/<skipped\b/.test(c)) skipped++;
}
const passed = cases.length - failed - skipped;
process.stdout.write(`tests: ${passed} passed, ${failed} failed, ${skipped} skipped\n`);
