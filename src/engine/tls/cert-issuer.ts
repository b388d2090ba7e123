import type * as X509 from '@peculiar/x509';
import { KeyObject, generateKeyPairSync, randomBytes, webcrypto } from 'node:crypto';
import { isIP } from 'node:net';
import { BtrflyError } from '../../errors';

let x509Module: typeof X509 | undefined;

/**
 * @peculiar/x509, loaded on first signing or parsing: a fifth of a second of module loading
 * that commands reading an existing CA (`btrfly start`/`stop`, `ca export`) never need.
 */
function x509(): typeof X509 {
  if (!x509Module) {
    // tsyringe, used inside @peculiar/x509, needs the Reflect metadata API before it loads.
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    require('reflect-metadata');
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    const lib = require('@peculiar/x509') as typeof X509;
    // @peculiar/x509 is typed against the DOM's Crypto; Node's webcrypto is the same API.
    lib.cryptoProvider.set(webcrypto as never);
    x509Module = lib;
  }
  return x509Module;
}

/** Loads @peculiar/x509 now, so that the first host name's certificate does not wait for it. */
export function preloadX509(): void {
  x509();
}

const DAY_MS = 24 * 60 * 60 * 1000;
/** Clients reject a leaf valid for more than 398 days (CA/Browser Forum, Apple, Chrome). */
export const LEAF_VALIDITY_DAYS = 366;
const CA_VALIDITY_DAYS = 3653;

/** The key types btrfly signs with; ECDSA P-256 is the default (cheap handshakes). */
export type KeyType = 'ec' | 'rsa';

/** A key pair as Node keys; the WebCrypto views are derived on demand. */
export interface KeyPair {
  privateKey: KeyObject;
  publicKey: KeyObject;
}

/** A signing CA: its certificate (PEM) and private key. */
export interface Issuer {
  certPem: string;
  privateKey: KeyObject;
}

/** Generates a key pair of the given type (P-256 or RSA-2048). */
export function generateKeyPair(type: KeyType): KeyPair {
  return type === 'ec'
    ? generateKeyPairSync('ec', { namedCurve: 'P-256' })
    : generateKeyPairSync('rsa', { modulusLength: 2048 });
}

/** Creates the self-signed CA certificate: CA:true, keyCertSign+cRLSign, 10 years. */
export async function createCaCertificate(keys: KeyPair, commonName: string, now = new Date()): Promise<string> {
  const lib = x509();
  const alg = signingAlgorithm(keys.privateKey);
  const publicKey = toCryptoKey(keys.publicKey, 'verify');
  const cert = await lib.X509CertificateGenerator.createSelfSigned({
    serialNumber: randomSerial(),
    name: [{ CN: [commonName] }, { O: ['btrfly'] }],
    notBefore: new Date(now.getTime() - DAY_MS),
    notAfter: new Date(now.getTime() + CA_VALIDITY_DAYS * DAY_MS),
    signingAlgorithm: alg,
    keys: { publicKey, privateKey: toCryptoKey(keys.privateKey, 'sign') },
    extensions: [
      new lib.BasicConstraintsExtension(true, 0, true),
      new lib.KeyUsagesExtension(lib.KeyUsageFlags.keyCertSign | lib.KeyUsageFlags.cRLSign, true),
      await lib.SubjectKeyIdentifierExtension.create(publicKey),
    ],
  });
  return cert.toString('pem');
}

/** A leaf certificate and the instant after which it must not be served. */
export interface IssuedLeaf {
  certPem: string;
  notAfter: Date;
}

/**
 * Signs a server certificate for `names` (DNS names or IP literals) with `issuer`:
 * SAN and CN, serverAuth, a random serial, validity from a day ago for
 * {@link LEAF_VALIDITY_DAYS} days (never past the CA's own end).
 */
