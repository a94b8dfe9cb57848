/**
 * The package's public API (`import { ... } from 'egresslab'`): everything a scenario needs to start
 * a lab and observe it — the Lab with its pod and node handles, probes, continuous probes and
 * timelines, faults, captures, kubectl-style apply and the cluster's API, the failover report and
 * the timeline SVG, polling, errors. Nothing here imports vitest: a plain Node script can use it too.
 *
 * The test-file helpers (a lab per file, artifacts of failing tests, recorded timelines) are in
 * `egresslab/vitest`, the custom matchers in `egresslab/matchers`, vitest's setup files in
 * `egresslab/vitest-setup` and `egresslab/vitest-global-setup`. Every other module of the package
 * is internal: it may change in any release.
 */
import { Lab, type LabUpOptions } from '../lab/lab.js';
import { topologyFrom } from '../topology/load.js';
import type { Topology } from '../topology/types.js';

// ---- the lab
export { Lab, randomLabId, type LabUpOptions, type LabPayload, type Place } from '../lab/lab.js';
export type { PodHandle, NodeHandle } from '../lab/handles.js';
export type { ExecOptions, ExecResult } from '../docker/exec.js';
export type { PayloadMode } from '../lab/payload.js';
export type { Progress } from '../docker/image.js';

// ---- topologies
export { loadTopology, topologyFromArg, topologyFrom, defaultTopologyPath } from '../topology/load.js';
export { parseTopology, TOPOLOGY_DEFAULTS } from '../topology/validate.js';
export { nodeAddress } from '../topology/lookup.js';
export type { Topology, NodeSpec, NodeRole, NamespaceSpec, PodSpec, VpcEndpointSpec, SnatFlavour } from '../topology/types.js';
export { randomPublicAddress } from '../testing/lab.js';

// ---- probes, timelines, streams
export { ContinuousProbe, waitSeenFrom, type ProbeOptions, type ProbeResult, type ContinuousProbeOptions } from '../probe/probe.js';
export type { Proto, Observation } from '../inlab/protocol.js';
export {
  outages,
  sourceCounts,
  leaks,
  deliveryRatio,
  type Timeline,
  type TimelinePacket,
  type Outage,
  type StreamSummary,
  type ConnectionSummary,
} from '../probe/timeline.js';
export {
  startStreams,
  stopAndSegments,
  segmentsTo,
  segmentLeaks,
  describeSegment,
  endpointsNotCaptured,
  resets,
  streamOutcome,
  survivalReport,
  type StreamSpec,
  type StreamOptions,
  type Segment,
  type StreamOutcome,
} from '../probe/stream.js';
export { ConnectivityChecker, type Expected, type Expectation, type CheckedPair } from '../testing/connectivity.js';

// ---- faults and captures
export { Faults, NODE_FAULTS, type NodeFault, type NodeFaultName, type Degradation, type InjectedFault } from '../faults/faults.js';
export { Capture, type CaptureOptions, type CaptureResult } from '../capture/capture.js';
export { describePacket, decodePacket, readPcap, TCP_FLAGS, type DecodedPacket, type PcapPacket } from '../pcap/pcap.js';

// ---- the cluster: API, apply, gateway status, holders, ip-masq-agent
export { R, KubeClient, KubeApiError, type ResourceRef, type ListOptions } from '../../lib/kube/client.js';
export type { KubeObject, KubeList, ObjectMeta } from '../../lib/kube/types.js';
export { GATEWAY_NAME, GATEWAY_NAMESPACE, IP_MASQ_NAME, IP_MASQ_NAMESPACE, DEFAULT_NON_MASQUERADE_CIDRS } from '../../lib/kube/well-known.js';
export { applyAll, loadManifests, type Manifest, type ApplyResult, type ApplyAction } from '../cluster/apply.js';
export { gatewayOf, everyNodeUp, type GatewayStatus } from '../cluster/cluster-status.js';
export { holderOf, workerHolder, type HolderOptions } from '../cluster/holder.js';
export {
  untilMasqConfigApplied,
  readAgentStatus,
  readAgentStatusIfAny,
  masqConfigYaml,
  type MasqWaitOptions,
  type AgentStatusFile,
  type AgentGatewayStatus,
  type AgentGatewayPolicy,
  type MasqConfigInput,
} from '../cluster/masq-applied.js';

// ---- reports
export { summarize, describeFailover, type FailoverReport, type LeakReport } from '../report/failover.js';
export { renderTimelineSvg, type TimelineRow, type TimelineSvgOptions } from '../report/timeline-svg.js';

// ---- plumbing
export { pollUntil, systemClock, type PollOptions, type Clock } from '../util/poll.js';
export { LabError, ValidationError, TimeoutError, CommandError, type FieldIssue } from '../util/errors.js';
export { keepMode, type KeepMode } from '../testing/keep.js';
export { artifactsDir } from '../util/paths.js';

/**
 * Brings a lab up from a topology: a fixture name, a file path (relative to the working directory)
 * or a topology object (validated; see topologyFrom). Remove it with `lab.down()`, or let
 * `await using` do it.
 *
 * @example
 * ```ts
 * await using lab = await startLab('lab/topology.yaml');
 * const r = await lab.probe('default/client-1', '8.8.8.8', { proto: 'udp' });
 * console.log(r.observedSource); // the node's address: ip-masq-agent masqueraded it
 * ```
 */
export function startLab(topology: string | Topology | Record<string, unknown>, options: Omit<LabUpOptions, 'topology'> = {}): Promise<Lab> {
  return Lab.up({ ...options, topology: topologyFrom(topology) });
}
