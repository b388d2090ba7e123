/**
 * How a proxied request ended, as a value: a session's `handle()` returns it, and the proxy hands
 * it to metrics and logs. Nothing is written into a response header only to be read back (the
 * `X-Btrfly` header clients see stays, for clients).
 *
 * - `hit`: played back from the recording.
 * - `recorded`: fetched upstream and answered while being stored (or shared with a fetch under way).
 * - `miss`: playback has no answer (`404`, `X-Btrfly: miss`).
 * - `corrupt`: a played-back body failed its check; the answer was broken off.
 * - `upstream-error`: the upstream failed or was denied; nothing recorded.
 * - `error`: btrfly failed (storage, a client gone mid-answer, a bad request).
 * - `refused`: a client in no (live) session.
 * - `loop`: a request addressed to the proxy itself (`508`).
 */
export type Outcome = 'hit' | 'recorded' | 'miss' | 'corrupt' | 'upstream-error' | 'error' | 'refused' | 'loop';
