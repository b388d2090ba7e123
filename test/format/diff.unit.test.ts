import { MAX_COMMENT_CHARS, diffManifests, renderDiffJson, renderDiffMarkdown, renderDiffText } from '../../src/format/diff';
import { formatSize } from '../../src/format/size';
import { entry, manifestOf, sha } from './format-test-data';

describe('diffManifests of URLs that are not packages', () => {
  // Paths no package rule knows: the diff reads as a plain URL diff.
  const lodash1 = entry('https://files.example/dl/lodash-4.17.20.tgz', 'old lodash');
  const lodash2 = entry('https://files.example/dl/lodash-4.17.20.tgz', 'new lodash bytes');
  const left = entry('https://files.example/dl/left-pad-1.3.0.tgz', 'pad');
  const react = entry('https://files.example/dl/react-19.0.0.tgz', 'react');
  const same = entry('https://files.example/index.json', '{}');
  const a = manifestOf([same, lodash1, left]);
  const b = manifestOf([react, lodash2, same]);

  it('lists added, removed and changed entries and counts the rest', () => {
    const d = diffManifests(a, b);
    expect(d.added.map((e) => e.url)).toEqual([react.request.url]);
    expect(d.removed.map((e) => e.url)).toEqual([left.request.url]);
    expect(d.changed).toEqual([
      {
        method: 'GET',
        url: lodash1.request.url,
        ordinal: 0,
        class: 'other',
        from: { status: 200, size: 10, sha256: sha('old lodash') },
        to: { status: 200, size: 16, sha256: sha('new lodash bytes') },
      },
    ]);
    expect(d.unchanged).toBe(1);
    expect(diffManifests(a, a)).toEqual({ packages: [], metadata: { refreshed: 0, new: 0, gone: 0 }, added: [], removed: [], changed: [], unchanged: 3 });
  });

  it('sees a status change with the same body as a change', () => {
    const gone = entry(same.request.url, '{}', { status: 503 });
    expect(diffManifests(a, manifestOf([gone, lodash1, left])).changed).toHaveLength(1);
  });

  it('renders text for a terminal', () => {
    const text = renderDiffText(diffManifests(a, b), { from: 'ci@1111111', to: 'ci@2222222' });
    expect(text.split('\n')).toEqual([
      '--- ci@1111111',
      '+++ ci@2222222',
      `- GET ${left.request.url}  200 3 B ${sha('pad').slice(0, 12)}`,
      `+ GET ${react.request.url}  200 5 B ${sha('react').slice(0, 12)}`,
      `~ GET ${lodash1.request.url}  200 10 B ${sha('old lodash').slice(0, 12)} -> 200 16 B ${sha('new lodash bytes').slice(0, 12)}`,
      '1 added, 1 removed, 1 changed, 1 unchanged (+8 B)',
      '',
    ]);
  });

  it('renders a Markdown pull-request comment with a table', () => {
    const withPipe = entry('https://h.example/a?x=1|2', 'p');
    const md = renderDiffMarkdown(diffManifests(a, manifestOf([...b.entries, withPipe])), { from: 'ci@1111111', to: 'ci@2222222' });
    const lines = md.trimEnd().split('\n');
    expect(lines[0]).toBe('**btrfly diff** `ci@1111111` → `ci@2222222`: 2 added, 1 removed, 1 changed, 1 unchanged (+9 B)');
    expect(lines[2]).toBe('| | Request | Status | Size | SHA-256 |');
    expect(lines).toContain(`| added | GET \`https://h.example/a?x=1\\|2\` | 200 | 1 B | \`${sha('p').slice(0, 12)}\` |`);
    expect(lines).toContain(
      `| changed | GET \`${lodash1.request.url}\` | 200 | 10 B → 16 B | \`${sha('old lodash').slice(0, 12)}\` → \`${sha('new lodash bytes').slice(0, 12)}\` |`,
    );
    // Every table row has the same number of unescaped cell separators.
    for (const row of lines.slice(2)) expect(row.replace(/\\\|/g, '').split('|')).toHaveLength(7);
    expect(renderDiffMarkdown(diffManifests(a, a))).toBe('**btrfly diff**: 0 added, 0 removed, 0 changed, 3 unchanged (±0 B)\n');
  });

  it('renders JSON that parses back to the diff', () => {
    const d = diffManifests(a, b);
    const j = JSON.parse(renderDiffJson(d, { from: 'x', to: 'y' }));
    expect(j).toMatchObject({ from: 'x', to: 'y', ...d });
  });

  it('formats sizes', () => {
    expect([0, 1023, 1024, 1536, 10 * 1024 * 1024, 3.5 * 1024 ** 3, -2048].map(formatSize)).toEqual([
      '0 B', '1023 B', '1.0 KiB', '1.5 KiB', '10 MiB', '3.5 GiB', '-2.0 KiB',
    ]);
  });
});

