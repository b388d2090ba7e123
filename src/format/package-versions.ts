/**
 * Ordering versions the way each ecosystem does, so that a diff can say "upgraded" or
 * "downgraded": semver for npm, crates and Go modules (Go's leading `v` stripped), PEP 440
 * for PyPI, dpkg's algorithm for .deb, and a numeric-aware comparison for the rest (Maven,
 * RubyGems, NuGet, release tags). OCI digests have no order.
 */
import * as pep440 from '@renovatebot/pep440';
import semver from 'semver';
import type { Ecosystem } from './package-rules';

/** Negative, zero or positive as `a` is older than, the same as, or newer than `b`; undefined when the two have no order. */
export type VersionOrder = number | undefined;

const sign = (n: number): number => (n < 0 ? -1 : n > 0 ? 1 : 0);

/** `1.10` after `1.9`, `v2` after `v1`: digit runs compared as numbers, the rest as text. */
export function compareNumericAware(a: string, b: string): number {
  return sign(a.localeCompare(b, 'en', { numeric: true, sensitivity: 'variant' }));
}

/** semver when both parse (loosely, a leading `v` allowed), else numeric-aware. */
function compareSemver(a: string, b: string): number {
  const va = semver.valid(semver.clean(a, { loose: true }) ?? a, { loose: true });
  const vb = semver.valid(semver.clean(b, { loose: true }) ?? b, { loose: true });
  return va && vb ? semver.compare(va, vb, { loose: true }) : compareNumericAware(a, b);
}

function comparePep440(a: string, b: string): number {
  return pep440.valid(a) && pep440.valid(b) ? sign(pep440.compare(a, b)) : compareNumericAware(a, b);
}

// ---- dpkg (deb-version(7): [epoch:]upstream[-revision])

/** A character's weight in dpkg's lexical part: `~` before everything, even the end; letters before other symbols. */
function dpkgOrder(c: string | undefined): number {
  if (c === undefined) return 0;
  if (c === '~') return -1;
  if (/[0-9]/.test(c)) return 0;
  if (/[A-Za-z]/.test(c)) return c.charCodeAt(0);
  return c.charCodeAt(0) + 256;
}

/** dpkg's `verrevcmp`: alternating non-digit runs (by {@link dpkgOrder}) and digit runs (as numbers). */
function dpkgPartCompare(a: string, b: string): number {
  let i = 0;
  let j = 0;
  while (i < a.length || j < b.length) {
    let firstDiff = 0;
    while ((i < a.length && !/[0-9]/.test(a[i])) || (j < b.length && !/[0-9]/.test(b[j]))) {
      const ac = dpkgOrder(a[i]);
      const bc = dpkgOrder(b[j]);
      if (ac !== bc) return sign(ac - bc);
      i++;
      j++;
    }
    while (a[i] === '0') i++;
    while (b[j] === '0') j++;
    while (i < a.length && /[0-9]/.test(a[i]) && j < b.length && /[0-9]/.test(b[j])) {
      if (!firstDiff) firstDiff = a.charCodeAt(i) - b.charCodeAt(j);
      i++;
      j++;
    }
    if (i < a.length && /[0-9]/.test(a[i])) return 1;
    if (j < b.length && /[0-9]/.test(b[j])) return -1;
    if (firstDiff) return sign(firstDiff);
  }
  return 0;
}

function splitDpkg(v: string): { epoch: number; upstream: string; revision: string } {
  const colon = v.indexOf(':');
  const epoch = colon > 0 && /^\d+$/.test(v.slice(0, colon)) ? Number(v.slice(0, colon)) : 0;
  const rest = colon > 0 && /^\d+$/.test(v.slice(0, colon)) ? v.slice(colon + 1) : v;
  const dash = rest.lastIndexOf('-');
  return dash < 0 ? { epoch, upstream: rest, revision: '' } : { epoch, upstream: rest.slice(0, dash), revision: rest.slice(dash + 1) };
}

/** Debian's version order, as `dpkg --compare-versions` has it (epoch, then upstream, then revision). */
export function compareDpkg(a: string, b: string): number {
  const x = splitDpkg(a);
  const y = splitDpkg(b);
  if (x.epoch !== y.epoch) return sign(x.epoch - y.epoch);
  return dpkgPartCompare(x.upstream, y.upstream) || dpkgPartCompare(x.revision, y.revision);
}

const isDigest = (v: string): boolean => /^sha(256|384|512):[0-9a-f]+$/.test(v);

/**
 * Orders two versions of one package of an ecosystem.
 * @returns negative, zero or positive; undefined when they have no order (OCI digests)
 */
export function compareVersions(ecosystem: Ecosystem, a: string, b: string): VersionOrder {
  if (a === b) return 0;
  switch (ecosystem) {
    case 'npm':
    case 'cargo':
    case 'golang':
      return compareSemver(a, b);
    case 'pypi':
      return comparePep440(a, b);
    case 'deb':
      return compareDpkg(a, b);
    case 'oci':
      return isDigest(a) || isDigest(b) ? undefined : compareNumericAware(a, b);
    default:
      return compareNumericAware(a, b);
  }
}
