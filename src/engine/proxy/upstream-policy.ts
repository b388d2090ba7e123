import * as net from 'node:net';
import * as os from 'node:os';
import { BtrflyError } from '../../errors';

/**
 * What `btrfly serve` never records from unless `--allow-upstream` says so: cloud metadata and
 * other link-local services (169.254.169.254 holds the service VM's credentials), the service
 * host's loopback, and the unspecified addresses (a connect to 0.0.0.0 or :: reaches loopback).
 * The service's own listening addresses are added by {@link serviceDenyList}.
 */
export const SERVICE_DENY_DEFAULTS = ['169.254.0.0/16', 'fe80::/10', '127.0.0.0/8', '::1/128', '0.0.0.0/8', '::/128'] as const;

/**
 * The default deny list of `btrfly serve` listening on `addresses` (DNS/proxy, API): also every
 * address of the service host's interfaces, since a service bound to one of them (a management
 * address, a container bridge) would otherwise be fetched for any host in a session.
 */
export function serviceDenyList(addresses: Array<string | undefined>, interfaces: NodeJS.Dict<os.NetworkInterfaceInfo[]> = os.networkInterfaces()): string[] {
  const local = Object.values(interfaces).flatMap((list) => (list ?? []).map((i) => i.address.replace(/%.*$/, '')));
  const own = [...addresses, ...local].filter((a): a is string => Boolean(a && net.isIP(a)));
  return [...new Set([...SERVICE_DENY_DEFAULTS, ...own])];
}

/** One parsed CIDR (or bare address), as written, with the list that matches it. */
interface Rule {
  cidr: string;
  list: net.BlockList;
}

/**
 * Which upstream addresses record may connect to (docs/contract.md, "Upstream"): an address is
 * refused when a deny rule matches it and no allow rule does. IPv4-mapped IPv6 addresses
 * (`::ffff:127.0.0.1`, `::ffff:7f00:1`) match IPv4 rules: `net.BlockList` compares them as IPv4.
 */
export class UpstreamPolicy {
  private readonly deny: Rule[];
  private readonly allow: Rule[];

  /**
   * @param deny CIDRs (`10.0.0.0/8`, `fe80::/10`) or bare addresses refused
   * @param allow CIDRs or addresses let through even if denied
   * @throws BtrflyError USAGE on an entry that is not an address or CIDR
   */
  constructor(deny: readonly string[], allow: readonly string[] = []) {
    this.deny = deny.map((c) => parseRule(c, 'deny-upstream'));
    this.allow = allow.map((c) => parseRule(c, 'allow-upstream'));
  }

  /** The deny rule that refuses `address`, or undefined when record may connect to it. */
  deniedBy(address: string): string | undefined {
    const family = net.isIP(address);
    if (!family) return undefined;
    const type = family === 6 ? 'ipv6' : 'ipv4';
    const denied = this.deny.find((r) => r.list.check(address, type));
    if (!denied || this.allow.some((r) => r.list.check(address, type))) return undefined;
    return denied.cidr;
  }

  /**
   * @throws BtrflyError NETWORK (502, kind `denied`) naming the address and `--allow-upstream`,
   *   when `address` is denied; `host` is the URL's host the client asked for.
   */
  check(host: string, address: string): void {
    const rule = this.deniedBy(address);
    if (rule) throw upstreamDenied(host, address, rule);
  }
}

/** The refusal a client gets (as an upstream error, `X-Btrfly-Upstream-Error: denied`) and the log shows. */
export function upstreamDenied(host: string, address: string, rule: string): BtrflyError {
  const single = net.isIP(address) === 6 ? `${address}/128` : `${address}/32`;
  return new BtrflyError('NETWORK', `upstream ${host}: address ${address} is denied (deny-upstream ${rule}): not fetched; to record from it start serve with --allow-upstream ${single}`, {
    httpStatus: 502,
    data: { upstreamCode: 'EBTRFLYDENIED', kind: 'denied', address, rule },
  });
}

function parseRule(cidr: string, setting: string): Rule {
  const bad = () => new BtrflyError('USAGE', `--${setting} "${cidr}" is not an address or CIDR: write it like 10.0.0.0/8 or fd00::/8`);
  const m = /^\[?([^\]/]+)\]?(?:\/(\d{1,3}))?$/.exec(cidr.trim());
  if (!m) throw bad();
  const family = net.isIP(m[1]);
  if (!family) throw bad();
  const bits = family === 6 ? 128 : 32;
  const prefix = m[2] === undefined ? bits : Number(m[2]);
  if (prefix > bits) throw bad();
  const list = new net.BlockList();
  list.addSubnet(m[1], prefix, family === 6 ? 'ipv6' : 'ipv4');
  return { cidr: cidr.trim(), list };
}
