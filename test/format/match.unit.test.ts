import { redactUrl } from '../../src/format/manifest';
import { createPlaybackState, OrdinalCounter, RecordingIndex } from '../../src/format/match';
import { entry, manifestOf, sha } from './format-test-data';

const h = (name: string, value: string) => ({ name, value });
const get = (url: string, headers = [h('Accept', '*/*')]) => ({ method: 'GET', url, headers });

describe('RecordingIndex.find', () => {
  const json = entry('https://api.example/v1/items?page=1&size=10', '{"json":1}', { reqHeaders: [h('accept', 'application/json')] });
  const html = entry('https://api.example/v1/items?page=1&size=10', '<html>', { reqHeaders: [h('accept', 'text/html')] });
  const plain = entry('https://api.example/plain', 'p');
  const post = entry('https://api.example/plain', 'created', { method: 'POST', bodySha256: sha('form=1'), status: 201 });
  const index = new RecordingIndex(manifestOf([json, html, plain, post]));

  it('matches method, exact URL, stored selecting headers and body digest', () => {
    const s = createPlaybackState();
    expect(index.find(get('https://api.example/v1/items?page=1&size=10', [h('Accept', 'application/json')]), s)).toBe(json);
    expect(index.find(get('https://api.example/v1/items?page=1&size=10', [h('Accept', 'text/html')]), s)).toBe(html);
    expect(index.find(get('https://api.example/plain', [h('Accept', 'anything'), h('User-Agent', 'x')]), s)).toBe(plain);
    expect(index.find({ method: 'POST', url: 'https://api.example/plain', headers: [], bodySha256: sha('form=1') }, s)).toBe(post);
  });

  it('misses on another query order, header value, method or body', () => {
    const s = createPlaybackState();
    expect(index.find(get('https://api.example/v1/items?size=10&page=1', [h('Accept', 'application/json')]), s)).toBeUndefined();
    expect(index.find(get('https://api.example/v1/items?page=1&size=10', [h('Accept', 'image/png')]), s)).toBeUndefined();
    expect(index.find(get('https://api.example/v1/items?page=1&size=10', []), s)).toBeUndefined();
    expect(index.find({ method: 'PUT', url: 'https://api.example/plain', headers: [] }, s)).toBeUndefined();
    expect(index.find({ method: 'POST', url: 'https://api.example/plain', headers: [], bodySha256: sha('form=2') }, s)).toBeUndefined();
    expect(index.find({ method: 'POST', url: 'https://api.example/plain', headers: [] }, s)).toBeUndefined();
  });

  it('answers repeated requests in recorded order, the last repeating, per session', () => {
    const url = 'https://h.example/latest';
    const idx = new RecordingIndex(manifestOf([entry(url, 'v3', { ordinal: 2 }), entry(url, 'v1'), entry(url, 'v2', { ordinal: 1 })]));
    const s = createPlaybackState();
    const served = [1, 2, 3, 4].map(() => idx.find(get(url), s)!.ordinal);
    expect(served).toEqual([0, 1, 2, 2]);
    expect(idx.find(get(url), createPlaybackState())!.ordinal).toBe(0);
    expect(JSON.parse(JSON.stringify(s))).toEqual(s);
  });

  it('matches a redacted header whatever its value', () => {
    const e = entry('https://h.example/private', 'secret data', { reqHeaders: [h('accept', '*/*'), h('authorization', '[redacted]')] });
    const idx = new RecordingIndex(manifestOf([e]));
    expect(idx.find(get('https://h.example/private', [h('Accept', '*/*'), h('Authorization', 'Bearer other')]), createPlaybackState())).toBe(e);
  });

  it('loosens matching only as the rules say', () => {
    const e = entry('https://cdn.example/a.js?v=1&_=111', 'js', { reqHeaders: [h('accept', '*/*'), h('user-agent', 'ua/1')] });
    const other = entry('https://other.example/a.js?v=1&_=111', 'js');
    const rules = [{ host: '*.example', ignoreQuery: ['_'] }, { host: 'cdn.example', ignoreHeaders: ['user-agent'] }];
    const idx = new RecordingIndex(manifestOf([e, other], { rules }));
    const s = createPlaybackState();
    expect(idx.find(get('https://cdn.example/a.js?v=1&_=999', [h('Accept', '*/*'), h('User-Agent', 'ua/2')]), s)).toBe(e);
    expect(idx.find(get('https://cdn.example/a.js?v=1', [h('Accept', '*/*')]), s)).toBe(e);
    expect(idx.find(get('https://cdn.example/a.js?v=2&_=111', [h('Accept', '*/*')]), s)).toBeUndefined();
    expect(idx.find(get('https://other.example/a.js?v=1&_=5'), s)).toBe(other);
    const strict = new RecordingIndex(manifestOf([e]));
    expect(strict.find(get('https://cdn.example/a.js?v=1&_=999', [h('Accept', '*/*'), h('User-Agent', 'ua/1')]), s)).toBeUndefined();
  });

  it('matches a redacted query parameter by its keyed hash', () => {
    const key = Buffer.from('k'.repeat(32));
    const stored = redactUrl('https://s3.example/obj?X-Amz-Signature=abc&x=1', { query: ['X-Amz-Signature'] }, key);
    const idx = new RecordingIndex(manifestOf([entry(stored, 'obj')], { redact: { headers: [], query: ['X-Amz-Signature'] } }), key);
    const s = createPlaybackState();
    expect(idx.find(get('https://s3.example/obj?X-Amz-Signature=abc&x=1'), s)?.request.url).toBe(stored);
    expect(idx.find(get('https://s3.example/obj?X-Amz-Signature=abd&x=1'), s)).toBeUndefined();
    // The nearest candidate names the redacted parameter whose hash alone differs; a query that differs more is "query".
    expect(idx.nearest(get('https://s3.example/obj?X-Amz-Signature=abd&x=1')).map((c) => c.differs)).toEqual([['redacted X-Amz-Signature']]);
    expect(idx.nearest(get('https://s3.example/obj?X-Amz-Signature=abd&x=2')).map((c) => c.differs)).toEqual([['query']]);
  });

  it('lists the entries nothing asked for', () => {
    const s = createPlaybackState();
    index.find(get('https://api.example/plain'), s);
    expect(index.unused(s).map((e) => `${e.request.method} ${e.request.url}`)).toEqual([
      'POST https://api.example/plain',
      'GET https://api.example/v1/items?page=1&size=10',
      'GET https://api.example/v1/items?page=1&size=10',
    ]);
    expect(index.unused(s)).toHaveLength(3);
    expect(index.unused(s)).not.toContain(plain);
  });

  it('finds each of 10,000 entries by its request', () => {
    const entries = Array.from({ length: 10_000 }, (_, i) => entry(`https://r.example/p/${i}.tgz`, `b${i}`));
    const idx = new RecordingIndex(manifestOf(entries));
    const s = createPlaybackState();
    for (let i = 0; i < 10_000; i++) expect(idx.find(get(`https://r.example/p/${i}.tgz`), s)).toBe(entries[i]);
  });
});

