/**
 * Test helpers: real servers, real processes, real namespaces, all cleaned up at the end
 * of the test file. Import from here:
 *
 * ```ts
 * import { startOrigin, runCli, tmpDir, createNetns } from './';
 * ```
 */
export * from './archive-fixture';
export * from './cleanup';
export * from './cli';
export * from './netns';
export * from './origin';
export * from './proc';
export * from './rss';
export * from './test-ca';
export * from './tmp';
export * from './host-namespace';
export * from './server-process';
export * from './cli-netns';
export * from './git-server';
export * from './build-origins';
export * from './build-tools';
export * from './service';
export * from './pause';
export * from './small-disk';
