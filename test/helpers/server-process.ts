import type { ChildProcess } from 'node:child_process';
import { createInterface } from 'node:readline';

/**
 * Test servers run as `node` processes (often inside a network namespace) print one JSON
 * line when they listen, and answer `{type, id}` messages on their IPC channel. These two
 * functions speak that protocol for every such server (origin-server.js, build-origins.js).
 */

/** Waits for the server's JSON ready line; kills it and rejects if it exits or stays silent. */
export function readReadyLine<T>(child: ChildProcess, stderr: () => string, what = 'origin'): Promise<T> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => fail(new Error(`${what} did not start within 15 s`)), 15_000);
    const lines = createInterface({ input: child.stdout! });
    const fail = (err: Error) => {
      clearTimeout(timer);
      lines.close();
      child.kill('SIGKILL');
      reject(new Error(`${err.message}: ${stderr().trim()}`));
    };
    const onExit = (code: number | null) => fail(new Error(`${what} exited with status ${code} before it was ready`));
    child.once('exit', onExit);
    child.once('error', fail);
    lines.once('line', (line) => {
      clearTimeout(timer);
      child.off('exit', onExit);
      try {
        resolve(JSON.parse(line) as T);
      } catch {
        fail(new Error(`${what} printed "${line}" instead of its ready line`));
      }
    });
  });
}

/** Sends `{type, id}` on the child's IPC channel and resolves with its answer of the same id. */
export function askChild<T>(child: ChildProcess): (type: string) => Promise<T> {
  let nextId = 0;
  return (type) =>
    new Promise<T>((resolve, reject) => {
      const id = nextId++;
      const onMessage = (msg: { id: number }) => {
        if (msg.id !== id) return;
        child.off('message', onMessage);
        resolve(msg as T);
      };
      child.on('message', onMessage);
      child.send({ type, id }, (err) => err && reject(err));
    });
}

/** Collects the last 4000 characters of the child's stderr, for error messages. */
export function stderrTail(child: ChildProcess): () => string {
  let stderr = '';
  child.stderr?.setEncoding('utf8').on('data', (s: string) => (stderr = (stderr + s).slice(-4000)));
  return () => stderr;
}
