import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { mergeHeaders, recordingRedactions, redactHeaderUrls, redactUrl, SECRET_QUERY_PARAMS, selectingRequestHeaders, splitHeaders, VOLATILE_HEADERS } from '../../src/format/manifest';
import { entry } from './format-test-data';

const h = (name: string, value: string) => ({ name, value });

describe('splitHeaders / mergeHeaders', () => {
  const received = [
    h('Date', 'Tue, 01 Jul 2025 10:00:00 GMT'),
    h('Content-Type', 'application/json'),
    h('Connection', 'keep-alive, X-Hop'),
    h('X-Hop', 'gone'),
    h('Transfer-Encoding', 'chunked'),
    h('ETag', '"abc"'),
    h('Last-Modified', 'Mon, 30 Jun 2025 10:00:00 GMT'),
    h('CF-Ray', '8a1b2c3d4e5f-AMS'),
    h('Keep-Alive', 'timeout=5'),
    h('Cache-Control', 'max-age=60'),
    h('Age', '12'),
  ];

  it('keeps validators, moves per-fetch headers aside, drops hop-by-hop ones', () => {
    const { kept, volatile } = splitHeaders(received);
    expect(kept.map((x) => x.name)).toEqual(['Content-Type', 'ETag', 'Last-Modified', 'Cache-Control']);
    expect(volatile).toEqual([
      { name: 'Date', value: 'Tue, 01 Jul 2025 10:00:00 GMT', index: 0 },
      { name: 'CF-Ray', value: '8a1b2c3d4e5f-AMS', index: 4 },
      { name: 'Age', value: '12', index: 6 },
    ]);
  });

  it('a header named in one message\'s Connection is dropped from that message only', () => {
    expect(splitHeaders(received).kept.some((x) => x.name === 'X-Hop')).toBe(false);
    // The fixed list is shared between calls: what one Connection header adds must not stick.
    const next = [h('X-Hop', 'kept'), h('Connection', 'close'), h('Content-Type', 'text/plain')];
    expect(splitHeaders(next).kept).toEqual([h('X-Hop', 'kept'), h('Content-Type', 'text/plain')]);
    expect(splitHeaders(received).kept.some((x) => x.name === 'X-Hop')).toBe(false);
  });

  it('restores the received order without the hop-by-hop headers', () => {
    const { kept, volatile } = splitHeaders(received);
    expect(mergeHeaders(kept, volatile).map((x) => x.name)).toEqual([
      'Date', 'Content-Type', 'ETag', 'Last-Modified', 'CF-Ray', 'Cache-Control', 'Age',
    ]);
  });

  it('appends volatile headers whose position is past the end', () => {
    expect(mergeHeaders([h('A', '1')], [{ name: 'Date', value: 'd', index: 7 }])).toEqual([h('A', '1'), h('Date', 'd')]);
  });

  it('lists no validator as volatile', () => {
    expect(VOLATILE_HEADERS).not.toContain('etag');
    expect(VOLATILE_HEADERS).not.toContain('last-modified');
    expect(VOLATILE_HEADERS).toContain('date');
  });
});

describe('selectingRequestHeaders', () => {
  const req = [
    h('Host', 'h'),
    h('Accept', 'application/json'),
    h('Accept-Encoding', 'gzip'),
    h('Authorization', 'Bearer s3cret'),
    h('User-Agent', 'npm/10'),
    h('X-Api-Key', 'k3y'),
  ];

  it('stores Accept and the Vary-named headers, lower case, sorted', () => {
    expect(selectingRequestHeaders(req, 'Accept-Encoding, User-Agent', { headers: [], query: [] })).toEqual([
      h('accept', 'application/json'),
      h('accept-encoding', 'gzip'),
      h('user-agent', 'npm/10'),
    ]);
    expect(selectingRequestHeaders(req, undefined, { headers: [], query: [] })).toEqual([h('accept', 'application/json')]);
    expect(selectingRequestHeaders(req, '*', { headers: [], query: [] })).toEqual([h('accept', 'application/json')]);
  });

  it('never stores credentials in clear', () => {
    const out = selectingRequestHeaders(req, 'authorization, X-API-Key', { headers: ['X-Api-Key'], query: [] });
    expect(out).toEqual([h('accept', 'application/json'), h('authorization', '[redacted]'), h('x-api-key', '[redacted]')]);
    expect(JSON.stringify(out)).not.toMatch(/s3cret|k3y/);
  });
});

