/**
 * The network an isolated command sees, as the `ip -batch` and `nft -f` input the helper
 * inside the namespace applies: loopback up, a default route over loopback (so a connect to
 * any address reaches the OUTPUT hook instead of failing with ENETUNREACH), every TCP
 * connection to a non-loopback address redirected to the helper's catch-all listener, DNS
 * (UDP and TCP port 53, to any server) to btrfly's DNS, and everything else dropped, which the
 * sender sees at once as EPERM, and remembered in sets read at the end as the leak list.
 */

/** Source address of connections leaving loopback inside the namespace (RFC 2544 benchmark range, never routed). */
export const INSIDE_SOURCE = '198.19.255.254';

export interface NetSetupOptions {
  /** Port of the catch-all TCP listener on 127.0.0.1 and [::1]. */
  catchAllPort: number;
  /** Port btrfly's DNS listens on at 127.0.0.1 (UDP and TCP). */
  dnsPort: number;
}

/** Lines for `ip -batch -`. */
export function ipBatch(): string {
  return ['link set lo up', `addr add ${INSIDE_SOURCE}/32 dev lo`, `route add default dev lo src ${INSIDE_SOURCE}`, 'route add ::/0 dev lo', ''].join('\n');
}

/** The nftables ruleset (table inet btrfly). */
export function nftRuleset(o: NetSetupOptions): string {
  return `table inet btrfly {
  set udp4 { type ipv4_addr . inet_service; flags dynamic; size 4096; }
  set udp6 { type ipv6_addr . inet_service; flags dynamic; size 4096; }
  set other4 { type ipv4_addr . inet_proto; flags dynamic; size 4096; }
  set other6 { type ipv6_addr . inet_proto; flags dynamic; size 4096; }
  chain nat_out {
    type nat hook output priority -100;
    ip daddr 127.0.0.0/8 return
    ip6 daddr ::1 return
    meta l4proto { tcp, udp } th dport 53 meta nfproto ipv4 redirect to :${o.dnsPort}
    meta l4proto tcp redirect to :${o.catchAllPort}
  }
  chain filter_out {
    type filter hook output priority 0;
    ip daddr 127.0.0.0/8 accept
    ip6 daddr ::1 accept
    meta l4proto tcp accept
    meta l4proto udp meta nfproto ipv4 add @udp4 { ip daddr . udp dport } drop
    meta l4proto udp meta nfproto ipv6 add @udp6 { ip6 daddr . udp dport } drop
    meta nfproto ipv4 add @other4 { ip daddr . meta l4proto } drop
    meta nfproto ipv6 add @other6 { ip6 daddr . meta l4proto } drop
  }
}
`;
}

/** A packet the namespace dropped: what it was sent to. */
export interface DroppedPacket {
  protocol: string;
  address: string;
  port?: number;
}

/** The elements of the leak sets in `nft -j list table inet btrfly` output. */
export function droppedFromNftJson(json: string): DroppedPacket[] {
  const out: DroppedPacket[] = [];
  const doc = JSON.parse(json) as { nftables?: Array<{ set?: { name: string; elem?: Array<{ concat?: Array<string | number> }> } }> };
  for (const item of doc.nftables ?? []) {
    const set = item.set;
    if (!set?.elem) continue;
    for (const e of set.elem) {
      const [address, second] = e.concat ?? [];
      if (typeof address !== 'string') continue;
      if (set.name.startsWith('udp')) out.push({ protocol: 'udp', address, port: Number(second) });
      else out.push({ protocol: String(second), address });
    }
  }
  return out;
}

/**
 * The chains and rules of `nft -j list table inet btrfly` output, without the leak sets' elements
 * (which the command's packets add to): what the command, when it is root inside the namespace,
 * must not have changed for the leak count to be whole.
 */
export function rulesOfNftJson(json: string): string {
  const doc = JSON.parse(json) as { nftables?: Array<Record<string, unknown>> };
  return JSON.stringify((doc.nftables ?? []).filter((item) => 'chain' in item || 'rule' in item));
}
