/**
 * The participant client bundle's public face: messages and rendering
 * (the policy runtime is re-exported for pages that run AI agents).
 * @module client
 */
export * from "./messages.js";
export { CanvasRenderer } from "../render/canvas.js";
export { SurfaceState } from "../render/surface-state.js";
export { PolicyRuntime, configureOrt, PolicyError } from "../runtime/index.js";
