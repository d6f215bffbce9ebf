/**
 * The participant client bundle's public face.
 * @module client
 */
export * from "./messages.js";
export { startParticipant } from "./app.js";
export { GameView } from "./game.js";
export { CanvasRenderer } from "../render/canvas.js";
export { SurfaceState } from "../render/surface-state.js";
export { PolicyRuntime, configureOrt, PolicyError } from "../runtime/index.js";
