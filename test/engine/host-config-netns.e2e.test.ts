import { execFileSync, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { promises as fs } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { DEBIAN_TRUST, hostCopies, hostModeMissing, regularPemIn, selfSignedCaPem, snapshot } from '../helpers';
import { testWhen } from '../helpers/when';

// The real thing on Debian: inside a private mount namespace, /etc/resolv.conf, the
// local anchors, /etc/ssl/certs and the update hooks are bind-mounted from temp copies,
// so the host's own files never change; inside a new network namespace a dns2 answerer
// listens on 127.0.0.1:53. apply must make getent and openssl see btrfly's DNS and CA,
// and restore must leave every copied file byte-identical.

const ROOT = path.resolve(__dirname, '../..');
const missing = hostModeMissing(['getent', 'openssl']);
const maybe = testWhen(missing);

async function sha256(file: string): Promise<string> {
  return createHash('sha256').update(await fs.readFile(file)).digest('hex');
}

maybe('in a private namespace, apply makes getent and openssl use btrfly; restore leaves every file byte-identical', async () => {
  const work = await fs.mkdtemp(path.join(os.tmpdir(), 'btrfly-netns-'));
  const hostResolv = await sha256('/etc/resolv.conf');
  const hostCerts = await snapshot('/etc/ssl/certs');
  try {
    const compiled = path.join(work, 'dist');
    execFileSync(process.execPath, [
      path.join(ROOT, 'node_modules/typescript/bin/tsc'), '--outDir', compiled, '--rootDir', path.join(ROOT, 'src'),
      '--module', 'commonjs', '--target', 'ES2023', '--moduleResolution', 'node', '--esModuleInterop', '--skipLibCheck',
      '--strict', '--types', 'node', path.join(ROOT, 'src/engine/host/config/index.ts'),
    ], { stdio: 'inherit' });

    // Copies that stand in for the host's files inside the namespace.
    const { copies, mounts } = await hostCopies(work, '# the host before btrfly\nnameserver 192.0.2.53\nsearch corp.example\n');
    // A certificate an administrator placed as a regular file must stay one (update-ca-certificates makes it a link).
    const regular = await regularPemIn(copies);
    const before = await snapshot(copies);

    const caPem = selfSignedCaPem('btrfly netns e2e CA', [
      { name: 'basicConstraints', cA: true, critical: true },
      { name: 'keyUsage', keyCertSign: true, cRLSign: true, critical: true },
    ]);
    await fs.writeFile(path.join(work, 'ca.pem'), caPem);
    const driver = path.join(work, 'driver.js');
    await fs.writeFile(
      driver,
      `const { execFile } = require('node:child_process');
const fs = require('node:fs');
const dns2 = require(${JSON.stringify(require.resolve('dns2'))});
const { HostConfigurator, detectHostPaths } = require(${JSON.stringify(path.join(compiled, 'engine/host-config'))});
const { Packet } = dns2;
// Asynchronous on purpose: the DNS answerer lives in this same event loop.
const run = (cmd, args) => new Promise((resolve) => execFile(cmd, args, { encoding: 'utf8', timeout: 20000 }, (err, stdout, stderr) =>
  resolve({ code: err ? (typeof err.code === 'number' ? err.code : -1) : 0, out: stdout + stderr })));
(async () => {
  const server = dns2.createServer({ udp: true, handle: (request, send) => {
    const response = Packet.createResponseFromRequest(request);
    const [q] = request.questions;
    if (q && q.type === Packet.TYPE.A) response.answers.push({ name: q.name, type: Packet.TYPE.A, class: Packet.CLASS.IN, ttl: 60, address: '203.0.113.7' });
    send(response);
  } });
  await server.listen({ udp: { port: 53, address: '127.0.0.1' } });
  const paths = detectHostPaths({ ...process.env, BTRFLY_STATE_DIR: ${JSON.stringify(path.join(work, 'state'))} });
  const host = new HostConfigurator(paths);
  const result = { paths };
  await host.apply({ dnsServer: '127.0.0.1', caPem: fs.readFileSync(${JSON.stringify(path.join(work, 'ca.pem'))}, 'utf8'), caName: 'e2e' });
  result.resolvDuring = fs.readFileSync('/etc/resolv.conf', 'utf8');
  result.getentDuring = await run('getent', ['hosts', 'build.example']);
  result.verifyDuring = await run('openssl', ['verify', '-CApath', '/etc/ssl/certs', ${JSON.stringify(path.join(work, 'ca.pem'))}]);
  result.verifyBundleDuring = await run('openssl', ['verify', '-CAfile', '/etc/ssl/certs/ca-certificates.crt', ${JSON.stringify(path.join(work, 'ca.pem'))}]);
  result.restored = await host.restore();
  result.getentAfter = await run('getent', ['hosts', 'build.example']);
  result.verifyAfter = await run('openssl', ['verify', '-CApath', '/etc/ssl/certs', ${JSON.stringify(path.join(work, 'ca.pem'))}]);
  server.close();
  process.stdout.write(JSON.stringify(result));
})().catch((e) => { process.stderr.write(String(e && e.stack || e)); process.exit(1); });
`,
    );
    const inner = [
      'set -e',
      ...mounts,
      'ip link set lo up',
      `exec "${process.execPath}" ${driver}`,
    ].join('\n');
    const ns = spawnSync('unshare', ['--mount', '--net', '--propagation', 'private', 'sh', '-c', inner], { encoding: 'utf8', timeout: 120_000 });
    expect(ns.stderr).toBe('');
    expect(ns.status).toBe(0);
    const r = JSON.parse(ns.stdout);

    expect(r.paths.trust).toBe('debian');
    expect(r.resolvDuring).toMatch(/^nameserver 127\.0\.0\.1$/m);
    expect(r.getentDuring).toEqual({ code: 0, out: expect.stringMatching(/^203\.0\.113\.7\s+build\.example\n$/) });
    expect(r.verifyDuring).toEqual({ code: 0, out: expect.stringMatching(/ca\.pem: OK\n$/) });
    expect(r.verifyBundleDuring).toEqual({ code: 0, out: expect.stringMatching(/ca\.pem: OK\n$/) });
    expect(r.restored.restored).toEqual([
      '/etc/resolv.conf',
      path.join(DEBIAN_TRUST, 'btrfly-e2e.crt'),
      '/etc/ssl/certs/btrfly-e2e.pem',
      expect.stringMatching(/^\/etc\/ssl\/certs\/[0-9a-f]{8}\.0$/),
      '/etc/ssl/certs/ca-certificates.crt',
    ]);
    expect(r.getentAfter.code).not.toBe(0);
    expect(r.verifyAfter.code).not.toBe(0);
    expect(await snapshot(copies)).toEqual(before);
    expect(before[path.join('certs', regular)]).toMatch(/^file 644 /);
    // And the host itself was never touched.
    expect(await sha256('/etc/resolv.conf')).toBe(hostResolv);
    expect(await snapshot('/etc/ssl/certs')).toEqual(hostCerts);
  } finally {
    await fs.rm(work, { recursive: true, force: true });
  }
});
