import { execFileSync, spawn } from 'node:child_process';
import { promises as fs } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { selfSignedCaPem } from '../helpers/test-ca';

// A crash at any point of `apply` must be undone by `restore()` from a fresh process:
// each case runs `apply` in a child that is SIGKILLed at one step (or at a random
// moment), then a second child restores, and every file must be as it was.

const ROOT = path.resolve(__dirname, '../..');
let work: string;
let compiled: string;
let driver: string;

const CA = selfSignedCaPem('btrfly crash CA');

beforeAll(async () => {
  work = await fs.mkdtemp(path.join(os.tmpdir(), 'btrfly-crash-'));
  await fs.chmod(work, 0o755); // the permission case runs the driver as nobody
  compiled = path.join(work, 'dist');
  const tsc = path.join(ROOT, 'node_modules', 'typescript', 'bin', 'tsc');
  execFileSync(process.execPath, [
    tsc, '--outDir', compiled, '--rootDir', path.join(ROOT, 'src'), '--module', 'commonjs', '--target', 'ES2023',
    '--moduleResolution', 'node', '--esModuleInterop', '--skipLibCheck', '--strict', '--types', 'node',
    path.join(ROOT, 'src/engine/host/config/index.ts'),
  ], { cwd: ROOT, stdio: 'inherit' });
  driver = path.join(work, 'driver.js');
  await fs.writeFile(
    driver,
    `const { HostConfigurator } = require(${JSON.stringify(path.join(compiled, 'engine/host-config'))});
const cfg = JSON.parse(process.env.BTRFLY_TEST_CFG);
const host = new HostConfigurator(cfg.paths, undefined, {
  onStep: (step) => { if (step === cfg.killAt) process.kill(process.pid, 'SIGKILL'); },
});
(cfg.action === 'apply' ? host.apply(cfg.opts) : host.restore()).then(
  (r) => { process.stdout.write(JSON.stringify(r ?? null)); },
  (e) => { process.stderr.write(e.code + ' ' + e.message + '\\n'); process.exit(e.exitCode ?? 1); },
);
`,
  );
}, 120_000);

afterAll(async () => {
  await fs.rm(work, { recursive: true, force: true });
});

interface Fixture {
  dir: string;
  paths: Record<string, unknown> & { resolvConf: string; stateDir: string; trustDir: string };
}

/** A host in miniature: etc/resolv.conf (plain or a symlink), a trust dir with one CA, a bundle. */
async function makeHost(symlinked: boolean): Promise<Fixture> {
  const dir = await fs.mkdtemp(path.join(work, 'host-'));
  await fs.mkdir(path.join(dir, 'etc'));
  await fs.mkdir(path.join(dir, 'run'));
  await fs.mkdir(path.join(dir, 'anchors'));
  await fs.writeFile(path.join(dir, 'anchors', 'corp.crt'), '-----BEGIN CERTIFICATE-----\ncorp\n-----END CERTIFICATE-----\n');
  const resolvConf = path.join(dir, 'etc', 'resolv.conf');
  if (symlinked) {
    await fs.writeFile(path.join(dir, 'run', 'stub-resolv.conf'), 'nameserver 127.0.0.53\noptions edns0 trust-ad\n');
    await fs.symlink('../run/stub-resolv.conf', resolvConf);
  } else {
    await fs.writeFile(resolvConf, 'nameserver 10.9.8.7\nsearch example.net\n', { mode: 0o600 });
    await fs.chmod(resolvConf, 0o600);
  }
  // Like update-ca-certificates: rebuilds the bundle from the anchors. With KILL_PARENT it
  // SIGKILLs btrfly while the trust store is being rebuilt.
  const update = path.join(dir, 'update-trust.sh');
  await fs.writeFile(
    update,
    `#!/bin/sh\ncat "${dir}/anchors/"*.crt > "${dir}/bundle.tmp" && mv "${dir}/bundle.tmp" "${dir}/bundle.pem"\n` +
      `if [ -n "$KILL_PARENT" ]; then kill -9 $PPID; sleep 5; fi\n`,
    { mode: 0o755 },
  );
  execFileSync(update);
  return {
    dir,
    paths: {
      resolvConf,
      stateDir: path.join(dir, 'state'),
      trust: 'none',
      trustDir: path.join(dir, 'anchors'),
      trustUpdateCommand: [update],
      systemdResolvConf: path.join(dir, 'run', 'resolv.conf'),
    },
  };
}

