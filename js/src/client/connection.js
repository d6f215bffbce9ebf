/**
 * The participant's WebSocket: binary envelopes, `ready` on every (re)open (then the "open" status),
 * reconnection with backoff until told to stop.
 * @module client/connection
 */
import { checkServerMessage, decodeEnvelope, encodeEnvelope } from "./messages.js";

export class Connection {
  /**
   * @param {string} url ws:// or wss:// URL
   * @param {{onMessage: (message: Object, buffers: Uint8Array[]) => void, onStatus?: (status: string) => void}} handlers
   */
  constructor(url, { onMessage, onStatus = () => {} }) {
    this.url = url;
    this.onMessage = onMessage;
    this.onStatus = onStatus;
    this.stopped = false;
    this.delay = 250;
    this.socket = null;
  }

  /** Connect (and reconnect after drops until `stop()`). */
  open() {
    const socket = new WebSocket(this.url);
    socket.binaryType = "arraybuffer";
    this.socket = socket;
    socket.onopen = () => {
      this.delay = 250;
      this.send({ type: "ready" });
      this.onStatus("open");
    };
    socket.onmessage = (event) => {
      let message;
      let buffers = [];
      try {
        if (typeof event.data === "string") message = JSON.parse(event.data);
        else ({ message, buffers } = decodeEnvelope(event.data));
        checkServerMessage(message);
      } catch (error) {
        console.error("MUG: dropped a malformed message from the server", error);
        return;
      }
      this.onMessage(message, buffers);
    };
    socket.onclose = () => {
      if (this.socket !== socket) return;
      this.socket = null;
      if (this.stopped) return;
      this.onStatus("reconnecting");
      setTimeout(() => this.stopped || this.open(), this.delay);
      this.delay = Math.min(this.delay * 2, 5000);
    };
  }

  /**
   * Send a message (dropped while disconnected: the server resends its state on reconnect).
   * @param {Object} message
   * @param {ArrayBufferView[]} [buffers]
   */
  send(message, buffers = []) {
    if (this.socket?.readyState === WebSocket.OPEN) this.socket.send(encodeEnvelope(message, buffers));
  }

  /** Close for good. */
  stop() {
    this.stopped = true;
    this.socket?.close();
  }
}
