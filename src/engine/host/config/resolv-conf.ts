/** The first line of every resolv.conf btrfly writes; how a leftover one is recognised. */
export const BTRFLY_MARKER = '# Written by btrfly for a host-mode session.';

export { parseNameservers, pickUpstreams, SYSTEMD_STUB } from '../../dns/system-resolvers';

/**
 * The resolv.conf of a session: btrfly's DNS only, plus the original `search`/`domain`
 * lines so short host names a build uses keep resolving the same way.
 */
export function renderResolvConf(dnsServer: string, original: string, stateDir: string): string {
  const keep = original
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => /^(search|domain)\s/.test(l));
  return [
    BTRFLY_MARKER,
    `# The original is saved in ${stateDir}; undo with: sudo btrfly stop record (or: sudo btrfly stop playback)`,
    `nameserver ${dnsServer}`,
    ...keep,
    '',
  ].join('\n');
}
