/**
 * Kubernetes protobuf request bodies (`application/vnd.kubernetes.protobuf`), decoded to the JSON
 * object the rest of the server handles. kubectl's `create configmap|namespace|...` generators
 * send built-in types this way whatever the server prefers, so without this the documented way of
 * configuring ip-masq-agent (`kubectl create configmap ip-masq-agent --from-file=config`) fails.
 *
 * Wire format (k8s.io/apimachinery/pkg/runtime/serializer/protobuf): the 4-byte magic "k8s\0",
 * then a runtime.Unknown message { 1 typeMeta { 1 apiVersion, 2 kind }, 2 raw, 3 contentEncoding,
 * 4 contentType } whose `raw` is the object's own message (k8s.io/api/core/v1/generated.proto).
 * Only the kinds below are decoded (what kubectl's generators create that the lab's API serves); any other kind is
 * refused naming it. Pure: no I/O.
 */

export class ProtobufError extends Error {}

const MAGIC = Buffer.from([0x6b, 0x38, 0x73, 0x00]);

type Wire = { field: number; type: 0 | 1 | 2 | 5; value: bigint | Buffer };

function readVarint(buf: Buffer, pos: number): [bigint, number] {
  let result = 0n;
  let shift = 0n;
  for (let i = pos; i < buf.length; i++) {
    const b = buf[i]!;
    result |= BigInt(b & 0x7f) << shift;
    if ((b & 0x80) === 0) return [result, i + 1];
    shift += 7n;
    if (shift > 63n) throw new ProtobufError('varint too long');
  }
  throw new ProtobufError('truncated varint');
}

/** Splits a message into its fields (wire types 0, 1, 2, 5; groups are refused). */
export function fields(buf: Buffer): Wire[] {
  const out: Wire[] = [];
  let pos = 0;
  while (pos < buf.length) {
    const [key, p1] = readVarint(buf, pos);
    const field = Number(key >> 3n);
    const type = Number(key & 7n);
    pos = p1;
    if (type === 0) {
      const [v, p2] = readVarint(buf, pos);
      out.push({ field, type, value: v });
      pos = p2;
    } else if (type === 2) {
      const [len, p2] = readVarint(buf, pos);
      const end = p2 + Number(len);
      if (end > buf.length) throw new ProtobufError(`field ${field}: length ${len} runs past the end`);
      out.push({ field, type, value: buf.subarray(p2, end) });
      pos = end;
    } else if (type === 1 || type === 5) {
      const n = type === 1 ? 8 : 4;
      if (pos + n > buf.length) throw new ProtobufError(`field ${field}: truncated fixed${n * 8}`);
      out.push({ field, type, value: buf.subarray(pos, pos + n) });
      pos += n;
    } else {
      throw new ProtobufError(`field ${field}: unsupported wire type ${type}`);
    }
  }
  return out;
}

const bytesOf = (w: Wire): Buffer => {
  if (w.type !== 2) throw new ProtobufError(`field ${w.field}: expected a length-delimited value`);
  return w.value as Buffer;
};
const str = (w: Wire): string => bytesOf(w).toString('utf8');
const int = (w: Wire): number => {
  if (w.type !== 0) throw new ProtobufError(`field ${w.field}: expected a varint`);
  return Number(BigInt.asIntN(64, w.value as bigint));
};

function mapEntries(ws: Wire[], field: number, value: (w: Wire) => string): Record<string, string> | undefined {
  const entries = ws.filter((w) => w.field === field);
  if (!entries.length) return undefined;
  const out: Record<string, string> = {};
  for (const e of entries) {
    const kv = fields(bytesOf(e));
    const k = kv.find((x) => x.field === 1);
    const v = kv.find((x) => x.field === 2);
    out[k ? str(k) : ''] = v ? value(v) : '';
  }
  return out;
}

const one = (ws: Wire[], field: number): Wire | undefined => ws.filter((w) => w.field === field).at(-1);
const strings = (ws: Wire[], field: number): string[] | undefined => {
  const xs = ws.filter((w) => w.field === field).map(str);
  return xs.length ? xs : undefined;
};

