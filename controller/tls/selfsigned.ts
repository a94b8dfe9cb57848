// Self-signed PKI without openssl: kubectl only sends bearer tokens over TLS (client-go drops the
// user's credentials for an http:// server), so the API server speaks HTTPS with a certificate from
// a private CA generated here. ECDSA P-256 keys from node:crypto; the X.509 DER is assembled by the
// small encoder below (Node can parse certificates but has no API to create them).
import { createHash, createPrivateKey, generateKeyPairSync, randomBytes, sign, X509Certificate, type KeyObject } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { isIP } from 'node:net';
import { join } from 'node:path';

// ---------------------------------------------------------------- DER encoding

function len(n: number): Buffer {
  if (n < 0x80) return Buffer.from([n]);
  const bytes: number[] = [];
  for (let x = n; x > 0; x = Math.floor(x / 256)) bytes.unshift(x & 0xff);
  return Buffer.from([0x80 | bytes.length, ...bytes]);
}
function tlv(tag: number, body: Buffer): Buffer {
  return Buffer.concat([Buffer.from([tag]), len(body.length), body]);
}
const seq = (...parts: Buffer[]): Buffer => tlv(0x30, Buffer.concat(parts));
const set = (...parts: Buffer[]): Buffer => tlv(0x31, Buffer.concat(parts));
const ctx = (n: number, body: Buffer, constructed = true): Buffer => tlv((constructed ? 0xa0 : 0x80) | n, body);
function oid(dotted: string): Buffer {
  const p = dotted.split('.').map(Number);
  const out: number[] = [40 * p[0]! + p[1]!];
  for (const v of p.slice(2)) {
    const b: number[] = [v & 0x7f];
    for (let x = Math.floor(v / 128); x > 0; x = Math.floor(x / 128)) b.unshift(0x80 | (x & 0x7f));
    out.push(...b);
  }
  return tlv(0x06, Buffer.from(out));
}
function int(buf: Buffer): Buffer {
  let b = buf;
  while (b.length > 1 && b[0] === 0 && (b[1]! & 0x80) === 0) b = b.subarray(1);
  if (b[0]! & 0x80) b = Buffer.concat([Buffer.from([0]), b]);
  return tlv(0x02, b);
}
const bool = (v: boolean): Buffer => tlv(0x01, Buffer.from([v ? 0xff : 0]));
const octets = (b: Buffer): Buffer => tlv(0x04, b);
const bits = (b: Buffer, unused = 0): Buffer => tlv(0x03, Buffer.concat([Buffer.from([unused]), b]));
const utf8 = (s: string): Buffer => tlv(0x0c, Buffer.from(s, 'utf8'));
function time(d: Date): Buffer {
  const z = (n: number, w = 2): string => String(n).padStart(w, '0');
  const y = d.getUTCFullYear();
  const body = `${z(d.getUTCMonth() + 1)}${z(d.getUTCDate())}${z(d.getUTCHours())}${z(d.getUTCMinutes())}${z(d.getUTCSeconds())}Z`;
  return y < 2050 ? tlv(0x17, Buffer.from(`${z(y % 100)}${body}`)) : tlv(0x18, Buffer.from(`${z(y, 4)}${body}`));
}
const name = (cn: string, org?: string): Buffer => seq(...(org ? [set(seq(oid('2.5.4.10'), utf8(org)))] : []), set(seq(oid('2.5.4.3'), utf8(cn))));
const ext = (id: string, critical: boolean, value: Buffer): Buffer => seq(oid(id), ...(critical ? [bool(true)] : []), octets(value));

const ECDSA_SHA256 = seq(oid('1.2.840.10045.4.3.2'));

function ipBytes(ip: string): Buffer {
  if (isIP(ip) === 4) return Buffer.from(ip.split('.').map(Number));
  // IPv6: expand "::"
  const [head, tail] = ip.split('::') as [string, string | undefined];
  const h = head ? head.split(':') : [];
  const t = tail !== undefined && tail !== '' ? tail.split(':') : [];
  const groups = tail === undefined ? h : [...h, ...Array(8 - h.length - t.length).fill('0'), ...t];
  return Buffer.concat(groups.map((g) => Buffer.from(g.padStart(4, '0'), 'hex')));
}

export interface CertSpec {
  commonName: string;
  organization?: string;
  isCA: boolean;
  /** DNS names and IP addresses */
  altNames?: string[];
  days?: number;
}

function keyId(pub: KeyObject): Buffer {
  return createHash('sha1')
    .update(pub.export({ type: 'spki', format: 'der' }))
    .digest();
}

