import { Flags } from '@oclif/core';
import type { UpstreamOptions } from '../engine/upstream';

/** The upstream settings `run`, `start` and `serve` share (SPEC section 5, "Upstream"). */
export const upstreamFlags = {
  'upstream-dns': Flags.string({ description: 'resolver for upstream names while recording (ip or ip:port); default: the host\'s', multiple: true, helpGroup: 'UPSTREAM' }),
  resolve: Flags.string({ description: 'pin an upstream name to an address, HOST:ADDR', multiple: true, helpGroup: 'UPSTREAM' }),
  'upstream-ca': Flags.string({ description: 'PEM file of extra CAs trusted for upstream TLS', multiple: true, helpGroup: 'UPSTREAM' }),
  'upstream-proxy': Flags.string({ description: 'send upstream traffic through this HTTP proxy URL', helpGroup: 'UPSTREAM' }),
};

export function upstreamOptions(flags: { 'upstream-dns'?: string[]; resolve?: string[]; 'upstream-ca'?: string[]; 'upstream-proxy'?: string }): UpstreamOptions {
  return { dns: flags['upstream-dns'], resolve: flags.resolve, caFiles: flags['upstream-ca'], proxy: flags['upstream-proxy'] };
}
