// Starts Debian's chromium for the browser tests and the bench, the same way each time: headless,
// with a persistent profile (the Cache API needs real storage), and with the browser's own
// background traffic off. On a machine with a closed network, the fresh profile's component
// updates, sync and field-trial fetches fail many at a time, and those failures are not the
// package's; --disable-dev-shm-usage keeps chromium's shared memory off a small /dev/shm.
//
// Chromium logs to chrome_debug.log in the profile (--enable-logging), so a failure can show it:
// a worker that never starts or a page load that fails with a net:: error says why only there.

import { readFileSync } from "node:fs";
import { join } from "node:path";

const FLAGS = [
  "--no-sandbox",
  "--no-first-run",
  "--disable-background-networking",
  "--disable-component-update",
  "--disable-sync",
  "--disable-quic",
  "--disable-dev-shm-usage",
  "--enable-logging",
];

/**
 * A persistent chromium context in `profile`, through the caller's playwright-core `chromium`
 * (each package pins its own); `args` are added to the common ones. Returns { context,
 * browserLog(lines) }: browserLog gives the last lines of chromium's log, less the D-Bus noise of
 * a machine without one.
 */
export async function launch(chromium, profile, args = []) {
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: process.env.CHROMIUM ?? "/usr/bin/chromium",
    headless: true,
    args: [...FLAGS, ...args],
  });
  // No wait in a test may outlast this; a test with its own longer wait says so.
  context.setDefaultTimeout(120_000);
  const browserLog = (lines = 60) => {
    try {
      const log = readFileSync(join(profile, "chrome_debug.log"), "utf8").split("\n");
      return log.filter((l) => !l.includes("dbus/")).slice(-lines).join("\n");
    } catch (e) {
      return `(no chromium log: ${e.message})`;
    }
  };
  return { context, browserLog };
}
