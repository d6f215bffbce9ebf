/**
 * The worker's loader against a real HTTP server on 127.0.0.1 serving the built Pyodide folder and a
 * bundle (mug's engine, as the server ships it: `mug.server.pybundle.mug_bundle`): stages in order, every byte counted against the total,
 * Pyodide's own fetches answered from the counted bytes, the bundle unpacked and importable.
 * Under Node, Pyodide reads its files with `fs`, not `fetch`: the `loadPyodide` given here fetches them
 * as Pyodide does in a browser (the browser path itself runs in tests/e2e/test_browser_env.py), then
 * returns a real Node Pyodide.
 */
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync, statSync } from "node:fs";
import { createServer } from "node:http";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import test from "node:test";
import { fileURLToPath } from "node:url";
import { loadPyodide, version } from "pyodide";
import { LoadError, PythonLoader, STAGES } from "../src/pyworker/loader.js";

const HERE = dirname(fileURLToPath(import.meta.url));
const PYODIDE = join(HERE, "..", "..", "mug", "static", "pyodide");
const ROOT = join(HERE, "..", "..");
const BUNDLE = join(mkdtempSync(join(tmpdir(), "mug-loader-")), "mug.zip");
const WRITE = "import sys; from mug.server.pybundle import mug_bundle; open(sys.argv[1], 'wb').write(mug_bundle().data)";
execFileSync(join(ROOT, ".venv", "bin", "python"), ["-c", WRITE, BUNDLE], { cwd: ROOT });
const SIZES = Object.fromEntries(
  ["pyodide.asm.mjs", "pyodide.asm.wasm", "python_stdlib.zip", "pyodide-lock.json"].map((f) => [f, statSync(join(PYODIDE, f)).size]),
);

/** Serves `/py/<file>` from the Pyodide folder, `/py/files.json`, `/mug.zip`; counts requests per path. */
async function serve({ manifest = true, resets = {} } = {}) {
  const hits = {};
  const server = createServer((req, res) => {
    hits[req.url] = (hits[req.url] ?? 0) + 1;
    if (hits[req.url] <= (resets[req.url] ?? 0)) return req.socket.destroy(); // the connection is reset
    if (req.url === "/py/files.json" && manifest) return res.end(JSON.stringify({ version: "x", files: SIZES }));
    const path = req.url === "/mug.zip" ? BUNDLE : req.url.startsWith("/py/") ? join(PYODIDE, req.url.slice(4)) : null;
    try {
      const body = readFileSync(path);
      // no keep-alive: while Pyodide starts (seconds of this thread, more on a busy machine) an idle pooled
      // connection would pass the server's keep-alive timeout and be reset under the next fetch
      res.writeHead(200, { "Content-Length": body.length, Connection: "close" });
      res.end(body);
    } catch {
      res.writeHead(404).end();
    }
  });
  await new Promise((resolve) => server.listen(0, "127.0.0.1", resolve));
  return { base: `http://127.0.0.1:${server.address().port}`, hits, close: () => server.close() };
}

/** A loader whose `loadPyodide` fetches the core files as Pyodide does in a browser, then starts Node's Pyodide. */
function browserLikeLoader(progress) {
  const types = {};
  const browserLike = async ({ indexURL, packageBaseUrl }) => {
    for (const file of ["pyodide.asm.wasm", "python_stdlib.zip", "pyodide-lock.json"]) {
      const response = await fetch(`${indexURL}${file}`);
      types[file] = response.headers.get("Content-Type");
      assert.equal((await response.arrayBuffer()).byteLength, SIZES[file]);
    }
    return loadPyodide({ packageBaseUrl });
  };
  return { loader: new PythonLoader(progress, async () => ({ loadPyodide: browserLike, version })), types };
}

test("stages in order, bytes counted against the total, Pyodide fetching nothing twice, the bundle importable", async () => {
  const http = await serve();
  const seen = [];
  const { loader, types } = browserLikeLoader((p) => seen.push(p));
  try {
    const py = await loader.load({ pyodide: `${http.base}/py/`, bundles: [`${http.base}/mug.zip`] });
    const stages = [...new Set(seen.map((p) => p.stage))];
    assert.deepEqual(stages, ["runtime", "python", "bundles", "ready"]);
    assert.ok(stages.every((s) => STAGES.includes(s)));
    const runtimeBytes = Object.values(SIZES).reduce((a, b) => a + b, 0);
    const lastRuntime = seen.filter((p) => p.stage === "runtime").at(-1);
    assert.deepEqual([lastRuntime.loaded, lastRuntime.total], [runtimeBytes, runtimeBytes]);
    const last = seen.at(-1);
    assert.equal(last.loaded, runtimeBytes + statSync(BUNDLE).size);
    assert.equal(last.total, last.loaded);
    assert.ok(seen.every((p, i) => i === 0 || p.loaded >= seen[i - 1].loaded));
    for (const file of ["pyodide.asm.wasm", "python_stdlib.zip", "pyodide-lock.json"]) assert.equal(http.hits[`/py/${file}`], 1, file);
    assert.deepEqual(types, { "pyodide.asm.wasm": "application/wasm", "python_stdlib.zip": "application/zip", "pyodide-lock.json": "application/json" });
    assert.equal(py.runPython("import mug.browser; mug.browser.BrowserGame.__name__"), "BrowserGame");
    assert.equal(loader.packageIndex, `https://cdn.jsdelivr.net/pyodide/v${version}/full/`); // the default index
    await loader.load({ pyodide: `${http.base}/py/`, bundles: [`${http.base}/mug.zip`] }); // again: nothing fetched
    assert.equal(http.hits["/mug.zip"], 1);
    await assert.rejects(
      loader.load({ pyodide: `${http.base}/py/`, bundles: [`${http.base}/missing.zip`] }),
      (error) => error instanceof LoadError && error.stage === "bundles" && /missing\.zip: 404/.test(error.message),
    );
  } finally {
    http.close();
  }
});

test("without files.json the total comes from each response's length", async () => {
  const http = await serve({ manifest: false });
  const seen = [];
  const { loader } = browserLikeLoader((p) => seen.push(p));
  try {
    await loader.load({ pyodide: `${http.base}/py/`, bundles: [] });
    const runtime = seen.filter((p) => p.stage === "runtime");
    const bytes = Object.values(SIZES).reduce((a, b) => a + b, 0);
    assert.deepEqual([runtime.at(-1).loaded, runtime.at(-1).total], [bytes, bytes]);
  } finally {
    http.close();
  }
});

test("a file whose connection is reset is fetched again; one that never comes is a LoadError naming the tries", async () => {
  const http = await serve({ resets: { "/mug.zip": 1, "/gone.zip": 99 } });
  const { loader } = browserLikeLoader(() => {});
  try {
    const py = await loader.load({ pyodide: `${http.base}/py/`, bundles: [`${http.base}/mug.zip`] });
    assert.equal(http.hits["/mug.zip"], 2); // reset once, then fetched
    assert.equal(py.runPython("import mug.browser; 'ok'"), "ok");
    await assert.rejects(
      loader.load({ pyodide: `${http.base}/py/`, bundles: [`${http.base}/gone.zip`] }),
      (error) => error instanceof LoadError && error.stage === "bundles" && /gone\.zip \(3 tries\): fetch failed/.test(error.message),
    );
    assert.equal(http.hits["/gone.zip"], 3);
  } finally {
    http.close();
  }
});
