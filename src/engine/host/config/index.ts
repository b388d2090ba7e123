/** Host mode's changes to the resolver and the trust store, and their exact undoing. */
export { HostConfigurator, type HostConfiguratorOptions } from './host-configurator';
export { detectHostPaths, onPath, parseOsRelease } from './detect';
export { runCommand } from './command-runner';
export { parseNameservers, pickUpstreams } from './resolv-conf';
export type { ApplyOptions, ApplyStep, CommandResult, CommandRunner, HostPaths, TrustStoreKind } from './types';
