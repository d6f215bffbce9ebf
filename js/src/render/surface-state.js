/**
 * What a Surface frame payload means: persistent objects updated by deltas,
 * ephemeral objects for one frame, drawn by depth then first appearance.
 * @module render/surface-state
 */

/** The client's copy of a Surface's persistent objects. */
export class SurfaceState {
  constructor() {
    /** @type {Map<string, Object>} */
    this.objects = new Map();
    this.order = new Map();
    this.counter = 0;
    this.ephemeral = [];
  }

  /**
   * Apply one frame payload `{full, set, remove, ephemeral}`.
   * @param {{full: boolean, set: Object[], remove: string[], ephemeral: Object[]}} payload
   */
  apply(payload) {
    if (payload.full) {
      this.objects.clear();
      this.order.clear();
    }
    for (const id of payload.remove ?? []) {
      this.objects.delete(id);
      this.order.delete(id);
    }
    for (const obj of payload.set ?? []) {
      if (!this.order.has(obj.id)) this.order.set(obj.id, this.counter++);
      this.objects.set(obj.id, obj);
    }
    this.ephemeral = payload.ephemeral ?? [];
  }

  /**
   * Everything to draw this frame, in drawing order.
   * @returns {Object[]}
   */
  drawList() {
    const persistent = [...this.objects.values()].map((o) => [o, this.order.get(o.id)]);
    const base = this.counter;
    const ephemeral = this.ephemeral.map((o, i) => [o, base + i]);
    return [...persistent, ...ephemeral].sort((a, b) => (a[0].depth ?? 0) - (b[0].depth ?? 0) || a[1] - b[1]).map(([o]) => o);
  }
}
