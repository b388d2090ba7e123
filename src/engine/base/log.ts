/**
 * One logger with levels, handed down: the daemon and the service make one ({@link processLogger})
 * and each part takes a pino child of it (`component`, or a session's id and tag), so a line says
 * where it came from and `BTRFLY_LOG_LEVEL=warn` keeps warnings and errors.
 */
import pino, { type Logger } from 'pino';
import { BtrflyError } from '../../errors';

export type { Logger };

/** Writes nothing: the default where no logger is handed down (command mode, tests). */
export const silentLogger: Logger = pino({ level: 'silent' });

/** JSON lines on stdout at `BTRFLY_LOG_LEVEL` (default `info`): the daemon's and the service's log. */
export function processLogger(env: NodeJS.ProcessEnv = process.env): Logger {
  const level = env.BTRFLY_LOG_LEVEL || 'info';
  // pino's own complaint ("default level:x must be included in custom levels") names neither the variable nor the choices.
  const levels = [...Object.keys(pino.levels.values), 'silent'];
  if (!levels.includes(level)) throw new BtrflyError('USAGE', `BTRFLY_LOG_LEVEL=${level} is not a log level: use one of ${levels.join(', ')}`);
  return pino({ level });
}
