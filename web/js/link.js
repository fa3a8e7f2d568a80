// The websocket to the pipilot server: JSON messages in and out, reconnection,
// round-trip latency. Messages arrive as events named by their "type".

export class Link extends EventTarget {
  constructor(url) {
    super();
    this.url = url;
    this.ws = null;
    this.rtt = null;
    this._retry = null;
    this._pinger = null;
  }

  get open() { return this.ws !== null && this.ws.readyState === WebSocket.OPEN; }

  connect() {
    clearTimeout(this._retry);
    const ws = new WebSocket(this.url);
    this.ws = ws;
    ws.onopen = () => {
      this.dispatchEvent(new Event('open'));
      clearInterval(this._pinger);
      this._pinger = setInterval(() => this.send({ type: 'ping', t: performance.now() }), 1000);
    };
    ws.onmessage = (ev) => {
      let msg;
      try { msg = JSON.parse(ev.data); } catch { return; }
      if (msg.type === 'pong') this.rtt = performance.now() - msg.t;
      this.dispatchEvent(new CustomEvent(msg.type, { detail: msg }));
    };
    ws.onclose = (ev) => {
      clearInterval(this._pinger);
      if (this.ws !== ws) return;
      this.ws = null;
      this.dispatchEvent(new CustomEvent('close', { detail: { code: ev.code } }));
      this._retry = setTimeout(() => this.connect(), 1000);
    };
  }

  send(obj) {
    if (!this.open) return false;
    this.ws.send(JSON.stringify(obj));
    return true;
  }
}
