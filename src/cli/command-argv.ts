/**
 * The command line after the first `--`, exactly as the user typed it, or undefined when
 * there is no `--`.
 *
 * oclif's parser (with `strict = false`) regroups what follows `--`: `env -u A -u B cmd`
 * reached the child as `env -u -u A B cmd`, and a second `--` (`npm run build -- --watch`)
 * was dropped. A command-mode child must get its own arguments untouched, so `run` takes
 * them from the raw argv instead.
 */
export function argsAfterDashDash(rawArgv: readonly string[]): string[] | undefined {
  const at = rawArgv.indexOf('--');
  return at === -1 ? undefined : rawArgv.slice(at + 1);
}

/** btrfly's own arguments: those before the first `--` (a child's `--json` is not btrfly's). */
export function ownArgs(rawArgv: readonly string[]): readonly string[] {
  const at = rawArgv.indexOf('--');
  return at === -1 ? rawArgv : rawArgv.slice(0, at);
}
