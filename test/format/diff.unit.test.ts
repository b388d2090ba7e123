import { diffManifests, renderDiffJson, renderDiffMarkdown, renderDiffText } from '../../src/format/diff';
import { formatSize } from '../../src/format/size';
import { entry, manifestOf, sha } from './format-test-data';

describe('diffManifests', () => {
  const lodash1 = entry('https://registry.example/lodash/-/lodash-4.17.20.tgz', 'old lodash');
  const lodash2 = entry('https://registry.example/lodash/-/lodash-4.17.20.tgz', 'new lodash bytes');
  const left = entry('https://registry.example/left-pad/-/left-pad-1.3.0.tgz', 'pad');
  const react = entry('https://registry.example/react/-/react-19.0.0.tgz', 'react');
  const same = entry('https://registry.example/index.json', '{}');
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
        from: { status: 200, size: 10, sha256: sha('old lodash') },
        to: { status: 200, size: 16, sha256: sha('new lodash bytes') },
      },
    ]);
    expect(d.unchanged).toBe(1);
    expect(diffManifests(a, a)).toEqual({ added: [], removed: [], changed: [], unchanged: 3 });
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
