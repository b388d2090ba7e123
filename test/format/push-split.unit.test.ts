/** How a size refusal is read and a push size is parsed (src/format/push-split.ts). */
import { describeSplit, parseSize, sizeRefusal } from '../../src/format/push-split';

const MIB = 1024 * 1024;

describe('sizeRefusal', () => {
  it("reads real git's refusal, with and without the size, and GitHub's", () => {
    expect(sizeRefusal('remote: fatal: pack exceeds maximum allowed size (48.00 MiB)\nerror: remote unpack failed')).toEqual({ limit: 48 * MIB });
    expect(sizeRefusal('remote: fatal: pack exceeds maximum allowed size        \nerror: remote unpack failed: unpack-objects abnormal exit')).toEqual({ limit: null });
    expect(sizeRefusal('remote: fatal: pack exceeds maximum allowed size (2.00 GiB)')).toEqual({ limit: 2 * 1024 * MIB });
  });
  it('is null for any other failure', () => {
    expect(sizeRefusal('remote: error: denying non-fast-forward refs/heads/x')).toBeNull();
    expect(sizeRefusal('')).toBeNull();
  });
});

describe('parseSize', () => {
  it("takes git's and people's spellings, in binary units", () => {
    expect(parseSize('48m')).toBe(48 * MIB);
    expect(parseSize('48MiB')).toBe(48 * MIB);
    expect(parseSize('2g')).toBe(2048 * MIB);
    expect(parseSize('1.5 GB')).toBe(1536 * MIB);
    expect(parseSize('1048576')).toBe(MIB);
  });
  it('refuses what is not a size or is under 1 MiB, in one line', () => {
    for (const bad of ['', 'lots', '1x', '-5m', '512k']) expect(() => parseSize(bad)).toThrow(/is not a usable push size: give at least 1 MiB/);
  });
});

describe('describeSplit', () => {
  it('says the pushes, the limit and where it came from', () => {
    expect(describeSplit('hub', { pushes: 4, limit: 48 * MIB, source: 'configured' })).toBe('remote hub takes pushes of at most 48 MiB: sent in 4 pushes under the limit set for it');
    expect(describeSplit('hub', { pushes: 3, limit: 30 * MIB, source: 'learned' })).toMatch(/^remote hub takes pushes of at most 30 MiB: sent in 3 pushes under a limit learned by trying, kept for next time/);
  });
});
