/**
 * Loading Python into the worker, in stages, counting bytes: the Pyodide
 * runtime (its core files fetched through a stream reader, so the bytes can
 * be counted, then handed to Pyodide's own fetches of the same URLs from
 * memory; `pyodide.asm.mjs`, which Pyodide imports, comes from the HTTP
 * cache: the server serves it immutable), the interpreter, the Python
 * bundles (zips unpacked into site-packages), then the environment's wheels
 * and compiled packages.
 * @module pyworker/loader
 */

/** The stages a load goes through, in order (each `progress` names one). */
export const STAGES = ["runtime", "python", "bundles", "env", "ready"];
/** Core files Pyodide fetches at start, and their types (the rest of the folder is fetched only if used). */
const FETCHED = { "pyodide.asm.wasm": "application/wasm", "python_stdlib.zip": "application/zip", "pyodide-lock.json": "application/json" };
/** The core file Pyodide imports (prefetched only to count its bytes: the import finds it in the HTTP cache). */
const IMPORTED = "pyodide.asm.mjs";

/**
 * Run `start` with `fetch` answering each URL of `bytes` (once) from memory, with its type.
 * @param {Map<string, {bytes: Uint8Array, type: string}>} bytes
 * @param {() => Promise<T>} start
 * @returns {Promise<T>}
 * @template T
 */
async function withFetchedBytes(bytes, start) {
  const original = globalThis.fetch;
  globalThis.fetch = (input, init) => {
    const url = typeof input === "string" ? input : (input?.url ?? String(input));
    const file = bytes.get(url);
    if (!file) return original(input, init);
    bytes.delete(url);
    return Promise.resolve(new Response(file.bytes, { status: 200, headers: { "Content-Type": file.type } }));
  };
  try {
    return await start();
  } finally {
    globalThis.fetch = original;
    bytes.clear();
  }
}

/** A load that failed: `stage` is where, `message` says what and what to do. */
export class LoadError extends Error {
  constructor(stage, message) {
    super(message);
    this.name = "LoadError";
    this.stage = stage;
  }
}

/** Waits (ms) before the fetch of a file is tried again after it failed without a response (a connection reset
 * or refused, a network blip): two more tries, then a `LoadError`. An HTTP error status is not retried. */
export const FETCH_RETRY_MS = [250, 1000];

/**
 * GET `url` through a stream reader, calling `onBytes(n)` for each chunk (see `FETCH_RETRY_MS`).
 * @param {string} url
 * @param {(n: number) => void} onBytes
 * @param {string} stage for the error
 * @param {boolean} [keep] return the bytes (else only count them)
 * @param {(n: number) => void} [onSize] told the size first, when the response says it (not compressed)
 * @returns {Promise<Uint8Array|null>}
 */
export async function fetchCounted(url, onBytes, stage, keep = true, onSize = () => {}) {
  let response;
  for (let tries = 1; !response; tries++) {
    try {
      response = await fetch(url);
    } catch (error) {
      if (tries <= FETCH_RETRY_MS.length) {
        await new Promise((resolve) => setTimeout(resolve, FETCH_RETRY_MS[tries - 1]));
        continue;
      }
      const cause = error?.cause ? ` (${error.cause.code ?? error.cause.message ?? error.cause})` : "";
      throw new LoadError(stage, `could not fetch ${url} (${tries} tries): ${error?.message ?? error}${cause}`);
    }
  }
  if (!response.ok) throw new LoadError(stage, `GET ${url}: ${response.status} ${response.statusText}`);
  if (!response.headers.get("Content-Encoding")) onSize(Number(response.headers.get("Content-Length") ?? 0));
  const reader = response.body.getReader();
  const chunks = [];
  let size = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    size += value.byteLength;
    onBytes(value.byteLength);
    if (keep) chunks.push(value);
  }
  if (!keep) return null;
  const out = new Uint8Array(size);
  let offset = 0;
  for (const chunk of chunks) {
    out.set(chunk, offset);
    offset += chunk.byteLength;
  }
  return out;
}

/**
 * Loads Pyodide and the Python files of browser-side scenes, once each.
 * `progress({stage, loaded, total})`: `loaded`/`total` are bytes of the
 * current load (`total` grows as bundles of unknown size are found).
 */
export class PythonLoader {
  /**
   * @param {(progress: {stage: string, loaded: number, total: number}) => void} progress
   * @param {(indexURL: string) => Promise<{loadPyodide: Function, version: string}>} [importPyodide] Pyodide's
   *   module (default: `pyodide.mjs` imported from the served folder)
   */
  constructor(progress, importPyodide = (indexURL) => import(`${indexURL}pyodide.mjs`)) {
    this.progress = progress;
    this.importPyodide = importPyodide;
    this.runtime = null;
    this.unpacked = new Map();
    this.loadedWheels = new Set();
    this.loaded = 0;
    this.total = 0;
  }

