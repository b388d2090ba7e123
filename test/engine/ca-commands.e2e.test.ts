import { X509Certificate } from 'node:crypto';
import { chmodSync, existsSync, readFileSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { cleanEnv, run, tempDir } from './ca-helpers';

/** `btrfly ca path|export` as a user runs them: the built CLI, a fresh config dir. */
const BIN = join(__dirname, '../../bin/run.js');
let tmp: ReturnType<typeof tempDir>;
let cfg: string;
const btrfly = (...args: string[]) => run(process.execPath, [BIN, ...args], { env: cleanEnv({ BTRFLY_CONFIG_DIR: cfg }, tmp.dir), cwd: tmp.dir });

beforeAll(() => {
  if (!existsSync(join(__dirname, '../../dist/commands/ca/path.js'))) throw new Error('dist is missing: run "npm run build" first');
});
beforeEach(() => {
  tmp = tempDir();
  cfg = join(tmp.dir, 'config');
});
afterEach(() => tmp.cleanup());

test('ca path creates the CA on first use and prints where it is', async () => {
  const out = await btrfly('ca', 'path');
  expect(out).toMatchObject({ code: 0, stdout: `${join(cfg, 'ca.pem')}\n`, stderr: '' });
  expect(statSync(cfg).mode & 0o777).toBe(0o700);
  expect(statSync(join(cfg, 'ca-key.pem')).mode & 0o777).toBe(0o600);
  const json = await btrfly('ca', 'path', '--json');
  expect(JSON.parse(json.stdout)).toEqual({ cert: join(cfg, 'ca.pem'), key: join(cfg, 'ca-key.pem'), dir: cfg });
});

test('ca export prints the same certificate, never the key; -o writes it to a file', async () => {
  const out = await btrfly('ca', 'export');
  expect(out.code).toBe(0);
  expect(out.stdout).toBe(readFileSync(join(cfg, 'ca.pem'), 'utf8'));
  expect(out.stdout).not.toMatch(/PRIVATE KEY/);
  expect(new X509Certificate(out.stdout).ca).toBe(true);
  const file = join(tmp.dir, 'btrfly-ca.pem');
  const written = await btrfly('ca', 'export', '-o', file);
  expect(written).toMatchObject({ code: 0, stdout: '' });
  expect(readFileSync(file, 'utf8')).toBe(out.stdout);
});

test('six CLIs started at once end with one CA', async () => {
  const outs = await Promise.all(Array.from({ length: 6 }, () => btrfly('ca', 'export')));
  expect(outs.map((o) => o.code)).toEqual([0, 0, 0, 0, 0, 0]);
  expect(new Set(outs.map((o) => o.stdout)).size).toBe(1);
  expect(readdirSync(cfg).sort()).toEqual(['ca-key.pem', 'ca.pem']);
});

test('six processes creating the CA in the same millisecond end with one CA', async () => {
  // CLI start-up jitter (hundreds of ms) hides the race, so each process spins until one instant.
  const at = Date.now() + 1500;
  const script = `const { CertificateAuthority } = require(${JSON.stringify(join(__dirname, '../../dist/engine/tls/ca.js'))});
    while (Date.now() < ${at});
    CertificateAuthority.loadOrCreate(process.env.BTRFLY_CONFIG_DIR).then((ca) => process.stdout.write(ca.certPem));`;
  const outs = await Promise.all(
    Array.from({ length: 6 }, () => run(process.execPath, ['-e', script], { env: cleanEnv({ BTRFLY_CONFIG_DIR: cfg }, tmp.dir) })),
  );
  expect(outs.map((o) => o.stderr)).toEqual(['', '', '', '', '', '']);
  expect(new Set(outs.map((o) => o.stdout)).size).toBe(1);
  expect(outs[0].stdout).toBe(readFileSync(join(cfg, 'ca.pem'), 'utf8'));
  expect(readdirSync(cfg).sort()).toEqual(['ca-key.pem', 'ca.pem']);
});

test('a world-readable key: exit 1, one line naming the fix, no stack', async () => {
  await btrfly('ca', 'path');
  const key = join(cfg, 'ca-key.pem');
  chmodSync(key, 0o644);
  const out = await btrfly('ca', 'export');
  expect(out).toMatchObject({ code: 1, stdout: '' });
  expect(out.stderr).toBe(`btrfly: CA key ${key} is readable by group or others (mode 0644): run "chmod 600 ${key}"\n`);
});
