// The browser client's transports in real headless Chromium against the real server:
// WebSocket, SSE and long-poll each deliver (several ids, on-the-fly subscriptions,
// replay from a cursor, gap notices, long id lists); "auto" takes WebSocket and falls
// back to SSE, then long-poll, when a front (a tiny TCP proxy here, as a proxy or
// firewall would) refuses them; a server restart (SNAPSHOT_FILE) while the client is
// away loses and repeats nothing. The page (http://www.example-site:P) loads the client
// from the server (?identifier=SCRIPT) and talks to http://rpl.example-site:W.
// Run by scripts/test.d/30-clients.sh: node --test clients/js/test/
import { test, describe, before, after } from "node:test";
import assert from "node:assert/strict";
import { join } from "node:path";
import {
    RPL_HOST, startServer, publish, startPageServer, startRefusingFront, launchChromium,
    cleanupAll, until, sleep, tempDir,
} from "./harness.mjs";

const WAIT_MS = 15000;
// A restarted client waits out its back-off (5.5 s with maxBounces 0) first.
const RESTART_MS = 40000;
// Queues keep 3 messages, so a client 5 messages behind gets a gap notice.
const EXTRA = "$CONFIG{MAX_DATA_FOR_ID} = 3;\n";

let server, context, origin;

function pageHtml() {
    // The client as the server ships it (its default SCRIPT_FILE).
    return `<!DOCTYPE html><html><head><meta charset="utf-8"><title>transports</title></head>
<body><p>transports</p>
<script>
window.got = [];
window.statuses = [];
window.gaps = [];
window.record = function (data, id, cursor) { window.got.push({ data: data, id: id, cursor: cursor }); };
window.load = function (url) {
    var s = document.createElement("script");
    s.src = url + "?identifier=SCRIPT";
    s.onload = function () { window.clientReady = true; };
    document.head.appendChild(s);
};
</script>
</body></html>`;
}

before(async () => {
    const pages = await startPageServer({ "/": ["text/html; charset=utf-8", pageHtml] });
    origin = pages.origin;
    server = await startServer({ origins: [origin], extra: EXTRA });
    context = await launchChromium();
});

after(async () => {
    await cleanupAll();
});

const rplUrl = (port) => `http://${RPL_HOST}:${port}/`;

// A page with the client loaded from the server on `port`; it records the WebSockets
// it opens (with the frames sent) and the SSE and XHR requests to the WAIT line.
async function openPage(port = server.wait) {
    const page = await context.newPage();
    page.sockets = [];
    page.streams = [];
    page.polls = [];
    page.errors = [];
    page.on("websocket", (ws) => {
        const rec = { url: ws.url(), sent: [] };
        ws.on("framesent", (f) => rec.sent.push(String(f.payload)));
        page.sockets.push(rec);
    });
    page.on("request", (r) => {
        if (!r.url().includes(RPL_HOST) || r.url().includes("identifier=SCRIPT")) return;
        (r.resourceType() == "eventsource" ? page.streams : page.polls).push(r.url());
    });
    page.on("pageerror", (e) => page.errors.push(String(e)));
    await page.goto(origin + "/", { timeout: WAIT_MS });
    await page.evaluate((u) => window.load(u), rplUrl(port));
    await page.waitForFunction(() => window.clientReady === true, null, { timeout: WAIT_MS });
    return page;
}

// window.rpl with `options` (plus recorders), cursors set, ids subscribed, executed.
async function client(page, { port = server.wait, ids = [], cursors = {}, options = {} } = {}) {
    await page.evaluate(
        ({ url, ids, cursors, options }) => {
            options.onStatus = function (e) {
                window.statuses.push({ type: e.type, transport: e.transport, bounceCount: e.bounceCount, message: e.message });
            };
            options.onGap = function (id, cursor) { window.gaps.push({ id: id, cursor: cursor }); };
            window.rpl = new Dklab_Realplexor(url, null, options);
            for (const id in cursors) window.rpl.setCursor(id, cursors[id]);
            for (const id of ids) window.rpl.subscribe(id, window.record);
            window.rpl.execute();
        },
        { url: rplUrl(port), ids, cursors, options },
    );
}

const connects = (page) => page.evaluate(() => window.statuses.filter((s) => s.type == "connecting"));

