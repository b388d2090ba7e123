import { generateKeyPairSync, randomBytes, sign } from 'node:crypto';
import { isIP } from 'node:net';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import forge from 'node-forge';
import { tmpDir } from './tmp';

/** The host names test origins answer for. Under `.test` (RFC 6761), so never real. */
export const TEST_NAMES = ['origin.test', 'cdn.test', 'pypi.test', 'registry.test', 'git.test'] as const;

/** Names in a leaf certificate when none are asked for: the test names and loopback. */
export const DEFAULT_CERT_NAMES: readonly string[] = [...TEST_NAMES, 'localhost', '127.0.0.1', '::1'];

/** A certificate issued by the test CA, in memory and on disk. */
export interface IssuedCert {
  /** DNS names and IP literals in the subjectAltName. */
  names: string[];
  certPem: string;
  keyPem: string;
  certPath: string;
  keyPath: string;
}

/**
 * The test CA: the trust anchor of test origins. It is distinct from btrfly's own CA, as
 * a real origin's CA is: the proxy trusts it upstream (`--upstream-ca`), clients trust
 * btrfly's CA.
 */
export interface TestCa {
  certPem: string;
  keyPem: string;
  /** A directory that holds `ca.pem` and the issued certificates. */
  dir: string;
  /** `<dir>/ca.pem`, for `curl --cacert`, `NODE_EXTRA_CA_CERTS`, `--upstream-ca`. */
  caPath: string;
  /** A leaf certificate for these names (default {@link DEFAULT_CERT_NAMES}); cached. */
  issue(names?: readonly string[]): IssuedCert;
}

let cached: TestCa | undefined;

/**
 * The test CA of this test file, created on first use. RSA keys come from Node's native
 * generator (node-forge's pure-JS one takes seconds); node-forge builds and signs the
 * X.509 structures, which Node's crypto cannot. All leaves share one key, as btrfly's do.
 */
export function testCa(): TestCa {
  if (cached) return cached;
  const dir = tmpDir('btrfly-test-ca-');
  const caKeys = rsaKeyPair();
  const leafKeys = rsaKeyPair();
  const caName = [
    { name: 'commonName', value: 'btrfly test origins CA' },
    { name: 'organizationName', value: 'btrfly tests' },
  ];
  const ca = newCertificate(caKeys.publicKey, caName, 3650);
  ca.setIssuer(caName);
  ca.setExtensions([
    { name: 'basicConstraints', cA: true, critical: true },
    { name: 'keyUsage', keyCertSign: true, cRLSign: true, critical: true },
    { name: 'subjectKeyIdentifier' },
  ]);
  signNatively(ca, caKeys.keyPem);
  const certPem = forge.pki.certificateToPem(ca);
  const caPath = join(dir, 'ca.pem');
  writeFileSync(caPath, certPem);
  const leafKeyPath = join(dir, 'leaf-key.pem');
  writeFileSync(leafKeyPath, leafKeys.keyPem, { mode: 0o600 });

  const leaves = new Map<string, IssuedCert>();
  const issue = (names: readonly string[] = DEFAULT_CERT_NAMES): IssuedCert => {
    const key = [...names].sort().join(',');
    const hit = leaves.get(key);
    if (hit) return hit;
    const leaf = newCertificate(leafKeys.publicKey, [{ name: 'commonName', value: names[0] ?? 'test' }], 30);
    leaf.setIssuer(ca.subject.attributes);
    leaf.setExtensions([
      { name: 'basicConstraints', cA: false },
      { name: 'keyUsage', digitalSignature: true, keyEncipherment: true, critical: true },
      { name: 'extKeyUsage', serverAuth: true },
      { name: 'subjectAltName', altNames: names.map((n) => (isIP(n) ? { type: 7, ip: n } : { type: 2, value: n })) },
      { name: 'subjectKeyIdentifier' },
      { name: 'authorityKeyIdentifier', keyIdentifier: ca.generateSubjectKeyIdentifier().getBytes() },
    ]);
    signNatively(leaf, caKeys.keyPem);
    const pem = forge.pki.certificateToPem(leaf);
    const certPath = join(dir, `leaf-${leaves.size}.pem`);
    writeFileSync(certPath, pem);
    const issued = { names: [...names], certPem: pem, keyPem: leafKeys.keyPem, certPath, keyPath: leafKeyPath };
    leaves.set(key, issued);
    return issued;
  };
  cached = { certPem, keyPem: caKeys.keyPem, dir, caPath, issue };
  return cached;
}

/**
 * A throwaway self-signed CA certificate (PEM) named `commonName`, as btrfly's own would be:
 * for tests that install a CA into a trust store, not ones that serve TLS with it.
 * @param extensions X.509 extensions as node-forge takes them (none by default)
 */
export function selfSignedCaPem(commonName: string, extensions: object[] = []): string {
  const keys = rsaKeyPair();
  const name = [{ name: 'commonName', value: commonName }];
  const cert = newCertificate(keys.publicKey, name, 1);
  cert.setIssuer(name);
  cert.setExtensions(extensions);
  signNatively(cert, keys.keyPem);
  return forge.pki.certificateToPem(cert);
}

function rsaKeyPair() {
  const { publicKey, privateKey } = generateKeyPairSync('rsa', {
    modulusLength: 2048,
    publicKeyEncoding: { type: 'spki', format: 'pem' },
    privateKeyEncoding: { type: 'pkcs8', format: 'pem' },
  });
  return {
    keyPem: privateKey,
    publicKey: forge.pki.publicKeyFromPem(publicKey),
  };
}

/**
 * What `cert.sign()` does, with the RSA signature from Node's native crypto: forge's
 * pure-JS RSA takes over a second per signature under jest.
 */
function signNatively(cert: forge.pki.Certificate, keyPem: string): void {
  const oid = forge.pki.oids.sha256WithRSAEncryption;
  const writable = cert as forge.pki.Certificate & { signatureOid: string; siginfo: { algorithmOid: string } };
  writable.signatureOid = oid;
  writable.siginfo.algorithmOid = oid;
  // Exported by node-forge but missing from @types/node-forge.
  const { getTBSCertificate } = forge.pki as unknown as { getTBSCertificate(c: forge.pki.Certificate): forge.asn1.Asn1 };
  const tbs = forge.asn1.toDer(getTBSCertificate(cert)).getBytes();
  cert.signature = sign('sha256', Buffer.from(tbs, 'binary'), keyPem).toString('binary');
}

function newCertificate(publicKey: forge.pki.PublicKey, subject: forge.pki.CertificateField[], days: number) {
  const cert = forge.pki.createCertificate();
  cert.publicKey = publicKey;
  // A positive serial: the high bit clear, or DER would read it as negative.
  const serial = randomBytes(16);
  serial[0] &= 0x7f;
  cert.serialNumber = serial.toString('hex');
  // Back-dated a day so a skewed clock in a namespace or container still accepts it.
  cert.validity.notBefore = new Date(Date.now() - 86_400_000);
  cert.validity.notAfter = new Date(Date.now() + days * 86_400_000);
  cert.setSubject(subject);
  return cert;
}
