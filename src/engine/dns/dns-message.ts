/**
 * DNS wire-format helpers for btrfly's DNS server: checking an incoming query and
 * building the few responses btrfly writes itself. Parsing is dns2's; responses are
 * assembled from the query's own bytes so the question goes back exactly as it came
 * (case included: resolvers using 0x20 randomisation compare it byte for byte) and
 * so a session answer costs a few buffer copies rather than a re-encode.
 */
import DNS from 'dns2';

const { Packet } = DNS;

/** RFC 1035 §4.1.1 response codes btrfly sends. */
export const RCODE = { NOERROR: 0, FORMERR: 1, SERVFAIL: 2, NOTIMP: 4, REFUSED: 5 } as const;

/** Query types the server treats specially (IANA DNS parameters registry). */
export const QTYPE = { A: 1, AAAA: 28, SVCB: 64, HTTPS: 65, ANY: 255, OPT: 41 } as const;

const HEADER = 12;
/** The Internet class (RFC 1035 §3.2.4). */
export const CLASS_IN = 1;
/** EDNS payload size advertised in our OPT record (DNS flag day 2020 value). */
const EDNS_PAYLOAD = 1232;

/** What the server needs to know about one checked query. */
export interface CheckedQuery {
  id: number;
  name: string;
  type: number;
  qclass: number;
  /** Byte offset just past the question section in the raw query. */
  questionEnd: number;
  /** The query carried an EDNS OPT record, so a response should carry one too. */
  edns: boolean;
}

/** Why a message is not answered as a query; `reply` is the rcode to answer with, or null to drop. */
export interface RejectedQuery {
  reason: string;
  reply: number | null;
}

/**
 * Checks a raw DNS message received by the server. dns2's parser is lenient (it
 * will parse a response or an UPDATE as happily as a query), so the header rules
 * are checked here first: responses are dropped (answering them invites reflection
 * loops), other opcodes get NOTIMP, anything but one question gets FORMERR, and a
 * message dns2 cannot fully decode is dropped.
 */
export function checkQuery(raw: Buffer): CheckedQuery | RejectedQuery {
  if (raw.length < HEADER) return { reason: `message of ${raw.length} bytes is shorter than a DNS header`, reply: null };
  if (raw[2] & 0x80) return { reason: 'message is a response (QR=1)', reply: null };
  const opcode = (raw[2] >> 3) & 0x0f;
  if (opcode !== 0) return { reason: `opcode ${opcode} is not QUERY`, reply: RCODE.NOTIMP };
  const qdcount = raw.readUInt16BE(4);
  if (qdcount !== 1) return { reason: `query has ${qdcount} questions`, reply: RCODE.FORMERR };
  const questionEnd = endOfQuestion(raw);
  if (questionEnd < 0) return { reason: 'question section is malformed', reply: null };
  let packet: DNS.Packet;
  try {
    packet = Packet.parse(raw);
  } catch (e) {
    return { reason: `undecodable message: ${(e as Error).message}`, reply: null };
  }
  if (packet.errors.length > 0) return { reason: `undecodable message: ${packet.errors[0].message}`, reply: null };
  const q = packet.questions[0];
  const edns = packet.additionals.some((r) => r.type === QTYPE.OPT);
  return { id: raw.readUInt16BE(0), name: q.name, type: q.type, qclass: q.class, questionEnd, edns };
}

/** Type guard for {@link checkQuery}'s result. */
export function isRejected(r: CheckedQuery | RejectedQuery): r is RejectedQuery {
  return (r as RejectedQuery).reason !== undefined;
}

/** Name of a query type for logs and stats (`A`, `HTTPS`, `TYPE65534`). */
export function typeName(type: number): string {
  if (type === QTYPE.HTTPS) return 'HTTPS';
  if (type === QTYPE.SVCB) return 'SVCB';
  return Packet.typeName(type);
}

/**
 * Offset just past the single question (name, type, class), or -1 if it runs past
 * the end. A query's name should be plain labels; a compression pointer ends it.
 */
