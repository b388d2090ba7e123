import { join } from 'node:path';
import { CertificateAuthority } from '../../src/engine/tls/ca';
import type { KeyType } from '../../src/engine/tls/cert-issuer';
import { run, startHttpsServer, tempDir } from './ca-helpers';

/**
 * Fresh TLS handshakes per second against a btrfly-terminated server, ECDSA P-256 leaf
 * key vs RSA-2048, no session resumption. Clients run in another process, 8 at a time,
 * so the server's CPU per handshake is measured alone. The figures go to
 * docs/decisions.md; the test asserts every handshake verifies against the CA.
 */
const HANDSHAKES = Number(process.env.BTRFLY_HANDSHAKES ?? 200);
const CLIENT = `const tls = require('node:tls');
const [port, total, ca] = [Number(process.argv[1]), Number(process.argv[2]), process.argv[3]];
let next = 0;
const one = () => new Promise((resolve, reject) => {
  const s = tls.connect({ host: '127.0.0.1', port, servername: 'registry.test', ca }, () => {
    if (!s.authorized) return reject(s.authorizationError);
    s.destroy(); resolve();
  });
  s.on('error', reject);
});
const worker = async () => { while (next++ < total) await one(); };
const t0 = performance.now();
Promise.all(Array.from({ length: 8 }, worker)).then(() => process.stdout.write(String(performance.now() - t0)));`;
let tmp: ReturnType<typeof tempDir>;
beforeAll(() => (tmp = tempDir()));
afterAll(() => tmp.cleanup());

async function measure(leafKeyType: KeyType): Promise<{ perSecond: number; serverCpuMs: number }> {
  const ca = await CertificateAuthority.loadOrCreate(join(tmp.dir, 'cfg'), { leafKeyType });
  const server = await startHttpsServer(ca);
  try {
    await ca.secureContextFor('registry.test'); // measure handshakes, not the first signing
    const cpu = process.cpuUsage();
    const out = await run(process.execPath, ['-e', CLIENT, String(server.port), String(HANDSHAKES), ca.certPem]);
    const used = process.cpuUsage(cpu);
    expect(out.stderr).toBe('');
    expect(out.code).toBe(0);
    return { perSecond: HANDSHAKES / (Number(out.stdout) / 1000), serverCpuMs: (used.user + used.system) / 1000 / HANDSHAKES };
  } finally {
    await server.close();
  }
}

test(`fresh handshakes with an ECDSA P-256 leaf and with an RSA-2048 leaf`, async () => {
  const ec = await measure('ec');
  const rsa = await measure('rsa');
  const fmt = (m: { perSecond: number; serverCpuMs: number }) => `${m.perSecond.toFixed(0)}/s, server CPU ${m.serverCpuMs.toFixed(2)} ms each`;
  process.stdout.write(`fresh TLS handshakes: ecdsa-p256 ${fmt(ec)}; rsa-2048 ${fmt(rsa)}\n`);
  expect(ec.perSecond).toBeGreaterThan(0);
  expect(rsa.perSecond).toBeGreaterThan(0);
});
