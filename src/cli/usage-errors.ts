import { commandStart, shellQuote } from './command-argv';
import { nearest, orList } from './nearest';

/** What this file needs to know of a flag: oclif's flag definitions and cached (manifest) flags both fit. */
export interface FlagShape {
  type: 'boolean' | 'option';
  char?: string;
  summary?: string;
  description?: string;
  required?: boolean;
  hidden?: boolean;
  helpValue?: string | string[];
  options?: readonly string[];
  exclusive?: ReadonlyArray<string | { name: string }>;
  exactlyOne?: readonly string[];
  dependsOn?: readonly string[];
}

/** What this file needs to know of a positional argument. */
export interface ArgShape {
  description?: string;
  required?: boolean;
  options?: readonly string[];
}

/** What this file needs to know of a command: a command class (flags merged with the base flags) or its manifest entry. */
export interface CommandShape {
  id: string;
  usage?: string | string[];
  args?: Record<string, ArgShape>;
  flags?: Record<string, FlagShape>;
  strict?: boolean;
  /** The command runs another command given after `--` (`btrfly run ... -- CMD`). */
  runsCommand?: boolean;
}

/** The parts of oclif's parse errors (`@oclif/core` parser/errors.ts) that name what went wrong. */
interface OclifParseError extends Error {
  flags?: string[];
  args?: unknown[];
  parse?: {
    input?: { flags?: Record<string, FlagShape>; args?: Record<string, ArgShape> };
    output?: { flags?: Record<string, unknown>; args?: Record<string, unknown>; metadata?: { flags?: Record<string, { setFromDefault?: boolean }> } };
  };
}

/**
 * The short usage line of a command, as error messages show it: the command's own
 * `usage` when it has one (`btrfly run --record|--playback --tag=T [FLAGS] -- CMD [ARGS...]`),
 * otherwise its arguments and required flags (`btrfly export SPEC --output=FILE`).
 */
export function usageLine(bin: string, cmd: CommandShape): string {
  const id = cmd.id.replaceAll(':', ' ');
  const own = Array.isArray(cmd.usage) ? cmd.usage[0] : cmd.usage;
  if (own) return `${bin} ${own.replace('<%= command.id %>', id)}`;
  const args = Object.entries(cmd.args ?? {}).map(([name, a], i, all) => {
    const word = (a.options?.join('|') ?? name.toUpperCase()) + (cmd.strict === false && i === all.length - 1 ? '...' : '');
    return a.required ? word : `[${word}]`;
  });
  const flags = Object.entries(cmd.flags ?? {})
    .filter(([, f]) => f.required)
    .map(([name, f]) => `--${name}=${[f.helpValue ?? name].flat()[0].toUpperCase()}`);
  return [bin, id, ...args, ...flags].join(' ');
}

/**
 * One line for an error of oclif's parser (unknown flag, missing flag or argument, a value
 * not among the options...): what is wrong, named, and what to do, usually the usage line.
 * `rawArgv` is the command's argv as typed (for the `--` hint of `btrfly run`).
 */
