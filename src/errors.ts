/**
 * Typed errors shared by every layer. Each has a stable string `code`, an exit status,
 * and a message that is one line: what went wrong, then what to do. Commands map them
 * to exit codes and `--json` output in one place (`src/commands/base.ts`); the proxy and
 * the service API map them to HTTP statuses via `httpStatus`.
 */
export type ErrorCode =
  | 'USAGE'
  | 'TAG_NOT_FOUND'
  | 'REV_NOT_FOUND'
  | 'REV_AMBIGUOUS'
  | 'BAD_TAG_NAME'
  | 'TAG_EXISTS'
  | 'TAG_MOVED'
  | 'TAG_BUSY'
  | 'ARCHIVE_NOT_FOUND'
  | 'ARCHIVE_INVALID'
  | 'MANIFEST_INVALID'
  | 'BODY_MISSING'
  | 'BODY_CORRUPT'
  | 'STORAGE'
  | 'NO_SPACE'
  | 'GIT'
  | 'LOCKED'
  | 'SESSION'
  | 'NOT_FOUND'
  | 'PERMISSION'
  | 'UNAUTHORIZED'
  | 'FORBIDDEN'
  | 'NETWORK'
  | 'PLAYBACK_MISS'
  | 'IMPORT'
  | 'CONFIG'
  | 'INTERRUPTED';

/** Exit statuses of the CLI contract (docs/contract.md, "Exit statuses"). */
export const EXIT = { ok: 0, failure: 1, usage: 2, miss: 3 } as const;

export class BtrflyError extends Error {
  readonly code: ErrorCode;
  readonly exitCode: number;
  readonly httpStatus: number;
  readonly data: Record<string, unknown>;
  /** What went wrong, without {@link advice}: for a caller that says what to do in its own words (a pull, whose damaged copy is the remote's). */
  readonly what: string;
  /** What to do, when the error says it: `message` is `what: advice`. */
  readonly advice?: string;

  constructor(
    code: ErrorCode,
    message: string,
    opts: { exitCode?: number; httpStatus?: number; data?: Record<string, unknown>; cause?: unknown; advice?: string } = {},
  ) {
    super(opts.advice ? `${message}: ${opts.advice}` : message, opts.cause === undefined ? undefined : { cause: opts.cause });
    this.what = message;
    this.advice = opts.advice;
    this.name = 'BtrflyError';
    this.code = code;
    this.exitCode = opts.exitCode ?? (code === 'USAGE' || code === 'BAD_TAG_NAME' ? EXIT.usage : EXIT.failure);
    this.httpStatus = opts.httpStatus ?? defaultHttpStatus(code);
    this.data = opts.data ?? {};
  }

  toJSON(): Record<string, unknown> {
    return { error: { code: this.code, message: this.message, ...this.data } };
  }
}

function defaultHttpStatus(code: ErrorCode): number {
  switch (code) {
    case 'USAGE':
    case 'BAD_TAG_NAME':
    case 'MANIFEST_INVALID':
    case 'IMPORT':
      return 400;
    case 'UNAUTHORIZED':
      return 401;
    case 'FORBIDDEN':
    case 'PERMISSION':
      return 403;
    case 'TAG_NOT_FOUND':
    case 'REV_NOT_FOUND':
    case 'NOT_FOUND':
    case 'PLAYBACK_MISS':
      return 404;
    case 'TAG_EXISTS':
    case 'TAG_MOVED':
    case 'TAG_BUSY':
    case 'LOCKED':
    case 'REV_AMBIGUOUS':
      return 409;
    case 'NETWORK':
      return 502;
    default:
      return 500;
  }
}

export function isBtrflyError(e: unknown): e is BtrflyError {
  return e instanceof BtrflyError;
}

/** Turns anything thrown into a one-line message; typed errors keep theirs. */
/** {@link oneLine} without the error's advice: what went wrong, for a caller that says what to do itself. */
export function withoutAdvice(e: unknown): string {
  return isBtrflyError(e) ? e.what : oneLine(e);
}

export function oneLine(e: unknown): string {
  if (isBtrflyError(e)) return e.message;
  const err = e as NodeJS.ErrnoException;
  if (err && typeof err === 'object' && err.code && err.syscall) {
    const where = err.path ? ` ${err.path}` : '';
    return `${err.syscall}${where} failed: ${err.code}${errnoHint(err.code)}`;
  }
  const msg = err instanceof Error ? err.message : String(e);
  return msg.split('\n')[0];
}

function errnoHint(code: string): string {
  switch (code) {
    case 'EACCES':
    case 'EPERM':
      return ': permission denied; run as a user who may write there (or as root for host mode)';
    case 'ENOSPC':
      return ': the disk is full; free some space and try again';
    case 'EADDRINUSE':
      return ': the address is already in use; stop the other listener or pick another port';
    case 'ENOENT':
      return ': no such file or directory';
    default:
      return '';
  }
}
