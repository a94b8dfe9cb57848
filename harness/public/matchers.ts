/**
 * `egresslab/matchers`: one import registers the custom matchers with vitest's expect and declares
 * their types:
 *
 *   expect(probeResult).toBeSeenFrom('192.168.1.100')     the far end observed that source
 *   expect(probeResult).toReachPod()  / .toGetReply()     the reply came back to the sender
 *   expect(probeResult).toBeObservedOnlyFrom([ips])       observed, with one of these sources only
 *   expect(timeline).toFailOverWithin(1000)               longest outage ≤ 1000 ms, traffic resumed
 *   expect(timeline).toHaveNoLeaks(['192.168.1.100'])     no packet observed with another source
 *   expect(timeline).toBeObservedOnlyFrom([ips])          every observed source is one of these
 *
 * `egresslab/vitest-setup` (vitest setupFiles) imports it for every test file.
 */
import { expect } from 'vitest';
import { egresslabMatchers } from '../testing/matchers.js';

expect.extend(egresslabMatchers);

export { egresslabMatchers, describeFlow, describeObservation, describeTimeline, describeOutage, observedSourcesOf } from '../testing/matchers.js';