export function describeUsageError(err: Error, cmd: CommandShape, bin: string, rawArgv: readonly string[]): string {
  const e = err as OclifParseError;
  const usage = `usage: ${usageLine(bin, cmd)}`;
  const help = `run "${bin} ${cmd.id.replaceAll(':', ' ')} --help" for its flags`;
  switch (err.constructor.name) {
    case 'NonExistentFlagsError':
      return unknownFlag(e.flags ?? [], cmd, bin, rawArgv, help);
    case 'UnexpectedArgsError': {
      const extra = (e.args ?? []).map(String);
      return `unexpected argument${extra.length === 1 ? '' : 's'} ${extra.map((a) => `"${a}"`).join(', ')}; ${usage}`;
    }
    case 'RequiredArgsError': {
      const given = e.parse?.output?.args ?? {};
      const missing = Object.entries(e.parse?.input?.args ?? cmd.args ?? {}).filter(([name, a]) => a.required && given[name] === undefined);
      const named = missing.map(([name, a]) => `${name.toUpperCase()}${a.description ? ` (${a.description})` : ''}`);
      return `missing ${named.join(' and ') || 'an argument'}; ${usage}`;
    }
    case 'FailedFlagValidationError':
      return `${flagProblem(e, cmd) ?? firstLine(err.message)}; ${usage}`;
    case 'FlagInvalidOptionError': {
      const m = /^Expected --(.+?)=(.*) to be one of: (.*)$/m.exec(err.message);
      if (m) return `--${m[1]} must be ${orList(m[3].split(', '), '')}, not "${m[2]}"; ${usage}`;
      break;
    }
    case 'ArgInvalidOptionError': {
      const m = /^Expected (.*) to be one of: (.*)$/m.exec(err.message);
      const arg = m && Object.entries(cmd.args ?? {}).find(([, a]) => a.options?.join(', ') === m[2]);
      if (m && arg) return `${arg[0].toUpperCase()} must be ${orList(arg[1].options ?? [], '')}, not "${m[1]}"; ${usage}`;
      break;
    }
  }
  // A flag's own parser failed (`Flags.integer`): "Parsing --dns-port \n\tExpected an integer but received: x".
  const parsing = /^Parsing --(\S+)\s*\n\s*(.*)$/m.exec(err.message);
  if (parsing) return `--${parsing[1]}: ${lowerFirst(parsing[2])}; ${usage}`;
  return `${lowerFirst(firstLine(err.message))}; ${usage}`;
}

/**
 * An unknown flag: btrfly's own flag mistyped (nearest flag), or, for a command that runs
 * a command, the child's flag written without `--` before the child's command.
 */
function unknownFlag(unknown: readonly string[], cmd: CommandShape, bin: string, rawArgv: readonly string[], help: string): string {
  const first = unknown[0] ?? '';
  const flags = cmd.flags ?? {};
  const at = cmd.runsCommand ? commandStart(rawArgv, flags) : undefined;
  if (at !== undefined && unknown.every((u) => rawArgv.indexOf(u) > at)) {
    const id = cmd.id.replaceAll(':', ' ');
    const fixed = [bin, id, ...rawArgv.slice(0, at), '--', ...rawArgv.slice(at)].map(shellQuote).join(' ');
    return `unknown flag ${first}: put the command after "--": ${fixed}`;
  }
  const name = first.replace(/^-+/, '').replace(/=.*$/, '');
  const names = Object.entries(flags)
    .filter(([, f]) => !f.hidden)
    .map(([n]) => n);
  const near = nearest(name, names).map((n) => `--${n}`);
  return near.length ? `unknown flag ${first}: did you mean ${orList(near)}? (${help})` : `unknown flag ${first}: ${help}`;
}

/** Which flag rule failed, recomputed from the parse (oclif's message lists reasons without the flags' words). */
function flagProblem(e: OclifParseError, cmd: CommandShape): string | undefined {
  const flags = e.parse?.input?.flags ?? cmd.flags ?? {};
  const values = e.parse?.output?.flags ?? {};
  const given = (n: string) => values[n] !== undefined && !e.parse?.output?.metadata?.flags?.[n]?.setFromDefault;
  for (const [name, f] of Object.entries(flags)) {
    if (!given(name)) continue;
    const others = [...(f.exclusive ?? []), ...(f.exactlyOne ?? [])].map((o) => (typeof o === 'string' ? o : o.name));
    const other = others.find((o) => o !== name && given(o));
    if (other) return `--${name} and --${other} cannot be used together: keep one`;
  }
  for (const f of Object.values(flags)) {
    if (f.exactlyOne?.length && !f.exactlyOne.some(given)) return `missing ${f.exactlyOne.map((n) => `--${n}`).join(' or ')}: say which`;
  }
  for (const [name, f] of Object.entries(flags)) {
    const needed = given(name) ? f.dependsOn?.find((d) => !given(d)) : undefined;
    if (needed) return `--${name} needs --${needed} as well: give both, or neither`;
  }
  for (const [name, f] of Object.entries(flags)) {
    if (f.required && values[name] === undefined) {
      const what = f.summary ?? f.description;
      return `missing --${name}${what ? ` (${what})` : ''}`;
    }
  }
  return undefined;
}

function firstLine(s: string): string {
  return s.split('\n')[0].replace(/:$/, '');
}

function lowerFirst(s: string): string {
  return /^[A-Z][a-z]/.test(s) ? s[0].toLowerCase() + s.slice(1) : s;
}
