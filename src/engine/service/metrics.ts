import { Counter, Gauge, Histogram, Registry } from 'prom-client';
import type { ResponseEvent } from '../proxy/proxy-server';
import type { Mode, SessionInfo, SessionStats } from '../proxy/session';

/**
 * The service's Prometheus metrics (prom-client, text format at `/metrics`). Requests and
 * latency are observed as each response ends; bytes, misses and active sessions are read
 * from the sessions' own stats at scrape time (the live ones plus those already closed), so
 * they never disagree with `btrfly status`.
 */
export class ServiceMetrics {
  readonly registry = new Registry();
  private readonly closed: Record<Mode, SessionStats> = { record: emptyStats(), playback: emptyStats() };
  private readonly requests: Counter<'mode' | 'outcome'>;
  private readonly latency: Histogram<'mode'>;

  constructor(live: () => SessionInfo[]) {
    const closed = this.closed;
    const total = (mode: Mode, key: keyof SessionStats) =>
      closed[mode][key] + live().filter((s) => s.mode === mode).reduce((n, s) => n + s.stats[key], 0);
    const registers = [this.registry];
    this.requests = new Counter({ name: 'btrfly_requests_total', help: 'Proxied requests by session mode and outcome (hit, recorded, miss, corrupt, upstream-error, error, refused, loop).', labelNames: ['mode', 'outcome'], registers });
    this.latency = new Histogram({
      name: 'btrfly_request_duration_seconds',
      help: 'Time from request to the end of the response, by session mode.',
      labelNames: ['mode'],
      buckets: [0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 30, 120],
      registers,
    });
    new Counter({
      name: 'btrfly_response_bytes_total',
      help: 'Response body bytes sent to clients, by session mode.',
      labelNames: ['mode'],
      registers,
      collect() {
        this.reset();
        for (const mode of ['record', 'playback'] as const) this.inc({ mode }, total(mode, 'bytes'));
      },
    });
    new Counter({
      name: 'btrfly_playback_misses_total',
      help: 'Playback requests the recording did not hold.',
      registers,
      collect() {
        this.reset();
        this.inc(total('playback', 'misses'));
      },
    });
    new Gauge({
      name: 'btrfly_active_sessions',
      help: 'Sessions open now, by mode.',
      labelNames: ['mode'],
      registers,
      collect() {
        for (const mode of ['record', 'playback'] as const) this.set({ mode }, live().filter((s) => s.mode === mode).length);
      },
    });
  }

  readonly onResponse = (e: ResponseEvent): void => {
    this.requests.inc({ mode: e.mode, outcome: e.outcome });
    if (e.mode !== 'none') this.latency.observe({ mode: e.mode }, e.seconds);
  };

  /** Keeps a closed session's figures in the totals. */
  sessionClosed(info: SessionInfo): void {
    const into = this.closed[info.mode];
    for (const k of Object.keys(into) as (keyof SessionStats)[]) into[k] += info.stats[k];
  }

  text(): Promise<string> {
    return this.registry.metrics();
  }

  get contentType(): string {
    return this.registry.contentType;
  }
}

function emptyStats(): SessionStats {
  return { requests: 0, bytes: 0, hits: 0, misses: 0, corrupt: 0, upstreamErrors: 0, recorded: 0 };
}
