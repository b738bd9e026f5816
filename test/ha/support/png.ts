// A small raster plot written as PNG with node:zlib alone (no internet, no native image library):
// an RGB canvas, lines, rectangles, a 5x7 pixel font for titles and axis numbers, and the PNG
// container (signature, IHDR, IDAT deflated, IEND, each chunk with its CRC-32).
import { deflateSync } from 'node:zlib';

export type Rgb = readonly [number, number, number];

export class Canvas {
  readonly pixels: Uint8Array;

  constructor(
    readonly width: number,
    readonly height: number,
    background: Rgb = [255, 255, 255],
  ) {
    this.pixels = new Uint8Array(width * height * 3);
    this.fill(0, 0, width, height, background);
  }

  set(x: number, y: number, color: Rgb): void {
    const px = Math.round(x);
    const py = Math.round(y);
    if (px < 0 || py < 0 || px >= this.width || py >= this.height) return;
    const at = (py * this.width + px) * 3;
    this.pixels[at] = color[0];
    this.pixels[at + 1] = color[1];
    this.pixels[at + 2] = color[2];
  }

  fill(x: number, y: number, width: number, height: number, color: Rgb): void {
    for (let row = Math.max(0, Math.round(y)); row < Math.min(this.height, Math.round(y + height)); row++) {
      for (let column = Math.max(0, Math.round(x)); column < Math.min(this.width, Math.round(x + width)); column++) {
        this.set(column, row, color);
      }
    }
  }

  /** A line `thickness` pixels wide (Bresenham, each step stamped as a small square). */
  line(x0: number, y0: number, x1: number, y1: number, color: Rgb, thickness = 1): void {
    let x = Math.round(x0);
    let y = Math.round(y0);
    const xEnd = Math.round(x1);
    const yEnd = Math.round(y1);
    const dx = Math.abs(xEnd - x);
    const dy = -Math.abs(yEnd - y);
    const sx = x < xEnd ? 1 : -1;
    const sy = y < yEnd ? 1 : -1;
    let error = dx + dy;
    const half = Math.floor(thickness / 2);
    for (;;) {
      if (thickness <= 1) this.set(x, y, color);
      else this.fill(x - half, y - half, thickness, thickness, color);
      if (x === xEnd && y === yEnd) return;
      const twice = 2 * error;
      if (twice >= dy) {
        error += dy;
        x += sx;
      }
      if (twice <= dx) {
        error += dx;
        y += sy;
      }
    }
  }

  /** Text in the 5x7 font, `scale` pixels per dot; unknown characters are left blank. Returns the width drawn. */
  text(x: number, y: number, text: string, color: Rgb, scale = 2): number {
    let cursor = x;
    for (const character of text.toUpperCase()) {
      const glyph = FONT[character];
      if (glyph) {
        glyph.forEach((row, dy) => {
          for (let dx = 0; dx < 5; dx++) if (row[dx] === '1') this.fill(cursor + dx * scale, y + dy * scale, scale, scale, color);
        });
      }
      cursor += 6 * scale;
    }
    return cursor - x;
  }

  png(): Buffer {
    const stride = this.width * 3;
    const raw = Buffer.alloc((stride + 1) * this.height);
    for (let row = 0; row < this.height; row++) {
      raw[row * (stride + 1)] = 0; // filter: none
      raw.set(this.pixels.subarray(row * stride, (row + 1) * stride), row * (stride + 1) + 1);
    }
    const header = Buffer.alloc(13);
    header.writeUInt32BE(this.width, 0);
    header.writeUInt32BE(this.height, 4);
    header[8] = 8; // bits per channel
    header[9] = 2; // colour type: RGB
    return Buffer.concat([
      Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]),
      chunk('IHDR', header),
      chunk('IDAT', deflateSync(raw, { level: 9 })),
      chunk('IEND', Buffer.alloc(0)),
    ]);
  }
}

/** Width in pixels of `text` drawn at `scale`. */
export function textWidth(text: string, scale = 2): number {
  return text.length * 6 * scale;
}

function chunk(type: string, data: Buffer): Buffer {
  const length = Buffer.alloc(4);
  length.writeUInt32BE(data.length, 0);
  const body = Buffer.concat([Buffer.from(type, 'latin1'), data]);
  const crc = Buffer.alloc(4);
  crc.writeUInt32BE(crc32(body), 0);
  return Buffer.concat([length, body, crc]);
}

const CRC_TABLE = Array.from({ length: 256 }, (_, n) => {
  let c = n;
  for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
  return c >>> 0;
});

