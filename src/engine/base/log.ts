/**
 * One logger with levels, handed down: the daemon and the service make one ({@link processLogger})
 * and each part takes a pino child of it (`component`, or a session's id and tag), so a line says
 * where it came from and `BTRFLY_LOG_LEVEL=warn` keeps warnings and errors.
 */
import pino, { type Logger } from 'pino';

export type { Logger };

/** Writes nothing: the default where no logger is handed down (command mode, tests). */
export const silentLogger: Logger = pino({ level: 'silent' });

/** JSON lines on stdout at `BTRFLY_LOG_LEVEL` (default `info`): the daemon's and the service's log. */
export function processLogger(env: NodeJS.ProcessEnv = process.env): Logger {
  return pino({ level: env.BTRFLY_LOG_LEVEL ?? 'info' });
}