describe('diffManifests of answers whose headers changed', () => {
  const file = (type: string) =>
    entry('https://registry.example/same/-/same-1.0.0.tgz', 'same bytes', { headers: [{ name: 'Content-Type', value: type }] });

  it('a package file whose bytes stayed but whose Content-Type changed is listed with the other URLs, with the header', () => {
    const d = diffManifests(manifestOf([file('application/octet-stream')]), manifestOf([file('application/gzip')]));
    expect(d.packages).toEqual([]);
    expect(d.changed).toMatchObject([{ class: 'other', headers: [{ name: 'Content-Type', from: 'application/octet-stream', to: 'application/gzip' }] }]);
    expect(renderDiffText(d).split('\n')).toContain(
      `~ GET https://registry.example/same/-/same-1.0.0.tgz  200 10 B ${sha('same bytes').slice(0, 12)} -> 200 10 B ${sha('same bytes').slice(0, 12)}  Content-Type: application/octet-stream -> application/gzip`,
    );
  });
});

describe('a Markdown comment of a huge diff', () => {
  it('stays under a comment\'s size limit, keeps the summary and says how many rows were left out', () => {
    const urls = Array.from({ length: 3000 }, (_, i) => `https://files.example/dl/some/long/path/file-${String(i).padStart(4, '0')}.bin`);
    const d = diffManifests(manifestOf(urls.map((u) => entry(u, 'old'))), manifestOf(urls.map((u) => entry(u, 'new!'))));
    const md = renderDiffMarkdown(d, { from: 'ci@1111111', to: 'ci@2222222' });
    expect(md.length).toBeLessThanOrEqual(MAX_COMMENT_CHARS);
    const lines = md.trimEnd().split('\n');
    expect(lines[0]).toBe('**btrfly diff** `ci@1111111` → `ci@2222222`: 0 added, 0 removed, 3000 changed, 0 unchanged (+2.9 KiB)');
    const shown = lines.filter((l) => l.startsWith('| changed |')).length;
    expect(shown).toBeGreaterThan(100);
    expect(lines.at(-1)).toBe(`… ${3000 - shown} more rows left out to keep the comment under 60,000 characters: \`btrfly diff\` (text or --format json) lists every change.`);
  });
});

