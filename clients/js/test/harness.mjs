// Shared helpers of the browser tests: the real realplexor binary on loopback,
// a publisher speaking the IN line, page servers (http and https with a
// throwaway certificate), a TLS front for the WAIT line, and headless Chromium
// kept off the network (every host name resolves to 127.0.0.1 or fails).
import { spawn, execFileSync } from "node:child_process";
import { mkdtempSync, writeFileSync, readFileSync, existsSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, dirname, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import net from "node:net";
import http from "node:http";
import https from "node:https";
import tls from "node:tls";

export const JS_DIR = resolve(dirname(fileURLToPath(import.meta.url)), "..");
export const ROOT = resolve(JS_DIR, "..", "..");
export const BIN = process.env.REALPLEXOR_BIN || join(ROOT, "target", "debug", "realplexor");
export const CHROMIUM = process.env.CHROMIUM || "/usr/bin/chromium";
export const PAGE_HOST = "www.example-site";
export const RPL_HOST = "rpl.example-site";
// A sub-domain of the page's host, for the old IFRAME + document.domain path.
export const SUB_HOST = "rpl.www.example-site";

const cleanups = [];
export function onCleanup(fn) {
    cleanups.push(fn);
}
export async function cleanupAll() {
    while (cleanups.length) {
        try {
            await cleanups.pop()();
        } catch {
            // Keep cleaning.
        }
    }
}

export function tempDir() {
    const dir = mkdtempSync(join(tmpdir(), "rpl-clients-"));
    onCleanup(() => rmSync(dir, { recursive: true, force: true }));
    return dir;
}

export function sleep(ms) {
    return new Promise((r) => setTimeout(r, ms));
}

// Polls cond() until it returns a truthy value or `ms` pass.
export async function until(cond, ms, what) {
    const end = Date.now() + ms;
    for (;;) {
        const v = await cond();
        if (v) return v;
        if (Date.now() > end) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
        await sleep(25);
    }
}

/** Starts the server; resolves once both lines listen. */
export async function startServer({ waitPort = 0, inPort = 0, origins = [], extra = "" } = {}) {
    if (!existsSync(BIN)) throw new Error(`${BIN} is missing: run cargo build`);
    const dir = tempDir();
    const conf = join(dir, "test.conf");
    const list = origins.map((o) => `'${o}'`).join(", ");
    writeFileSync(
        conf,
        `$CONFIG{WAIT_ADDR} = [ '127.0.0.1:${waitPort}' ];\n` +
            `$CONFIG{IN_ADDR} = [ '127.0.0.1:${inPort}' ];\n` +
            `$CONFIG{SU_USER} = '';\n` +
            `$CONFIG{VERBOSITY} = 1;\n` +
            `$CONFIG{ALLOWED_ORIGINS} = [ ${list} ];\n` +
            extra +
            "return 1;\n",
    );
    const proc = spawn(BIN, [conf], { stdio: ["ignore", "pipe", "pipe"] });
    let out = "";
    proc.stdout.on("data", (d) => (out += d));
    proc.stderr.on("data", (d) => (out += d));
    const server = {
        proc,
        log: () => out,
        async stop() {
            if (proc.exitCode != null || proc.signalCode != null) return;
            const gone = new Promise((r) => proc.once("exit", r));
            proc.kill("SIGTERM");
            const t = setTimeout(() => proc.kill("SIGKILL"), 3000);
            await gone;
            clearTimeout(t);
        },
    };
    onCleanup(() => server.stop());
    await until(
        () => {
            if (proc.exitCode != null) throw new Error(`realplexor exited: ${out}`);
            return /WAIT: listening [\d.]+:(\d+)/.test(out) && /IN: listening [\d.]+:(\d+)/.test(out);
        },
        10000,
        "realplexor to listen",
    );
    server.wait = Number(/WAIT: listening [\d.]+:(\d+)/.exec(out)[1]);
    server.in = Number(/IN: listening [\d.]+:(\d+)/.exec(out)[1]);
    return server;
}

/** Pushes `data` (JSON text) to `ids` over the IN line; resolves to the reply. */
export function publish(inPort, ids, data) {
    return new Promise((resolve, reject) => {
        const body = Buffer.from(data);
        const sock = net.connect(inPort, "127.0.0.1");
        let reply = "";
        sock.setTimeout(5000, () => sock.destroy(new Error("IN reply timed out")));
        sock.on("connect", () => {
            sock.end(
                Buffer.concat([
                    Buffer.from(
                        `POST / HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: ${body.length}\r\n` +
                            `X-Realplexor: identifier=${ids}\r\n\r\n`,
                    ),
                    body,
                ]),
            );
        });
        sock.on("data", (d) => (reply += d));
        sock.on("error", reject);
        sock.on("close", () => resolve(reply));
    });
}

/** A self-signed certificate for the two test host names. */
export function makeCert() {
    const dir = tempDir();
    const key = join(dir, "key.pem");
    const cert = join(dir, "cert.pem");
    execFileSync(
        "openssl",
        [
            "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
            "-keyout", key, "-out", cert, "-subj", `/CN=${PAGE_HOST}`,
            "-addext", `subjectAltName=DNS:${PAGE_HOST},DNS:${RPL_HOST}`,
        ],
        { stdio: "ignore" },
    );
    return { key: readFileSync(key), cert: readFileSync(cert) };
}

function listen(server) {
    return new Promise((resolve, reject) => {
        server.once("error", reject);
        server.listen(0, "127.0.0.1", () => resolve(server.address().port));
    });
}

/**
 * Serves `pages` ({ "/path": [contentType, body or () => body, headers?] }) over http,
 * or https when `cert` is given. Resolves to { port, origin, close }.
 */
export async function startPageServer(pages, cert) {
    const handler = (req, res) => {
        const path = req.url.replace(/\?.*$/, "");
        const page = pages[path];
        if (!page) {
            res.writeHead(404).end("not found");
            return;
        }
        const body = typeof page[1] == "function" ? page[1]() : page[1];
        res.writeHead(200, { "Content-Type": page[0], "Cache-Control": "no-store", ...(page[2] || {}) }).end(body);
    };
    const server = cert ? https.createServer(cert, handler) : http.createServer(handler);
    const port = await listen(server);
    onCleanup(() => new Promise((r) => server.close(r)));
    server.closeAllConnections && onCleanup(() => server.closeAllConnections());
    return { port, origin: `${cert ? "https" : "http"}://${PAGE_HOST}:${port}` };
}

/** A TLS front for the WAIT line (as a deployment's proxy): https -> 127.0.0.1:target(). */
export async function startTlsFront(cert, target) {
    const sockets = new Set();
    const server = tls.createServer(cert, (client) => {
        const up = net.connect(target(), "127.0.0.1");
        sockets.add(client);
        sockets.add(up);
        client.pipe(up);
        up.pipe(client);
        const drop = () => {
            client.destroy();
            up.destroy();
            sockets.delete(client);
            sockets.delete(up);
        };
        client.on("error", drop);
        up.on("error", drop);
        client.on("close", drop);
        up.on("close", () => setTimeout(drop, 50));
    });
    const port = await listen(server);
    onCleanup(() => {
        for (const s of sockets) s.destroy();
        return new Promise((r) => server.close(r));
    });
    return port;
}

/** Headless Chromium that resolves the two test hosts to loopback and nothing else. */
export async function launchChromium() {
    if (!existsSync(CHROMIUM)) throw new Error(`${CHROMIUM} is missing (Debian package chromium)`);
    const { chromium } = await import("playwright-core");
    const profile = tempDir();
    const context = await chromium.launchPersistentContext(profile, {
        executablePath: CHROMIUM,
        headless: true,
        ignoreHTTPSErrors: true,
        viewport: { width: 1100, height: 700 },
        args: [
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--ignore-certificate-errors",
            "--no-proxy-server",
            `--host-resolver-rules=MAP ${PAGE_HOST} 127.0.0.1, MAP ${RPL_HOST} 127.0.0.1, MAP ${SUB_HOST} 127.0.0.1, MAP localhost 127.0.0.1, MAP * ~NOTFOUND, EXCLUDE 127.0.0.1`,
        ],
    });
    onCleanup(() => context.close());
    return context;
}

/**
 * A plain TCP front for the WAIT line that refuses some requests, as a proxy or
 * firewall might: `refuse(head)` gets each request head (text) and returns true to
 * answer it 403 and close; anything else is piped to 127.0.0.1:target(). Resolves to
 * { port, refused: [request lines] }.
 */
export async function startRefusingFront(target, refuse) {
    const sockets = new Set();
    const refused = [];
    const server = net.createServer((client) => {
        sockets.add(client);
        let head = Buffer.alloc(0);
        const onData = (d) => {
            head = Buffer.concat([head, d]);
            const end = head.indexOf("\r\n\r\n");
            if (end < 0) return;
            client.off("data", onData);
            const text = head.subarray(0, end).toString("latin1");
            if (refuse(text)) {
                refused.push(text.split("\r\n")[0]);
                client.end("HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
                return;
            }
            const up = net.connect(target(), "127.0.0.1");
            sockets.add(up);
            up.write(head);
            client.pipe(up);
            up.pipe(client);
            const drop = () => {
                client.destroy();
                up.destroy();
            };
            up.on("error", drop);
            up.on("close", drop);
            client.on("close", drop);
        };
        client.on("data", onData);
        client.on("error", () => client.destroy());
    });
    const port = await listen(server);
    onCleanup(() => {
        for (const s of sockets) s.destroy();
        return new Promise((r) => server.close(r));
    });
    return { port, refused };
}
