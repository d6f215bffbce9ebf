/**
 * Hooks for simulated participants (`mug.server.simulate`, `hooks=`): every second act the page would
 * send is replaced by one with huge logits and an invented state (its action a fair one), which the
 * server must leave out of the data while counting the act.
 */
export function act(message, buffers, n) {
  if (n % 2) return undefined;
  const huge = {
    action: 0,
    logits: { buffer: 0, dtype: "float32", shape: [60000] },
    states: { padding: { buffer: 1, dtype: "float32", shape: [1, 1000] } },
  };
  return {
    message: { type: "act", step: message.step, episode: message.episode, keys: [], policies: { agent_1: huge } },
    buffers: [new Float32Array(60000), new Float32Array(1000)],
  };
}
