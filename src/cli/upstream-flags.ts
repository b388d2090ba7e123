import { Flags } from '@oclif/core';
import { checkUpstreamOptions, type UpstreamOptions } from '../engine/proxy/upstream';
import { BtrflyError } from '../errors';
import type { MatchRule } from '../format/types';

/** The upstream settings `run`, `start` and `serve` share (docs/contract.md, "Upstream"). */
export const upstreamFlags = {
  'upstream-dns': Flags.string({ description: 'resolver for upstream names while recording (ip or ip:port); default: the host\'s', multiple: true, helpGroup: 'UPSTREAM' }),
  resolve: Flags.string({ description: 'pin an upstream name to an address, HOST:ADDR', multiple: true, helpGroup: 'UPSTREAM' }),
  'upstream-ca': Flags.string({ description: 'PEM file of extra CAs trusted for upstream TLS', multiple: true, helpGroup: 'UPSTREAM' }),
  'upstream-proxy': Flags.string({ description: 'send upstream traffic through this HTTP proxy URL', helpGroup: 'UPSTREAM' }),
};

/** `serve` only: which upstream addresses record may connect to (after DNS resolution). */
export const upstreamPolicyFlags = {
  'deny-upstream': Flags.string({
    description: 'refuse to record from this address or CIDR, on top of the defaults (169.254.0.0/16, fe80::/10, 127.0.0.0/8, ::1/128, 0.0.0.0/8, ::/128, the service\'s own addresses)',
    multiple: true,
    helpGroup: 'UPSTREAM',
  }),
  'allow-upstream': Flags.string({ description: 'record from this address or CIDR even if denied, e.g. 127.0.0.0/8 for an origin on the service host', multiple: true, helpGroup: 'UPSTREAM' }),
};

/** The upstream flags as options, checked: a bad one is refused (USAGE) before an archive or a daemon is made. */
export function upstreamOptions(flags: { 'upstream-dns'?: string[]; resolve?: string[]; 'upstream-ca'?: string[]; 'upstream-proxy'?: string }): UpstreamOptions {
  const opts = { dns: flags['upstream-dns'], resolve: flags.resolve, caFiles: flags['upstream-ca'], proxy: flags['upstream-proxy'] };
  checkUpstreamOptions(opts);
  return opts;
}

/** Matching rules given on the command line: they are stored with the recording (docs/contract.md, "Matching"). */
export const ruleFlags = {
  'ignore-query': Flags.string({ description: 'record a rule: ignore query parameter NAME on HOST when matching, HOST=NAME (HOST may be * or *.example.com)', multiple: true }),
  'ignore-header': Flags.string({ description: 'record a rule: ignore request header NAME on HOST when matching, HOST=NAME', multiple: true }),
};

export function rulesFrom(flags: { 'ignore-query'?: string[]; 'ignore-header'?: string[] }): MatchRule[] {
  const parse = (v: string, flag: string) => {
    const i = v.indexOf('=');
    if (i <= 0 || i === v.length - 1) throw new BtrflyError('USAGE', `--${flag} "${v}" is not HOST=NAME: write it like --${flag} 'registry.example=_'`);
    return { host: v.slice(0, i).toLowerCase(), name: v.slice(i + 1) };
  };
  const rules: MatchRule[] = [];
  for (const v of flags['ignore-query'] ?? []) {
    const { host, name } = parse(v, 'ignore-query');
    rules.push({ host, ignoreQuery: [name] });
  }
  for (const v of flags['ignore-header'] ?? []) {
    const { host, name } = parse(v, 'ignore-header');
    rules.push({ host, ignoreHeaders: [name.toLowerCase()] });
  }
  return rules;
}
