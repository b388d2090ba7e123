/**
 * The decision for one DNS message, independent of the transport it came on:
 * drop it, answer it for a session, refuse it, or forward it upstream.
 */
import { oneLine } from '../../errors';
import { buildResponse, checkQuery, isRejected, RCODE, typeName } from './dns-message';
import { ProxyAddresses, sessionAnswers } from './dns-session';
import { forwardQuery, Upstream } from './dns-upstream';

/** A structured log event of the DNS server. */
export interface DnsLogEvent {
  level: 'debug' | 'info' | 'warn';
  msg: string;
  [k: string]: unknown;
}

/** What the handler needs from the server's options. */
export interface QueryPolicy {
  /** The addresses a session client is told for `name` (the question's name as asked), or null when it is in no session. */
  answerFor(clientAddress: string, name: string): ProxyAddresses | null;
  allowClient(clientAddress: string): boolean;
  upstreams: Upstream[];
  ttl: number;
  upstreamTimeoutMs: number;
  maxForwards: number;
  log(event: DnsLogEvent): void;
  onQuery?(q: { client: string; name: string; type: string; local: boolean }): void;
  signal: AbortSignal;
}

/** Raw response to send, null to send nothing; a promise only when forwarding. */
export type QueryResult = Buffer | null | Promise<Buffer | null>;

/**
 * Builds the handler. Session answers are synchronous so the hot path allocates no
 * promise; only forwarded queries wait.
 */
export function createQueryHandler(policy: QueryPolicy): (raw: Buffer, client: string, tcp: boolean) => QueryResult {
  let forwards = 0;
  let upstreamFailing = false;

  return (raw, client, tcp) => {
    const q = checkQuery(raw);
    if (isRejected(q)) {
      policy.log({ level: 'debug', msg: `dns: ${q.reason}`, client, bytes: raw.length });
      return q.reply === null ? null : buildResponse(raw, { questionEnd: 0, rcode: q.reply });
    }
    const proxy = policy.answerFor(client, q.name);
    if (proxy) {
      policy.onQuery?.({ client, name: q.name, type: typeName(q.type), local: true });
      const answers = sessionAnswers(q.type, q.qclass, proxy);
      return buildResponse(raw, { questionEnd: q.questionEnd, rcode: RCODE.NOERROR, answers, ttl: policy.ttl, edns: q.edns });
    }
    const fail = (rcode: number): Buffer => buildResponse(raw, { questionEnd: q.questionEnd, rcode, edns: q.edns });
    if (!policy.allowClient(client)) {
      policy.log({ level: 'debug', msg: 'dns: refused a client that is neither in a session nor allowed', client });
      return fail(RCODE.REFUSED);
    }
    if (forwards >= policy.maxForwards) {
      policy.log({ level: 'warn', msg: `dns: ${forwards} queries already waiting for upstream; answering SERVFAIL`, client });
      return fail(RCODE.SERVFAIL);
    }
    forwards++;
    const forwarded = forwardQuery(raw, policy.upstreams, {
      timeoutMs: policy.upstreamTimeoutMs,
      needFullAnswer: tcp,
      signal: policy.signal,
    });
    return forwarded.then(
      (answer) => {
        forwards--;
        if (upstreamFailing) policy.log({ level: 'info', msg: 'dns: upstream resolvers answer again' });
        upstreamFailing = false;
        return answer;
      },
      (e: unknown) => {
        forwards--;
        if (policy.signal.aborted) return null;
        // One warning per outage; the rest at debug, or a dead upstream floods the log.
        policy.log({
          level: upstreamFailing ? 'debug' : 'warn',
          msg: `dns: no upstream resolver answered ${q.name} ${typeName(q.type)} (${oneLine(e)}); answering SERVFAIL`,
          client,
        });
        upstreamFailing = true;
        return fail(RCODE.SERVFAIL);
      },
    );
  };
}
