// onGap without a browser: a fake XMLHttpRequest records the polls and answers them.
// Run by scripts/test.d/30-clients.sh: node --test clients/js/test/
import { test } from "node:test";
import assert from "node:assert/strict";
import Realplexor from "../realplexor.mjs";

function fakeXhr(replies, sent) {
    return class {
        open(method, uri) { this.uri = uri; this.method = method; }
        send(body) {
            sent.push(this.uri);
            const text = replies.shift();
            if (text == null) return; // stays parked
            setTimeout(() => {
                this.status = 200;
                this.responseText = text;
                this.readyState = 4;
                this.onreadystatechange();
            }, 0);
        }
        abort() {}
    };
}

const GAP = '[\n  {\n    "ids": { "a": "1700000000.5" },\n    "gap": true\n  },\n  {\n    "ids": { "a": "1700000001.5" },\n    "data": "x"\n  }\n]';

test("onGap is called with the cursor, listening continues, and the poll opts in", async () => {
    const sent = [];
    globalThis.XMLHttpRequest = fakeXhr([GAP], sent);
    const gaps = [], got = [], events = [];
    const rpl = new Realplexor("http://rpl.example", null, {
        onGap: (id, cursor) => gaps.push([id, cursor]),
        onStatus: (e) => events.push(e.type),
    });
    rpl.setCursor("a", "1690000000");
    rpl.subscribe("a", (data, id, cursor) => got.push([data, id, cursor]));
    rpl.execute();
    for (let i = 0; i < 100 && sent.length < 2; i++) await new Promise((r) => setTimeout(r, 10));
    rpl.stop();
    assert.match(sent[0], /\?gap=1&identifier=1690000000:a&/);
    assert.deepEqual(gaps, [["a", "1700000000.5"]]);
    assert.deepEqual(got, [["x", "a", "1700000001.5"]]);
    assert.ok(events.includes("gap"));
    assert.match(sent[1], /identifier=1700000001\.5:a/);
});

test("without onGap the poll is the original's", async () => {
    const sent = [];
    globalThis.XMLHttpRequest = fakeXhr([], sent);
    const rpl = new Realplexor("http://rpl.example", null, {});
    rpl.setCursor("a", "5");
    rpl.subscribe("a", () => {});
    rpl.execute();
    for (let i = 0; i < 100 && !sent.length; i++) await new Promise((r) => setTimeout(r, 10));
    rpl.stop();
    assert.ok(!/gap=1/.test(sent[0]), sent[0]);
});
