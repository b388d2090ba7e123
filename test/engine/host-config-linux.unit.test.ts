import { promises as fs } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { BtrflyError } from '../../src/errors';
import { HostConfigurator, type HostPaths } from '../../src/engine/host/config';
import { selfSignedCaPem } from '../helpers/test-ca';

const CA = selfSignedCaPem('btrfly test CA', [{ name: 'basicConstraints', cA: true }]);
const ORIGINAL = '# from DHCP\nsearch corp.example\nnameserver 10.0.0.1\nnameserver 10.0.0.2\noptions ndots:2\n';

let dir: string;
let paths: HostPaths;
let bundle: string;

beforeEach(async () => {
  dir = await fs.mkdtemp(path.join(os.tmpdir(), 'btrfly-hostcfg-'));
  await fs.mkdir(path.join(dir, 'etc'));
  await fs.mkdir(path.join(dir, 'anchors'));
  bundle = path.join(dir, 'bundle.pem');
  // A real update command, like update-ca-certificates: the bundle is every anchor concatenated.
  const update = path.join(dir, 'update-trust.sh');
  await fs.writeFile(update, `#!/bin/sh\ncat /dev/null "${dir}/anchors/"*.crt > "${bundle}" 2>/dev/null\nexit 0\n`, { mode: 0o755 });
  paths = {
    resolvConf: path.join(dir, 'etc', 'resolv.conf'),
    stateDir: path.join(dir, 'state'),
    trust: 'none',
    trustDir: path.join(dir, 'anchors'),
    trustUpdateCommand: [update],
    systemdResolvConf: path.join(dir, 'run', 'systemd-resolv.conf'),
  };
});

afterEach(async () => {
  await fs.rm(dir, { recursive: true, force: true });
});

async function modeOf(file: string): Promise<number> {
  return (await fs.lstat(file)).mode & 0o7777;
}

test('apply points a plain resolv.conf at btrfly and trusts the CA; restore puts back the same bytes and mode', async () => {
  await fs.writeFile(paths.resolvConf, ORIGINAL, { mode: 0o640 });
  await fs.chmod(paths.resolvConf, 0o640);
  const host = new HostConfigurator(paths);

  await host.apply({ dnsServer: '127.0.0.2', caPem: CA, caName: 'test' });

  const during = await fs.readFile(paths.resolvConf, 'utf8');
  expect(during.split('\n').filter((l) => l.startsWith('nameserver'))).toEqual(['nameserver 127.0.0.2']);
  expect(during).toContain('btrfly stop record');
  expect(during).toContain('search corp.example');
  expect(await fs.readFile(bundle, 'utf8')).toContain(CA.trim());
  expect(await host.originalNameservers()).toEqual(['10.0.0.1', '10.0.0.2']);
  const status = await host.status();
  expect(status).toMatchObject({ applied: true, dnsServer: '127.0.0.2' });
  expect(Date.parse(status.since ?? '')).toBeGreaterThan(Date.now() - 60_000);

  const { restored } = await host.restore();

  // Newest first: the resolver (switched last, once the CA is trusted), then the trust store.
  expect(restored).toEqual([paths.resolvConf, path.join(paths.trustDir!, 'btrfly-test.crt')]);
  expect(await fs.readFile(paths.resolvConf, 'utf8')).toBe(ORIGINAL);
  expect(await modeOf(paths.resolvConf)).toBe(0o640);
  expect(await fs.readFile(bundle, 'utf8')).not.toContain('BEGIN CERTIFICATE');
  await expect(fs.access(path.join(paths.trustDir!, 'btrfly-test.crt'))).rejects.toThrow();
  expect(await host.status()).toEqual({ applied: false });
  expect(await fs.readdir(path.join(dir, 'etc'))).toEqual(['resolv.conf']);
});

test('a resolv.conf symlinked to the systemd-resolved stub becomes a file for the session and the symlink itself comes back', async () => {
  await fs.mkdir(path.join(dir, 'run'));
  const stub = path.join(dir, 'run', 'stub-resolv.conf');
  await fs.writeFile(stub, 'nameserver 127.0.0.53\noptions edns0 trust-ad\nsearch lan\n');
  await fs.writeFile(paths.systemdResolvConf!, 'nameserver 192.0.2.10\nnameserver 192.0.2.11\n');
  await fs.symlink('../run/stub-resolv.conf', paths.resolvConf);
  const host = new HostConfigurator(paths);

  await host.apply({ dnsServer: '127.0.0.2', caPem: CA, caName: 'test' });

  expect((await fs.lstat(paths.resolvConf)).isSymbolicLink()).toBe(false);
  expect(await fs.readFile(paths.resolvConf, 'utf8')).toMatch(/^nameserver 127\.0\.0\.2$/m);
  expect(await fs.readFile(stub, 'utf8')).toBe('nameserver 127.0.0.53\noptions edns0 trust-ad\nsearch lan\n');
  expect(await host.originalNameservers()).toEqual(['192.0.2.10', '192.0.2.11']);

  await host.restore();

  expect(await fs.readlink(paths.resolvConf)).toBe('../run/stub-resolv.conf');
  expect(await fs.readFile(paths.resolvConf, 'utf8')).toContain('nameserver 127.0.0.53');
});

