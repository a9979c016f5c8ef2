/** A tensor's shape does not fit what a layer or operator expects (as opposed to a misbuilt one). */
export class ShapeError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ShapeError';
  }
}
