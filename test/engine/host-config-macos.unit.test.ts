import { X509Certificate } from 'node:crypto';
import { promises as fs } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { HostConfigurator, type CommandResult, type HostPaths } from '../../src/engine/host/config';
import { selfSignedCaPem } from '../helpers/test-ca';

// macOS's networksetup and security cannot run on Linux: they are tested at their
// command boundary, with a runner that records every argv and answers like macOS does.

const CA = selfSignedCaPem('btrfly test CA');
const SHA1 = new X509Certificate(CA).fingerprint.replace(/:/g, '');
const KEYCHAIN = '/Library/Keychains/System.keychain';

class FakeMac {
  readonly calls: string[][] = [];
  failOn?: (argv: string[]) => CommandResult | undefined;
  readonly run = async (argv: string[]): Promise<CommandResult> => {
    this.calls.push(argv);
    const failure = this.failOn?.(argv);
    if (failure) return failure;
    const [cmd, ...args] = argv;
    if (cmd === 'networksetup' && args[0] === '-listallnetworkservices') {
      return ok('An asterisk (*) denotes that a network service is disabled.\nWi-Fi\nThunderbolt Bridge\n*Bluetooth PAN\n');
    }
    if (cmd === 'networksetup' && args[0] === '-getdnsservers') {
      return ok(args[1] === 'Wi-Fi' ? "There aren't any DNS Servers set on Wi-Fi.\n" : '1.1.1.1\n8.8.8.8\n');
    }
    return ok('');
  };
}

function ok(stdout: string): CommandResult {
  return { code: 0, stdout, stderr: '' };
}

let dir: string;
let paths: HostPaths;

beforeEach(async () => {
  dir = await fs.mkdtemp(path.join(os.tmpdir(), 'btrfly-hostcfg-mac-'));
  paths = { resolvConf: '/etc/resolv.conf', stateDir: path.join(dir, 'state'), trust: 'macos' };
});

afterEach(async () => {
  await fs.rm(dir, { recursive: true, force: true });
});

test('apply saves every enabled service DNS, points them at btrfly and trusts the CA; restore puts each back', async () => {
  const mac = new FakeMac();
  const host = new HostConfigurator(paths, mac.run);
  const caFile = path.join(paths.stateDir, 'btrfly-test.crt');

  await host.apply({ dnsServer: '127.0.0.2', caPem: CA, caName: 'test' });

  expect(mac.calls).toEqual([
    ['networksetup', '-listallnetworkservices'],
    ['networksetup', '-getdnsservers', 'Wi-Fi'],
    ['networksetup', '-getdnsservers', 'Thunderbolt Bridge'],
    ['networksetup', '-setdnsservers', 'Wi-Fi', '127.0.0.2'],
    ['networksetup', '-setdnsservers', 'Thunderbolt Bridge', '127.0.0.2'],
    ['dscacheutil', '-flushcache'],
    ['killall', '-HUP', 'mDNSResponder'],
    ['security', 'add-trusted-cert', '-d', '-r', 'trustRoot', '-k', KEYCHAIN, caFile],
  ]);
  expect(await fs.readFile(caFile, 'utf8')).toBe(CA);
  expect(await host.originalNameservers()).toEqual(['1.1.1.1', '8.8.8.8']);
  expect(await host.status()).toMatchObject({ applied: true, dnsServer: '127.0.0.2' });

  mac.calls.length = 0;
  await new HostConfigurator(paths, mac.run).restore();

  expect(mac.calls).toEqual([
    ['security', 'remove-trusted-cert', '-d', caFile],
    ['security', 'delete-certificate', '-Z', SHA1, KEYCHAIN],
    ['networksetup', '-setdnsservers', 'Thunderbolt Bridge', '1.1.1.1', '8.8.8.8'],
    ['networksetup', '-setdnsservers', 'Wi-Fi', 'Empty'],
    ['dscacheutil', '-flushcache'],
    ['killall', '-HUP', 'mDNSResponder'],
  ]);
  await expect(fs.access(caFile)).rejects.toThrow();
  expect(await host.status()).toEqual({ applied: false });
});

test('applying twice keeps the DNS servers saved the first time', async () => {
  const mac = new FakeMac();
  const host = new HostConfigurator(paths, mac.run);
  await host.apply({ dnsServer: '127.0.0.2', caPem: CA, caName: 'test' });
  mac.calls.length = 0;

  await host.apply({ dnsServer: '127.0.0.3', caPem: CA, caName: 'test' });

  expect(mac.calls.filter((c) => c[1] === '-getdnsservers' || c[1] === '-listallnetworkservices')).toEqual([]);
  mac.calls.length = 0;
  await host.restore();
  expect(mac.calls).toContainEqual(['networksetup', '-setdnsservers', 'Thunderbolt Bridge', '1.1.1.1', '8.8.8.8']);
  expect(mac.calls).toContainEqual(['networksetup', '-setdnsservers', 'Wi-Fi', 'Empty']);
  expect(mac.calls.filter((c) => c[1] === 'delete-certificate')).toHaveLength(1);
});

test('a failure half way through apply restores the services already changed and says what failed', async () => {
  const mac = new FakeMac();
  mac.failOn = (argv) =>
    argv[1] === '-setdnsservers' && argv[2] === 'Thunderbolt Bridge' && argv[3] === '127.0.0.2'
      ? { code: 1, stdout: '', stderr: 'You cannot set DNS servers on this service.\n' }
      : undefined;
  const host = new HostConfigurator(paths, mac.run);

  await expect(host.apply({ dnsServer: '127.0.0.2', caPem: CA, caName: 'test' })).rejects.toThrow(
    /"networksetup -setdnsservers Thunderbolt Bridge 127\.0\.0\.2" failed: You cannot set DNS servers on this service\..*\(the host was restored\)$/,
  );
  const afterFailure = mac.calls.slice(mac.calls.findIndex((c) => c[3] === '127.0.0.2' && c[2] === 'Thunderbolt Bridge') + 1);
  expect(afterFailure).toEqual([
    ['networksetup', '-setdnsservers', 'Thunderbolt Bridge', '1.1.1.1', '8.8.8.8'],
    ['networksetup', '-setdnsservers', 'Wi-Fi', 'Empty'],
    ['dscacheutil', '-flushcache'],
    ['killall', '-HUP', 'mDNSResponder'],
  ]);
  expect(await host.status()).toEqual({ applied: false });
});

test('restore succeeds when the certificate was already removed from the keychain', async () => {
  const mac = new FakeMac();
  const host = new HostConfigurator(paths, mac.run);
  await host.apply({ dnsServer: '127.0.0.2', caPem: CA, caName: 'test' });
  mac.failOn = (argv) =>
    argv[0] === 'security'
      ? { code: 44, stdout: '', stderr: 'security: SecKeychainSearchCopyNext: The specified item could not be found in the keychain.\n' }
      : undefined;

  await expect(host.restore()).resolves.toMatchObject({ restored: expect.arrayContaining([`certificate ${SHA1} in ${KEYCHAIN}`]) });
  expect(await host.status()).toEqual({ applied: false });
});
