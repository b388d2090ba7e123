import { nearest, orList } from '../../src/cli/nearest';

const COMMANDS = ['cp', 'diff', 'export', 'log', 'login', 'rm', 'run', 'show', 'start', 'status', 'stop', 'tags', 'verify'];

test('nearest: the closest commands by edit distance, or those the word begins', () => {
  expect(nearest('shwo', COMMANDS)).toEqual(['show']);
  expect(nearest('stats', COMMANDS)).toEqual(['status']);
  expect(nearest('ver', COMMANDS)).toEqual(['verify']);
  expect(nearest('rn', COMMANDS)).toEqual(['rm', 'run']);
  expect(nearest('xyzzy', COMMANDS)).toEqual([]);
  expect(nearest('x', COMMANDS)).toEqual([]);
});

test('orList joins with commas and a final "or"', () => {
  expect(orList(['a'])).toBe('"a"');
  expect(orList(['a', 'b', 'c'])).toBe('"a", "b" or "c"');
  expect(orList(['har', 'warc'], '')).toBe('har or warc');
});