/** CRC-32 (ISO 3309, as PNG chunks use it). */
export function crc32(data: Uint8Array): number {
  let c = 0xffffffff;
  for (const byte of data) c = CRC_TABLE[(c ^ byte) & 0xff]! ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}

/** 5x7 glyphs, one string of five dots per row. */
const FONT: Record<string, readonly string[]> = {
  '0': ['01110', '10001', '10011', '10101', '11001', '10001', '01110'],
  '1': ['00100', '01100', '00100', '00100', '00100', '00100', '01110'],
  '2': ['01110', '10001', '00001', '00010', '00100', '01000', '11111'],
  '3': ['11111', '00010', '00100', '00010', '00001', '10001', '01110'],
  '4': ['00010', '00110', '01010', '10010', '11111', '00010', '00010'],
  '5': ['11111', '10000', '11110', '00001', '00001', '10001', '01110'],
  '6': ['00110', '01000', '10000', '11110', '10001', '10001', '01110'],
  '7': ['11111', '00001', '00010', '00100', '01000', '01000', '01000'],
  '8': ['01110', '10001', '10001', '01110', '10001', '10001', '01110'],
  '9': ['01110', '10001', '10001', '01111', '00001', '00010', '01100'],
  A: ['01110', '10001', '10001', '11111', '10001', '10001', '10001'],
  B: ['11110', '10001', '10001', '11110', '10001', '10001', '11110'],
  C: ['01110', '10001', '10000', '10000', '10000', '10001', '01110'],
  D: ['11100', '10010', '10001', '10001', '10001', '10010', '11100'],
  E: ['11111', '10000', '10000', '11110', '10000', '10000', '11111'],
  F: ['11111', '10000', '10000', '11110', '10000', '10000', '10000'],
  G: ['01110', '10001', '10000', '10111', '10001', '10001', '01111'],
  H: ['10001', '10001', '10001', '11111', '10001', '10001', '10001'],
  I: ['01110', '00100', '00100', '00100', '00100', '00100', '01110'],
  J: ['00111', '00010', '00010', '00010', '00010', '10010', '01100'],
  K: ['10001', '10010', '10100', '11000', '10100', '10010', '10001'],
  L: ['10000', '10000', '10000', '10000', '10000', '10000', '11111'],
  M: ['10001', '11011', '10101', '10101', '10001', '10001', '10001'],
  N: ['10001', '10001', '11001', '10101', '10011', '10001', '10001'],
  O: ['01110', '10001', '10001', '10001', '10001', '10001', '01110'],
  P: ['11110', '10001', '10001', '11110', '10000', '10000', '10000'],
  Q: ['01110', '10001', '10001', '10001', '10101', '10010', '01101'],
  R: ['11110', '10001', '10001', '11110', '10100', '10010', '10001'],
  S: ['01111', '10000', '10000', '01110', '00001', '00001', '11110'],
  T: ['11111', '00100', '00100', '00100', '00100', '00100', '00100'],
  U: ['10001', '10001', '10001', '10001', '10001', '10001', '01110'],
  V: ['10001', '10001', '10001', '10001', '10001', '01010', '00100'],
  W: ['10001', '10001', '10001', '10101', '10101', '10101', '01010'],
  X: ['10001', '10001', '01010', '00100', '01010', '10001', '10001'],
  Y: ['10001', '10001', '10001', '01010', '00100', '00100', '00100'],
  Z: ['11111', '00001', '00010', '00100', '01000', '10000', '11111'],
  '.': ['00000', '00000', '00000', '00000', '00000', '01100', '01100'],
  ',': ['00000', '00000', '00000', '00000', '01100', '00100', '01000'],
  '-': ['00000', '00000', '00000', '11111', '00000', '00000', '00000'],
  '+': ['00000', '00100', '00100', '11111', '00100', '00100', '00000'],
  '/': ['00000', '00001', '00010', '00100', '01000', '10000', '00000'],
  '(': ['00010', '00100', '01000', '01000', '01000', '00100', '00010'],
  ')': ['01000', '00100', '00010', '00010', '00010', '00100', '01000'],
  '%': ['11000', '11001', '00010', '00100', '01000', '10011', '00011'],
  ':': ['00000', '01100', '01100', '00000', '01100', '01100', '00000'],
  '=': ['00000', '00000', '11111', '00000', '11111', '00000', '00000'],
  '<': ['00010', '00100', '01000', '10000', '01000', '00100', '00010'],
  '>': ['01000', '00100', '00010', '00001', '00010', '00100', '01000'],
  ' ': ['00000', '00000', '00000', '00000', '00000', '00000', '00000'],
};