async function online(page, n = 1) {
    await page.waitForFunction((n) => window.statuses.filter((s) => s.type == "online").length >= n, n, { timeout: WAIT_MS });
    return page.evaluate(() => window.statuses.filter((s) => s.type == "online").at(-1).transport);
}

async function got(page, n, ms = WAIT_MS) {
    await page.waitForFunction((n) => window.got.length >= n, n, { timeout: ms });
    return page.evaluate(() => window.got);
}

let seq = 0;
const uniq = (p) => `${p}${++seq}`;

for (const kind of ["websocket", "sse", "longpoll"]) {
    describe(`transport: "${kind}"`, () => {
        test("delivers on one connection; a message to two ids arrives once with both", async () => {
            const page = await openPage();
            const [a, b] = [uniq("tA"), uniq("tB")];
            await client(page, { ids: [a, b], options: { transport: kind } });
            assert.equal(await online(page), kind);
            assert.equal(await page.evaluate(() => window.rpl.transport()), kind);
            await publish(server.in, a, '{"text":"hello"}');
            let msgs = await got(page, 1);
            assert.deepEqual(msgs[0].data, { text: "hello" });
            assert.equal(msgs[0].id, a);
            assert.match(msgs[0].cursor, /^\d+\.\d+$/);
            await publish(server.in, `${a},${b}`, '"both"');
            msgs = await got(page, 3);
            assert.deepEqual(msgs.slice(1).map((m) => [m.id, m.data]).sort(), [[a, "both"], [b, "both"]]);
            await publish(server.in, b, "[3]");
            assert.deepEqual((await got(page, 4))[3].data, [3]);
            if (kind == "websocket") {
                assert.equal(page.sockets.length, 1, "one WebSocket");
                assert.match(page.sockets[0].url, new RegExp(`^ws://${RPL_HOST}:\\d+/\\?identifier=${a},${b}$`));
                assert.deepEqual(page.polls, []);
            } else if (kind == "sse") {
                assert.equal(page.streams.length, 1, "one EventSource");
                assert.ok(page.streams[0].includes(`?identifier=${a},${b}&ncrnd=`), page.streams[0]);
                assert.deepEqual(page.sockets, []);
            } else {
                assert.ok(page.polls.length >= 3, "a poll per reply");
                assert.deepEqual(page.sockets, []);
                assert.deepEqual(page.streams, []);
            }
            assert.deepEqual(page.errors, []);
            await page.close();
        });

        test("subscribe and unsubscribe after execute()", async () => {
            const page = await openPage();
            const [a, b, c] = [uniq("flyA"), uniq("flyB"), uniq("flyC")];
            await client(page, { ids: [a], options: { transport: kind } });
            await online(page);
            // A new id, and one replayed from cursor 0.
            await publish(server.in, `10:${c}`, '"queued for c"');
            await page.evaluate(({ b, c }) => window.rpl.subscribe(b, window.record).setCursor(c, 0).subscribe(c, window.record).execute(), { b, c });
            assert.deepEqual((await got(page, 1))[0], { data: "queued for c", id: c, cursor: "10" });
            // b listens from "now" once the command or the reconnect reaches the server.
            await sleep(300);
            await publish(server.in, b, '"for b"');
            assert.equal((await got(page, 2))[1].data, "for b");
            await page.evaluate(({ a, c }) => window.rpl.unsubscribe(a, null).unsubscribe(c, null).execute(), { a, c });
            await sleep(300);
            await publish(server.in, a, '"gone a"');
            await publish(server.in, c, '"gone c"');
            await publish(server.in, b, '"still b"');
            await got(page, 3);
            await sleep(300);
            assert.deepEqual((await page.evaluate(() => window.got)).map((m) => m.data), ["queued for c", "for b", "still b"]);
            if (kind == "websocket") {
                // Commands on the one WebSocket, no reconnect.
                assert.equal(page.sockets.length, 1, "no second WebSocket");
                assert.deepEqual(page.sockets[0].sent.map((t) => JSON.parse(t)), [
                    { subscribe: { [b]: null, [c]: "0" } },
                    { unsubscribe: [a, c] },
                ]);
            }
            await page.close();
        });

        test("setCursor replays what is queued; a gap notice reaches onGap", async () => {
            const g = uniq("gap");
            // A cursor from before the pushes (same clock as the server's).
            const from = (Date.now() / 1000 - 1).toFixed(3);
            for (const n of [1, 2, 3, 4, 5]) await publish(server.in, g, `"m${n}"`);
            const page = await openPage();
            await client(page, { ids: [g], cursors: { [g]: from }, options: { transport: kind } });
            const msgs = await got(page, 3);
            assert.deepEqual(msgs.map((m) => m.data), ["m3", "m4", "m5"]);
            // The queue keeps 3: m1 and m2 were dropped, the gap names m2's cursor.
            const gaps = await page.evaluate(() => window.gaps);
            assert.equal(gaps.length, 1, JSON.stringify(gaps));
            assert.equal(gaps[0].id, g);
            assert.ok(Number(gaps[0].cursor) > Number(from) && gaps[0].cursor < msgs[0].cursor, JSON.stringify([from, gaps, msgs]));
            assert.ok((await page.evaluate(() => window.statuses.map((s) => s.type))).includes("gap"));
            // Listening goes on.
            await sleep(200);
            await publish(server.in, g, '"after"');
            assert.equal((await got(page, 4))[3].data, "after");
            await sleep(200);
            assert.equal((await page.evaluate(() => window.gaps)).length, 1, "one gap notice");
            await page.close();
        });

        if (kind != "longpoll") {
            // (Long-poll sends long lists in a POST: browser.test.mjs.)
            test("a long id list", async () => {
                const page = await openPage();
                const ids = Array.from({ length: 100 }, (_, i) => `long_${kind}_list_id_${String(i).padStart(3, "0")}`);
                await client(page, { ids, options: { transport: kind } });
                await online(page);
                if (kind == "websocket") {
                    // What does not fit in the URL is subscribed at once on the socket.
                    const url = page.sockets[0].url;
                    assert.ok(url.length <= 1700, url.length);
                    const inUrl = url.split("identifier=")[1].split(",");
                    await until(() => page.sockets[0].sent.length, WAIT_MS, "a subscribe command");
                    const rest = Object.keys(JSON.parse(page.sockets[0].sent[0]).subscribe);
                    assert.deepEqual([...inUrl, ...rest], ids);
                }
                await sleep(200);
                await publish(server.in, ids[99], '"last"');
                await publish(server.in, ids[0], '"first"');
                const msgs = await got(page, 2);
                assert.deepEqual(msgs.map((m) => [m.id, m.data]), [[ids[99], "last"], [ids[0], "first"]]);
                await page.close();
            });
        }

        test("a server restart while the client is away loses and repeats nothing", async () => {
            const snap = join(tempDir(), "snapshot");
            const extra = `${EXTRA}$CONFIG{SNAPSHOT_FILE} = '${snap}';\n`;
            let srv = await startServer({ origins: [origin], extra });
            const page = await openPage(srv.wait);
            const [r, s] = [uniq("restR"), uniq("restS")];
            // maxBounces 0: the first failed reconnect waits 5.5 s before the next one.
            await client(page, { port: srv.wait, ids: [r, s], options: { transport: kind, maxBounces: 0 } });
            await online(page);
            await publish(srv.in, r, '"r1"');
            await got(page, 1);
            if (kind == "longpoll") await until(() => page.polls.length >= 2, WAIT_MS, "the next poll");
            await sleep(200);
            const { wait, in: inPort } = srv;
            await srv.stop();
            // A reconnect failed: the client is in its back-off.
            await page.waitForFunction(() => window.statuses.some((e) => e.type == "error" && e.bounceCount >= 1), null, { timeout: WAIT_MS });
            const before = (await connects(page)).length;
            srv = await startServer({ waitPort: wait, inPort, origins: [origin], extra });
            // Pushed while the client is still away: its cursors bring them in, and
            // r1, still queued (snapshot), is not delivered again.
            await publish(srv.in, r, '"r2"');
            await publish(srv.in, s, '"s1"');
            await publish(srv.in, r, '"r3"');
            assert.equal((await connects(page)).length, before, "the client was not back yet");
            const msgs = await got(page, 4, RESTART_MS);
            assert.deepEqual(msgs.map((m) => m.data), ["r1", "r2", "s1", "r3"]);
            const after = await connects(page);
            assert.ok(after.length > before);
            assert.deepEqual([...new Set(after.map((c) => c.transport))], [kind], "the same transport after the restart");
            await publish(srv.in, s, '"s2"');
            assert.equal((await got(page, 5))[4].data, "s2");
            await sleep(300);
            assert.equal((await page.evaluate(() => window.got)).length, 5, "nothing repeated");
            await page.evaluate(() => window.rpl.stop());
            await page.close();
            await srv.stop();
        });
    });
}

