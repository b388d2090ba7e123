import DNS from 'dns2';
import { buildResponse, checkQuery, isRejected, QTYPE, RCODE } from '../../src/engine/dns/dns-message';
import { isPrivateAddress, unmapAddress } from '../../src/engine/dns/dns-clients';
import { sessionAnswers } from '../../src/engine/dns/dns-session';
import { parseUpstreams } from '../../src/engine/dns/dns-upstream';

const { Packet } = DNS;

function query(name: string, type: number, edns = false): Buffer {
  const p = new Packet();
  p.header.id = 0x1234;
  p.header.rd = 1;
  p.questions.push({ name, type, class: Packet.CLASS.IN } as DNS.Packet.Question);
  if (edns) p.additionals.push(Packet.Resource.EDNS([]) as unknown as DNS.Packet.Resource);
  return p.toBuffer();
}

describe('checkQuery', () => {
  test('accepts a query and reports its question and EDNS', () => {
    const q = checkQuery(query('Example.Test', QTYPE.AAAA, true));
    expect(q).toEqual({ id: 0x1234, name: 'Example.Test', type: QTYPE.AAAA, qclass: 1, questionEnd: 30, edns: true });
  });

  test.each([
    ['a short message', Buffer.alloc(5), null],
    ['a response', Buffer.from(query('a.test', 1).map((b, i) => (i === 2 ? b | 0x80 : b))), null],
    ['an UPDATE', Buffer.from(query('a.test', 1).map((b, i) => (i === 2 ? b | 0x28 : b))), RCODE.NOTIMP],
    ['no question', Buffer.from(query('a.test', 1).map((b, i) => (i === 5 ? 0 : b))), RCODE.FORMERR],
    ['a question running past the end', query('a.test', 1).subarray(0, 16), null],
  ])('rejects %s', (_what, raw, reply) => {
    const r = checkQuery(raw);
    expect(isRejected(r) && r.reply).toBe(reply);
  });
});

describe('buildResponse', () => {
  test('dns2 reads back the answers, id, flags, TTL and an OPT record', () => {
    const raw = query('Example.Test', QTYPE.ANY, true);
    const q = checkQuery(raw);
    if (isRejected(q)) throw new Error(q.reason);
    const answers = sessionAnswers(q.type, q.qclass, { ipv4: '127.77.0.1', ipv6: 'fd00::77' });
    const res = Packet.parse(buildResponse(raw, { questionEnd: q.questionEnd, rcode: RCODE.NOERROR, answers, ttl: 5, edns: q.edns }));
    expect(res.errors).toEqual([]);
    expect(res.header).toMatchObject({ id: 0x1234, qr: 1, rd: 1, ra: 1, tc: 0, rcode: 0 });
    expect(res.questions).toEqual([expect.objectContaining({ name: 'Example.Test', type: QTYPE.ANY })]);
    expect(res.answers.map((a) => [a.name, a.type, a.ttl, (a as unknown as { address: string }).address])).toEqual([
      ['Example.Test', QTYPE.A, 5, '127.77.0.1'],
      ['Example.Test', QTYPE.AAAA, 5, 'fd00::77'],
    ]);
    expect(res.additionals.map((a) => a.type)).toEqual([QTYPE.OPT]);
  });

  test('an error response without a trusted question is a bare header with the rcode', () => {
    const res = buildResponse(query('a.test', 1), { questionEnd: 0, rcode: RCODE.NOTIMP });
    expect([res.length, res[3] & 0x0f, res.readUInt16BE(4)]).toEqual([12, RCODE.NOTIMP, 0]);
  });
});

describe('session answers', () => {
  test('A and AAAA get the proxy; HTTPS, MX and other classes get nothing', () => {
    const proxy = { ipv4: '10.0.0.1' };
    expect(sessionAnswers(QTYPE.A, 1, proxy)).toEqual([{ type: QTYPE.A, address: '10.0.0.1' }]);
    expect(sessionAnswers(QTYPE.AAAA, 1, proxy)).toEqual([]);
    expect(sessionAnswers(QTYPE.HTTPS, 1, proxy)).toEqual([]);
    expect(sessionAnswers(15, 1, proxy)).toEqual([]);
    expect(sessionAnswers(QTYPE.A, 3, proxy)).toEqual([]);
  });
});

describe('upstreams and clients', () => {
  test('parses resolver addresses with and without ports', () => {
    expect(parseUpstreams(['1.1.1.1', '10.0.0.2:5353', '::1', '[fd00::1]:54'])).toEqual([
      { host: '1.1.1.1', port: 53 },
      { host: '10.0.0.2', port: 5353 },
      { host: '::1', port: 53 },
      { host: 'fd00::1', port: 54 },
    ]);
    expect(() => parseUpstreams(['1.1.1.1:0'])).toThrow(/upstream resolver "1.1.1.1:0"/);
  });

  test('default allow list: loopback and private networks, not the internet', () => {
    for (const a of ['127.0.0.1', '10.1.2.3', '172.31.0.1', '192.168.1.1', '100.64.0.1', '::1', 'fd12::1', 'fe80::1']) {
      expect([a, isPrivateAddress(a)]).toEqual([a, true]);
    }
    for (const a of ['8.8.8.8', '172.32.0.1', '2001:4860::8888', 'not-an-ip']) {
      expect([a, isPrivateAddress(a)]).toEqual([a, false]);
    }
    expect(unmapAddress('::ffff:10.0.0.1')).toBe('10.0.0.1');
  });
});
