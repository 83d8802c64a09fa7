// The browser client in real headless Chromium against the real server on
// loopback. The page is served from one origin (http://www.example-site:P and
// https://www.example-site:Q) and the WAIT line answers on another
// (http://rpl.example-site:W directly, https://rpl.example-site:T through a
// TLS front), as a site moving to realplexor would deploy it.
// Run by scripts/test.d/30-clients.sh: node --test clients/js/test/
import { test, describe, before, after } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import {
    JS_DIR, ROOT, PAGE_HOST, RPL_HOST, SUB_HOST, startServer, publish, makeCert, startPageServer,
    startTlsFront, launchChromium, cleanupAll, until, sleep,
} from "./harness.mjs";

const WAIT_MS = 15000;
// After a restart the client may be in its progressive back-off (several s).
const RESTART_MS = 40000;

let server, context, cert, tlsPort;
const origins = {};
const mjs = () => readFileSync(join(JS_DIR, "realplexor.mjs"));

// The page: loads the client either from the server (?identifier=SCRIPT, the
// default SCRIPT_FILE) as a classic script, or as an ES module from its origin.
function pageHtml(kind) {
    const loader =
        kind == "module"
            ? `<script type="module">
import Realplexor, { Dklab_Realplexor } from "/realplexor.mjs";
window.Dklab_Realplexor = Dklab_Realplexor;
window.moduleDefaultOk = Realplexor === Dklab_Realplexor;
window.clientReady = true;
</script>`
            : `<script src="${window_rpl_url(kind)}?identifier=SCRIPT"></script>
<script>window.clientReady = typeof Dklab_Realplexor == "function";</script>`;
    return `<!DOCTYPE html><html><head><meta charset="utf-8"><title>rpl test</title></head>
<body><p>test page</p>
<script>
window.got = [];
window.statuses = [];
window.record = function (tag) {
    return function (data, id, cursor) { window.got.push({ tag: tag, data: data, id: id, cursor: cursor }); };
};
</script>
${loader}
</body></html>`;
}

// Old https pages that send Origin-Agent-Cluster: ?0 need it on the IFRAME too.
const SERVER_EXTRA = "$CONFIG{IFRAME_ORIGIN_AGENT_CLUSTER} = 1;\n";

// What the original client does with the IFRAME: both documents set
// document.domain to the page's host, then the page calls the loader.
function oldPageHtml(kind) {
    const rpl = kind.startsWith("https") ? `https://${SUB_HOST}:${tlsPort}/` : `http://${SUB_HOST}:${server.wait}/`;
    return `<!DOCTYPE html><html><head><meta charset="utf-8"></head><body>
<script>
document.domain = "${PAGE_HOST}";
window.got = [];
window.map = {};
window.attach = function () {
    var loader = document.getElementById("rpl").contentWindow.Dklab_Realplexor_Loader;
    window.map.abc = { cursor: null, callbacks: [function (data, id, cursor) { window.got.push({ data: data, id: id, cursor: cursor }); }] };
    loader.execute(window.map, function (f, a) { try { f.apply(null, a); return null; } catch (e) { return "" + e; } }, "old_");
    window.attached = true;
};
</script>
<iframe id="rpl" src="${rpl}?identifier=IFRAME&HOST=${PAGE_HOST}&version=1.32" onload="setTimeout(attach, 50)"></iframe>
</body></html>`;
}

// The WAIT line as the page sees it.
function rplUrl(scheme) {
    return scheme == "https" ? `https://${RPL_HOST}:${tlsPort}/` : `http://${RPL_HOST}:${server.wait}/`;
}
function window_rpl_url(kind) {
    return rplUrl(kind.startsWith("https") ? "https" : "http");
}

before(async () => {
    cert = makeCert();
    const pages = (kind) => ({
        "/": ["text/html; charset=utf-8", () => pageHtml(kind)],
        "/module.html": ["text/html; charset=utf-8", () => pageHtml("module")],
        "/realplexor.mjs": ["text/javascript; charset=utf-8", mjs],
        // An old page: its own code drives our IFRAME loader, as the original client did.
        "/old.html": ["text/html; charset=utf-8", () => oldPageHtml(kind), { "Origin-Agent-Cluster": "?0" }],
    });
    const httpPages = await startPageServer(pages("http"));
    const httpsPages = await startPageServer(pages("https"), cert);
    origins.http = httpPages.origin;
    origins.https = httpsPages.origin;
    // Serves the same pages, but is left out of ALLOWED_ORIGINS.
    origins.denied = (await startPageServer(pages("http"))).origin;
    server = await startServer({ origins: [origins.http, origins.https], extra: SERVER_EXTRA });
    tlsPort = await startTlsFront(cert, () => server.wait);
    context = await launchChromium();
});