function time(w: Wire | undefined): string | undefined {
  if (!w) return undefined;
  const t = fields(bytesOf(w));
  const s = one(t, 1);
  if (!s || int(s) === 0) return undefined;
  return new Date(int(s) * 1000).toISOString().replace(/\.\d{3}Z$/, 'Z');
}

function objectMeta(buf: Buffer): Record<string, unknown> {
  const ws = fields(buf);
  const m: Record<string, unknown> = {};
  // generated messages carry every field, zero values too: an empty string / 0 means unset
  const s = (f: number, k: string) => {
    const w = one(ws, f);
    if (w && str(w) !== '') m[k] = str(w);
  };
  s(1, 'name');
  s(2, 'generateName');
  s(3, 'namespace');
  s(5, 'uid');
  s(6, 'resourceVersion');
  const gen = one(ws, 7);
  if (gen && int(gen) !== 0) m.generation = int(gen);
  const ct = time(one(ws, 8));
  if (ct) m.creationTimestamp = ct;
  const labels = mapEntries(ws, 11, str);
  if (labels) m.labels = labels;
  const annotations = mapEntries(ws, 12, str);
  if (annotations) m.annotations = annotations;
  const finalizers = strings(ws, 14);
  if (finalizers) m.finalizers = finalizers;
  if (ws.some((w) => w.field === 13)) throw new ProtobufError('metadata.ownerReferences in a protobuf body are not supported (send JSON)');
  return m;
}

type Decoder = (ws: Wire[]) => Record<string, unknown>;

const base64 = (w: Wire): string => bytesOf(w).toString('base64');

const DECODERS: Record<string, Decoder> = {
  'v1/ConfigMap': (ws) => {
    const o: Record<string, unknown> = {};
    const data = mapEntries(ws, 2, str);
    if (data) o.data = data;
    const binaryData = mapEntries(ws, 3, base64);
    if (binaryData) o.binaryData = binaryData;
    const imm = one(ws, 4);
    if (imm) o.immutable = int(imm) !== 0;
    return o;
  },
  'v1/Namespace': (ws) => {
    const o: Record<string, unknown> = {};
    const spec = one(ws, 2);
    if (spec) {
      const finalizers = strings(fields(bytesOf(spec)), 1);
      o.spec = finalizers ? { finalizers } : {};
    }
    return o;
  },
};

export const PROTOBUF_KINDS = Object.keys(DECODERS).map((k) => k.split('/')[1]!);

/** Decodes a Kubernetes protobuf body into its JSON form. Throws ProtobufError naming what is wrong. */
export function decodeKubeProtobuf(body: Buffer): Record<string, unknown> {
  if (body.length < MAGIC.length || !body.subarray(0, MAGIC.length).equals(MAGIC))
    throw new ProtobufError('the body does not start with the Kubernetes protobuf magic "k8s\\0"');
  const unknown = fields(body.subarray(MAGIC.length));
  const tm = one(unknown, 1);
  const typeMeta = tm ? fields(bytesOf(tm)) : [];
  const apiVersion = one(typeMeta, 1) ? str(one(typeMeta, 1)!) : '';
  const kind = one(typeMeta, 2) ? str(one(typeMeta, 2)!) : '';
  const enc = one(unknown, 3);
  if (enc && str(enc) !== '') throw new ProtobufError(`contentEncoding ${JSON.stringify(str(enc))} is not supported`);
  const decode = DECODERS[`${apiVersion}/${kind}`];
  if (!decode)
    throw new ProtobufError(
      `protobuf bodies are decoded for ${PROTOBUF_KINDS.join(', ')} (v1) only, not ${apiVersion || '?'}/${kind || '?'}: send it as JSON or YAML`,
    );
  const raw = one(unknown, 2);
  const obj = raw ? fields(bytesOf(raw)) : [];
  const meta = one(obj, 1);
  return { apiVersion, kind, metadata: meta ? objectMeta(bytesOf(meta)) : {}, ...decode(obj) };
}