/** Every entry under the host but the state dir: type, mode, bytes or link target. */
async function snapshot(dir: string): Promise<Record<string, string>> {
  const out: Record<string, string> = {};
  async function walk(d: string): Promise<void> {
    for (const name of (await fs.readdir(d)).sort()) {
      const p = path.join(d, name);
      const rel = path.relative(dir, p);
      if (rel === 'state') continue;
      const st = await fs.lstat(p);
      const mode = (st.mode & 0o7777).toString(8);
      if (st.isSymbolicLink()) out[rel] = `link -> ${await fs.readlink(p)}`;
      else if (st.isDirectory()) {
        out[rel] = `dir ${mode}`;
        await walk(p);
      } else out[rel] = `file ${mode} ${(await fs.readFile(p)).toString('base64')}`;
    }
  }
  await walk(dir);
  return out;
}

function runDriver(
  cfg: Record<string, unknown>,
  opts: { env?: Record<string, string>; killAfterMs?: number; uid?: number } = {},
): Promise<{ code: number | null; signal: NodeJS.Signals | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const env = { ...process.env, ...opts.env, BTRFLY_TEST_CFG: JSON.stringify(cfg) };
    const argv = opts.uid === undefined ? [process.execPath, driver] : ['setpriv', `--reuid=${opts.uid}`, `--regid=${opts.uid}`, '--clear-groups', process.execPath, driver];
    const child = spawn(argv[0], argv.slice(1), { env });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (b: Buffer) => (stdout += b));
    child.stderr.on('data', (b: Buffer) => (stderr += b));
    if (opts.killAfterMs !== undefined) setTimeout(() => child.kill('SIGKILL'), opts.killAfterMs);
    child.on('close', (code, signal) => resolve({ code, signal, stdout, stderr }));
  });
}

const STEPS = ['journal-trust', 'trust-file', 'trust-update', 'journal-resolver', 'resolver'];
const applyOpts = { dnsServer: '127.0.0.2', caPem: CA, caName: 'crash' };

describe.each([
  ['a plain file', false],
  ['a symlink', true],
])('resolv.conf as %s', (_label, symlinked) => {
  test.each(STEPS)('SIGKILL after step %s, then restore from a new process, leaves every file as it was', async (step) => {
    const host = await makeHost(symlinked);
    const before = await snapshot(host.dir);

    const killed = await runDriver({ action: 'apply', paths: host.paths, opts: applyOpts, killAt: step });
    expect(killed.signal).toBe('SIGKILL');
    if (step === 'resolver') expect(await fs.readFile(host.paths.resolvConf, 'utf8')).toMatch(/^nameserver 127\.0\.0\.2$/m);

    const restored = await runDriver({ action: 'restore', paths: host.paths });
    expect(restored.stderr).toBe('');
    expect(restored.code).toBe(0);
    expect(await snapshot(host.dir)).toEqual(before);
    await expect(fs.access(path.join(host.paths.stateDir, 'host-config.json'))).rejects.toThrow();
  });

  test('SIGKILL while the trust store is being rebuilt, and again while restoring, is still undone', async () => {
    const host = await makeHost(symlinked);
    const before = await snapshot(host.dir);

    const killed = await runDriver({ action: 'apply', paths: host.paths, opts: applyOpts }, { env: { KILL_PARENT: '1' } });
    expect(killed.signal).toBe('SIGKILL');
    expect(await fs.readFile(path.join(host.dir, 'bundle.pem'), 'utf8')).toContain(CA.trim());
    const killedRestore = await runDriver({ action: 'restore', paths: host.paths }, { env: { KILL_PARENT: '1' } });
    expect(killedRestore.signal).toBe('SIGKILL');

    const restored = await runDriver({ action: 'restore', paths: host.paths });
    expect(restored.code).toBe(0);
    expect(await snapshot(host.dir)).toEqual(before);
  });
});

/**
 * A Debian store in miniature, changed directly rather than rebuilt: a bundle, a regular-file
 * certificate and a link in `ssl-certs`, a hook that logs what it is told.
 */