test('applying twice keeps the first original, and restore returns to it', async () => {
  await fs.writeFile(paths.resolvConf, ORIGINAL);
  const host = new HostConfigurator(paths);

  await host.apply({ dnsServer: '127.0.0.2', caPem: CA, caName: 'test' });
  await host.apply({ dnsServer: '127.0.0.3', caPem: CA, caName: 'test' });

  expect(await fs.readFile(paths.resolvConf, 'utf8')).toMatch(/^nameserver 127\.0\.0\.3$/m);
  expect(await host.originalNameservers()).toEqual(['10.0.0.1', '10.0.0.2']);
  await host.restore();
  expect(await fs.readFile(paths.resolvConf, 'utf8')).toBe(ORIGINAL);
  expect(await fs.readFile(bundle, 'utf8')).toBe('');
});

test('restore with nothing applied changes nothing and can run again', async () => {
  await fs.writeFile(paths.resolvConf, ORIGINAL);
  const host = new HostConfigurator(paths);

  expect(await host.restore()).toEqual({ restored: [] });
  await host.apply({ dnsServer: '127.0.0.2', caPem: CA, caName: 'test' });
  await host.restore();
  expect(await host.restore()).toEqual({ restored: [] });
  expect(await fs.readFile(paths.resolvConf, 'utf8')).toBe(ORIGINAL);
});

test('a failing trust update fails apply with its one-line reason and leaves the host as it was', async () => {
  await fs.writeFile(paths.resolvConf, ORIGINAL);
  const failing = path.join(dir, 'fail.sh');
  // Refuses while btrfly's CA is there (as a tool rejecting a certificate would), works once it is gone.
  const script = `#!/bin/sh\nif ls "${paths.trustDir}"/*.crt >/dev/null 2>&1; then echo "bad certificate" >&2; exit 4; fi\n`;
  await fs.writeFile(failing, script, { mode: 0o755 });
  const host = new HostConfigurator({ ...paths, trustUpdateCommand: [failing] });

  const err = await host.apply({ dnsServer: '127.0.0.2', caPem: CA, caName: 'test' }).catch((e: unknown) => e);

  expect(err).toBeInstanceOf(BtrflyError);
  expect((err as BtrflyError).message).toMatch(/fail\.sh" failed: bad certificate: .*\(the host was restored\)$/);
  expect((err as BtrflyError).message).not.toContain('\n');
  expect(await fs.readFile(paths.resolvConf, 'utf8')).toBe(ORIGINAL);
  expect(await fs.readdir(paths.trustDir!)).toEqual([]);
  expect(await host.status()).toEqual({ applied: false });
});

test('a bad CA is refused before anything changes', async () => {
  await fs.writeFile(paths.resolvConf, ORIGINAL);
  const host = new HostConfigurator(paths);

  await expect(host.apply({ dnsServer: '127.0.0.2', caPem: 'not a cert', caName: 'test' })).rejects.toMatchObject({ code: 'CONFIG' });
  await expect(host.apply({ dnsServer: '127.0.0.2', caPem: CA, caName: '../evil' })).rejects.toMatchObject({ code: 'USAGE' });
  expect(await fs.readFile(paths.resolvConf, 'utf8')).toBe(ORIGINAL);
  expect(await host.status()).toEqual({ applied: false });
});

test('a resolv.conf btrfly wrote, with its journal lost, is not taken for the original', async () => {
  await fs.writeFile(paths.resolvConf, ORIGINAL);
  await new HostConfigurator(paths).apply({ dnsServer: '127.0.0.2', caPem: CA, caName: 'test' });
  const written = await fs.readFile(paths.resolvConf, 'utf8');
  await fs.rm(paths.stateDir, { recursive: true });

  await expect(new HostConfigurator(paths).apply({ dnsServer: '127.0.0.2', caPem: CA, caName: 'test' })).rejects.toThrow(
    /was written by btrfly but .* holds no record of the original: restore .* by hand/,
  );
  expect(await fs.readFile(paths.resolvConf, 'utf8')).toBe(written);
});

test('without a journal, originalNameservers reads the live configuration', async () => {
  await fs.writeFile(paths.resolvConf, ORIGINAL);
  expect(await new HostConfigurator(paths).originalNameservers()).toEqual(['10.0.0.1', '10.0.0.2']);
});

test('the resolver is switched after the trust store and after beforeResolver; its failure undoes apply and is rethrown as it is', async () => {
  await fs.writeFile(paths.resolvConf, ORIGINAL);
  const host = new HostConfigurator(paths);
  const seen: string[] = [];
  await host.apply({
    dnsServer: '127.0.0.2',
    caPem: CA,
    caName: 'test',
    beforeResolver: async () => {
      seen.push(await fs.readFile(bundle, 'utf8'), await fs.readFile(paths.resolvConf, 'utf8'));
    },
  });
  expect(seen).toEqual([expect.stringContaining(CA.trim()), ORIGINAL]);
  expect(await fs.readFile(paths.resolvConf, 'utf8')).toMatch(/^nameserver 127\.0\.0\.2$/m);
  await host.restore();

  const refused = new BtrflyError('NOT_FOUND', 'tag "nosuch" not found in archive .btrfly: run "btrfly tags" to list tags');
  const err = await host.apply({ dnsServer: '127.0.0.2', caPem: CA, caName: 'test', beforeResolver: () => Promise.reject(refused) }).catch((e: unknown) => e);
  expect(err).toBe(refused);
  expect(await fs.readFile(paths.resolvConf, 'utf8')).toBe(ORIGINAL);
  expect(await fs.readFile(bundle, 'utf8')).toBe('');
  expect(await fs.readdir(paths.trustDir!)).toEqual([]);
  expect(await host.status()).toEqual({ applied: false });
});