describe('redactUrl', () => {
  const key = Buffer.from('0123456789abcdef0123456789abcdef');

  it('replaces the named parameter by a keyed hash and leaves the rest byte for byte', () => {
    const url = 'https://h/p?a=1&sig=SECRET%2Bx&b=%7e&sig=two';
    const out = redactUrl(url, { query: ['sig'] }, key);
    expect(out).toMatch(/^https:\/\/h\/p\?a=1&sig=btrfly-hmac:[0-9a-f]{64}&b=%7e&sig=btrfly-hmac:[0-9a-f]{64}$/);
    expect(out).not.toContain('SECRET');
    expect(redactUrl(url, { query: ['sig'] }, key)).toBe(out);
    expect(redactUrl(url, { query: ['sig'] }, Buffer.from('another key'))).not.toBe(out);
    expect(redactUrl('https://h/p?sig=other', { query: ['sig'] }, key)).not.toBe(redactUrl('https://h/p?sig=SECRET%2Bx', { query: ['sig'] }, key));
  });

  it('leaves URLs without the parameter alone', () => {
    expect(redactUrl('https://h/p', { query: ['sig'] }, key)).toBe('https://h/p');
    expect(redactUrl('https://h/p?x=1', { query: ['sig'] }, key)).toBe('https://h/p?x=1');
  });

  it('leaves a value that is already a hash as it is, so a followed redacted Location matches', () => {
    const once = redactUrl('https://h/p?sig=S&x=1', { query: ['sig'] }, key);
    expect(redactUrl(once, { query: ['sig'] }, key)).toBe(once);
    const stored = redactHeaderUrls([h('Location', 'https://h/p?sig=S&x=1'), h('Content-Location', '/q?Token=T'), h('Link', '</r?sig=S>')], { query: ['sig', 'token'], queryAnyCase: true }, key);
    expect(stored).toEqual([h('Location', once), h('Content-Location', expect.stringMatching(/^\/q\?Token=btrfly-hmac:[0-9a-f]{64}$/)), h('Link', '</r?sig=S>')]);
  });

  it('matches names exactly in a recording made before the default list, in any case since', () => {
    const url = 'https://h/p?Sig=S1&SIG=S2&sig=S3';
    expect(redactUrl(url, { query: ['sig'] }, key)).toMatch(/^https:\/\/h\/p\?Sig=S1&SIG=S2&sig=btrfly-hmac:[0-9a-f]{64}$/);
    expect(redactUrl(url, { query: ['sig'], queryAnyCase: true }, key)).not.toMatch(/S[123]/);
  });
});

describe('recordingRedactions', () => {
  const none = { headers: [], query: [] };

  it('adds the default secret names as placeholders, less those kept or hashed, and the extra ones as hashes, in lower case', () => {
    const r = recordingRedactions('t', none, { headers: ['X-Api-Key'], query: ['Session_Id', 'Token'], keep: ['KEY'] });
    expect(r.queryAnyCase).toBe(true);
    expect(r.headers).toEqual(['x-api-key']);
    expect(r.query).toEqual(['session_id', 'token']);
    expect(r.secretQuery).toEqual(SECRET_QUERY_PARAMS.filter((n) => n !== 'key' && n !== 'token'));
  });

  it('stores a secret name as a placeholder that needs no key and matches any value', () => {
    const r = recordingRedactions('t', none);
    const key = Buffer.from('0123456789abcdef0123456789abcdef');
    const a = redactUrl('https://h/p?X-Amz-Signature=abc&x=1&Token=t1', r, key);
    expect(a).toBe('https://h/p?X-Amz-Signature=btrfly-redacted&x=1&Token=btrfly-redacted');
    expect(redactUrl('https://h/p?X-Amz-Signature=other&x=1&Token=t2', r, Buffer.from('another key'))).toBe(a);
    expect(redactUrl(a, r, key)).toBe(a);
  });

  it('refuses an append that would leave a carried placeholder entry unmatchable', () => {
    const carried = [entry('https://h/a?token=btrfly-redacted', 'a')];
    expect(recordingRedactions('t', { headers: [], query: [], secretQuery: ['token'] }, { carried }).secretQuery).toContain('token');
    expect(() => recordingRedactions('t', { headers: [], query: [], secretQuery: ['token'] }, { keep: ['token'] })).toThrow('--keep-query token: tag "t" redacts it');
  });

  it('refuses an append that would leave a kept entry unmatchable or keep a redacted name in clear', () => {
    const carried = [entry('https://h/a?token=btrfly-hmac:00&x=1', 'a'), entry('https://h/b?Signature=clear', 'b')];
    expect(() => recordingRedactions('t', { headers: [], query: ['token'] }, { carried })).toThrow(
      'tag "t" holds query parameter "Signature" in clear (recorded before btrfly redacted it): record the tag again without --append, or keep it in clear with --keep-query signature',
    );
    expect(recordingRedactions('t', { headers: [], query: ['token'] }, { carried, keep: ['signature'] }).query).not.toContain('signature');
    expect(() => recordingRedactions('t', { headers: [], query: ['token'] }, { keep: ['Token'] })).toThrow(
      '--keep-query token: tag "t" redacts it, so an --append must too: record the tag again without --append to keep it in clear',
    );
  });
});

describe('docs/archive-format.md', () => {
  it('documents every volatile header', () => {
    const doc = readFileSync(join(__dirname, '..', '..', 'docs', 'archive-format.md'), 'utf8').toLowerCase();
    expect(VOLATILE_HEADERS.filter((name) => !doc.includes(`\`${name}\``))).toEqual([]);
  });

  it('documents every default secret query parameter', () => {
    const doc = readFileSync(join(__dirname, '..', '..', 'docs', 'archive-format.md'), 'utf8').toLowerCase();
    expect(SECRET_QUERY_PARAMS.filter((name) => !doc.includes(`\`${name}\``))).toEqual([]);
  });
});
