/**
 * Observations and fixed values as the tensors a graph expects. Same rules as
 * `mug/inference/tensors.py`: symbolic dimensions are the batch size; an
 * observation is flattened in C order (dict observations: values in sorted
 * key order), fills one row and is repeated on every row; a number fills a
 * fixed input's whole shape, a nested array is the tensor itself.
 * @module runtime/tensors
 */

const ARRAYS = {
  float32: Float32Array,
  float64: Float64Array,
  int32: Int32Array,
  int64: BigInt64Array,
  int16: Int16Array,
  int8: Int8Array,
  uint8: Uint8Array,
  uint16: Uint16Array,
  uint32: Uint32Array,
  bool: Uint8Array,
};

/**
 * A typed array of ORT type `dtype` holding `values`.
 * @param {string} dtype ORT tensor type, e.g. "float32", "int64"
 * @param {ArrayLike<number>} values
 * @returns {ArrayBufferView}
 */
export function typedArray(dtype, values) {
  const Kind = ARRAYS[dtype];
  if (!Kind) throw new Error(`tensors of type ${dtype} are not supported (supported: ${Object.keys(ARRAYS).join(", ")})`);
  if (Kind === BigInt64Array) return BigInt64Array.from(values, (v) => BigInt(Math.trunc(Number(v))));
  if (values instanceof Kind) return values;
  return Kind.from(values, Number);
}

/**
 * Concrete shape: every symbolic or unknown dimension becomes `batchSize`.
 * @param {Array<number|string|null>|null|undefined} shape
 * @param {number} batchSize
 * @returns {number[]|null}
 */
export function resolveShape(shape, batchSize) {
  if (shape == null) return null;
  return shape.map((d) => (typeof d === "number" ? d : batchSize));
}

/**
 * An observation (number, (nested) array, typed array, or object of those) as
 * one flat array in C order; objects are concatenated in sorted key order.
 * @param {unknown} observation
 * @returns {ArrayLike<number>}
 */
export function flattenObservation(observation) {
  if (ArrayBuffer.isView(observation)) return /** @type {ArrayLike<number>} */ (observation);
  const out = [];
  const walk = (value) => {
    if (typeof value === "number" || typeof value === "boolean") out.push(Number(value));
    else if (ArrayBuffer.isView(value) || Array.isArray(value)) for (const v of value) walk(v);
    else if (value && typeof value === "object") for (const key of Object.keys(value).sort()) walk(value[key]);
    else throw new Error(`the observation holds ${value === null ? "null" : typeof value}; expected numbers`);
  };
  walk(observation);
  return out;
}

function shapeOfNested(value) {
  const dims = [];
  let v = value;
  while (Array.isArray(v)) {
    dims.push(v.length);
    v = v[0];
  }
  return dims;
}

/**
 * The tensor fed for a `fixed_inputs` value.
 * @param {*} ort the onnxruntime-web module
 * @param {number|Array} value
 * @param {{name: string, type: string, shape: Array<number|string>|null}} spec graph input
 * @param {number} batchSize
 */
export function fixedTensor(ort, value, spec, batchSize) {
  if (Array.isArray(value)) {
    return new ort.Tensor(spec.type, typedArray(spec.type, value.flat(Infinity)), shapeOfNested(value));
  }
  const dims = resolveShape(spec.shape, batchSize);
  if (dims === null) throw new Error(`fixed_inputs['${spec.name}']: the graph does not give this input's shape; give the whole tensor`);
  const size = dims.reduce((a, b) => a * b, 1);
  return new ort.Tensor(spec.type, typedArray(spec.type, new Array(size).fill(Number(value))), dims);
}

/** Builds observation feeds for one graph input, or one per key of a dict observation. */
export class ObservationEncoder {
  /**
   * @param {*} ort the onnxruntime-web module
   * @param {string|Object<string,string>} obsInput
   * @param {Map<string, {name: string, type: string, shape: Array<number|string>|null}>} specs graph inputs by name
   * @param {number} batchSize
   */
  constructor(ort, obsInput, specs, batchSize) {
    this.ort = ort;
    this.batchSize = batchSize;
    if (typeof obsInput === "string") {
      this.single = { name: obsInput, shape: this.shaper(specs.get(obsInput)) };
      this.keyed = null;
    } else {
      this.single = null;
      this.keyed = Object.entries(obsInput).map(([key, name]) => [key, name, this.shaper(specs.get(name))]);
    }
  }

  shaper(spec) {
    const rest = spec.shape && spec.shape.length ? spec.shape.slice(1) : null;
    const fixedRest = rest && rest.every((d) => typeof d === "number") ? rest : null;
    const size = fixedRest ? fixedRest.reduce((a, b) => a * b, 1) : null;
    const { ort, batchSize } = this;
    return (flat) => {
      if (size !== null && flat.length !== size) {
        throw new Error(
          `the observation has ${flat.length} values but input '${spec.name}' takes ${size} per row ` +
            `(graph shape [${spec.shape.join(", ")}])`,
        );
      }
      let dims;
      if (fixedRest) dims = [batchSize, ...fixedRest];
      else if (rest && rest.filter((d) => typeof d !== "number").length === 1) {
        const known = rest.reduce((a, d) => (typeof d === "number" ? a * d : a), 1);
        dims = [batchSize, ...rest.map((d) => (typeof d === "number" ? d : flat.length / known))];
      } else dims = [batchSize, flat.length];
      let data;
      if (batchSize === 1) data = typedArray(spec.type, flat);
      else {
        const row = typedArray(spec.type, flat);
        data = new row.constructor(row.length * batchSize);
        for (let r = 0; r < batchSize; r++) data.set(row, r * row.length);
      }
      return new ort.Tensor(spec.type, data, dims);
    };
  }

  /**
   * Feeds for `observation`.
   * @param {unknown} observation
   * @returns {Object<string, *>} input name → ort.Tensor
   */
  encode(observation) {
    if (this.single) return { [this.single.name]: this.single.shape(flattenObservation(observation)) };
    if (!observation || typeof observation !== "object" || Array.isArray(observation) || ArrayBuffer.isView(observation)) {
      throw new Error(
        `obs_input maps observation keys [${this.keyed.map(([k]) => k).join(", ")}] to inputs, but the observation is not an object`,
      );
    }
    const feeds = {};
    for (const [key, name, shape] of this.keyed) {
      if (!(key in observation)) {
        throw new Error(`the observation has no key '${key}' (keys: ${Object.keys(observation).sort().join(", ")}); obs_input maps it to '${name}'`);
      }
      feeds[name] = shape(flattenObservation(observation[key]));
    }
    return feeds;
  }
}
