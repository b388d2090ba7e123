/**
 * What a client in a btrfly session is told, whatever the name: the proxy's address
 * for A and AAAA, and nothing (NODATA) for every other type. Session answers never
 * depend on the network, so record and playback see the same DNS and the build
 * makes the same requests in both (see docs/decisions.md, "DNS").
 */
import { AnswerRecord, CLASS_IN, QTYPE } from './dns-message';

/** The proxy's addresses for a session client. */
export interface ProxyAddresses {
  ipv4?: string;
  ipv6?: string;
}

const CLASS_ANY = 255;

/**
 * Answer records for a session client's question. Empty means NOERROR with no
 * answer, which tells the client the name exists but has no record of that type:
 * an AAAA query then falls back to A, and an HTTPS/SVCB query (whose hints and ECH
 * keys would steer a client around the proxy) to a plain connection.
 */
export function sessionAnswers(type: number, qclass: number, proxy: ProxyAddresses): AnswerRecord[] {
  if (qclass !== CLASS_IN && qclass !== CLASS_ANY) return [];
  const out: AnswerRecord[] = [];
  if ((type === QTYPE.A || type === QTYPE.ANY) && proxy.ipv4) out.push({ type: QTYPE.A, address: proxy.ipv4 });
  if ((type === QTYPE.AAAA || type === QTYPE.ANY) && proxy.ipv6) out.push({ type: QTYPE.AAAA, address: proxy.ipv6 });
  return out;
}
