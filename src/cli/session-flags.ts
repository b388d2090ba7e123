import { Flags } from '@oclif/core';
import type { UpstreamOptions } from '../engine/proxy/upstream';
import type { MatchRule } from '../format/types';
import { ruleFlags, rulesFrom, upstreamFlags, upstreamOptions } from './upstream-flags';

/**
 * The flags of a session, the same for `run` (command mode) and `start` (host mode): which
 * tag, what to redact, matching rules, where upstream is. One object, so their help texts
 * cannot drift apart.
 */
export const sessionFlags = {
  tag: Flags.string({ description: 'tag to record, or T[@REV] to play back', required: true }),
  append: Flags.boolean({ description: 'record: keep the previous recording\'s entries and add to them', default: false }),
  redact: Flags.string({ description: 'request header to record as [redacted] (Authorization, Cookie and Proxy-Authorization always are)', multiple: true }),
  'redact-query': Flags.string({ description: 'query parameter stored and matched as a keyed hash, never in clear (on top of the default secret names: access_token, token, key, sig, X-Amz-Signature, ...)', multiple: true }),
  'keep-query': Flags.string({ description: 'query parameter of the default secret names to store in clear (e.g. key, when it names no secret)', multiple: true }),
  ...ruleFlags,
  ...upstreamFlags,
};

/** What {@link sessionFlags} parsed into, as `runCommand` and `startHostSession` take it. */
export function sessionOptions(flags: {
  tag: string;
  append: boolean;
  redact?: string[];
  'redact-query'?: string[];
  'keep-query'?: string[];
  'ignore-query'?: string[];
  'ignore-header'?: string[];
  'upstream-dns'?: string[];
  resolve?: string[];
  'upstream-ca'?: string[];
  'upstream-proxy'?: string;
}): { tag: string; append: boolean; upstream: UpstreamOptions; redactHeaders?: string[]; redactQuery?: string[]; keepQuery?: string[]; rules: MatchRule[] } {
  return { tag: flags.tag, append: flags.append, upstream: upstreamOptions(flags), redactHeaders: flags.redact, redactQuery: flags['redact-query'], keepQuery: flags['keep-query'], rules: rulesFrom(flags) };
}
