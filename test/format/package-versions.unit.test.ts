/**
 * Version order per ecosystem. The dpkg comparator is checked against `dpkg --compare-versions`
 * itself, pair by pair, so the reference is the real tool and not a table copied by hand.
 */
import { spawnSync } from 'node:child_process';
import { compareDpkg, compareVersions } from '../../src/format/package-versions';
import { describeWhen } from '../helpers/when';

const hasDpkg = spawnSync('dpkg', ['--version']).status === 0;

/** Each pair is older → newer in its ecosystem. */
const ORDERED: Array<[Parameters<typeof compareVersions>[0], string, string]> = [
  ['npm', '1.7.8', '1.7.9'],
  ['npm', '1.9.0', '1.10.0'],
  ['npm', '2.0.0-beta.2', '2.0.0'],
  ['npm', '2.0.0-beta.2', '2.0.0-beta.10'],
  ['cargo', '1.0.99', '1.0.197'],
  ['golang', 'v0.9.0', 'v0.14.0'],
  ['golang', 'v0.0.0-20240102030405-abcdefabcdef', 'v0.0.1'],
  ['golang', 'v1.1.0', 'v2.0.0+incompatible'],
  ['pypi', '2.31.0', '2.32.0'],
  ['pypi', '1.0rc1', '1.0'],
  ['pypi', '1.0', '1.0.post1'],
  ['pypi', '1.0.dev3', '1.0a1'],
  ['pypi', '2.0', '1!0.1'],
  ['deb', '7.88.1-10+deb12u4', '7.88.1-10+deb12u5'],
  ['deb', '1.0~rc1-1', '1.0-1'],
  ['deb', '1:9.9', '2:1.0'],
  ['maven', '2.0.9', '2.0.12'],
  ['gem', '1.16.2', '1.16.10'],
  ['nuget', '13.0.1', '13.0.3'],
  ['github', 'v2.9.0', 'v2.45.0'],
  ['oci', '3.9', '3.19'],
];

describe('compareVersions', () => {
  it.each(ORDERED)('%s %s < %s', (...[eco, older, newer]) => {
    expect(compareVersions(eco, older, newer)).toBeLessThan(0);
    expect(compareVersions(eco, newer, older)).toBeGreaterThan(0);
    expect(compareVersions(eco, older, older)).toBe(0);
  });

  it('equal versions written differently compare equal where the ecosystem says so', () => {
    expect(compareVersions('pypi', '1.0', '1.0.0')).toBe(0);
    expect(compareVersions('deb', '0:1.0', '1.0')).toBe(0);
    expect(compareVersions('golang', 'v1.2.3', '1.2.3')).toBe(0);
  });

  it('OCI digests have no order', () => {
    expect(compareVersions('oci', `sha256:${'a'.repeat(64)}`, `sha256:${'b'.repeat(64)}`)).toBeUndefined();
  });

  it('falls back to a numeric-aware order for what a parser refuses', () => {
    expect(compareVersions('npm', 'nightly-9', 'nightly-10')).toBeLessThan(0);
    expect(compareVersions('pypi', 'build-9', 'build-10')).toBeLessThan(0);
  });
});

/** Pairs where dpkg's rules are easy to get wrong: tildes, epochs, letters against symbols, zeros. */
const DPKG_PAIRS: Array<[string, string]> = [
  ['1.0~rc1', '1.0'],
  ['1.0~~', '1.0~'],
  ['1.0~', '1.0'],
  ['1.0', '1.0+b1'],
  ['1.0', '1.0a'],
  ['1.0a', '1.0+'],
  ['1.0-1', '1.0-1ubuntu1'],
  ['1.0-1~bpo1', '1.0-1'],
  ['1:1.0', '2.0'],
  ['1:1.0', '1:1.0-0'],
  ['2.35-0ubuntu3.6', '2.35-0ubuntu3.10'],
  ['7.88.1-10+deb12u5', '7.88.1-10+deb12u12'],
  ['1.001', '1.1'],
  ['1.0.0', '1.0'],
  ['a', 'b'],
  ['1.2.3-1', '1.2.3.0-1'],
  ['5.36.0-7', '5.36.0-7+deb12u1'],
  ['2024a-0+deb12u1', '2024b-0+deb12u1'],
  ['1.0-a', '1.0-A'],
  ['10', '9'],
  ['0.9-1.1', '0.9-1.a'],
];

describeWhen(hasDpkg ? undefined : ['dpkg'])('compareDpkg against dpkg --compare-versions', () => {
  it.each(DPKG_PAIRS)('%s vs %s', (...[a, b]) => {
    const dpkg = (op: string): boolean => spawnSync('dpkg', ['--compare-versions', a, op, b]).status === 0;
    const want = dpkg('lt') ? -1 : dpkg('gt') ? 1 : 0;
    expect(compareDpkg(a, b)).toBe(want);
    expect(compareDpkg(b, a)).toBe(want === 0 ? 0 : -want);
  });
});
