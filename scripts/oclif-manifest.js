#!/usr/bin/env node
// Writes oclif.manifest.json from the compiled commands, as `oclif manifest` does, so the
// CLI starts without loading every command module. Run after `npm run build`.
const { Config } = require('@oclif/core');
const fs = require('node:fs');
const path = require('node:path');

(async () => {
  const root = path.resolve(__dirname, '..');
  const manifestPath = path.join(root, 'oclif.manifest.json');
  fs.rmSync(manifestPath, { force: true });
  const config = await Config.load({ root, devPlugins: false, userPlugins: false });
  const plugin = config.getPluginsList().find((p) => p.root === root);
  const manifest = await plugin._manifest();
  fs.writeFileSync(manifestPath, JSON.stringify(manifest, null, 2) + '\n');
  console.log(`wrote ${path.relative(process.cwd(), manifestPath)}: ${Object.keys(manifest.commands).length} commands`);
})().catch((e) => {
  console.error(`oclif-manifest: ${e.message}`);
  process.exit(1);
});
