/**
 * The addresses btrfly's DNS hands out inside an isolated command's namespace: one per name,
 * in the RFC 2544 benchmark range 198.18.0.0/15 (never routed), so that a connection to an
 * address names the host it was meant for. The transparent proxy uses that name when a
 * connection carries none itself (TLS without SNI, HTTP without Host), and a connection btrfly
 * cannot carry is listed as `name:port` rather than as an anonymous address.
 */
const BASE = (198 << 24) | (18 << 16); // 198.18.0.0 as an unsigned 32-bit number
/** 198.18.0.1 … 198.19.255.253: not the network address, nor 198.19.255.254 (net-setup's INSIDE_SOURCE), nor the last. */
const FIRST = 1;
const LAST = (1 << 17) - 3;

const dotted = (n: number): string => [n >>> 24, (n >>> 16) & 255, (n >>> 8) & 255, n & 255].join('.');

/** Name ↔ address, handed out in order; when all are taken, the name asked for longest ago gives its address up. */
export class FakeNames {
  private readonly byName = new Map<string, string>();
  private readonly byAddress = new Map<string, string>();
  private next = FIRST;

  /** @param last offset of the last address handed out (smaller in tests, to reach eviction) */
  constructor(private readonly last = LAST) {}

  /** The address of `name` (case and a trailing dot do not matter), handing out a new one on first use. */
  addressFor(name: string): string {
    const key = name.toLowerCase().replace(/\.$/, '');
    const known = this.byName.get(key);
    if (known) {
      // Most recently used last, so eviction takes the one asked for longest ago.
      this.byName.delete(key);
      this.byName.set(key, known);
      return known;
    }
    let address: string;
    if (this.next <= this.last) address = dotted((BASE + this.next++) >>> 0);
    else {
      const [oldName, oldAddress] = this.byName.entries().next().value as [string, string];
      this.byName.delete(oldName);
      address = oldAddress;
    }
    this.byName.set(key, address);
    this.byAddress.set(address, key);
    return address;
  }

  /** The name `address` was handed out for, if it was. */
  nameOf(address: string): string | undefined {
    return this.byAddress.get(address);
  }
}