after(async () => {
    await cleanupAll();
});

async function openPage(scheme, path = "/", withClient = true) {
    const page = await context.newPage();
    const requests = [];
    page.on("request", (r) => {
        if (/rpl\./.test(r.url()) && !/identifier=(SCRIPT|IFRAME)/.test(r.url())) {
            requests.push({ method: r.method(), url: r.url(), body: r.postData() });
        }
    });
    const errors = [];
    page.on("pageerror", (e) => errors.push(String(e)));
    await page.goto(origins[scheme] + path, { timeout: WAIT_MS });
    if (withClient) await page.waitForFunction(() => window.clientReady === true, null, { timeout: WAIT_MS });
    page.requests = requests;
    page.errors = errors;
    return page;
}

// Creates a client in the page as window.rpl and subscribes ids (to one recorder each).
async function client(page, scheme, { ns = null, ids = [], cursors = {}, login = null } = {}) {
    await page.evaluate(
        ({ url, ns, ids, cursors, login }) => {
            window.rpl = new Dklab_Realplexor(url, ns, {
                onStatus: function (e) { window.statuses.push(e.type); },
            });
            if (login) window.rpl.logon(login);
            for (const id in cursors) window.rpl.setCursor(id, cursors[id]);
            for (const id of ids) window.rpl.subscribe(id, window.record(id));
            window.rpl.execute();
        },
        { url: rplUrl(scheme), ns, ids, cursors, login },
    );
}

// Resolves once the page's client has a poll registered on the server.
async function online(page) {
    await page.waitForFunction(() => window.statuses.includes("online"), null, { timeout: WAIT_MS });
}

async function got(page, n, ms = WAIT_MS) {
    await page.waitForFunction((n) => window.got.length >= n, n, { timeout: ms });
    return page.evaluate(() => window.got);
}

let seq = 0;
const uniq = (p) => `${p}${++seq}`;