describe('RecordingIndex.nearest', () => {
  it('names which field differs for same host and path candidates', () => {
    const a = entry('https://h.example/p?x=1', 'a', { reqHeaders: [h('accept', 'application/json')] });
    const b = entry('https://h.example/p?x=2', 'b', { reqHeaders: [h('accept', 'text/html')] });
    const c = entry('https://h.example/p?x=1', 'c', { method: 'POST', bodySha256: sha('q') });
    const far = entry('https://h.example/elsewhere?x=1', 'd');
    const idx = new RecordingIndex(manifestOf([a, b, c, far]));
    const got = idx.nearest({ method: 'GET', url: 'https://h.example/p?x=1', headers: [h('Accept', 'text/html')] });
    expect(got.map((g) => [g.entry.response.content.sha256, g.differs])).toEqual([
      [a.response.content.sha256, ['header accept']],
      [b.response.content.sha256, ['query']],
      [c.response.content.sha256, ['method', 'body']],
    ]);
    expect(idx.nearest({ method: 'GET', url: 'https://h.example/p', headers: [] }, 1)).toHaveLength(1);
    expect(idx.nearest({ method: 'GET', url: 'https://nowhere.example/p', headers: [] })).toEqual([]);
  });
});

describe('OrdinalCounter', () => {
  const req = { method: 'GET', url: 'https://h.example/latest', headers: [h('accept', '*/*')] };
  it('gives a new ordinal only when the answer differs from the last one', () => {
    const c = new OrdinalCounter();
    expect(c.assign(req, { status: 200, sha256: sha('v1') })).toEqual({ ordinal: 0, duplicate: false });
    expect(c.assign(req, { status: 200, sha256: sha('v1') })).toEqual({ ordinal: 0, duplicate: true });
    expect(c.assign(req, { status: 200, sha256: sha('v2') })).toEqual({ ordinal: 1, duplicate: false });
    expect(c.assign(req, { status: 500, sha256: sha('v2') })).toEqual({ ordinal: 2, duplicate: false });
    expect(c.assign(req, { status: 200, sha256: sha('v1') })).toEqual({ ordinal: 3, duplicate: false });
    // Another request to the same URL takes the URL's next ordinal: `GET URL #0` is taken.
    expect(c.assign({ ...req, headers: [h('accept', 'text/html')] }, { status: 200, sha256: sha('v1') })).toEqual({ ordinal: 4, duplicate: false });
  });

  it('continues from an existing recording (append)', () => {
    const c = new OrdinalCounter([entry(req.url, 'v1', { reqHeaders: req.headers }), entry(req.url, 'v2', { ordinal: 1, reqHeaders: req.headers })]);
    expect(c.assign(req, { status: 200, sha256: sha('v2') })).toEqual({ ordinal: 1, duplicate: true });
    expect(c.assign(req, { status: 200, sha256: sha('v3') })).toEqual({ ordinal: 2, duplicate: false });
  });
});
