import { runChecked } from './command-runner';
import type { CommandRunner } from './types';

/**
 * macOS keeps DNS per network service (networksetup(8)) and trust in keychains
 * (security(1)). These functions are the command boundary; HostConfigurator decides
 * when to call them and journals what they return.
 */

/** Enabled network services; `networksetup` marks disabled ones with a leading `*`. */
export async function listNetworkServices(run: CommandRunner): Promise<string[]> {
  const { stdout } = await runChecked(run, ['networksetup', '-listallnetworkservices']);
  return stdout
    .split('\n')
    .slice(1) // "An asterisk (*) denotes that a network service is disabled."
    .map((l) => l.trim())
    .filter((l) => l !== '' && !l.startsWith('*'));
}

/** The DNS servers set by hand on a service; none ("There aren't any DNS Servers set on …") is `[]`. */
export async function getDnsServers(run: CommandRunner, service: string): Promise<string[]> {
  const { stdout } = await runChecked(run, ['networksetup', '-getdnsservers', service]);
  return stdout
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => /^[0-9A-Fa-f.:]+$/.test(l) && l.length > 1);
}

/** Sets a service's DNS servers; `[]` sets "Empty", which gives the service back its DHCP servers. */
export async function setDnsServers(run: CommandRunner, service: string, servers: string[]): Promise<void> {
  await runChecked(run, ['networksetup', '-setdnsservers', service, ...(servers.length ? servers : ['Empty'])]);
}

/** Drops cached answers so names resolve through the new servers at once (Apple's documented pair).
 * Best effort: a cache that was not flushed only delays the change, so failures are not errors. */
export async function flushDnsCache(run: CommandRunner): Promise<void> {
  await run(['dscacheutil', '-flushcache']);
  await run(['killall', '-HUP', 'mDNSResponder']);
}

/** Adds the CA to the system keychain as a trusted root for every user (`-d`: admin trust settings). */
export async function addTrustedCert(run: CommandRunner, file: string, keychain: string): Promise<void> {
  await runChecked(run, ['security', 'add-trusted-cert', '-d', '-r', 'trustRoot', '-k', keychain, file]);
}

/**
 * Removes the CA's trust settings and the certificate, by SHA-1 so that no other
 * certificate with the same name is touched. Already gone counts as done.
 */
export async function removeTrustedCert(run: CommandRunner, file: string, sha1: string, keychain: string): Promise<void> {
  await ignoreNotFound(run, ['security', 'remove-trusted-cert', '-d', file]);
  await ignoreNotFound(run, ['security', 'delete-certificate', '-Z', sha1, keychain]);
}

async function ignoreNotFound(run: CommandRunner, argv: string[]): Promise<void> {
  const result = await run(argv);
  if (result.code === 0 || /could not be found|Unable to delete certificate matching/i.test(result.stderr + result.stdout)) return;
  await runChecked(async () => result, argv);
}