/** Builds a certificate for `subjectPub`, signed by `issuerKey` (self-signed when issuer is absent). */
export function buildCertificate(
  spec: CertSpec,
  subjectPub: KeyObject,
  issuerKey: KeyObject,
  issuer?: { commonName: string; organization?: string; pub: KeyObject },
): string {
  const now = new Date(Date.now() - 60_000);
  const until = new Date(now.getTime() + (spec.days ?? 3650) * 86_400_000);
  const exts: Buffer[] = [
    ext('2.5.29.19', true, spec.isCA ? seq(bool(true)) : seq()),
    // keyUsage: CA keyCertSign|cRLSign (bits 5,6), leaf digitalSignature (bit 0)
    ext('2.5.29.15', true, spec.isCA ? bits(Buffer.from([0x06]), 1) : bits(Buffer.from([0x80]), 7)),
    ext('2.5.29.14', false, octets(keyId(subjectPub))),
  ];
  if (issuer) exts.push(ext('2.5.29.35', false, seq(ctx(0, keyId(issuer.pub), false))));
  if (!spec.isCA) exts.push(ext('2.5.29.37', false, seq(oid('1.3.6.1.5.5.7.3.1'))));
  if (spec.altNames?.length) {
    exts.push(ext('2.5.29.17', false, seq(...spec.altNames.map((n) => (isIP(n) ? ctx(7, ipBytes(n), false) : ctx(2, Buffer.from(n, 'ascii'), false))))));
  }
  const tbs = seq(
    ctx(0, int(Buffer.from([2]))),
    int(randomBytes(16)),
    ECDSA_SHA256,
    issuer ? name(issuer.commonName, issuer.organization) : name(spec.commonName, spec.organization),
    seq(time(now), time(until)),
    name(spec.commonName, spec.organization),
    subjectPub.export({ type: 'spki', format: 'der' }),
    ctx(3, seq(...exts)),
  );
  const sig = sign('sha256', tbs, { key: issuerKey, dsaEncoding: 'der' });
  const der = seq(tbs, ECDSA_SHA256, bits(sig));
  const b64 = der
    .toString('base64')
    .replace(/(.{64})/g, '$1\n')
    .replace(/\n$/, '');
  return `-----BEGIN CERTIFICATE-----\n${b64}\n-----END CERTIFICATE-----\n`;
}

export interface ServingPki {
  caCert: string;
  cert: string;
  key: string;
  caFile: string;
  certFile: string;
  keyFile: string;
}

/**
 * Returns the serving certificate in `dir`, creating a CA and a server certificate for `altNames`
 * if absent or if the existing certificate does not cover every requested name. The CA is kept
 * across restarts so that kubeconfigs handed out stay valid.
 */
export function ensureServingPki(dir: string, altNames: readonly string[]): ServingPki {
  mkdirSync(dir, { recursive: true });
  const caFile = join(dir, 'ca.crt');
  const caKeyFile = join(dir, 'ca.key');
  const certFile = join(dir, 'apiserver.crt');
  const keyFile = join(dir, 'apiserver.key');
  const names = [...new Set(['localhost', '127.0.0.1', ...altNames])];
  let caCert: string;
  let caKey: KeyObject;
  if (existsSync(caFile) && existsSync(caKeyFile)) {
    caCert = readFileSync(caFile, 'utf8');
    caKey = createPrivateKey(readFileSync(caKeyFile, 'utf8'));
  } else {
    const kp = generateKeyPairSync('ec', { namedCurve: 'prime256v1' });
    caKey = kp.privateKey;
    caCert = buildCertificate({ commonName: 'egresslab-ca', organization: 'egresslab', isCA: true }, kp.publicKey, caKey);
    writeFileSync(caKeyFile, caKey.export({ type: 'pkcs8', format: 'pem' }) as string, { mode: 0o600 });
    writeFileSync(caFile, caCert);
  }
  if (existsSync(certFile) && existsSync(keyFile)) {
    const existing = new X509Certificate(readFileSync(certFile));
    const san = existing.subjectAltName ?? '';
    const covered = names.every((n) => san.includes(isIP(n) ? `IP Address:${n}` : `DNS:${n}`));
    if (covered && existing.checkIssued(new X509Certificate(caCert))) {
      return { caCert, cert: readFileSync(certFile, 'utf8'), key: readFileSync(keyFile, 'utf8'), caFile, certFile, keyFile };
    }
  }
  const kp = generateKeyPairSync('ec', { namedCurve: 'prime256v1' });
  const caPub = new X509Certificate(caCert).publicKey;
  const cert = buildCertificate({ commonName: 'egresslab-apiserver', isCA: false, altNames: names }, kp.publicKey, caKey, {
    commonName: 'egresslab-ca',
    organization: 'egresslab',
    pub: caPub,
  });
  const key = kp.privateKey.export({ type: 'pkcs8', format: 'pem' }) as string;
  writeFileSync(keyFile, key, { mode: 0o600 });
  writeFileSync(certFile, cert);
  return { caCert, cert, key, caFile, certFile, keyFile };
}
