import { describe, expect, it } from 'vitest';
import { LabError } from '../util/errors.js';
import { checkCaptureLog, kernelDrops } from './capture.js';

// What tcpdump 4.99 (Debian 12, the lab image) writes to its log when stopped with SIGINT.
const clean =
  'tcpdump: listening on eth0, link-type EN10MB (Ethernet), snapshot length 262 bytes\n10 packets captured\n20 packets received by filter\n0 packets dropped by kernel\n';
const dropped =
  'tcpdump: listening on lo, link-type EN10MB (Ethernet), snapshot length 262144 bytes\n49 packets captured\n12000 packets received by filter\n11768 packets dropped by kernel\n';

describe('capture statistics from the tcpdump log', () => {
  it('kernelDrops reads the count; undefined when tcpdump never printed it', () => {
    expect(kernelDrops(clean)).toBe(0);
    expect(kernelDrops(dropped)).toBe(11768);
    expect(kernelDrops('1 packet captured\n1 packet received by filter\n1 packet dropped by kernel\n')).toBe(1);
    expect(kernelDrops('tcpdump: listening on eth0, link-type EN10MB (Ethernet), snapshot length 262 bytes\n')).toBeUndefined();
    expect(kernelDrops('')).toBeUndefined();
  });

  it('checkCaptureLog: a clean capture passes with 0; drops or a missing line are a LabError naming the place and count', () => {
    expect(checkCaptureLog(clean, 'internet:eth0')).toBe(0);
    const refusal = (log: string): LabError => {
      try {
        checkCaptureLog(log, 'internet:eth0');
      } catch (e) {
        expect(e).toBeInstanceOf(LabError);
        return e as LabError;
      }
      throw new Error('accepted');
    };
    expect(refusal(dropped).message).toBe('the capture at internet:eth0 dropped 11768 packets (kernel): what it saw proves nothing about the ones it missed');
    expect(refusal('1 packet dropped by kernel').message).toMatch(/^the capture at internet:eth0 dropped 1 packet \(kernel\)/);
    const crashed = refusal('tcpdump: listening on eth0, link-type EN10MB (Ethernet), snapshot length 262 bytes\nSegmentation fault\n').message;
    expect(crashed).toMatch(/^the capture at internet:eth0 ended without tcpdump's statistics \(did tcpdump crash\?\)/);
    expect(crashed).toContain('Segmentation fault');
    expect(refusal('').message).not.toContain('its log');
  });
});