  report(stage) {
    this.progress({ stage, loaded: this.loaded, total: Math.max(this.total, this.loaded) });
  }

  count(stage) {
    return (n) => {
      this.loaded += n;
      this.report(stage);
    };
  }

  /**
   * Load everything `environment` names (what is loaded already is not loaded again).
   * @param {{pyodide: string, bundles?: string[], wheels?: string[], packages?: string[], package_index_url?: string}} environment
   *   absolute URLs (`pyodide` ends in `/`)
   * @returns {Promise<Object>} the Pyodide
   */
  async load({ pyodide, bundles = [], wheels = [], packages = [], package_index_url: packageIndex = null }) {
    this.runtime ??= this.loadRuntime(pyodide, packageIndex);
    const py = await this.runtime;
    if (packages.length && packageIndex && this.packageIndex !== packageIndex) {
      throw new LoadError(
        "env",
        `this page started Python with the package index ${this.packageIndex} (one per page); ` +
          `this scene asks for ${packageIndex}: give every browser-side scene of the study the same package_index_url`,
      );
    }
    for (const url of bundles) {
      if (!this.unpacked.has(url)) this.unpacked.set(url, this.unpack(py, url));
    }
    await Promise.all(bundles.map((url) => this.unpacked.get(url)));
    await this.loadEnvironment(py, wheels, packages);
    this.report("ready");
    return py;
  }

  async loadRuntime(indexURL, packageIndex) {
    this.report("runtime");
    // files.json (served with the files) gives the total up front; without it, each response's length counts
    const manifest = await fetch(`${indexURL}files.json`)
      .then((response) => (response.ok ? response.json() : null))
      .catch(() => null);
    const sizes = manifest?.files ?? {};
    const files = [IMPORTED, ...Object.keys(FETCHED)];
    this.total += files.reduce((n, file) => n + (sizes[file] ?? 0), 0);
    const fetched = new Map();
    await Promise.all(
      files.map(async (file) => {
        const onSize = sizes[file] ? () => {} : (n) => (this.total += n);
        const bytes = await fetchCounted(`${indexURL}${file}`, this.count("runtime"), "runtime", file !== IMPORTED, onSize);
        if (bytes) fetched.set(`${indexURL}${file}`, { bytes, type: FETCHED[file] });
      }),
    );
    this.report("python");
    try {
      const { loadPyodide, version } = await this.importPyodide(indexURL);
      this.packageIndex = packageIndex ?? `https://cdn.jsdelivr.net/pyodide/v${version}/full/`;
      const py = await withFetchedBytes(fetched, () => loadPyodide({ indexURL, packageBaseUrl: this.packageIndex }));
      this.sitePackages = py.runPython("import site; site.getsitepackages()[0]");
      return py;
    } catch (error) {
      throw new LoadError("python", `Pyodide did not start: ${error?.message ?? error}`);
    }
  }

  async unpack(py, url) {
    const bytes = await fetchCounted(url, this.count("bundles"), "bundles", true, (n) => (this.total += n));
    try {
      py.unpackArchive(bytes, "zip", { extractDir: this.sitePackages });
    } catch (error) {
      throw new LoadError("bundles", `could not unpack ${url}: ${error?.message ?? error}`);
    }
  }

  async loadEnvironment(py, wheels, packages) {
    const wanted = [...wheels.filter((w) => !this.loadedWheels.has(w)), ...packages.filter((p) => !(p in py.loadedPackages))];
    if (!wanted.length) return;
    this.report("env");
    const problems = [];
    try {
      await py.loadPackage(wanted, { messageCallback: () => {}, errorCallback: (text) => problems.push(text) });
    } catch (error) {
      problems.push(String(error?.message ?? error));
    }
    const missing = packages.filter((p) => !(p in py.loadedPackages));
    if (missing.length) {
      throw new LoadError(
        "env",
        `could not load the package(s) ${missing.join(", ")} from the package index ${this.packageIndex} ` +
          `(unreachable, or it does not have them)${problems.length ? `: ${problems.join("; ").slice(0, 500)}` : ""}`,
      );
    }
    if (problems.length && wheels.some((w) => !this.loadedWheels.has(w))) {
      throw new LoadError("env", `could not load the wheel(s) ${wheels.join(", ")}: ${problems.join("; ").slice(0, 500)}`);
    }
    for (const wheel of wheels) this.loadedWheels.add(wheel);
  }
}
