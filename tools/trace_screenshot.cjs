// The README's picture of one DualChat's trace in the local trace viewer (`make traces`).
//
// Opens the trace at its Nova Pro Bedrock span, shows that span's attributes, and saves a
// PNG. Headless Chromium is Debian's (apt-get install chromium), driven by playwright-core,
// neither of which the project or `make test` depends on; install playwright-core beside:
//
//   npm install --no-save --no-package-lock --prefix build/screenshot playwright-core@1.65.1
//   NODE_PATH=build/screenshot/node_modules node tools/trace_screenshot.cjs \
//       http://127.0.0.1:6006 <trace id> docs/images/dual-chat-trace.png

"use strict";

const fs = require("node:fs");
const os = require("node:os");
const path = require("node:path");
const { chromium } = require("playwright-core");

// What this machine's closed network needs: no background connections, no QUIC, no GPU.
const CHROMIUM_FLAGS = [
  "--no-sandbox",
  "--disable-gpu",
  "--disable-quic",
  "--no-first-run",
  "--disable-background-networking",
  "--disable-component-update",
  "--disable-sync",
];
const PROJECT = "dualnova";
const SPAN = /^chat amazon\.nova-pro/;

async function proSpanId(viewer, traceId) {
  // Phoenix's REST API: the project's latest spans, newest first.
  const response = await fetch(`${viewer}/v1/projects/${PROJECT}/spans?limit=1000`);
  if (!response.ok) throw new Error(`${viewer}: spans: HTTP ${response.status}`);
  const { data } = await response.json();
  const span = data.find((s) => s.context.trace_id === traceId && SPAN.test(s.name));
  if (!span) throw new Error(`trace ${traceId} has no span matching ${SPAN} in ${PROJECT}`);
  return span.context.span_id;
}

async function main() {
  const [viewer, traceId, out] = process.argv.slice(2);
  if (!viewer || !traceId || !out) {
    console.error("usage: node tools/trace_screenshot.cjs VIEWER_URL TRACE_ID OUT.png");
    process.exit(2);
  }
  const spanId = await proSpanId(viewer, traceId);
  const profile = fs.mkdtempSync(path.join(os.tmpdir(), "trace-screenshot-"));
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: "/usr/bin/chromium",
    headless: true,
    args: CHROMIUM_FLAGS,
    viewport: { width: 1600, height: 1000 },
  });
  try {
    const page = await context.newPage();
    await page.goto(`${viewer}/redirects/spans/${spanId}`);
    await page.getByRole("tab", { name: "Attributes" }).click();
    await page.getByText("gen_ai.usage.output_tokens").first().waitFor();
    await page.screenshot({ path: out });
  } finally {
    await context.close();
    fs.rmSync(profile, { recursive: true, force: true });
  }
}

main().catch((error) => {
  console.error(error.message);
  process.exit(1);
});
