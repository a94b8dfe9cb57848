import { describe, expect, it } from 'vitest';
import { decodeKubeProtobuf, fields, PROTOBUF_KINDS } from './protobuf.js';

// Bodies kubectl 1.3x sent (captured from `kubectl --server http://127.0.0.1:PORT create ...`)
const CONFIGMAP =
  'azhzAAoPCgJ2MRIJQ29uZmlnTWFwEm0KKAoNaXAtbWFzcS1hZ2VudBIAGgtrdWJlLXN5c3RlbSIAKgAyADgAQgASQQoGY29uZmlnEjdub25NYXNxdWVyYWRlQ0lEUnM6CiAgLSAxMC4wLjAuMC84Cm1hc3FMaW5rTG9jYWw6IHRydWUKGgAiAA==';
const SECRET = 'azhzAAoMCgJ2MRIGU2VjcmV0EiwKGQoCczESABoHZGVmYXVsdCIAKgAyADgAQgASDQoCcHcSB2h1bnRlcjIaABoAIgA=';
const NAMESPACE = 'azhzAAoPCgJ2MRIJTmFtZXNwYWNlEh4KFgoGdGVhbS1hEgAaACIAKgAyADgAQgASABoCCgAaACIA';
const b64 = (s: string) => Buffer.from(s, 'base64');

describe('Kubernetes protobuf bodies (kubectl create configmap|namespace)', () => {
  it('decodes the ip-masq-agent ConfigMap as kubectl sends it', () => {
    expect(decodeKubeProtobuf(b64(CONFIGMAP))).toEqual({
      apiVersion: 'v1',
      kind: 'ConfigMap',
      metadata: { name: 'ip-masq-agent', namespace: 'kube-system' },
      data: { config: 'nonMasqueradeCIDRs:\n  - 10.0.0.0/8\nmasqLinkLocal: true\n' },
    });
  });

  it('decodes a Namespace; a Secret (not served by the lab) is refused by kind', () => {
    expect(() => decodeKubeProtobuf(b64(SECRET))).toThrow('not v1/Secret');
    expect(decodeKubeProtobuf(b64(NAMESPACE))).toEqual({ apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'team-a' }, spec: {} });
  });

  it('refuses what it cannot decode, saying what and why', () => {
    expect(() => decodeKubeProtobuf(Buffer.from('{"kind":"ConfigMap"}'))).toThrow(/does not start with the Kubernetes protobuf magic/);
    // a Deployment envelope: typeMeta { apiVersion "apps/v1", kind "Deployment" }, no raw
    const tm = Buffer.concat([Buffer.from([0x0a, 7]), Buffer.from('apps/v1'), Buffer.from([0x12, 10]), Buffer.from('Deployment')]);
    const env = Buffer.concat([Buffer.from('k8s\0', 'binary'), Buffer.from([0x0a, tm.length]), tm]);
    expect(() => decodeKubeProtobuf(env)).toThrow(`not apps/v1/Deployment: send it as JSON or YAML`);
    expect(PROTOBUF_KINDS).toEqual(['ConfigMap', 'Namespace']);
    expect(() => fields(Buffer.from([0x0a, 0x05, 0x61]))).toThrow(/runs past the end/);
    expect(() => fields(Buffer.from([0x80]))).toThrow(/truncated varint/);
  });
});
