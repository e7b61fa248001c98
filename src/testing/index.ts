/** Test support: the in-memory broker and the tools to read a real topic back. */
export * as FakeKafka from "./FakeKafka.ts"
export * as TopicReader from "./TopicReader.ts"
