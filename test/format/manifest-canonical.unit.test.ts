import { parseManifest, parseVolatile, serializeManifest, serializeVolatile, entryKey } from '../../src/format/manifest';
import { BtrflyError } from '../../src/errors';
import { entry, manifestOf, sha } from './format-test-data';

describe('manifest canonical form', () => {
  const a = entry('https://b.example/x', 'x');
  const b = entry('https://a.example/y', 'y', { reqHeaders: [{ name: 'accept', value: '*/*' }, { name: 'accept-encoding', value: 'gzip' }] });
  const c = entry('https://a.example/y', 'y2', { ordinal: 1 });
  const d = entry('https://a.example/y', 'post', { method: 'POST', bodySha256: sha('form') });

  it('gives byte-identical text for the same entries in any order', () => {
    const one = serializeManifest(manifestOf([a, b, c, d], { rules: [{ host: 'z', ignoreQuery: ['b', 'a'] }, { host: 'a' }] }));
    const two = serializeManifest(
      manifestOf([d, c, a, { ...b, request: { ...b.request, headers: [...b.request.headers].reverse() } }], {
        rules: [{ host: 'a' }, { host: 'z', ignoreQuery: ['a', 'b'] }],
      }),
    );
    expect(two).toBe(one);
    expect(one.endsWith('}\n')).toBe(true);
    expect(one).toContain('\n  "entries": [\n    {\n      "request": {');
  });

  it('sorts entries by URL, then method, then ordinal, with keys in the fixed order', () => {
    const text = serializeManifest(manifestOf([a, c, b, d]));
    const parsed = JSON.parse(text);
    expect(parsed.entries.map((e: { request: { method: string; url: string }; ordinal: number }) => entryKey(e))).toEqual([
      'GET https://a.example/y #0',
      'GET https://a.example/y #1',
      'POST https://a.example/y #0',
      'GET https://b.example/x #0',
    ]);
    expect(Object.keys(parsed)).toEqual(['btrflyFormat', 'rules', 'redact', 'entries']);
    expect(Object.keys(parsed.entries[2].request)).toEqual(['method', 'url', 'headers', 'bodySha256']);
    expect(Object.keys(parsed.entries[0].response)).toEqual(['status', 'statusText', 'httpVersion', 'headers', 'content']);
    expect(Object.keys(parsed.entries[0].response.content)).toEqual(['size', 'mimeType', 'sha256', 'storage', 'parts']);
  });

  it('round-trips through parseManifest', () => {
    const m = manifestOf([a, b, c, d], { redact: { headers: ['x-token'], query: ['sig'] } });
    const text = serializeManifest(m);
    expect(serializeManifest(parseManifest(text, 'tag "t" at abc1234'))).toBe(text);
  });

  it('keeps response headers in received order', () => {
    const e = entry('https://h/', 'b', { headers: [{ name: 'Z', value: '1' }, { name: 'A', value: '2' }] });
    const parsed = parseManifest(serializeManifest(manifestOf([e])), 'test');
    expect(parsed.entries[0].response.headers.map((h) => h.name)).toEqual(['Z', 'A']);
  });

  it('serializes volatile.json canonically and drops empty lists', () => {
    const v1 = { btrflyFormat: 1 as const, entries: { 'GET https://b/ #0': [{ name: 'Date', value: 'x', index: 3 }, { name: 'Age', value: '1', index: 0 }], 'GET https://a/ #0': [], 'GET https://a/ #1': [{ name: 'Date', value: 'y', index: 1 }] } };
    const text = serializeVolatile(v1);
    expect(Object.keys(JSON.parse(text).entries)).toEqual(['GET https://a/ #1', 'GET https://b/ #0']);
    expect(JSON.parse(text).entries['GET https://b/ #0'][0].name).toBe('Age');
    expect(serializeVolatile(parseVolatile(text, 'test'))).toBe(text);
  });
});

describe('manifest validation', () => {
  const where = 'tag "x" at 1a2b3c4';
  const catchErr = (fn: () => unknown): BtrflyError => {
    try {
      fn();
    } catch (e) {
      return e as BtrflyError;
    }
    throw new Error('expected an error');
  };

  it('names the place and the JSON syntax position', () => {
    const e = catchErr(() => parseManifest('{"btrflyFormat": 1,', where));
    expect(e).toBeInstanceOf(BtrflyError);
    expect(e.code).toBe('MANIFEST_INVALID');
    expect(e.message).toMatch(/^manifest of tag "x" at 1a2b3c4 is invalid: manifest.json is not JSON \(.*position.*\): /);
    expect(e.message).not.toContain('\n');
  });

  it('names the first schema error path', () => {
    const m = JSON.parse(serializeManifest(manifestOf([entry('https://h/', 'b')])));
    m.entries[0].response.status = 'ok';
    expect(catchErr(() => parseManifest(JSON.stringify(m), where)).message).toMatch(
      /manifest of tag "x" at 1a2b3c4 is invalid: manifest.json \/entries\/0\/response\/status must be integer/,
    );
    m.entries[0].response.status = 200;
    m.entries[0].request.extra = 1;
    expect(catchErr(() => parseManifest(JSON.stringify(m), where)).message).toContain('/entries/0/request: unexpected property "extra"');
    m.entries[0].request.extra = undefined;
    m.entries[0].response.content.sha256 = 'nope';
    expect(catchErr(() => parseManifest(JSON.stringify(m), where)).message).toContain('/entries/0/response/content/sha256 must match pattern');
  });

  it('rejects a foreign JSON document', () => {
    const e = catchErr(() => parseManifest(JSON.stringify({ log: { version: '1.2', entries: [] } }), where));
    expect(e.message).toMatch(/invalid: manifest.json \/ must have required property 'btrflyFormat'/);
  });

  it('says to upgrade for a newer format', () => {
    const e = catchErr(() => parseManifest(JSON.stringify({ btrflyFormat: 2, whatever: true }), where));
    expect(e.code).toBe('MANIFEST_INVALID');
    expect(e.message).toMatch(/btrflyFormat 2, written by a newer btrfly .*: upgrade btrfly$/);
    expect(catchErr(() => parseVolatile(JSON.stringify({ btrflyFormat: 3, entries: {} }), where)).message).toMatch(/volatile.json of tag "x" .* newer btrfly/);
  });

  it('parses and validates 10,000 entries (the time is measured by npm run bench -- archive)', () => {
    const entries = Array.from({ length: 10_000 }, (_, i) =>
      entry(`https://registry.example/pkg-${i}/-/pkg-${i}-1.0.${i}.tgz`, `body ${i}`, {
        reqHeaders: [{ name: 'accept', value: 'application/octet-stream' }],
        headers: [{ name: 'Content-Type', value: 'application/octet-stream' }, { name: 'ETag', value: `"${i}"` }],
      }),
    );
    const text = serializeManifest(manifestOf(entries));
    parseManifest(serializeManifest(manifestOf([entries[0]])), 'warm-up');
    const m = parseManifest(text, 'big');
    expect(m.entries).toHaveLength(10_000);
    expect(serializeManifest(m)).toBe(text);
  });
});
