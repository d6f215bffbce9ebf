/**
 * Draws frames on a canvas: rgb images (png, zlib or raw bytes) and Surface
 * draw commands.
 * @module render/canvas
 */
import { SurfaceState } from "./surface-state.js";

async function inflate(bytes) {
  const stream = new Blob([bytes]).stream().pipeThrough(new DecompressionStream("deflate"));
  return new Uint8Array(await new Response(stream).arrayBuffer());
}

function toImageData(pixels, width, height, channels) {
  const rgba = new Uint8ClampedArray(width * height * 4);
  for (let i = 0, j = 0; i < width * height; i++, j += channels) {
    rgba[i * 4] = pixels[j];
    rgba[i * 4 + 1] = pixels[j + 1];
    rgba[i * 4 + 2] = pixels[j + 2];
    rgba[i * 4 + 3] = channels === 4 ? pixels[j + 3] : 255;
  }
  return new ImageData(rgba, width, height);
}

function drawObject(ctx, o, images) {
  if (o.color) ctx.fillStyle = ctx.strokeStyle = o.color;
  switch (o.shape) {
    case "rect":
      ctx.fillRect(o.x, o.y, o.w, o.h);
      break;
    case "circle":
      ctx.beginPath();
      ctx.arc(o.x, o.y, o.r, 0, 2 * Math.PI);
      ctx.fill();
      break;
    case "line":
    case "polygon":
      ctx.beginPath();
      ctx.moveTo(o.points[0][0], o.points[0][1]);
      for (const [x, y] of o.points.slice(1)) ctx.lineTo(x, y);
      if (o.shape === "polygon") {
        ctx.closePath();
        ctx.fill();
      } else {
        ctx.lineWidth = o.width ?? 1;
        ctx.stroke();
      }
      break;
    case "text":
      ctx.font = `${o.size ?? 16}px sans-serif`;
      ctx.textAlign = o.align ?? "left";
      ctx.fillText(o.text, o.x, o.y);
      break;
    case "image": {
      const image = images.get(o.name);
      if (image) ctx.drawImage(image, o.x, o.y, o.w, o.h);
      break;
    }
    default:
      throw new Error(`unknown draw command shape '${o.shape}'`);
  }
}

/** Renders engine frames on one canvas. */
export class CanvasRenderer {
  /**
   * @param {HTMLCanvasElement} canvas
   * @param {{width: number, height: number, background?: string, images?: Map<string, CanvasImageSource>}} options
   */
  constructor(canvas, { width, height, background = "#ffffff", images = new Map() }) {
    this.canvas = canvas;
    canvas.width = width;
    canvas.height = height;
    this.ctx = canvas.getContext("2d");
    this.background = background;
    this.images = images;
    this.surface = new SurfaceState();
  }

  /**
   * Draw one frame's `render` payload.
   * @param {Object} render the frame message's `render`
   * @param {Array<ArrayBufferView|DataView>} buffers the frame's binary buffers
   */
  async draw(render, buffers) {
    if (render.kind === "surface") return this.drawSurface(render);
    if (render.kind === "rgb") return this.drawRgb(render, buffers[render.buffer]);
    if (render.kind === "none") return undefined;
    throw new Error(`unknown render kind '${render.kind}'`);
  }

  /**
   * Take in a frame that is not drawn (a newer one overtook it): a Surface
   * payload's changes still apply, since later payloads build on them.
   * @param {Object} render the frame message's `render`
   */
  skip(render) {
    if (render.kind === "surface") this.surface.apply(render);
    else if (render.kind !== "rgb" && render.kind !== "none") throw new Error(`unknown render kind '${render.kind}'`);
  }

  drawSurface(payload) {
    this.surface.apply(payload);
    const { ctx } = this;
    ctx.fillStyle = this.background;
    ctx.fillRect(0, 0, this.canvas.width, this.canvas.height);
    for (const o of this.surface.drawList()) drawObject(ctx, o, this.images);
  }

  async drawRgb(render, view) {
    const bytes = new Uint8Array(view.buffer, view.byteOffset, view.byteLength);
    const { ctx, canvas } = this;
    if (render.encoding === "png") {
      const bitmap = await createImageBitmap(new Blob([bytes], { type: "image/png" }));
      ctx.drawImage(bitmap, 0, 0, canvas.width, canvas.height);
      bitmap.close();
      return;
    }
    const pixels = render.encoding === "zlib" ? await inflate(bytes) : bytes;
    const image = toImageData(pixels, render.width, render.height, render.channels);
    if (render.width === canvas.width && render.height === canvas.height) ctx.putImageData(image, 0, 0);
    else ctx.drawImage(await createImageBitmap(image), 0, 0, canvas.width, canvas.height);
  }
}
