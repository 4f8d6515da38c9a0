// The live stream (GET /dashboard/events, server-sent events). EventSource cannot send the
// tenant header or a bearer token, so the stream is read with fetch and parsed here
// (WHATWG HTML §9.2.6 event stream interpretation, the parts Toshi sends).
//
// On every (re)connection the server says `ready` once its subscription is in place; the page
// then takes a snapshot through the API, so a change made while the network was down is in the
// snapshot and one made during the snapshot comes as an event: the latest state is never lost.

export class LiveStream {
  constructor(api, types, attrs, handlers) {
    this.api = api;
    this.types = types;
    this.attrs = attrs; // the attributes the page uses: only those are sent
    this.handlers = handlers; // {ready, changes, resync, state, denied}
    this.retry = 2000;
    this.stopped = false;
    this.controller = null;
  }

  start() { this.loop(); }

  stop() {
    this.stopped = true;
    this.controller?.abort();
  }

  async loop() {
    while (!this.stopped) {
      this.handlers.state("connecting");
      try {
        await this.connect();
      } catch (error) {
        if (error.denied) { this.handlers.denied(error.status); return; }
      }
      if (this.stopped) return;
      this.handlers.state("offline");
      await new Promise((resolve) => setTimeout(resolve, this.retry));
    }
  }

  async connect() {
    this.controller = new AbortController();
    const query = new URLSearchParams({ type: this.types.join(","), attrs: this.attrs.join(",") });
    const url = `/dashboard/events?${query}`;
    const reply = await fetch(url, {
      headers: this.api.headers({ Accept: "text/event-stream" }),
      signal: this.controller.signal,
      cache: "no-store",
    });
    if (reply.status === 401 || reply.status === 403) {
      throw Object.assign(new Error("denied"), { denied: true, status: reply.status });
    }
    if (!reply.ok) throw new Error(`stream: HTTP ${reply.status}`);
    const reader = reply.body.pipeThrough(new TextDecoderStream()).getReader();
    let buffer = "";
    for (;;) {
      const { value, done } = await reader.read();
      if (done) return;
      buffer += value;
      let end;
      while ((end = buffer.indexOf("\n\n")) >= 0) {
        this.dispatch(buffer.slice(0, end));
        buffer = buffer.slice(end + 2);
      }
    }
  }

  dispatch(block) {
    let event = "message", data = "";
    for (const line of block.split("\n")) {
      if (line.startsWith(":")) continue;
      const colon = line.indexOf(":");
      const field = colon < 0 ? line : line.slice(0, colon);
      const text = colon < 0 ? "" : line.slice(colon + 1).replace(/^ /, "");
      if (field === "event") event = text;
      else if (field === "data") data += (data ? "\n" : "") + text;
      else if (field === "retry" && /^\d+$/.test(text)) this.retry = Number(text);
    }
    if (event === "ready") { this.handlers.state("live"); this.handlers.ready(); }
    else if (event === "changes") this.handlers.changes(JSON.parse(data));
    else if (event === "resync") this.handlers.resync();
  }
}
