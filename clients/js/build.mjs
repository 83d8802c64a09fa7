// Generates the two copies of the browser client from its one source,
// clients/js/dklab_realplexor.js:
//   clients/js/realplexor.mjs   the same code as an ES module
//   conf/dklab_realplexor.js    the server's default SCRIPT_FILE (identical)
// `node build.mjs` writes them; `node build.mjs --check` fails when either is
// out of date (run by scripts/test.d/30-clients.sh).
import { readFileSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const here = dirname(fileURLToPath(import.meta.url));
const source = readFileSync(join(here, "dklab_realplexor.js"), "utf8");

const module =
    "// Generated from dklab_realplexor.js by build.mjs: edit that file, then run `node build.mjs`.\n" +
    source +
    "\nexport { Dklab_Realplexor, Dklab_Realplexor as Realplexor };\nexport default Dklab_Realplexor;\n";

const outputs = [
    [join(here, "realplexor.mjs"), module],
    [join(here, "..", "..", "conf", "dklab_realplexor.js"), source],
];

const check = process.argv.includes("--check");
let stale = 0;
for (const [path, text] of outputs) {
    let old = null;
    try {
        old = readFileSync(path, "utf8");
    } catch {
        // Missing counts as stale.
    }
    if (old === text) continue;
    if (check) {
        console.error(`${path} is out of date: run node clients/js/build.mjs`);
        stale++;
    } else {
        writeFileSync(path, text);
        console.log(`wrote ${path}`);
    }
}
process.exit(stale ? 1 : 0);