export interface Series {
  label: string;
  color: Rgb;
  /** One value per sample; NaN leaves a gap. */
  values: readonly number[];
}

export interface Panel {
  title: string;
  series: readonly Series[];
}

const AXIS: Rgb = [60, 60, 60];
const GRID: Rgb = [225, 225, 225];

/**
 * Panels in a grid (two columns), sharing the x axis: `xs` in minutes from the start. Each panel
 * scales its y axis from 0 to a round number above its largest value, with three labelled grid
 * lines, and a legend of its series in their colours.
 */
export function plot(options: {
  title: string;
  xs: readonly number[];
  panels: readonly Panel[];
  width?: number;
  panelHeight?: number;
}): Buffer {
  const width = options.width ?? 1400;
  const panelHeight = options.panelHeight ?? 380;
  const columns = 2;
  const rows = Math.ceil(options.panels.length / columns);
  const top = 50;
  const canvas = new Canvas(width, top + rows * panelHeight);
  canvas.text(20, 16, options.title, AXIS, 3);
  const panelWidth = width / columns;
  const xMax = Math.max(...options.xs, 1e-9);
  options.panels.forEach((panel, index) => {
    const left = (index % columns) * panelWidth;
    const upper = top + Math.floor(index / columns) * panelHeight;
    const box = { x: left + 90, y: upper + 50, width: panelWidth - 120, height: panelHeight - 110 };
    canvas.text(box.x, upper + 6, panel.title, AXIS, 2);
    // The legend, on its own line under the title.
    let legendX = box.x;
    for (const series of panel.series) {
      canvas.fill(legendX, upper + 31, 22, 4, series.color);
      canvas.text(legendX + 28, upper + 27, series.label, series.color, 2);
      legendX += textWidth(series.label) + 48;
    }
    const finite = panel.series.flatMap((series) => series.values.filter((value) => Number.isFinite(value)));
    const yMax = roundUp(Math.max(...finite, 0));
    for (let step = 0; step <= 4; step++) {
      const y = box.y + box.height - (step / 4) * box.height;
      canvas.line(box.x, y, box.x + box.width, y, GRID);
      const label = formatNumber((yMax * step) / 4);
      canvas.text(box.x - 10 - textWidth(label), y - 7, label, AXIS, 2);
    }
    canvas.line(box.x, box.y, box.x, box.y + box.height, AXIS, 2);
    canvas.line(box.x, box.y + box.height, box.x + box.width, box.y + box.height, AXIS, 2);
    for (let step = 0; step <= 4; step++) {
      const x = box.x + (step / 4) * box.width;
      canvas.line(x, box.y + box.height, x, box.y + box.height + 6, AXIS, 2);
      const label = formatNumber((xMax * step) / 4);
      canvas.text(x - textWidth(label) / 2, box.y + box.height + 12, label, AXIS, 2);
    }
    canvas.text(box.x + box.width - textWidth('MINUTES'), box.y + box.height + 34, 'MINUTES', AXIS, 2);
    for (const series of panel.series) {
      let previous: [number, number] | undefined;
      series.values.forEach((value, at) => {
        if (!Number.isFinite(value)) {
          previous = undefined;
          return;
        }
        const x = box.x + (options.xs[at]! / xMax) * box.width;
        const y = box.y + box.height - (yMax > 0 ? value / yMax : 0) * box.height;
        if (previous) canvas.line(previous[0], previous[1], x, y, series.color, 2);
        else canvas.fill(x - 1, y - 1, 3, 3, series.color);
        previous = [x, y];
      });
    }
  });
  return canvas.png();
}

/** 1, 2, 4 or 8 times a power of ten (quarters stay round), at least `value` (and above 0). */
function roundUp(value: number): number {
  if (!(value > 0)) return 1;
  const power = 10 ** Math.floor(Math.log10(value));
  for (const factor of [1, 2, 4, 8, 10]) if (factor * power >= value) return factor * power;
  return 10 * power;
}

function formatNumber(value: number): string {
  if (value === 0) return '0';
  if (Math.abs(value) >= 100) return value.toFixed(0);
  if (Math.abs(value) >= 10) return value.toFixed(1).replace(/\.0$/, '');
  return value.toFixed(2).replace(/\.?0+$/, '');
}
