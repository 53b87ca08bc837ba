// Renders one Mermaid diagram to SVG with the real renderer: the `mermaid` package's browser bundle in headless
// Chromium (Debian's), driven by `playwright-core` (which launches the browser it is given and downloads none).
//
//   node mermaid_svg.cjs MODULES_DIR CHROMIUM < diagram.mmd > diagram.svg
//
// MODULES_DIR holds node_modules/{mermaid,playwright-core} (a cache folder outside the repository: .ci/setup-system.sh
// installs them there). Exit 0 with the SVG on stdout; 1 with Mermaid's own error (a syntax error, say) on stderr.
"use strict";
const fs = require("fs");
const path = require("path");

async function main() {
  const [modules, executablePath] = process.argv.slice(2);
  const { chromium } = require(path.join(modules, "node_modules", "playwright-core"));
  const bundle = path.join(modules, "node_modules", "mermaid", "dist", "mermaid.min.js");
  const diagram = fs.readFileSync(0, "utf8");
  const browser = await chromium.launch({
    executablePath,
    headless: true,
    args: [
      "--headless",
      "--no-sandbox",
      "--disable-gpu",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync",
    ],
  });
  try {
    const page = await browser.newPage();
    await page.setContent("<!doctype html><html><body></body></html>");
    await page.addScriptTag({ path: bundle });
    const svg = await page.evaluate(async (text) => {
      // eslint-disable-next-line no-undef
      mermaid.initialize({ startOnLoad: false, securityLevel: "strict" });
      // eslint-disable-next-line no-undef
      await mermaid.parse(text); // throws Mermaid's own message on a syntax error
      // eslint-disable-next-line no-undef
      const { svg } = await mermaid.render("diagram", text);
      return svg;
    }, diagram);
    process.stdout.write(svg);
  } finally {
    await browser.close();
  }
}

main().catch((error) => {
  process.stderr.write(`mermaid: ${error && error.message ? error.message : error}\n`);
  process.exit(1);
});
