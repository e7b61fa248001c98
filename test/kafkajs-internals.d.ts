// kafkajs's protocol error table (CommonJS, untyped): the tests build the exact errors the client raises.
declare module "kafkajs/src/protocol/error.js" {
  const protocol: {
    readonly errorCodes: ReadonlyArray<{ type: string; code: number; retriable: boolean; message: string }>
  }
  export default protocol
}
