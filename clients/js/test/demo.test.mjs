// The demo (clients/demo/run.py) in headless Chromium: three users chat over
// several channels, subscribe and unsubscribe on the fly, see the online list;
// the screenshot in the README is taken here (clients/demo/screenshot.png, or
// $DEMO_SCREENSHOT).
import { test, after } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { join } from "node:path";
import { ROOT, BIN, launchChromium, cleanupAll, onCleanup, until } from "./harness.mjs";

const MS = 15000;

after(async () => {
    await cleanupAll();
});

function startDemo() {
    const proc = spawn("python3", [join(ROOT, "clients", "demo", "run.py"), "--http", "127.0.0.1:0", "--wait", "127.0.0.1:0", "--in", "127.0.0.1:0", "--server", BIN], {
        stdio: ["ignore", "pipe", "pipe"],
    });
    let out = "";
    proc.stdout.on("data", (d) => (out += d));
    proc.stderr.on("data", (d) => (out += d));
    onCleanup(async () => {
        if (proc.exitCode != null || proc.signalCode != null) return;
        const gone = new Promise((r) => proc.once("exit", r));
        proc.kill("SIGTERM");
        const t = setTimeout(() => proc.kill("SIGKILL"), 5000);
        await gone;
        clearTimeout(t);
    });
    return until(
        () => {
            if (proc.exitCode != null) throw new Error("demo exited: " + out);
            const m = /open (http:\/\/127\.0\.0\.1:\d+\/)/.exec(out);
            return m && m[1];
        },
        20000,
        "the demo to start",
    );
}

async function user(context, url, name, channels) {
    const page = await context.newPage();
    await page.goto(`${url}?name=${name}&channels=${channels}`, { timeout: MS });
    await page.waitForFunction(() => window.demoReady && document.getElementById("status").textContent == "connected", null, { timeout: MS });
    return page;
}

async function say(page, text, channels) {
    // Background tabs get no animation frames, which Playwright's clicks wait for.
    await page.bringToFront();
    for (const c of ["general", "random", "dev"]) {
        const box = page.locator(`#ch-${c}`);
        if ((await box.isChecked()) != channels.includes(c)) await box.click();
    }
    await page.fill("#text", text);
    await page.click("#send");
}

const logOf = (page) => page.$$eval("#log .msg", (l) => l.map((e) => e.textContent));

test("demo: multi-channel chat with the online list", async () => {
    const url = await startDemo();
    const context = await launchChromium();
    const alice = await user(context, url, "alice", "general,dev");
    const bob = await user(context, url, "bob", "general,random");
    const carol = await user(context, url, "carol", "random");

    await alice.waitForFunction(() => document.getElementById("online").textContent == "alicebobcarol", null, { timeout: MS });
    // The demo asks for "auto": the server takes WebSocket.
    assert.equal(await alice.textContent("#via"), "(websocket)");

    await say(alice, "Hello everyone on #general and #dev!", ["general", "dev"]);
    await until(async () => (await logOf(bob)).length == 1, MS, "bob to get alice's message");
    assert.equal((await logOf(carol)).length, 0, "carol is not on #general or #dev");

    await say(bob, "Hi alice! This goes to #general and #random at once.", ["general", "random"]);
    await until(async () => (await logOf(alice)).length == 2, MS, "alice to get bob's message once");
    await until(async () => (await logOf(carol)).length == 1, MS, "carol to get it on #random");

    // alice subscribes to #random and leaves #dev, on the fly.
    await alice.bringToFront();
    await alice.locator("#ch-random").click();
    await alice.locator("#ch-dev").click();
    await say(carol, "carol here, only on #random", ["random"]);
    await until(async () => (await logOf(alice)).length == 3, MS, "alice to get carol's message on #random");
    await say(bob, "anyone on #dev?", ["dev"]);
    await say(bob, "(alice left #dev, so she did not see that)", ["general"]);
    await until(async () => (await logOf(alice)).length == 4, MS, "alice to get the #general message");

    const log = await logOf(alice);
    assert.ok(log[1].includes("#general#random") && log[1].includes("bob:"), log[1]);
    assert.ok(!log.some((l) => l.includes("anyone on #dev")), "no #dev message after unsubscribing");

    await carol.close();
    await alice.bringToFront();
    const shot = process.env.DEMO_SCREENSHOT || join(ROOT, "clients", "demo", "screenshot.png");
    await alice.fill("#text", "typing...");
    await alice.screenshot({ path: shot });
    await bob.close();
    await alice.close();
});
