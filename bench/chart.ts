/** A horizontal bar chart of records/s per scenario: SVG drawn here, rendered to PNG by resvg. */
import { Resvg } from "@resvg/resvg-js"

export interface Bar {
  readonly label: string
  readonly value: number
  readonly note: string
}

const escapeXml = (s: string) => s.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;")

export const barChartPng = (title: string, subtitle: string, bars: ReadonlyArray<Bar>): Buffer => {
  const rowHeight = 28
  const left = 330
  const width = 1000
  const top = 64
  const height = top + bars.length * rowHeight + 30
  const max = Math.max(...bars.map((b) => b.value), 1)
  const rows = bars
    .map((bar, i) => {
      const y = top + i * rowHeight
      const w = Math.max(1, ((width - left - 170) * bar.value) / max)
      return `<text x="${left - 8}" y="${y + 18}" text-anchor="end" font-size="13">${escapeXml(bar.label)}</text>
<rect x="${left}" y="${y + 4}" width="${w.toFixed(1)}" height="${rowHeight - 8}" fill="${i % 2 === 0 ? "#3b6fb6" : "#5b8fd6"}"/>
<text x="${left + w + 6}" y="${y + 18}" font-size="12">${escapeXml(bar.note)}</text>`
    })
    .join("\n")
  const svg = `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" font-family="DejaVu Sans, sans-serif">
<rect width="100%" height="100%" fill="white"/>
<text x="${width / 2}" y="26" text-anchor="middle" font-size="16" font-weight="bold">${escapeXml(title)}</text>
<text x="${width / 2}" y="46" text-anchor="middle" font-size="11">${escapeXml(subtitle)}</text>
${rows}
</svg>`
  return new Resvg(svg, { font: { loadSystemFonts: true, defaultFontFamily: "DejaVu Sans" } }).render().asPng()
}