async function makeDebianHost(): Promise<Fixture> {
  const host = await makeHost(false);
  const certs = path.join(host.dir, 'ssl-certs');
  await fs.mkdir(certs);
  await fs.mkdir(path.join(host.dir, 'hooks'));
  await fs.writeFile(path.join(certs, 'Corp.pem'), '-----BEGIN CERTIFICATE-----\ncorp\n-----END CERTIFICATE-----\n', { mode: 0o600 });
  await fs.symlink('../anchors/corp.crt', path.join(certs, 'corp-link.pem'));
  await fs.writeFile(path.join(certs, 'ca-certificates.crt'), '-----BEGIN CERTIFICATE-----\ncorp\n-----END CERTIFICATE-----\n');
  await fs.writeFile(path.join(host.dir, 'hooks', 'log'), `#!/bin/sh\ncat >> "${host.dir}/hooks.log"\n`, { mode: 0o755 });
  host.paths.trust = 'debian';
  host.paths.debianCerts = { dir: certs, bundle: 'ca-certificates.crt', hooksDir: path.join(host.dir, 'hooks') };
  return host;
}

/** The snapshot without the hooks' log (which says what they were told, not a file btrfly restores). */
async function withoutHookLog(dir: string): Promise<Record<string, string>> {
  const { ['hooks.log']: _log, ...rest } = await snapshot(dir);
  return rest;
}

describe('a Debian store changed directly', () => {
  test.each(STEPS)('SIGKILL after step %s, then restore from a new process, leaves every file as it was', async (step) => {
    const host = await makeDebianHost();
    const before = await snapshot(host.dir);

    const killed = await runDriver({ action: 'apply', paths: host.paths, opts: applyOpts, killAt: step });
    expect(killed.signal).toBe('SIGKILL');

    const restored = await runDriver({ action: 'restore', paths: host.paths });
    expect(restored.stderr).toBe('');
    expect(restored.code).toBe(0);
    expect(await withoutHookLog(host.dir)).toEqual(before);
    await expect(fs.access(path.join(host.paths.stateDir, 'host-config.json'))).rejects.toThrow();
  });

  test('SIGKILL at random moments of apply and of restore is always undone', async () => {
    const timing = await makeDebianHost();
    let started = Date.now();
    await runDriver({ action: 'apply', paths: timing.paths, opts: applyOpts });
    const applyMs = Date.now() - started;
    started = Date.now();
    await runDriver({ action: 'restore', paths: timing.paths });
    const restoreMs = Date.now() - started;
    for (let i = 0; i < 8; i++) {
      const host = await makeDebianHost();
      const before = await snapshot(host.dir);
      await runDriver({ action: 'apply', paths: host.paths, opts: applyOpts }, { killAfterMs: Math.floor(Math.random() * applyMs) });
      if (i % 2 === 1) await runDriver({ action: 'restore', paths: host.paths }, { killAfterMs: Math.floor(Math.random() * restoreMs) });
      const restored = await runDriver({ action: 'restore', paths: host.paths });
      expect(restored.code).toBe(0);
      expect(await withoutHookLog(host.dir)).toEqual(before);
    }
  });
});

test('SIGKILL at random moments of apply is always undone by restore', async () => {
  const timing = await makeHost(false);
  const started = Date.now();
  await runDriver({ action: 'apply', paths: timing.paths, opts: applyOpts });
  const full = Date.now() - started;
  for (let i = 0; i < 10; i++) {
    const host = await makeHost(i % 2 === 1);
    const before = await snapshot(host.dir);
    await runDriver({ action: 'apply', paths: host.paths, opts: applyOpts }, { killAfterMs: Math.floor(Math.random() * full) });
    const restored = await runDriver({ action: 'restore', paths: host.paths });
    expect(restored.code).toBe(0);
    expect(await snapshot(host.dir)).toEqual(before);
  }
});

test('without root, apply fails with one line saying so and changes nothing', async () => {
  const host = await makeHost(false);
  for (const d of [host.dir, path.join(host.dir, 'etc')]) await fs.chmod(d, 0o755);
  const before = await snapshot(host.dir);

  const result = await runDriver({ action: 'apply', paths: host.paths, opts: applyOpts }, { uid: 65534 });

  expect(result.stderr).toBe(
    'PERMISSION host mode changes /etc/resolv.conf and the trust store and needs root: run with sudo, or use "btrfly run" (command mode) instead\n',
  );
  expect(result.code).toBe(1);
  expect(await snapshot(host.dir)).toEqual(before);
});
