#!/usr/bin/env node
// btrfly's entry point: oclif loads the compiled commands from dist/commands.
require('@oclif/core').execute({ dir: __dirname }).catch(require('@oclif/core/handle'));
