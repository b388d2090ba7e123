import { readFile } from 'node:fs/promises';

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
 * The resolvers this machine uses now (`/etc/resolv.conf`, or `BTRFLY_RESOLV_CONF`; behind
 * systemd-resolved's stub, `/run/systemd/resolve/resolv.conf` or `BTRFLY_SYSTEMD_RESOLV_CONF`),
 * without `exclude`: what `btrfly serve` forwards other clients' questions to when given no
 * `--upstream-dns`. Empty when there is no such file.
 */
export async function systemResolvers(exclude: string[], env: NodeJS.ProcessEnv = process.env): Promise<string[]> {
  const text = (file: string) => readFile(file, 'utf8').catch(() => undefined);
  const original = await text(env.BTRFLY_RESOLV_CONF || '/etc/resolv.conf');
  return pickUpstreams(original ?? '', await text(env.BTRFLY_SYSTEMD_RESOLV_CONF || '/run/systemd/resolve/resolv.conf'), exclude);
}
