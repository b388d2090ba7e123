'use strict';
/**
 * Lets a plain `node` child process require the TypeScript sources (src/**.ts), so the
 * storage e2e tests can measure a real process's peak RSS without a build step.
 * Type-stripping only (transpileModule); type checking is tsc's job.
 */
const fs = require('node:fs');
const ts = require('typescript');

require.extensions['.ts'] = function compileTs(module, filename) {
  const source = fs.readFileSync(filename, 'utf8');
  const out = ts.transpileModule(source, {
    fileName: filename,
    compilerOptions: { module: ts.ModuleKind.CommonJS, target: ts.ScriptTarget.ES2023, esModuleInterop: true },
  });
  module._compile(out.outputText, filename);
};
