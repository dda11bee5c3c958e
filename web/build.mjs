// Build the dashboard into dex/api/static/: copy the page's own sources
// (plain ES modules, no bundler) and the one third-party module it uses,
// lightweight-charts' standalone production build, from node_modules.
// Run by `make assets` after `npm ci`; the output is git-ignored.
import { cpSync, existsSync, mkdirSync, rmSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const here = dirname(fileURLToPath(import.meta.url));
const out = join(here, "..", "dex", "api", "static");
const vendor = [
  ["lightweight-charts/dist/lightweight-charts.standalone.production.mjs", "vendor/lightweight-charts.mjs"],
];

rmSync(out, { recursive: true, force: true });
mkdirSync(join(out, "vendor"), { recursive: true });
cpSync(join(here, "src"), out, { recursive: true });
for (const [from, to] of vendor) {
  const path = join(here, "node_modules", from);
  if (!existsSync(path)) {
    console.error(`build: ${path} is missing; run npm ci in web/ first`);
    process.exit(1);
  }
  cpSync(path, join(out, to));
}
writeFileSync(join(out, "BUILT"), "dex dashboard assets; built by web/build.mjs, not committed\n");
console.log(`build: dashboard assets in ${out}`);
