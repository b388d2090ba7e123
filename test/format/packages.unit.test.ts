/**
 * A recording read as packages: the artifacts it downloaded (a redirect followed to the bytes)
 * and their `packages.lock` text, one artifact a line, sorted, with no host and no URL.
 */
import { recordingPackages, serializePackagesLock } from '../../src/format/packages';
import { entry, manifestOf, sha } from './format-test-data';

describe('recordingPackages and packages.lock', () => {
  const m = manifestOf([
    entry('https://user:secret@mirror.example/npm/@types/node/-/node-20.11.30.tgz', 'node types'),
    entry('https://mirror.example/npm/axios/-/axios-1.7.9.tgz', 'axios'),
    entry('https://other-mirror.example/axios/-/axios-1.7.9.tgz', 'axios'),
    entry('https://mirror.example/npm/gone/-/gone-1.0.0.tgz', 'not found', { status: 404 }),
    entry('https://proxy.example/example.test/greet/@v/v1.1.0.zip', 'zip'),
    entry('https://proxy.example/example.test/greet/@v/v1.1.0.mod', 'module example.test/greet\n'),
    entry('https://proxy.example/example.test/greet/@v/list', 'v1.1.0\n'),
    entry('http://deb.example/debian/pool/main/c/curl/curl_7.88.1-10+deb12u5_amd64.deb', 'deb'),
    entry('https://gh.example/owner/tool/releases/download/v1.0.0/tool%20linux.tar.gz', 'moved', {
      status: 302,
      headers: [{ name: 'Location', value: '/assets/1?token=abc' }],
    }),
    entry('https://gh.example/assets/1?token=abc', 'tool'),
  ]);
  const p = recordingPackages(m);

  it('classes each entry; a redirect target belongs to its artifact', () => {
    expect(p.classes.get('GET https://gh.example/assets/1?token=abc #0')).toBe('artifact');
    expect(p.classes.get('GET https://proxy.example/example.test/greet/@v/list #0')).toBe('metadata');
    expect(p.classes.get('GET https://mirror.example/npm/gone/-/gone-1.0.0.tgz #0')).toBe('other');
  });

  it('writes one sorted line an artifact: ecosystem, name, version, sha256, file; nothing of hosts or URLs', () => {
    const lock = serializePackagesLock(p.artifacts);
    expect(lock.split('\n')).toEqual([
      '# btrfly packages.lock: the artifacts this recording downloaded, one a line, sorted.',
      '# ecosystem name version sha256 file',
      `deb curl 7.88.1-10+deb12u5 ${sha('deb')} curl_7.88.1-10+deb12u5_amd64.deb`,
      `github owner/tool v1.0.0 ${sha('tool')} tool%20linux.tar.gz`,
      `golang example.test/greet v1.1.0 ${sha('zip')} v1.1.0.zip`,
      `npm @types/node 20.11.30 ${sha('node types')} node-20.11.30.tgz`,
      `npm axios 1.7.9 ${sha('axios')} axios-1.7.9.tgz`,
      '',
    ]);
    expect(lock).not.toMatch(/mirror|proxy\.example|gh\.example|secret|token|https?:/);
    // The same artifacts in another order give the same bytes.
    expect(serializePackagesLock([...p.artifacts].reverse())).toBe(lock);
  });

  it('takes a JSON packument for metadata when the recording downloaded that package\'s tarball', () => {
    const json = [{ name: 'Accept', value: 'application/json' }];
    const q = recordingPackages(manifestOf([
      entry('https://r.example/npm/@types%2fnode', '{}', { reqHeaders: json }),
      entry('https://r.example/npm/@types/node/-/node-20.11.30.tgz', 'node types'),
      entry('https://r.example/npm/status', '{}', { reqHeaders: json }),
    ]));
    expect(q.classes.get('GET https://r.example/npm/@types%2fnode #0')).toBe('metadata');
    expect(q.classes.get('GET https://r.example/npm/status #0')).toBe('other');
  });
});