for (const scheme of ["http", "https"]) {
    describe(`${scheme} page, explicit ports, server on another origin`, () => {
        test("the served SCRIPT is conf/dklab_realplexor.js with the server's settings", async () => {
            const page = await openPage(scheme);
            const text = await page.evaluate(async (u) => (await fetch(u + "?identifier=SCRIPT&fresh=" + Date.now())).text(), rplUrl(scheme));
            const conf = readFileSync(join(ROOT, "conf", "dklab_realplexor.js"), "utf8");
            const want = conf
                .replace('"$JS_MAX_BOUNCES"', '"10"')
                .replace('"$JS_WAIT_RECONNECT_DELAY"', '"0.01"')
                .replace('"$WAIT_TIMEOUT"', '"300"')
                .replace('"$IDENTIFIER"', '"identifier"')
                .replace('"$JS_DEBUG"', '"1"')
                .replace('"$JS_TRANSPORT"', '"undefined-JS_TRANSPORT"');
            assert.equal(text, want);
            await page.close();
        });

        test("subscribe and receive", async () => {
            const page = await openPage(scheme);
            const a = uniq("alpha");
            await client(page, scheme, { ids: [a] });
            await online(page);
            await publish(server.in, a, '{"text":"hello"}');
            const msgs = await got(page, 1);
            assert.equal(msgs.length, 1);
            assert.deepEqual(msgs[0].data, { text: "hello" });
            assert.equal(msgs[0].id, a);
            assert.match(msgs[0].cursor, /^\d+\.\d+$/);
            // It polls again with the cursor it got.
            await until(() => page.requests.some((r) => r.url.includes(`${msgs[0].cursor}:${a}`)), WAIT_MS, "next poll");
            await publish(server.in, a, '"second"');
            assert.equal((await got(page, 2))[1].data, "second");
            assert.deepEqual(page.errors, []);
            await page.close();
        });

        test("several ids in one connection; a message to two ids arrives once with both ids", async () => {
            const page = await openPage(scheme);
            const [a, b] = [uniq("multiA"), uniq("multiB")];
            const bodies = [];
            page.on("response", async (r) => {
                if (r.url().includes(RPL_HOST) && !r.url().includes("SCRIPT")) bodies.push(await r.text().catch(() => ""));
            });
            await page.evaluate(
                ({ url, a, b }) => {
                    window.rpl = new Dklab_Realplexor(url, null, { onStatus: (e) => window.statuses.push(e.type) });
                    window.both = function (data, id, cursor) { window.got.push({ data, id, cursor }); };
                    window.rpl.subscribe(a, window.both).subscribe(b, window.both).execute();
                },
                { url: rplUrl(scheme), a, b },
            );
            await online(page);
            const polls = page.requests.length;
            assert.equal(polls, 1, "one connection for both ids");
            assert.ok(page.requests[0].url.includes(`identifier=${a},${b}&`), page.requests[0].url);
            await publish(server.in, `${a},${b}`, '{"n":1}');
            const msgs = await got(page, 2);
            assert.deepEqual(msgs.map((m) => m.id).sort(), [a, b].sort());
            assert.ok(await page.evaluate(() => window.got[0].data === window.got[1].data), "one parsed message for both ids");
            await until(() => bodies.length >= 1, WAIT_MS, "response body");
            const body = bodies[0];
            assert.equal(body.match(/"ids"/g).length, 1, body);
            assert.ok(body.includes(`"${a}": "`) && body.includes(`"${b}": "`), body);
            // A second message to one id only.
            await publish(server.in, b, '{"n":2}');
            const more = await got(page, 3);
            assert.equal(more[2].id, b);
            assert.deepEqual(more[2].data, { n: 2 });
            await page.close();
        });

        test("unsubscribe: the id leaves the poll; nothing subscribed stops polling", async () => {
            const page = await openPage(scheme);
            const [a, b] = [uniq("unsubA"), uniq("unsubB")];
            await client(page, scheme, { ids: [a, b] });
            await online(page);
            await page.evaluate((b) => window.rpl.unsubscribe(b, null).execute(), b);
            await until(() => page.requests.length >= 2 && !page.requests.at(-1).url.includes(b), WAIT_MS, "poll without b");
            await sleep(200);
            await publish(server.in, b, '"for b"');
            await publish(server.in, a, '"for a"');
            const msgs = await got(page, 1);
            await sleep(300);
            assert.deepEqual((await page.evaluate(() => window.got)).map((m) => m.data), ["for a"]);
            assert.equal(msgs[0].id, a);
            // Unsubscribing the last id aborts the poll and sends no more.
            await until(() => page.evaluate(() => window.statuses.filter((s) => s == "connecting").length >= 3), WAIT_MS, "repoll");
            await page.evaluate((a) => window.rpl.unsubscribe(a, null), a);
            assert.ok((await page.evaluate(() => window.statuses)).includes("idle"));
            const n = page.requests.length;
            await sleep(500);
            assert.equal(page.requests.length, n, "no poll while nothing is subscribed");
            await page.close();
        });

        test("setCursor replays queued messages after the cursor", async () => {
            const c = uniq("replay");
            for (const [cur, d] of [[10, '"m10"'], [20, '"m20"'], [30, '"m30"']]) {
                await publish(server.in, `${cur}:${c}`, d);
            }
            let page = await openPage(scheme);
            await client(page, scheme, { ids: [c], cursors: { [c]: 0 } });
            let msgs = await got(page, 3);
            assert.deepEqual(msgs.map((m) => [m.data, m.cursor]), [["m10", "10"], ["m20", "20"], ["m30", "30"]]);
            await page.close();
            page = await openPage(scheme);
            await client(page, scheme, { ids: [c], cursors: { [c]: 20 } });
            msgs = await got(page, 1);
            await sleep(300);
            assert.deepEqual((await page.evaluate(() => window.got)).map((m) => m.data), ["m30"]);
            await page.close();
        });

        test("namespace and logon prefix ids on the wire and are stripped in callbacks", async () => {
            const page = await openPage(scheme);
            const id = uniq("nsid");
            await client(page, scheme, { ns: "ns_", ids: [id] });
            await online(page);
            assert.ok(page.requests[0].url.includes(`identifier=ns_${id}&`), page.requests[0].url);
            await publish(server.in, `ns_${id}`, '"namespaced"');
            const msgs = await got(page, 1);
            assert.equal(msgs[0].id, id);
            assert.equal(msgs[0].data, "namespaced");
            await page.evaluate(() => window.rpl.stop());
            await page.evaluate(() => { window.statuses = []; });
            await client(page, scheme, { ns: "ns_", ids: [id], login: "user" });
            await online(page);
            assert.ok(page.requests.at(-1).url.includes(`identifier=user_ns_${id}&`), page.requests.at(-1).url);
            await publish(server.in, `user_ns_${id}`, '"with login"');
            const all = await got(page, 2);
            assert.equal(all[1].id, id);
            assert.equal(all[1].data, "with login");
            await page.close();
        });

        test("a long id list goes over POST", async () => {
            const page = await openPage(scheme);
            const ids = Array.from({ length: 100 }, (_, i) => `long_list_${scheme}_id_${String(i).padStart(3, "0")}`);
            await client(page, scheme, { ids });
            await online(page);
            const req = page.requests[0];
            assert.equal(req.method, "POST");
            assert.equal(req.body, "identifier=" + ids.join(",") + "\n");
            await publish(server.in, ids[77], '"deep in the list"');
            const msgs = await got(page, 1);
            assert.equal(msgs[0].id, ids[77]);
            assert.equal(msgs[0].data, "deep in the list");
            await page.close();
        });

        test("ES module build with status events", async () => {
            const page = await openPage(scheme, "/module.html");
            assert.equal(await page.evaluate(() => window.moduleDefaultOk), true);
            const id = uniq("mod");
            await client(page, scheme, { ids: [id] });
            await online(page);
            await publish(server.in, id, "[1,2,3]");
            assert.deepEqual((await got(page, 1))[0].data, [1, 2, 3]);
            const statuses = await page.evaluate(() => window.statuses);
            assert.deepEqual(statuses.slice(0, 2), ["connecting", "online"]);
            await page.close();
        });

        test("server restart mid-stream loses no message", async () => {
            const page = await openPage(scheme);
            const [r, s] = [uniq("restartR"), uniq("restartS")];
            await client(page, scheme, { ids: [r, s] });
            await online(page);
            await publish(server.in, r, '"r1"');
            await got(page, 1);
            await until(() => page.requests.length >= 2, WAIT_MS, "second poll");
            await sleep(200);
            const { wait, in: inPort } = server;
            await server.stop();
            // The client bounces off the closed port for a moment.
            await until(() => page.evaluate(() => window.statuses.includes("error")), WAIT_MS, "an error status");
            server = await startServer({ waitPort: wait, inPort, origins: [origins.http, origins.https], extra: SERVER_EXTRA });
            // Pushed before the client is back: its cursors bring them in.
            await publish(server.in, r, '"r2"');
            await publish(server.in, s, '"s1"');
            await publish(server.in, r, '"r3"');
            const msgs = await got(page, 4, RESTART_MS);
            assert.deepEqual(msgs.map((m) => m.data), ["r1", "r2", "s1", "r3"]);
            await publish(server.in, s, '"s2"');
            assert.equal((await got(page, 5))[4].data, "s2");
            await page.close();
        });

        test("a page origin missing from ALLOWED_ORIGINS gets error statuses, not data", async () => {
            if (scheme == "https") return; // one origin is enough
            const page = await openPage("denied");
            await page.evaluate((url) => {
                window.errs = [];
                window.bad = new Dklab_Realplexor(url, null, {
                    onStatus: (e) => { if (e.type == "error") window.errs.push(e); },
                });
                window.bad.subscribe("denied_id", window.record("denied_id")).execute();
            }, rplUrl("http"));
            const errs = await (await page.waitForFunction(() => window.errs.length >= 2 && window.errs, null, { timeout: WAIT_MS })).jsonValue();
            assert.equal(errs[0].status, 0);
            assert.match(errs[0].message, /origin not allowed/);
            await page.evaluate(() => window.bad.stop());
            await page.close();
        });

        test("old pages: our IFRAME loader under document.domain (sub-domain, explicit ports)", async () => {
            const page = await openPage(scheme, "/old.html", false);
            await page.waitForFunction(() => window.attached === true, null, { timeout: WAIT_MS });
            await until(() => page.requests.some((r) => r.url.includes("identifier=old_abc")), WAIT_MS, "the loader's poll");
            await sleep(200);
            await publish(server.in, "old_abc", '{"old":true}');
            const msgs = await got(page, 1);
            assert.deepEqual(msgs[0].data, { old: true });
            assert.equal(msgs[0].id, "abc");
            await page.close();
        });

        test("an unreachable WAIT line gives error statuses and the original's back-off", async () => {
            const page = await openPage(scheme);
            await page.evaluate((url) => {
                window.errs = [];
                window.bad = new Dklab_Realplexor(url, null, {
                    reconnectDelay: 0.01, maxBounces: 2,
                    onStatus: (e) => { if (e.type == "error") window.errs.push(e); },
                });
                window.bad.subscribe("x", function () {}).execute();
            }, scheme == "https" ? `https://${RPL_HOST}:1/` : `http://${RPL_HOST}:1/`);
            const errs = await page.waitForFunction(() => window.errs.length >= 4 && window.errs, null, { timeout: WAIT_MS });
            const list = await errs.jsonValue();
            assert.equal(list[0].bounceCount, 1);
            assert.equal(list[0].retryIn, 10);
            assert.equal(list[3].bounceCount, 4);
            assert.equal(list[3].retryIn, 1000 + 500 * 16);
            await page.evaluate(() => window.bad.stop());
            await page.close();
        });
    });
}
