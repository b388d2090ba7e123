/**
 * Which clients btrfly's DNS server forwards for. It must not be an open resolver
 * (docs/contract.md, "The parts": DNS): open resolvers get used for reflection attacks. By default it serves
 * the networks a build host or a build farm lives on and nobody else.
 */
import net from 'node:net';

const privateNetworks = new net.BlockList();
// Loopback, RFC 1918, RFC 6598 shared (CGNAT, also used by some cloud VPCs), link-local.
privateNetworks.addSubnet('127.0.0.0', 8, 'ipv4');
privateNetworks.addSubnet('10.0.0.0', 8, 'ipv4');
privateNetworks.addSubnet('172.16.0.0', 12, 'ipv4');
privateNetworks.addSubnet('192.168.0.0', 16, 'ipv4');
privateNetworks.addSubnet('100.64.0.0', 10, 'ipv4');
privateNetworks.addSubnet('169.254.0.0', 16, 'ipv4');
// Loopback, unique local (RFC 4193), link-local.
privateNetworks.addAddress('::1', 'ipv6');
privateNetworks.addSubnet('fc00::', 7, 'ipv6');
privateNetworks.addSubnet('fe80::', 10, 'ipv6');

/**
 * Default `allowClient`: loopback and private (RFC 1918, RFC 6598, ULA, link-local)
 * addresses. A public address is refused unless it is in a session.
 */
export function isPrivateAddress(address: string): boolean {
  const family = net.isIPv4(address) ? 'ipv4' : net.isIPv6(address) ? 'ipv6' : null;
  return family !== null && privateNetworks.check(address, family);
}

/** `::ffff:10.0.0.1` (a v4 client on a dual-stack socket) → `10.0.0.1`. */
export function unmapAddress(address: string): string {
  return address.startsWith('::ffff:') && net.isIPv4(address.slice(7)) ? address.slice(7) : address;
}