export async function issueLeaf(issuer: Issuer, leafPublicKey: KeyObject, names: string[], now = new Date()): Promise<IssuedLeaf> {
  const lib = x509();
  const usage =
    leafPublicKey.asymmetricKeyType === 'rsa'
      ? lib.KeyUsageFlags.digitalSignature | lib.KeyUsageFlags.keyEncipherment
      : lib.KeyUsageFlags.digitalSignature;
  const publicKey = toCryptoKey(leafPublicKey, 'verify');
  const caCert = parsedCert(issuer.certPem);
  const notAfter = new Date(Math.min(now.getTime() + (LEAF_VALIDITY_DAYS - 1) * DAY_MS, caCert.notAfter.getTime()));
  const cn = names[0];
  const cert = await lib.X509CertificateGenerator.create({
    serialNumber: randomSerial(),
    // CN is limited to 64 characters (RFC 5280 ub-common-name); the SAN carries the name anyway.
    subject: cn.length <= 64 ? [{ CN: [cn] }] : [{ O: ['btrfly'] }],
    issuer: caCert.subjectName,
    notBefore: new Date(now.getTime() - DAY_MS),
    notAfter,
    signingAlgorithm: signingAlgorithm(issuer.privateKey),
    publicKey,
    signingKey: toCryptoKey(issuer.privateKey, 'sign'),
    extensions: [
      new lib.BasicConstraintsExtension(false),
      new lib.KeyUsagesExtension(usage, true),
      new lib.ExtendedKeyUsageExtension([lib.ExtendedKeyUsage.serverAuth]),
      new lib.SubjectAlternativeNameExtension(names.map(generalName)),
      await lib.SubjectKeyIdentifierExtension.create(publicKey),
      await authorityKeyIdentifier(caCert),
    ],
  });
  return { certPem: cert.toString('pem'), notAfter };
}

/**
 * Normalises a requested server name (SNI, CONNECT target, socket address): lower case,
 * no trailing dot, no IPv6 brackets. Throws when it is neither a DNS name nor an IP.
 */
export function normaliseServerName(name: string): string {
  let n = name.trim().toLowerCase().replace(/\.$/, '');
  if (n.startsWith('[') && n.endsWith(']')) n = n.slice(1, -1);
  if (isIP(n)) return n;
  // Underscores are not valid in host names but real hosts use them; TLS clients accept them in SANs.
  const label = /^(?!-)[a-z0-9_-]{1,63}(?<!-)$/;
  if (n.length > 0 && n.length <= 253 && n.split('.').every((l) => label.test(l))) return n;
  throw new BtrflyError('USAGE', `cannot issue a certificate for "${name}": it is neither a DNS name nor an IP address; connect by host name or address`, {
    data: { name },
  });
}

const parsed = new Map<string, X509.X509Certificate>();
function parsedCert(pem: string): X509.X509Certificate {
  let cert = parsed.get(pem);
  if (!cert) parsed.set(pem, (cert = new (x509().X509Certificate)(pem)));
  return cert;
}

function generalName(name: string): X509.JsonGeneralName {
  return isIP(name) ? { type: 'ip', value: name } : { type: 'dns', value: name };
}

async function authorityKeyIdentifier(caCert: X509.X509Certificate): Promise<X509.AuthorityKeyIdentifierExtension> {
  const lib = x509();
  const ski = caCert.getExtension(lib.SubjectKeyIdentifierExtension);
  return ski ? new lib.AuthorityKeyIdentifierExtension(ski.keyId) : lib.AuthorityKeyIdentifierExtension.create(caCert.publicKey);
}

/** A positive 127-bit serial: RFC 5280 allows up to 20 octets and asks for unpredictability. */
function randomSerial(): string {
  const bytes = randomBytes(16);
  bytes[0] = (bytes[0] & 0x7f) | 0x01;
  return bytes.toString('hex');
}

function signingAlgorithm(key: KeyObject): webcrypto.RsaHashedImportParams | (webcrypto.EcKeyImportParams & webcrypto.EcdsaParams) {
  if (key.asymmetricKeyType === 'rsa') return { name: 'RSASSA-PKCS1-v1_5', hash: 'SHA-256' };
  if (key.asymmetricKeyType === 'ec') {
    const curve = key.asymmetricKeyDetails?.namedCurve;
    const namedCurve = curve === 'prime256v1' ? 'P-256' : curve === 'secp384r1' ? 'P-384' : curve === 'secp521r1' ? 'P-521' : undefined;
    if (namedCurve) return { name: 'ECDSA', namedCurve, hash: namedCurve === 'P-256' ? 'SHA-256' : 'SHA-384' };
  }
  throw new BtrflyError('CONFIG', `unsupported CA key type ${key.asymmetricKeyType ?? 'unknown'}: use an RSA or ECDSA (P-256/384/521) key, or delete the CA files to create a new CA`);
}

function toCryptoKey(key: KeyObject, usage: 'sign' | 'verify'): webcrypto.CryptoKey {
  return key.toCryptoKey(signingAlgorithm(key), true, [usage]);
}
