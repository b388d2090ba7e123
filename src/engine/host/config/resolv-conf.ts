/** The first line of every resolv.conf btrfly writes; how a leftover one is recognised. */
export const BTRFLY_MARKER = '# Written by btrfly for a host-mode session.';

/** systemd-resolved's local stub; never a real upstream. */
export const SYSTEMD_STUB = '127.0.0.53';

/** The `nameserver` addresses of a resolv.conf, in order (resolv.conf(5); `#` and `;` start comments). */
export function parseNameservers(text: string): string[] {
  const servers: string[] = [];
  for (const raw of text.split('\n')) {
    const line = raw.replace(/[#;].*$/, '').trim();
    const m = /^nameserver\s+(\S+)/.exec(line);
    if (m) servers.push(m[1]);
  }
  return servers;
}

/**
 * The upstream resolvers the host really used: the saved resolv.conf's nameservers,
 * or, when that only names systemd-resolved's stub, the real ones resolved lists in
 * /run/systemd/resolve/resolv.conf. `exclude` (btrfly's own DNS) is dropped so the
 * DNS server can never forward to itself.
 */
export function pickUpstreams(original: string, systemdResolv: string | undefined, exclude: string[] = []): string[] {
  let servers = parseNameservers(original);
  if (servers.length > 0 && servers.every((s) => s === SYSTEMD_STUB) && systemdResolv !== undefined) {
    servers = parseNameservers(systemdResolv);
  }
  return [...new Set(servers.filter((s) => s !== SYSTEMD_STUB && !exclude.includes(s)))];
}

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
