import { argsAfterDashDash, ownArgs } from '../../src/cli/command-argv';

test('the command is everything after the first --, untouched', () => {
  const raw = ['--record', '--tag=t', '--', 'env', '-u', 'A', '-u', 'B', 'npm', 'run', 'x', '--', '--json'];
  expect(argsAfterDashDash(raw)).toEqual(['env', '-u', 'A', '-u', 'B', 'npm', 'run', 'x', '--', '--json']);
  expect(ownArgs(raw)).toEqual(['--record', '--tag=t']);
});

test('without --, no command is taken from the raw argv and every argument is btrfly\'s', () => {
  expect(argsAfterDashDash(['--record', 'make'])).toBeUndefined();
  expect(ownArgs(['--json'])).toEqual(['--json']);
});