describe('diffManifests of a package build', () => {
  const R = 'https://registry.example';
  const NPM = [{ name: 'Accept', value: 'application/vnd.npm.install-v1+json; q=1.0, application/json; q=0.8, */*' }];
  const tgz = (name: string, v: string, bytes = `${name}@${v}`) => entry(`${R}/${name}/-/${name}-${v}.tgz`, bytes);
  const packument = (name: string, body: string) => entry(`${R}/${name}`, body, { reqHeaders: NPM });
  const a = manifestOf([
    packument('axios', '{"v":1}'), tgz('axios', '1.7.9'),
    packument('lodash', '{"v":1}'), tgz('lodash', '4.17.20'),
    packument('left-pad', '{"v":1}'), tgz('left-pad', '1.3.0'),
    tgz('ms', '2.1.3'), tgz('same', '1.0.0'),
    entry('https://files.example/notes.txt', 'a'),
    entry(`${R}/owner/tool/releases/download/v1.0.0/tool.tar.gz`, 'moved', { status: 302, headers: [{ name: 'Location', value: 'https://objects.example/asset/1?sig=a' }] }),
    entry('https://objects.example/asset/1?sig=a', 'tool v1'),
  ]);
  const b = manifestOf([
    packument('axios', '{"v":2}'), tgz('axios', '1.7.8'),
    packument('lodash', '{"v":2}'), tgz('lodash', '4.17.21'),
    packument('zod', '{"v":1}'), tgz('zod', '3.23.8'),
    tgz('ms', '2.1.3', 'republished'), tgz('same', '1.0.0'),
    entry('https://files.example/notes.txt', 'b'),
    entry(`${R}/owner/tool/releases/download/v1.1.0/tool.tar.gz`, 'moved', { status: 302, headers: [{ name: 'Location', value: 'https://objects.example/asset/2?sig=b' }] }),
    entry('https://objects.example/asset/2?sig=b', 'tool v1.1'),
  ]);
  const d = diffManifests(a, b);

  it('names each package change once, by ecosystem version order; the same version with other bytes is "changed"', () => {
    expect(d.packages).toEqual([
      { change: 'upgraded', ecosystem: 'github', name: 'owner/tool', from: 'v1.0.0', to: 'v1.1.0' },
      { change: 'upgraded', ecosystem: 'npm', name: 'lodash', from: '4.17.20', to: '4.17.21' },
      { change: 'downgraded', ecosystem: 'npm', name: 'axios', from: '1.7.9', to: '1.7.8' },
      { change: 'added', ecosystem: 'npm', name: 'zod', to: '3.23.8' },
      { change: 'removed', ecosystem: 'npm', name: 'left-pad', from: '1.3.0' },
      { change: 'changed', ecosystem: 'npm', name: 'ms', from: '2.1.3', to: '2.1.3', urls: { from: [`${R}/ms/-/ms-2.1.3.tgz`], to: [`${R}/ms/-/ms-2.1.3.tgz`] } },
    ]);
    // packuments: 2 changed, 1 added, 1 removed; the redirect's target counts as the artifact
    expect(d.metadata).toEqual({ refreshed: 2, new: 1, gone: 1 });
    expect(d.changed.find((c) => c.url.endsWith('/notes.txt'))?.class).toBe('other');
    expect(d.added.find((e) => e.url.startsWith('https://objects.example/'))?.class).toBe('artifact');
  });

  it('renders text: packages first, then the metadata count, then the other URLs', () => {
    const text = renderDiffText(d, { from: 'ci@1', to: 'ci@2' });
    expect(text.split('\n')).toEqual([
      '--- ci@1',
      '+++ ci@2',
      'upgraded   owner/tool v1.0.0 → v1.1.0 (github)',
      'upgraded   lodash 4.17.20 → 4.17.21 (npm)',
      'downgraded axios 1.7.9 → 1.7.8 (npm)',
      'added      zod 3.23.8 (npm)',
      'removed    left-pad 1.3.0 (npm)',
      `changed    ms 2.1.3 (npm), other bytes: ${R}/ms/-/ms-2.1.3.tgz`,
      'metadata: 2 refreshed, 1 new, 1 gone',
      `~ GET https://files.example/notes.txt  200 1 B ${sha('a').slice(0, 12)} -> 200 1 B ${sha('b').slice(0, 12)}`,
      'packages: 2 upgraded, 1 downgraded, 1 added, 1 removed, 1 changed; metadata: 2 refreshed, 1 new, 1 gone; other URLs: 0 added, 0 removed, 1 changed; 1 unchanged (+1 B)',
      '',
    ]);
    const all = renderDiffText(d, undefined, { all: true }).split('\n');
    expect(all.filter((l) => l.startsWith('  '))).toEqual([
      expect.stringMatching(/^ {2}- GET https:\/\/registry\.example\/left-pad {2}200 /),
      expect.stringMatching(/^ {2}\+ GET https:\/\/registry\.example\/zod {2}200 /),
      expect.stringMatching(/^ {2}~ GET https:\/\/registry\.example\/axios {2}200 /),
      expect.stringMatching(/^ {2}~ GET https:\/\/registry\.example\/lodash {2}200 /),
    ]);
  });

  it('renders Markdown: a package table, the metadata count, then the other URLs', () => {
    const md = renderDiffMarkdown(d, { from: 'ci@1', to: 'ci@2' }).split('\n');
    expect(md.slice(2, 11)).toEqual([
      '| Package | Change | Version | Ecosystem |',
      '|---|---|---|---|',
      '| `owner/tool` | upgraded | v1.0.0 → v1.1.0 | github |',
      '| `lodash` | upgraded | 4.17.20 → 4.17.21 | npm |',
      '| `axios` | downgraded | 1.7.9 → 1.7.8 | npm |',
      '| `zod` | added | 3.23.8 | npm |',
      '| `left-pad` | removed | 1.3.0 | npm |',
      '| `ms` | changed | 2.1.3 (other bytes) | npm |',
      '',
    ]);
    expect(md.slice(11, 14)).toEqual([`- \`ms\` 2.1.3 (npm) from \`${R}/ms/-/ms-2.1.3.tgz\``, '', 'Metadata: 2 refreshed, 1 new, 1 gone (`btrfly diff --all` lists them)']);
    expect(md.filter((l) => l.startsWith('| changed |'))).toHaveLength(1);
    expect(renderDiffMarkdown(d, undefined, { all: true }).split('\n').filter((l) => l.startsWith('| changed |'))).toHaveLength(3);
  });

  it('renders JSON with the packages, the metadata count and every URL with its class', () => {
    const j = JSON.parse(renderDiffJson(d));
    expect(j.packages).toEqual(d.packages);
    expect(j.metadata).toEqual({ refreshed: 2, new: 1, gone: 1 });
    expect(j.changed.map((c: { class: string }) => c.class).sort()).toEqual(['artifact', 'metadata', 'metadata', 'other']);
  });
});

