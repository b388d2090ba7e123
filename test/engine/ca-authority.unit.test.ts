import { X509Certificate } from 'node:crypto';
import { chmodSync, readFileSync, readdirSync, rmSync, statSync, utimesSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import * as tls from 'node:tls';
import { CertificateAuthority } from '../../src/engine/tls/ca';
import { configDir } from '../../src/engine/base/config-dir';
import { BtrflyError } from '../../src/errors';
import { startHttpsServer, tempDir } from './ca-helpers';

const DAY = 24 * 60 * 60 * 1000;
let tmp: ReturnType<typeof tempDir>;
beforeEach(() => (tmp = tempDir()));
afterEach(() => tmp.cleanup());

/** The leaf a real TLS handshake presents for `servername` (none: the server's default). */
async function peerCert(port: number, ca: string, servername?: string): Promise<X509Certificate> {
  return new Promise((resolve, reject) => {
    const socket = tls.connect({ host: '127.0.0.1', port, servername, ca, rejectUnauthorized: false }, () => {
      const cert = socket.getPeerX509Certificate();
      const alpn = socket.alpnProtocol;
      socket.end();
      if (!cert) return reject(new Error('no peer certificate'));
      if (alpn !== false && alpn !== 'http/1.1') return reject(new Error(`ALPN ${alpn}`));
      resolve(cert);
    });
    socket.on('error', reject);
  });
}

describe('configDir', () => {
  test('BTRFLY_CONFIG_DIR wins, then XDG_CONFIG_HOME/btrfly; created 0700', () => {
    const own = join(tmp.dir, 'own');
    expect(configDir({ BTRFLY_CONFIG_DIR: own, XDG_CONFIG_HOME: tmp.dir })).toBe(own);
    expect(statSync(own).mode & 0o777).toBe(0o700);
    expect(configDir({ XDG_CONFIG_HOME: tmp.dir })).toBe(join(tmp.dir, 'btrfly'));
    expect(statSync(join(tmp.dir, 'btrfly')).mode & 0o777).toBe(0o700);
  });
});

describe('CA files', () => {
  test('created on first use: key 0600, a CA certificate, and the same CA the second time', async () => {
    const dir = join(tmp.dir, 'cfg');
    const first = await CertificateAuthority.loadOrCreate(dir);
    expect(first.certPath).toBe(join(dir, 'ca.pem'));
    expect(statSync(first.keyPath).mode & 0o777).toBe(0o600);
    const cert = new X509Certificate(readFileSync(first.certPath));
    expect(cert.ca).toBe(true);
    expect(cert.subject).toMatch(/^CN=btrfly CA \(.+\)/);
    const years = (Date.parse(cert.validTo) - Date.parse(cert.validFrom)) / (365 * DAY);
    expect(years).toBeGreaterThan(9.9);
    const second = await CertificateAuthority.loadOrCreate(dir);
    expect(second.certPem).toBe(first.certPem);
    expect(readdirSync(dir).sort()).toEqual(['ca-key.pem', 'ca.pem']);
  });

  test('concurrent creation ends with one CA that every caller uses', async () => {
    const dir = join(tmp.dir, 'cfg');
    const cas = await Promise.all(Array.from({ length: 8 }, () => CertificateAuthority.loadOrCreate(dir)));
    expect(new Set(cas.map((c) => c.certPem)).size).toBe(1);
    expect(cas[0].certPem).toBe(readFileSync(join(dir, 'ca.pem'), 'utf8'));
    expect(readdirSync(dir).sort()).toEqual(['ca-key.pem', 'ca.pem']);
  });

  test('a group-readable key is refused with one line saying chmod 600', async () => {
    const ca = await CertificateAuthority.loadOrCreate(tmp.dir);
    chmodSync(ca.keyPath, 0o640);
    const err: BtrflyError = await CertificateAuthority.loadOrCreate(tmp.dir).catch((e) => e);
    expect(err).toBeInstanceOf(BtrflyError);
    expect(err.code).toBe('PERMISSION');
    expect(err.message).toBe(`CA key ${ca.keyPath} is readable by group or others (mode 0640): run "chmod 600 ${ca.keyPath}"`);
    chmodSync(ca.keyPath, 0o600);
    await expect(CertificateAuthority.loadOrCreate(tmp.dir)).resolves.toBeDefined();
  });

  test('a certificate whose key is gone is refused, not replaced by a new CA', async () => {
    const ca = await CertificateAuthority.loadOrCreate(tmp.dir);
    rmSync(ca.keyPath);
    const err: BtrflyError = await CertificateAuthority.loadOrCreate(tmp.dir).catch((e) => e);
    expect(err).toBeInstanceOf(BtrflyError);
    expect(err.code).toBe('CONFIG');
    expect(err.message).toBe(
      `CA key ${ca.keyPath} is missing but its certificate ${ca.certPath} exists: restore ca-key.pem, or delete ca.pem to create a new CA (then trust the new one where the old one was)`,
    );
    expect(readFileSync(ca.certPath, 'utf8')).toBe(ca.certPem);
    expect(readdirSync(tmp.dir)).toEqual(['ca.pem']);
  });

  test('a certificate that does not match the key is refused', async () => {
    const other = tempDir();
    try {
      const ca = await CertificateAuthority.loadOrCreate(tmp.dir);
      writeFileSync(ca.certPath, (await CertificateAuthority.loadOrCreate(other.dir)).certPem);
      // An old key: nobody is creating this CA right now, so there is nothing to wait for.
      utimesSync(ca.keyPath, new Date(Date.now() - DAY), new Date(Date.now() - DAY));
      await expect(CertificateAuthority.loadOrCreate(tmp.dir)).rejects.toThrow(/does not match its key .*: restore the pair, or delete both/);
    } finally {
      other.cleanup();
    }
  });
});

describe('leaf certificates over real TLS', () => {
  let ca: CertificateAuthority;
  let server: Awaited<ReturnType<typeof startHttpsServer>>;
  beforeEach(async () => {
    ca = await CertificateAuthority.loadOrCreate(tmp.dir);
    server = await startHttpsServer(ca);
  });
  afterEach(() => server.close());

  test('a leaf per SNI name: SAN, CN, serverAuth, < 398 days from a day ago, issued by the CA', async () => {
    const caCert = new X509Certificate(ca.certPem);
    for (const name of ['registry.test', 'a.b.example.org']) {
      const leaf = await peerCert(server.port, ca.certPem, name);
      expect(leaf.subjectAltName).toBe(`DNS:${name}`);
      expect(leaf.subject).toBe(`CN=${name}`);
      expect(leaf.checkIssued(caCert) && leaf.verify(caCert.publicKey)).toBe(true);
      expect(leaf.ca).toBe(false);
      expect(leaf.keyUsage).toEqual(['1.3.6.1.5.5.7.3.1']);
      expect(leaf.checkHost(name)).toBe(name);
      const from = Date.parse(leaf.validFrom);
      const to = Date.parse(leaf.validTo);
      expect(from).toBeLessThan(Date.now() - 23 * 60 * 60 * 1000);
      expect((to - from) / DAY).toBeLessThan(398);
    }
  });

  test('no SNI (an IP literal) gets the default leaf with iPAddress SANs', async () => {
    const leaf = await peerCert(server.port, ca.certPem);
    expect(leaf.subjectAltName).toBe('DNS:localhost, IP Address:127.0.0.1, IP Address:0:0:0:0:0:0:0:1');
    expect(leaf.checkIP('127.0.0.1')).toBe('127.0.0.1');
    expect(leaf.checkIP('10.0.0.1')).toBeUndefined();
  });

  test('the same name signs once: concurrent and repeated requests share one context and serial', async () => {
    const contexts = await Promise.all(Array.from({ length: 20 }, () => ca.secureContextFor('Registry.Test.')));
    expect(new Set(contexts).size).toBe(1);
    expect(ca.cachedSecureContextFor('registry.test')).toBe(contexts[0]);
    const a = await peerCert(server.port, ca.certPem, 'registry.test');
    const b = await peerCert(server.port, ca.certPem, 'registry.test');
    expect(a.serialNumber).toBe(b.serialNumber);
    const c = await peerCert(server.port, ca.certPem, 'other.test');
    expect(c.serialNumber).not.toBe(a.serialNumber);
    expect(ca.cachedNames).toBe(2);
  });

  test('one shared leaf key for every host', async () => {
    const a = await peerCert(server.port, ca.certPem, 'one.test');
    const b = await peerCert(server.port, ca.certPem, 'two.test');
    expect(a.publicKey.equals(b.publicKey)).toBe(true);
    expect(a.publicKey.asymmetricKeyType).toBe('ec');
  });

  test('a name that is neither a host name nor an IP is refused, not signed', async () => {
    await expect(ca.secureContextFor('bad name,CN=evil')).rejects.toThrow(/neither a DNS name nor an IP address/);
    expect(ca.cachedNames).toBe(0);
  });
});
