/**
 * Compression codecs for kafkajs beyond its built-in gzip: snappy (kafkajs-snappy, pure JavaScript) and zstd
 * (Node's own zlib, Node >= 22.15). kafkajs keeps codecs in a process-wide table; registering is idempotent.
 * lz4 is not offered: the kafkajs lz4 codec builds a native addon that does not build on Node 24.
 */
import zlib from "node:zlib"
import kafkajs from "kafkajs"
import SnappyCodec from "kafkajs-snappy"
import type { Compression } from "../ProducerConfig.ts"

const zstdCodec = () => ({
  compress: async (encoder: { buffer: Buffer }) => zlib.zstdCompressSync(encoder.buffer),
  decompress: async (buffer: Buffer) => zlib.zstdDecompressSync(buffer)
})

let registered = false

/** The kafkajs compression type for a setting, registering the codec it needs. */
export const compressionType = (compression: Compression): kafkajs.CompressionTypes => {
  if (!registered) {
    const codecs = kafkajs.CompressionCodecs as Record<number, () => unknown>
    codecs[kafkajs.CompressionTypes.Snappy] = SnappyCodec
    codecs[kafkajs.CompressionTypes.ZSTD] = zstdCodec
    registered = true
  }
  switch (compression) {
    case "none":
      return kafkajs.CompressionTypes.None
    case "gzip":
      return kafkajs.CompressionTypes.GZIP
    case "snappy":
      return kafkajs.CompressionTypes.Snappy
    case "zstd":
      return kafkajs.CompressionTypes.ZSTD
  }
}
