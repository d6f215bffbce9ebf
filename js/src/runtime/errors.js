/**
 * Errors the browser runtime reports, with the policy's name.
 * @module runtime/errors
 */

/** Running or compiling a policy failed. `policy` names it. */
export class PolicyError extends Error {
  /**
   * @param {string} message
   * @param {{policy: string, cause?: unknown}} options
   */
  constructor(message, { policy, cause } = {}) {
    super(message, cause === undefined ? undefined : { cause });
    this.name = "PolicyError";
    this.policy = policy;
  }
}

/**
 * Rows `name dtype [shape]` aligned, one per line, indented by four spaces.
 * @param {Array<[string, string, string]>} rows
 * @returns {string}
 */
export function table(rows) {
  const width = Math.max(4, ...rows.map((r) => r[0].length));
  return rows.map(([name, dtype, shape]) => `    ${name.padEnd(width)}  ${dtype.padEnd(8)} ${shape}`).join("\n");
}

/**
 * `Error: message` of anything thrown (first line only).
 * @param {unknown} error
 * @returns {string}
 */
export function errorText(error) {
  if (error instanceof Error) return `${error.name}: ${String(error.message).split("\n")[0]}`;
  return String(error);
}
