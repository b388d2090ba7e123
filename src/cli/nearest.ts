import { distance } from 'fastest-levenshtein';

/**
 * The candidates a mistyped `input` most likely meant, closest first (at most three of the
 * closest): those within a small edit distance (`recrod` → `record`, `shwo` → `show`) and
 * those it begins (`ver` → `verify`). Empty when nothing is close: then say where the list is.
 */
export function nearest(input: string, candidates: readonly string[]): string[] {
  const limit = input.length <= 3 ? 1 : 2;
  const scored = candidates
    .map((c) => {
      const d = distance(input, c);
      return { c, d: input.length >= 2 && c.startsWith(input) ? Math.min(d, limit) : d };
    })
    .filter(({ d }) => d <= limit && d < input.length);
  const best = Math.min(...scored.map(({ d }) => d));
  return scored
    .filter(({ d }) => d === best)
    .map(({ c }) => c)
    .sort()
    .slice(0, 3);
}

/** `"a"`, `"a" or "b"`, `"a", "b" or "c"` (`quote` = '' for `a, b or c`). */
export function orList(items: readonly string[], quote = '"'): string {
  const quoted = items.map((i) => `${quote}${i}${quote}`);
  return quoted.length <= 1 ? (quoted[0] ?? '') : `${quoted.slice(0, -1).join(', ')} or ${quoted.at(-1)}`;
}
