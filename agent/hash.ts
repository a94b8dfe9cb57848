import { createHash } from 'node:crypto';

/** The first 16 hex digits of a text's sha256: the agent's short content hash (rulesets, configs, files). */
export function sha16(s: string): string {
  return createHash('sha256').update(s).digest('hex').slice(0, 16);
}
