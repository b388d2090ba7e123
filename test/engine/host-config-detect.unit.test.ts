import { promises as fs } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { detectHostPaths, parseNameservers, parseOsRelease, pickUpstreams } from '../../src/engine/host/config';

let dir: string;

beforeAll(async () => {
  dir = await fs.mkdtemp(path.join(os.tmpdir(), 'btrfly-detect-'));
});

afterAll(async () => {
  await fs.rm(dir, { recursive: true, force: true });
});

async function osRelease(name: string, text: string): Promise<string> {
  const file = path.join(dir, name);
  await fs.writeFile(file, text);
  return file;
}

test.each([
  ['debian', 'ID=debian\nVERSION_ID="12"\n', 'debian', '/usr/local/share/ca-certificates', ['update-ca-certificates'], ['update-ca-certificates', '--fresh']],
  ['ubuntu', 'ID=ubuntu\nID_LIKE=debian\n', 'debian', '/usr/local/share/ca-certificates', ['update-ca-certificates'], ['update-ca-certificates', '--fresh']],
  ['fedora', 'ID=fedora\n', 'rhel', '/etc/pki/ca-trust/source/anchors', ['update-ca-trust', 'extract'], ['update-ca-trust', 'extract']],
  ['rocky', 'ID="rocky"\nID_LIKE="rhel centos fedora"\n', 'rhel', '/etc/pki/ca-trust/source/anchors', ['update-ca-trust', 'extract'], ['update-ca-trust', 'extract']],
  ['alpine', 'ID=alpine\n', 'alpine', '/usr/local/share/ca-certificates', ['update-ca-certificates'], ['update-ca-certificates']],
])('os-release of %s selects the %s trust store', async (name, text, kind, trustDir, update, remove) => {
  const env = { PATH: '', BTRFLY_OS_RELEASE: await osRelease(name, text) };
  expect(detectHostPaths(env, 'linux')).toEqual({
    resolvConf: '/etc/resolv.conf',
    stateDir: '/var/lib/btrfly',
    trust: kind,
    trustDir,
    trustUpdateCommand: update,
    trustRemoveCommand: remove,
    systemdResolvConf: '/run/systemd/resolve/resolv.conf',
    // Debian's store is changed directly (debian-trust.ts), the others by their tool.
    ...(kind === 'debian' ? { debianCerts: { dir: '/etc/ssl/certs', bundle: 'ca-certificates.crt', hooksDir: '/etc/ca-certificates/update.d' } } : {}),
  });
});

test('an unknown distribution is recognised by the trust tool on its PATH', async () => {
  const bin = path.join(dir, 'bin');
  await fs.mkdir(bin);
  await fs.writeFile(path.join(bin, 'update-ca-trust'), '#!/bin/sh\n', { mode: 0o755 });
  const env = { PATH: bin, BTRFLY_OS_RELEASE: await osRelease('other', 'ID=somethingelse\n') };
  expect(detectHostPaths(env, 'linux').trust).toBe('rhel');
});

test('every path can be redirected from the environment', () => {
  const env = {
    BTRFLY_RESOLV_CONF: '/tmp/x/resolv.conf',
    BTRFLY_STATE_DIR: '/tmp/x/state',
    BTRFLY_TRUST_DIR: '/tmp/x/anchors',
    BTRFLY_TRUST_UPDATE: '["/tmp/x/update trust.sh", "--all"]',
    BTRFLY_SYSTEMD_RESOLV_CONF: '/tmp/x/upstream.conf',
  };
  expect(detectHostPaths(env, 'linux')).toEqual({
    resolvConf: '/tmp/x/resolv.conf',
    stateDir: '/tmp/x/state',
    trust: 'none',
    trustDir: '/tmp/x/anchors',
    trustUpdateCommand: ['/tmp/x/update trust.sh', '--all'],
    trustRemoveCommand: ['/tmp/x/update trust.sh', '--all'],
    systemdResolvConf: '/tmp/x/upstream.conf',
  });
  expect(detectHostPaths({ BTRFLY_TRUST_DIR: '/a', BTRFLY_TRUST_UPDATE: 'sh -c true', BTRFLY_TRUST_REMOVE: 'sh -c false' }, 'linux')).toMatchObject({
    trustUpdateCommand: ['sh', '-c', 'true'],
    trustRemoveCommand: ['sh', '-c', 'false'],
  });
});

test('macOS uses the keychain and its own state directory', () => {
  expect(detectHostPaths({}, 'darwin')).toMatchObject({ trust: 'macos', stateDir: '/var/db/btrfly' });
});

test('os-release values may be quoted and escaped', () => {
  expect(parseOsRelease('NAME="Debian \\"GNU\\"/Linux"\nID=debian\n# comment\nVERSION_ID=\'12\'\n')).toEqual({
    NAME: 'Debian "GNU"/Linux',
    ID: 'debian',
    VERSION_ID: '12',
  });
});

test('nameservers are read in order, comments ignored; the systemd stub gives way to the real upstreams', () => {
  expect(parseNameservers('nameserver 1.1.1.1 # primary\n;nameserver 9.9.9.9\n  nameserver   ::1\nsearch x\n')).toEqual(['1.1.1.1', '::1']);
  expect(pickUpstreams('nameserver 127.0.0.53\n', 'nameserver 10.1.1.1\nnameserver 10.1.1.2\n')).toEqual(['10.1.1.1', '10.1.1.2']);
  expect(pickUpstreams('nameserver 127.0.0.53\n', undefined)).toEqual([]);
  expect(pickUpstreams('nameserver 10.0.0.1\nnameserver 127.0.0.2\n', undefined, ['127.0.0.2'])).toEqual(['10.0.0.1']);
});