function endOfQuestion(raw: Buffer): number {
  let at = HEADER;
  for (;;) {
    if (at >= raw.length) return -1;
    const len = raw[at];
    if (len === 0) {
      at += 1;
      break;
    }
    if ((len & 0xc0) === 0xc0) {
      at += 2;
      break;
    }
    if (len & 0xc0) return -1;
    at += 1 + len;
  }
  return at + 4 <= raw.length ? at + 4 : -1;
}

interface RdataCodec {
  encode(record: { address: string }, writer: DNS.Packet.Writer): void;
}

/** RDATA of an A or AAAA record, encoded once per address by dns2 and cached. */
const rdataCache = new Map<string, Buffer>();

function rdataFor(type: number, address: string): Buffer {
  const key = `${type}/${address}`;
  let rdata = rdataCache.get(key);
  if (!rdata) {
    const writer = new Packet.Writer();
    // dns2's typings omit the per-type rdata codecs it exports.
    const codecs = Packet.Resource as unknown as Record<'A' | 'AAAA', RdataCodec>;
    codecs[type === QTYPE.A ? 'A' : 'AAAA'].encode({ address }, writer);
    rdata = writer.toBuffer();
    rdataCache.set(key, rdata);
  }
  return rdata;
}

/** One answer record for the question's name (a pointer to offset 12). */
export interface AnswerRecord {
  type: typeof QTYPE.A | typeof QTYPE.AAAA;
  address: string;
}

/**
 * Builds a response to `raw` (already checked): same id, RD and CD echoed, RA set,
 * the question copied byte for byte, then `answers` with `ttl`, and an OPT record
 * when the query had one (RFC 6891 §6.1.1). With `questionEnd` 0 the response is a
 * bare header, for queries whose question could not be trusted.
 */
export function buildResponse(
  raw: Buffer,
  opts: { questionEnd: number; rcode: number; answers?: AnswerRecord[]; ttl?: number; edns?: boolean },
): Buffer {
  const answers = opts.answers ?? [];
  const rdatas = answers.map((a) => rdataFor(a.type, a.address));
  const question = opts.questionEnd > 0 ? raw.subarray(HEADER, opts.questionEnd) : Buffer.alloc(0);
  const size = HEADER + question.length + rdatas.reduce((n, r) => n + 12 + r.length, 0) + (opts.edns ? 11 : 0);
  const out = Buffer.alloc(size);
  out.writeUInt16BE(raw.readUInt16BE(0), 0);
  // QR=1, opcode echoed, AA=0, TC=0, RD echoed; RA=1, Z=0, AD=0, CD echoed.
  out[2] = 0x80 | (raw[2] & 0x78) | (raw[2] & 0x01);
  out[3] = 0x80 | (raw[3] & 0x10) | (opts.rcode & 0x0f);
  out.writeUInt16BE(question.length > 0 ? 1 : 0, 4);
  out.writeUInt16BE(answers.length, 6);
  out.writeUInt16BE(0, 8);
  out.writeUInt16BE(opts.edns ? 1 : 0, 10);
  let at = HEADER + question.copy(out, HEADER);
  answers.forEach((a, i) => {
    const rdata = rdatas[i];
    out.writeUInt16BE(0xc000 | HEADER, at);
    out.writeUInt16BE(a.type, at + 2);
    out.writeUInt16BE(CLASS_IN, at + 4);
    out.writeUInt32BE(opts.ttl ?? 0, at + 6);
    out.writeUInt16BE(rdata.length, at + 10);
    at += 12 + rdata.copy(out, at + 12);
  });
  if (opts.edns) {
    // Root name, type OPT, class = payload size, TTL 0 (no extended rcode, version 0, DO clear), no options.
    out[at] = 0;
    out.writeUInt16BE(QTYPE.OPT, at + 1);
    out.writeUInt16BE(EDNS_PAYLOAD, at + 3);
    out.writeUInt32BE(0, at + 5);
    out.writeUInt16BE(0, at + 9);
  }
  return out;
}

/** True when `msg` looks like the response to the query with `id`. */
export function isResponseTo(msg: Buffer, id: number): boolean {
  return msg.length >= HEADER && msg.readUInt16BE(0) === id && (msg[2] & 0x80) !== 0;
}

/** True when a response has the TC (truncated) bit set. */
export function isTruncated(msg: Buffer): boolean {
  return msg.length >= HEADER && (msg[2] & 0x02) !== 0;
}

