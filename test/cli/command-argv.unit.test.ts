import { argsAfterDashDash, commandStart, ownArgs, shellQuote } from '../../src/cli/command-argv';

test('the command is everything after the first --, untouched', () => {
  const raw = ['--record', '--tag=t', '--', 'env', '-u', 'A', '-u', 'B', 'npm', 'run', 'x', '--', '--json'];
  expect(argsAfterDashDash(raw)).toEqual(['env', '-u', 'A', '-u', 'B', 'npm', 'run', 'x', '--', '--json']);
  expect(ownArgs(raw)).toEqual(['--record', '--tag=t']);
});

test('without --, no command is taken from the raw argv and every argument is btrfly\'s', () => {
  expect(argsAfterDashDash(['--record', 'make'])).toBeUndefined();
  expect(ownArgs(['--json'])).toEqual(['--json']);
});

test('the child command starts at the first word that is no flag of btrfly nor a flag\'s value', () => {
  const flags = { record: { type: 'boolean' as const }, tag: { type: 'option' as const }, output: { type: 'option' as const, char: 'o' } };
  expect(commandStart(['--record', '--tag=t', 'ls', '-la'], flags)).toBe(2);
  expect(commandStart(['--record', '--tag', 'ls', 'make'], flags)).toBe(3);
  expect(commandStart(['-o', 'file', 'curl'], flags)).toBe(2);
  expect(commandStart(['--record', '--', 'ls'], flags)).toBeUndefined();
  expect(commandStart(['--record', '--tag=t'], flags)).toBeUndefined();
});

test('shellQuote leaves plain words bare and quotes the rest so a shell reads them back', () => {
  expect(['ls', '-la', 'http://x.test/a?b', "it's", 'a b', ''].map(shellQuote)).toEqual(['ls', '-la', "'http://x.test/a?b'", "'it'\\''s'", "'a b'", "''"]);
});
