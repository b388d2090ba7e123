/**
 * Both ends of btrfly's own JSON APIs (the daemon's control socket, the service's HTTPS API):
 * the error handler that answers a failure as `{error: {code, message}}`, and the client's
 * reader of an answer.
 */
import type { IncomingMessage } from 'node:http';
import type { ErrorRequestHandler, Request } from 'express';
import { BtrflyError, isBtrflyError, oneLine, type ErrorCode } from '../../errors';

/** The largest request body the APIs parse (a session request is a few hundred bytes). */
export const API_BODY_LIMIT = 64 * 1024;

/**
 * The APIs' last handler: answers a failure with its HTTP status and `{error: {code, message}}`
 * (see {@link apiError}), after `log` has seen it.
 */
export function jsonErrorHandler(log: (e: BtrflyError, req: Request) => void): ErrorRequestHandler {
  return (err: unknown, req, res, _next) => {
    const e = apiError(err);
    log(e, req);
    res.status(e.httpStatus).json(e.toJSON());
  };
}

/**
 * The typed error an API failure is answered with: a BtrflyError as is; a client error of the
 * body parser (413 too large, 400 not JSON, 415 charset) with its status and one line; anything
 * else a 500.
 */
export function apiError(err: unknown): BtrflyError {
  if (isBtrflyError(err)) return err;
  const status = (err as { status?: unknown } | null)?.status;
  if (typeof status === 'number' && status >= 400 && status < 500) {
    const type = (err as { type?: unknown }).type;
    const message =
      type === 'entity.too.large'
        ? `the request body is larger than ${API_BODY_LIMIT / 1024} KiB: send a smaller JSON object`
        : type === 'entity.parse.failed'
          ? `the request body is not JSON (${oneLine(err)}): send a JSON object with content-type application/json`
          : `the request was refused: ${oneLine(err)}`;
    return new BtrflyError('USAGE', message, { httpStatus: status });
  }
  return new BtrflyError('STORAGE', oneLine(err));
}

/**
 * The JSON body of a request without express (the daemon's control socket): undefined unless
 * its content type is JSON; rejects as express's parser does, so that {@link apiError} words it
 * alike (413 past {@link API_BODY_LIMIT}, 400 when it does not parse).
 */
export function readJsonBody(req: IncomingMessage): Promise<unknown> {
  return new Promise((resolve, reject) => {
    if (!/^application\/json\b/i.test(req.headers['content-type'] ?? '')) return void req.resume().once('end', () => resolve(undefined));
    const refuse = (status: number, type: string, message: string): void => {
      req.resume();
      reject(Object.assign(new Error(message), { status, type }));
    };
    if (Number(req.headers['content-length'] ?? 0) > API_BODY_LIMIT) return refuse(413, 'entity.too.large', 'request entity too large');
    const chunks: Buffer[] = [];
    let size = 0;
    req.on('data', (c: Buffer) => {
      size += c.length;
      if (size <= API_BODY_LIMIT) chunks.push(c);
    });
    req.once('error', reject);
    req.once('end', () => {
      if (size > API_BODY_LIMIT) return refuse(413, 'entity.too.large', 'request entity too large');
      if (size === 0) return resolve(undefined);
      try {
        resolve(JSON.parse(Buffer.concat(chunks).toString('utf8')));
      } catch (e) {
        refuse(400, 'entity.parse.failed', (e as Error).message);
      }
    });
  });
}

/**
 * Reads a JSON answer of btrfly's own APIs (the daemon's control socket, the service's
 * HTTPS API): the value, or the BtrflyError the other side sent (`{error: {code, message}}`).
 * `who` names the other side in messages; `code` is used when it sent no error code.
 */
export function readJsonAnswer<T>(res: IncomingMessage, who: string, code: ErrorCode): Promise<T> {
  return new Promise((resolve, reject) => {
    let text = '';
    res.setEncoding('utf8');
    res.on('data', (c: string) => (text += c));
    res.once('error', reject);
    res.on('end', () => {
      let json: unknown;
      try {
        json = text ? JSON.parse(text) : undefined;
      } catch {
        return reject(new BtrflyError(code, `${who} answered ${res.statusCode} with something that is not JSON`));
      }
      if ((res.statusCode ?? 500) >= 400) {
        const err = (json as { error?: { code?: ErrorCode; message?: string } })?.error;
        return reject(new BtrflyError(err?.code ?? code, err?.message ?? `${who} answered ${res.statusCode}`));
      }
      resolve(json as T);
    });
  });
}
