import type { IncomingMessage } from 'node:http';
import { BtrflyError, type ErrorCode } from '../errors';

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
