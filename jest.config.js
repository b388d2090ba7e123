/** Two tiers by file suffix: `*.unit.test.ts` (fast, in-process) and `*.e2e.test.ts`
 * (real processes, servers, git, namespaces). `npm test` runs both. */
const tsJest = ['ts-jest', { tsconfig: 'tsconfig.json' }];
const common = { testEnvironment: 'node', transform: { '^.+\\.ts$': tsJest }, moduleFileExtensions: ['ts', 'js', 'json'] };
module.exports = {
  projects: [
    { ...common, displayName: 'unit', testMatch: ['<rootDir>/test/**/*.unit.test.ts'] },
    { ...common, displayName: 'e2e', testMatch: ['<rootDir>/test/**/*.e2e.test.ts'], slowTestThreshold: 60 },
  ],
  testTimeout: 120000,
};
