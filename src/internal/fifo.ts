/**
 * First in, first out over an array and a head index (`Array#shift` is O(n): too slow for long queues).
 *
 * @internal
 */
export class Fifo<A> {
  private items: Array<A | undefined> = []
  private head = 0
  /** Items held. */
  get size(): number {
    return this.items.length - this.head
  }
  /** The oldest item, left in place. */
  first(): A | undefined {
    return this.items[this.head]
  }
  /** The newest item, left in place. */
  last(): A | undefined {
    return this.size === 0 ? undefined : this.items[this.items.length - 1]
  }
  /** Adds an item at the end. */
  push(item: A): void {
    this.items.push(item)
  }
  /** Takes the oldest item. */
  shift(): A | undefined {
    if (this.size === 0) return undefined
    const item = this.items[this.head]
    this.items[this.head++] = undefined // let it be collected
    if (this.head === this.items.length) {
      this.items = []
      this.head = 0
    } else if (this.head >= 1024 && this.head * 2 >= this.items.length) {
      this.items = this.items.slice(this.head)
      this.head = 0
    }
    return item
  }
  /** Removes one item (O(n): only for interruptions). */
  remove(item: A): boolean {
    const index = this.items.indexOf(item, this.head)
    if (index < 0) return false
    this.items.splice(index, 1)
    return true
  }
  /** Empties the queue, returning what it held. */
  takeAll(): Array<A> {
    const all = this.items.slice(this.head) as Array<A>
    this.items = []
    this.head = 0
    return all
  }
}
