// The package's entry. Installed from the registry it holds dist/ only (compiled by `prepack`);
// in a checkout of its repository src/ is here too, and the TypeScript source is loaded through
// tsx (a devDependency), so a workspace needs no build step and never runs a stale dist/.
const { existsSync } = require('node:fs');
const { join } = require('node:path');

const source = join(__dirname, 'src', 'index.ts');
module.exports = existsSync(source) ? require('tsx/cjs/api').require(source, __filename) : require('./dist/index.js');
