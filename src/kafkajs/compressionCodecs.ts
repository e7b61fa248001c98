/**
 * Compression codecs for kafkajs beyond its built-in gzip: snappy (kafkajs-snappy, pure JavaScript, an
 * optional package loaded only when a codec is asked for, so an app with only `effect` and `kafkajs`
 * imports this driver) and zstd (Node's own zlib, Node >= 22.15). kafkajs keeps codecs in a process-wide
 * table; registering is idempotent. lz4 is not offered: the kafkajs lz4 codec builds a native addon that
 * does not build on Node 24.
 */
import { createRequire } from "node:module"
import zlib from "node:zlib"
import { Effect } from "effect"
import kafkajs from "kafkajs"
import type { Compression } from "../ProducerConfig.ts"
import { Fatal } from "../PublishError.ts"

const zstdCodec = () => ({
  compress: async (encoder: { buffer: Buffer }) => zlib.zstdCompressSync(encoder.buffer),
  decompress: async (buffer: Buffer) => zlib.zstdDecompressSync(buffer)
})

const codecs = kafkajs.CompressionCodecs as Record<number, () => unknown>

/** Loads the snappy codec factory; throws when the package is not installed. */
export type SnappyLoader = () => () => unknown

// kafkajs-snappy is CommonJS: `require` loads it on demand, synchronously, and only here
const requireSnappy: SnappyLoader = () => createRequire(import.meta.url)("kafkajs-snappy") as () => unknown

const types = {
  none: kafkajs.CompressionTypes.None,
  gzip: kafkajs.CompressionTypes.GZIP,
  snappy: kafkajs.CompressionTypes.Snappy,
  zstd: kafkajs.CompressionTypes.ZSTD
} as const

/**
 * Registers every codec it can (zstd; snappy when kafkajs-snappy is installed, silently skipped when not)
 * and answers the kafkajs compression type of a setting. For readers, which must decode whatever was
 * written; a producer uses `codecFor`, which fails when its codec is missing.
 */
export const compressionType = (compression: Compression, loadSnappy: SnappyLoader = requireSnappy) => {
  codecs[kafkajs.CompressionTypes.ZSTD] = zstdCodec
  try {
    codecs[kafkajs.CompressionTypes.Snappy] = loadSnappy()
  } catch {
    // not installed: only snappy batches cannot be decoded
  }
  return types[compression]
}

/**
 * The kafkajs compression type a producer writes with, its codec registered. Snappy without the package
 * `kafkajs-snappy` installed fails with Fatal `InvalidConfig` naming the package.
 */
export const codecFor = (
  compression: Compression,
  loadSnappy: SnappyLoader = requireSnappy
): Effect.Effect<kafkajs.CompressionTypes, Fatal> =>
  Effect.try({
    try: () => {
      if (compression === "zstd") codecs[kafkajs.CompressionTypes.ZSTD] = zstdCodec
      if (compression === "snappy") codecs[kafkajs.CompressionTypes.Snappy] = loadSnappy()
      return types[compression]
    },
    catch: (cause) =>
      new Fatal({
        reason: "InvalidConfig",
        cause,
        message: `compression "snappy" needs the package kafkajs-snappy: install it (npm install kafkajs-snappy) or choose another compression (KAFKA_COMPRESSION)`
      })
  })
