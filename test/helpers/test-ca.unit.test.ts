import { X509Certificate } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { run, testCa, TEST_NAMES } from './index';

describe('test CA', () => {
  test('is a CA, and its leaves verify under it for every test name and loopback address', async () => {
    const ca = testCa();
    const caCert = new X509Certificate(readFileSync(ca.caPath));
    expect(caCert.ca).toBe(true);
    const leaf = ca.issue();
    const cert = new X509Certificate(leaf.certPem);
    expect(cert.ca).toBe(false);
    expect(cert.verify(caCert.publicKey)).toBe(true);
    for (const name of TEST_NAMES) expect(cert.checkHost(name)).toBe(name);
    expect(cert.checkIP('127.0.0.1')).toBe('127.0.0.1');
    expect(cert.checkHost('example.com')).toBeUndefined();
    const verify = await run('openssl', ['verify', '-purpose', 'sslserver', '-CAfile', ca.caPath, leaf.certPath]);
    expect(verify.stdout).toContain(': OK');
    expect(cert.checkPrivateKey(await import('node:crypto').then((c) => c.createPrivateKey(leaf.keyPem)))).toBe(true);
  });

  test('is cached within a test file, leaves per set of names', () => {
    const ca = testCa();
    expect(testCa()).toBe(ca);
    expect(ca.issue(['a.test', '10.200.0.2'])).toBe(ca.issue(['10.200.0.2', 'a.test']));
    expect(new X509Certificate(ca.issue(['10.200.0.2']).certPem).checkIP('10.200.0.2')).toBe('10.200.0.2');
  });
});
