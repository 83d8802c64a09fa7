#!/usr/bin/env python3
"""A multi-channel chat on realplexor, like the original's sandbox.

    python3 clients/demo/run.py            # then open http://127.0.0.1:8000/

It starts the realplexor server (WAIT 127.0.0.1:8088, IN 127.0.0.1:10010) and
a small standard-library web backend (127.0.0.1:8000). The page loads the
browser client from the server (?identifier=SCRIPT) and long-polls the WAIT
line across origins (the backend's origin is put in ALLOWED_ORIGINS). Messages
are posted to the backend, which pushes them with the Python client to every
channel ticked; a watcher thread pushes the online list whenever it changes.
Any port may be 0 (the real one is printed). Ctrl-C stops both.
"""

import argparse
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.abspath(os.path.join(HERE, "..", ".."))
sys.path.insert(0, os.path.join(ROOT, "clients", "python"))

from realplexor import Realplexor, RealplexorError  # noqa: E402

NAMESPACE = "demo_"
NAME = re.compile(r"^\w{1,20}$", re.ASCII)


def find_server(explicit):
    for path in (explicit, os.environ.get("REALPLEXOR_BIN"),
                 os.path.join(ROOT, "target", "release", "realplexor"),
                 os.path.join(ROOT, "target", "debug", "realplexor")):
        if path and os.path.exists(path):
            return path
    found = shutil.which("realplexor")
    if found:
        return found
    print("demo: building the server (cargo build)...", flush=True)
    subprocess.run(["cargo", "build", "--quiet"], cwd=ROOT, check=True)
    return os.path.join(ROOT, "target", "debug", "realplexor")


def split_addr(text):
    host, _, port = text.rpartition(":")
    return host, int(port)


def start_server(binary, wait, in_addr, origins, tmp):
    conf = os.path.join(tmp, "demo.conf")
    with open(conf, "w") as f:
        f.write("$CONFIG{WAIT_ADDR} = [ '%s' ];\n" % wait)
        f.write("$CONFIG{IN_ADDR} = [ '%s' ];\n" % in_addr)
        f.write("$CONFIG{SU_USER} = '';\n")
        f.write("$CONFIG{VERBOSITY} = 1;\n")
        f.write("$CONFIG{OFFLINE_TIMEOUT} = 5;\n")
        f.write("$CONFIG{ALLOWED_ORIGINS} = [ %s ];\n" % ", ".join("'%s'" % o for o in origins))
        f.write("return 1;\n")
    log_path = os.path.join(tmp, "server.log")
    log = open(log_path, "wb")
    proc = subprocess.Popen([binary, conf], stdout=log, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 10
    while True:
        with open(log_path, errors="replace") as f:
            text = f.read()
        w = re.search(r"WAIT: listening (\S+):(\d+)", text)
        i = re.search(r"IN: listening (\S+):(\d+)", text)
        if w and i:
            return proc, int(w.group(2)), int(i.group(2))
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            sys.exit("demo: realplexor did not start:\n" + text)
        time.sleep(0.05)


def online_watcher(rpl, stop):
    """Pushes the list of online users to the "online" channel when it changes."""
    last = None
    while not stop.wait(0.5):
        try:
            users = sorted(i[len("user_"):] for i in rpl.cmd_online(["user_"]))
            if users != last:
                rpl.send("online", {"users": users})
                last = users
        except RealplexorError as e:
            print("demo: online watcher: %s" % e, file=sys.stderr, flush=True)


def make_handler(rpl, wait_port):
    page = open(os.path.join(HERE, "index.html"), encoding="utf-8").read()
    counter = [0]
    lock = threading.Lock()

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args):
            pass

        def reply(self, code, ctype, body):
            data = body.encode("utf-8")
            self.send_response(code)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(data)))
            self.send_header("Cache-Control", "no-store")
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self):
            if self.path.split("?")[0] != "/":
                return self.reply(404, "text/plain", "not found\n")
            # The WAIT line on the host name the browser used for this page.
            html = page.replace("@WAIT_PORT@", str(wait_port)).replace("@NAMESPACE@", NAMESPACE)
            self.reply(200, "text/html; charset=utf-8", html)

        def do_POST(self):
            if self.path != "/send":
                return self.reply(404, "text/plain", "not found\n")
            try:
                length = min(int(self.headers.get("Content-Length", "0")), 65536)
                msg = json.loads(self.rfile.read(length) or b"{}")
                name, text = str(msg.get("name", "")), str(msg.get("text", ""))[:500]
                channels = [c for c in msg.get("channels", []) if isinstance(c, str) and NAME.match(c)]
                if not NAME.match(name) or not text or not channels:
                    return self.reply(400, "text/plain", "need name, text and channels\n")
                with lock:
                    counter[0] += 1
                    mid = counter[0]
                # One push to several channels: a browser listening to more
                # than one of them gets it once, with all their ids.
                rpl.send(["ch_" + c for c in channels],
                         {"id": mid, "from": name, "text": text, "channels": channels,
                          "time": time.strftime("%H:%M:%S")})
                self.reply(200, "application/json", json.dumps({"ok": True, "id": mid}))
            except (ValueError, RealplexorError) as e:
                self.reply(500, "text/plain", "%s\n" % e)

    return Handler


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--http", default="127.0.0.1:8000", help="address of the demo page (default %(default)s)")
    ap.add_argument("--wait", default="127.0.0.1:8088", help="realplexor WAIT line (default %(default)s)")
    ap.add_argument("--in", dest="in_addr", default="127.0.0.1:10010", help="realplexor IN line (default %(default)s)")
    ap.add_argument("--server", help="path of the realplexor binary (default: target/*/realplexor)")
    args = ap.parse_args()

    host, port = split_addr(args.http)
    httpd = ThreadingHTTPServer((host, port), None)
    port = httpd.server_address[1]
    origins = ["http://%s:%d" % (h, port) for h in dict.fromkeys([host, "127.0.0.1", "localhost"])]

    tmp = tempfile.mkdtemp(prefix="realplexor-demo-")
    proc, wait_port, in_port = start_server(find_server(args.server), args.wait, args.in_addr, origins, tmp)
    rpl = Realplexor(split_addr(args.in_addr)[0], in_port, NAMESPACE)
    httpd.RequestHandlerClass = make_handler(rpl, wait_port)
    stop = threading.Event()
    threading.Thread(target=online_watcher, args=(rpl, stop), daemon=True).start()

    def shutdown(*_):
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, shutdown)
    print("demo: realplexor WAIT port %d, IN port %d" % (wait_port, in_port), flush=True)
    print("demo: open http://%s:%d/" % (host, port), flush=True)
    try:
        httpd.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        stop.set()
        httpd.server_close()
        proc.terminate()
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            proc.kill()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