describe('diffManifests of a package fetched from another host', () => {
  // The same tarball, same version, fetched from another host: the reviewer must see where it now comes from.
  const good = 'http://pkg.test:18080/pkg/-/pkg-2.0.0.tgz';
  const evil = 'http://evil.test:18080/pkg/-/pkg-2.0.0.tgz';
  const a = manifestOf([entry(good, 'pkg 2.0.0')]);

  it('shows a source line in text, markdown and JSON when only the URL changed', () => {
    const d = diffManifests(a, manifestOf([entry(evil, 'pkg 2.0.0')]));
    expect(d.packages).toEqual([{ change: 'source', ecosystem: 'npm', name: 'pkg', from: '2.0.0', to: '2.0.0', urls: { from: [good], to: [evil] } }]);
    const text = renderDiffText(d).split('\n');
    expect(text).toEqual([
      `source     pkg 2.0.0 (npm): ${good} → ${evil}`,
      'metadata: 0 refreshed, 0 new, 0 gone',
      'packages: 1 from another source; metadata: 0 refreshed, 0 new, 0 gone; other URLs: 0 added, 0 removed, 0 changed; 0 unchanged (±0 B)',
      '',
    ]);
    expect(renderDiffText(d, undefined, { all: true })).toBe(text.join('\n'));
    const md = renderDiffMarkdown(d).split('\n');
    expect(md[0]).toMatch(/^\*\*btrfly diff\*\*: packages: 1 from another source;/);
    expect(md).toContain('| `pkg` | source | 2.0.0 (other source) | npm |');
    expect(md).toContain(`- \`pkg\` 2.0.0 (npm) from \`${good}\` → \`${evil}\``);
    expect(JSON.parse(renderDiffJson(d)).packages[0].urls).toEqual({ from: [good], to: [evil] });
  });

  it('names both URLs on a "changed" line when the bytes and the host changed', () => {
    const d = diffManifests(a, manifestOf([entry(evil, 'other bytes')]));
    expect(renderDiffText(d).split('\n')[0]).toBe(`changed    pkg 2.0.0 (npm), other bytes: ${good} → ${evil}`);
  });

  it('says nothing when the same version came from the same URLs', () => {
    expect(diffManifests(a, manifestOf([entry(good, 'pkg 2.0.0')])).packages).toEqual([]);
  });
});

describe('diff renderers and names that would fool a terminal or a review', () => {
  const R = 'https://registry.example';
  // %0D%1B%5B2K: carriage return + "erase line"; %0A forges a line; U+202E reverses what follows.
  const cr = entry(`${R}/evil%0D%1B%5B2K/-/evil%0D%1B%5B2K-1.0.0.tgz`, 'x');
  const lf = entry(`${R}/ok%0Aadded%20%20%20%20%20%20fake/-/ok%0Aadded%20%20%20%20%20%20fake-1.0.0.tgz`, 'y');
  const bidi = entry(`${R}/%E2%80%AEgel/-/%E2%80%AEgel-1.0.0.tgz`, 'z');
  const tick = entry(`${R}/a%60b/-/a%60b-1.0.0.tgz`, 't');
  const other = entry('https://files.example/x%0D%1B%5B2K', 'o'); // stays percent-encoded as a URL
  const d = diffManifests(manifestOf([]), manifestOf([cr, lf, bidi, tick, other]));

  it('decodes the names (as the lock file records them)', () => {
    expect(d.packages.map((p) => p.name).sort()).toEqual(['a`b', 'evil\r\x1b[2K', 'ok\nadded      fake', '\u202egel'].sort());
  });

  it('escapes control, bidi and invisible characters in the text form', () => {
    const text = renderDiffText(d, { from: 'a', to: 'b' });
    // eslint-disable-next-line no-control-regex
    expect(text).not.toMatch(/[\x00-\x09\x0b-\x1f\x7f-\x9f\u202e]/);
    const lines = text.split('\n');
    expect(lines).toContain('added      evil\\x0d\\x1b[2K 1.0.0 (npm)');
    expect(lines).toContain('added      ok\\x0aadded\\x20\\x20\\x20\\x20\\x20\\x20fake 1.0.0 (npm)');
    expect(lines).toContain('added      \\u{202e}gel 1.0.0 (npm)');
    expect(lines.filter((l) => l.startsWith('added '))).toHaveLength(4);
    expect(lines).toContain(`+ GET https://files.example/x%0D%1B%5B2K  200 1 B ${sha('o').slice(0, 12)}`);
  });

  it('escapes them in Markdown too and shows a backtick in a name as itself', () => {
    const md = renderDiffMarkdown(d);
    // eslint-disable-next-line no-control-regex
    expect(md).not.toMatch(/[\x00-\x09\x0b-\x1f\x7f-\x9f\u202e]/);
    const lines = md.split('\n');
    expect(lines).toContain('| ``a`b`` | added | 1.0.0 | npm |');
    expect(lines).toContain('| `evil\\x0d\\x1b[2K` | added | 1.0.0 | npm |');
    expect(lines).toContain('| `\\u{202e}gel` | added | 1.0.0 | npm |');
  });
});
