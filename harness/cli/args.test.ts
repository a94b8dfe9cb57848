import { describe, expect, it } from 'vitest';
import { parseArgs } from './args.js';
import { ValidationError } from '../util/errors.js';

describe('parseArgs', () => {
  const spec = { lab: { value: true }, file: { value: true, short: 'f', required: true } };
  it('accepts a one-letter alias, --name value and --name=value', () => {
    expect(parseArgs('apply', ['-f', 'x.yaml', '--lab', 'a'], spec).flags).toEqual({ file: 'x.yaml', lab: 'a' });
    expect(parseArgs('apply', ['--file=y'], spec).flags).toEqual({ file: 'y' });
  });
  it('refuses unknown short options and missing values', () => {
    expect(() => parseArgs('apply', ['-x', 'a', '-f', 'b'], spec)).toThrow(ValidationError);
    expect(() => parseArgs('apply', ['-f'], spec)).toThrow(/--file.*needs a value/s);
  });
});
