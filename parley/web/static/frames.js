// The page's one frame clock: DOM updates wait for the next animation frame, at most one
// rendering per item and frame.

/** Wall-clock milliseconds (comparable with the server's clock on the same machine). */
export const now = () => performance.timeOrigin + performance.now();

/** Keeps the conversation (`attach`ed) scrolled to the end while the reader is at the end. */
export const scroller = {
  stick: true,
  pane: null,
  attach(pane) {
    scroller.pane = pane;
    pane.addEventListener("scroll", scroller.onScroll, { passive: true });
  },
  onScroll() {
    const m = scroller.pane;
    scroller.stick = m.scrollHeight - m.scrollTop - m.clientHeight < 48;
  },
  toBottom() {
    scroller.pane.scrollTop = scroller.pane.scrollHeight;
    scroller.stick = true;
  },
};

/**
 * Everything that changed since the last frame; `render()` is called once a frame. When
 * rendering an unfinished tail gets expensive (a very long paragraph: its Markdown is
 * parsed again each time), frames are skipped so that it takes at most about a quarter of
 * the main thread and input stays responsive.
 */
export const frames = {
  dirty: new Set(),
  afterPaint: [],
  requested: false,
  resumeAt: 0,
  mark(item) {
    frames.dirty.add(item);
    frames.request();
  },
  request() {
    if (!frames.requested) {
      frames.requested = true;
      requestAnimationFrame(frames.run);
    }
  },
  run() {
    frames.requested = false;
    const started = performance.now();
    if (started < frames.resumeAt) {
      frames.request();
      return;
    }
    const stick = scroller.stick;
    const items = [...frames.dirty];
    frames.dirty.clear(); // an item still catching up marks itself again
    let tailCost = 0;
    for (const item of items) tailCost = Math.max(tailCost, item.render() || 0);
    if (stick) scroller.toBottom();
    frames.resumeAt = tailCost > 4 ? performance.now() + 3 * tailCost : 0;
    if (frames.afterPaint.length) {
      const callbacks = frames.afterPaint.splice(0);
      const rendered = now();
      // A message posted from a frame callback is delivered after that frame is painted.
      const channel = new MessageChannel();
      channel.port1.onmessage = () => {
        const painted = now();
        for (const callback of callbacks) callback(rendered, painted);
      };
      channel.port2.postMessage(null);
    }
  },
  /**
   * The stream is over: what waits for a frame and has a `flush` renders now (the rest,
   * Markdown, is `finish`ed by its view and marks itself again if it needs frames).
   */
  flush() {
    const items = [...frames.dirty];
    frames.dirty.clear();
    for (const item of items) if (item.flush) item.flush();
  },
};