describe('transport: "auto"', () => {
    test("takes WebSocket when the server accepts it", async () => {
        const page = await openPage();
        const id = uniq("autoWs");
        await client(page, { ids: [id], options: { transport: "auto" } });
        assert.equal(await online(page), "websocket");
        await publish(server.in, id, '"via ws"');
        assert.equal((await got(page, 1))[0].data, "via ws");
        assert.equal(page.sockets.length, 1);
        assert.deepEqual(page.streams, []);
        await page.close();
    });

    // A front that refuses WebSocket upgrades: 403 to any request with an Upgrade
    // header; everything else goes through to the server.
    test("falls back to SSE when the WebSocket is refused; cursors carry over", async () => {
        const front = await startRefusingFront(() => server.wait, (head) => /^upgrade:/im.test(head));
        const page = await openPage(front.port);
        const [id, q] = [uniq("fbSse"), uniq("fbSseQ")];
        await publish(server.in, `10:${q}`, '"queued"');
        await client(page, { port: front.port, ids: [id, q], cursors: { [q]: 0 }, options: { transport: "auto" } });
        assert.equal(await online(page), "sse");
        assert.deepEqual((await got(page, 1))[0], { data: "queued", id: q, cursor: "10" });
        await publish(server.in, id, '"via sse"');
        assert.equal((await got(page, 2))[1].data, "via sse");
        const statuses = await page.evaluate(() => window.statuses);
        const wsErrors = statuses.filter((s) => s.type == "error" && s.transport == "websocket");
        assert.equal(wsErrors.length, 2, JSON.stringify(statuses));
        assert.match(wsErrors[1].message, /trying sse/);
        assert.equal(front.refused.length, 2);
        assert.equal(page.streams.length, 1);
        // The SSE request carried the cursor.
        assert.ok(page.streams[0].includes(`identifier=0:${q},${id}&`), page.streams[0]);
        await page.close();
    });

    test("falls back to long-poll when SSE is refused too", async () => {
        const front = await startRefusingFront(
            () => server.wait,
            (head) => /^upgrade:/im.test(head) || /^accept:.*text\/event-stream/im.test(head),
        );
        const page = await openPage(front.port);
        const id = uniq("fbLp");
        await client(page, { port: front.port, ids: [id], options: { transport: "auto" } });
        assert.equal(await online(page), "longpoll");
        await publish(server.in, id, '"via long-poll"');
        assert.equal((await got(page, 1))[0].data, "via long-poll");
        const kinds = (await page.evaluate(() => window.statuses)).filter((s) => s.type == "error").map((s) => s.transport);
        assert.deepEqual(kinds, ["websocket", "websocket", "sse", "sse"]);
        assert.equal(front.refused.length, 4);
        await page.close();
    });
});

test("without the option the client long-polls, as the original", async () => {
    const page = await openPage();
    const id = uniq("deflt");
    await page.evaluate(
        ({ url, id }) => {
            window.rpl = new Dklab_Realplexor(url, null);
            window.rpl.subscribe(id, window.record).execute();
        },
        { url: rplUrl(server.wait), id },
    );
    assert.equal(await page.evaluate(() => window.rpl.transport()), "longpoll");
    await until(() => page.polls.length, WAIT_MS, "a poll");
    await sleep(200);
    await publish(server.in, id, '"plain"');
    assert.equal((await got(page, 1))[0].data, "plain");
    assert.deepEqual(page.sockets, []);
    assert.deepEqual(page.streams, []);
    assert.match(page.polls[0], new RegExp(`\\?identifier=${id}&ncrnd=\\d+$`));
    await page.close();
});
