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

/**
 * Where a child's command begins in an argv without `--`: the first word that is neither
 * one of btrfly's flags nor a flag's value (`run --record --tag=t ls -la` → 2, at `ls`).
 * Undefined when there is none, or when `--` comes first.
 */
export function commandStart(rawArgv: readonly string[], flags: Record<string, { type: 'boolean' | 'option'; char?: string }>): number | undefined {
  const byChar = new Map(Object.values(flags).flatMap((f) => (f.char ? [[f.char, f] as const] : [])));
  for (let i = 0; i < rawArgv.length; i++) {
    const word = rawArgv[i];
    if (word === '--') return undefined;
    if (word.startsWith('--')) {
      if (!word.includes('=') && flags[word.slice(2)]?.type === 'option') i++;
    } else if (word.startsWith('-') && word.length > 1) {
      if (word.length === 2 && byChar.get(word[1])?.type === 'option') i++;
    } else {
      return i;
    }
  }
  return undefined;
}

/** `word` as a POSIX shell reads it back: bare when safe, else in single quotes. */
export function shellQuote(word: string): string {
  return /^[\w@%+=:,./-]+$/.test(word) ? word : `'${word.replaceAll("'", `'\\''`)}'`;
}
