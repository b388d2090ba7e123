import type { ServerResponse } from 'node:http';

/**
 * How a proxied response ended, declared by the handler that knows it, for the proxy's metrics
 * and logs. Needed where no header can carry it: a playback body that fails its check after the
 * head was sent is broken off (`corrupt`), which the proxy would otherwise count as `error`.
 */
const outcomes = new WeakMap<ServerResponse, string>();

/** Declares the outcome of `res` (`corrupt`, …); the last declaration wins. */
export function markOutcome(res: ServerResponse, outcome: string): void {
  outcomes.set(res, outcome);
}

/** The outcome declared for `res`, if any. */
export function markedOutcome(res: ServerResponse): string | undefined {
  return outcomes.get(res);
}
