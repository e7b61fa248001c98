/**
 * Compression codecs for kafkajs beyond its built-in gzip: snappy (kafkajs-snappy, pure JavaScript), lz4
 * (@platformatic/wasm-utils: LZ4 frame format in WebAssembly, the same code @platformatic/kafka writes lz4
 * with; no native addon, so it installs on Node 24 without a compiler) and zstd (Node's own zlib, Node >=
 * 22.15). snappy and lz4 come from optional packages loaded only when a codec is asked for, so an app with
 * only `effect` and `kafkajs` imports this driver. kafkajs keeps codecs in a process-wide table;
 * registering is idempotent.
 */
import { createRequire } from "node:module"
import zlib from "node:zlib"
import { Effect } from "effect"
import kafkajs from "kafkajs"
import type { Compression } from "../ProducerConfig.ts"
import { Fatal } from "../PublishError.ts"

/** A kafkajs codec: `compress` gets the records' encoder, `decompress` a batch's compressed records. */
interface Codec {
  readonly compress: (encoder: { buffer: Buffer }) => Promise<Buffer>
  readonly decompress: (buffer: Buffer) => Promise<Buffer>
}

const zstdCodec = (): Codec => ({
  compress: async (encoder) => zlib.zstdCompressSync(encoder.buffer),
  decompress: async (buffer) => zlib.zstdDecompressSync(buffer)
})

interface WasmUtils {
  readonly lz4Compress: (data: Buffer) => Buffer
  readonly lz4Decompress: (data: Buffer) => Buffer
}

// Kafka's lz4 (magic v2 record batches) is the LZ4 frame format, which is what wasm-utils reads and writes
const lz4Codec =
  ({ lz4Compress, lz4Decompress }: WasmUtils) =>
  (): Codec => ({
    compress: async (encoder) => lz4Compress(encoder.buffer),
    decompress: async (buffer) => lz4Decompress(buffer)
  })

const codecs = kafkajs.CompressionCodecs as Record<number, () => unknown>

/**
 * Loads an optional package by name (`kafkajs-snappy`, `@platformatic/wasm-utils`); throws when it is
 * not installed. Tests pass one that fails to see what a missing package does.
 */
export type PackageLoader = (name: string) => unknown

// both are loaded with `require` (wasm-utils is ESM without top-level await: Node 24 requires it), on
// demand, synchronously, and only here
const requirePackage: PackageLoader = (name) => createRequire(import.meta.url)(name)

/** The optional package each codec needs, and how to make the kafkajs codec factory from it. */
const optional = {
  snappy: { pkg: "kafkajs-snappy", type: kafkajs.CompressionTypes.Snappy, codec: (m: unknown) => m as () => unknown },
  lz4: {
    pkg: "@platformatic/wasm-utils",
    type: kafkajs.CompressionTypes.LZ4,
    codec: (m: unknown) => lz4Codec(m as WasmUtils)
  }
} as const

const register = (compression: keyof typeof optional, load: PackageLoader) => {
  const { pkg, type, codec } = optional[compression]
  codecs[type] = codec(load(pkg))
}

const types = {
  none: kafkajs.CompressionTypes.None,
  gzip: kafkajs.CompressionTypes.GZIP,
  snappy: kafkajs.CompressionTypes.Snappy,
  lz4: kafkajs.CompressionTypes.LZ4,
  zstd: kafkajs.CompressionTypes.ZSTD
} as const

/**
 * Registers every codec it can (zstd; snappy and lz4 when their packages are installed, silently skipped
 * when not) and answers the kafkajs compression type of a setting. For readers, which must decode
 * whatever was written; a producer uses `codecFor`, which fails when its codec is missing.
 */
export const compressionType = (compression: Compression, load: PackageLoader = requirePackage) => {
  codecs[kafkajs.CompressionTypes.ZSTD] = zstdCodec
  for (const name of ["snappy", "lz4"] as const) {
    try {
      register(name, load)
    } catch {
      // not installed: only batches in this codec cannot be decoded
    }
  }
  return types[compression]
}

/**
 * The kafkajs compression type a producer writes with, its codec registered. snappy without the package
 * `kafkajs-snappy`, or lz4 without `@platformatic/wasm-utils`, fails with Fatal `InvalidConfig` naming
 * the package.
 */
export const codecFor = (
  compression: Compression,
  load: PackageLoader = requirePackage
): Effect.Effect<kafkajs.CompressionTypes, Fatal> =>
  Effect.try({
    try: () => {
      if (compression === "zstd") codecs[kafkajs.CompressionTypes.ZSTD] = zstdCodec
      if (compression === "snappy" || compression === "lz4") register(compression, load)
      return types[compression]
    },
    catch: (cause) => {
      const pkg = compression === "snappy" || compression === "lz4" ? optional[compression].pkg : "?"
      return new Fatal({
        reason: "InvalidConfig",
        cause,
        message: `compression "${compression}" needs the package ${pkg}: install it (npm install ${pkg}) or choose another compression (KAFKA_COMPRESSION)`
      })
    }
  })
