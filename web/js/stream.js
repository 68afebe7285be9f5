// The async iterable that `create({ stream: true })` resolves to, for the local and the remote
// engine alike.

/** The async iterable `create({stream: true})` resolves to; `abort()` cancels the request. */
export class Stream {
  #it;
  #abort;
  constructor(iterator, abort) {
    this.#it = iterator;
    this.#abort = abort;
  }
  [Symbol.asyncIterator]() {
    return this.#it;
  }
  abort() {
    this.#abort();
  }
}
