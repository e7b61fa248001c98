// kafkajs-snappy ships no types: a kafkajs codec factory
declare module "kafkajs-snappy" {
  const SnappyCodec: () => unknown
  export default SnappyCodec
}
