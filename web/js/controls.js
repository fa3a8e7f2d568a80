// The sticks: four sliders plus four accessories, keyboard, touch and gamepad.
// Roll, pitch and yaw centre when released; throttle stays where it is left.
// Changes go out at once while the page's send budget allows (SEND_RATE_PER_S
// sustained, SEND_BURST at once), else as soon as it does; while this page
// flies, a keepalive goes out every KEEPALIVE_MS, which is the pilot's heartbeat.

// Under the server's 80 messages/s per page with the 1/s ping: a drag's input
// events (one a display frame, 60 Hz) all go out the moment they happen; only a
// faster source (a 120 Hz display) waits, at most 1000 / SEND_RATE_PER_S ms.
const SEND_RATE_PER_S = 75;
const SEND_BURST = 4;
const KEEPALIVE_MS = 50;  // six chances within the 300 ms heartbeat timeout
const STICKS = ['throttle', 'yaw', 'roll', 'pitch'];
const ACCESSORIES = ['acc0', 'acc1', 'acc2', 'acc3'];
const CENTRE_KEYS = new Set(['ArrowLeft', 'ArrowRight', 'ArrowUp', 'ArrowDown', 'PageUp', 'PageDown', 'Home', 'End']);

export class Controls {
  constructor(link) {
    this.link = link;
    this.inputs = Object.fromEntries([...STICKS, ...ACCESSORIES].map((id) => [id, document.getElementById(id)]));
    this.pilot = false;
    this.seq = 0;
    this.lastSent = -1e9;
    this._tokens = SEND_BURST;
    this._tokensAt = performance.now();
    this._pending = null;
    this._dragging = null;
    // Set (to a reason) while the sticks cannot be trusted, e.g. the gamepad flying
    // the craft went away: nothing is sent, so the server's lost-pilot failsafe applies.
    this.halted = null;
    this.padEnabled = false;
    // Hold on (as the server last said): the throttle slider is a climb-rate
    // command, mid holds the height. Every control message says which, so the
    // server never takes a climb command for a throttle or the other way round.
    this.holdMode = false;
    // Set when the server moved the throttle slider (Hold on: mid; off: the hover
    // throttle): a gamepad's throttle takes over again only once it reaches it.
    this.throttlePickup = false;
    for (const [id, el] of Object.entries(this.inputs)) {
      el.addEventListener('input', () => this.changed(id));
      if (el.hasAttribute('data-centre')) this._autoCentre(el, id);
    }
    document.addEventListener('visibilitychange', () => this._visibility());
    window.addEventListener('pointerup', () => this._release());
    window.addEventListener('pointercancel', () => this._release());
    // The heartbeat: only when nothing else went out lately, and never delaying a change.
    setInterval(() => {
      if (this.pilot && !this.halted && performance.now() - this.lastSent >= KEEPALIVE_MS - 10) this.send();
    }, KEEPALIVE_MS / 4);
  }

  setHalt(reason) {
    if (this.halted === reason) return;
    this.halted = reason;
    this.onHalt?.(reason);
  }

  // A hidden tab's timers fire once a second at best: rather than a heartbeat that
  // comes and goes (failsafe, stale sticks, failsafe...), fall silent until visible.
  _visibility() {
    if (document.hidden) {
      if (this.pilot) this.setHalt('page hidden');
    } else if (this.halted === 'page hidden') {
      // Back: the gamepad's poll resends its sticks as they are now; else the sliders'.
      this.setHalt(this.padEnabled ? 'waiting for the gamepad' : null);
      if (!this.halted) this.changed();
    }
  }

  _autoCentre(el, id) {
    el.addEventListener('pointerdown', () => { this._dragging = el; });
    el.addEventListener('keyup', (e) => { if (CENTRE_KEYS.has(e.key)) this.centre(el, id); });
    el.addEventListener('blur', () => this.centre(el, id));
  }

  _release() {
    const el = this._dragging;
    this._dragging = null;
    if (el) this.centre(el, el.id);
  }

  centre(el, id) {
    if (Number(el.value) === 0) return;
    // A deflection still waiting for the send budget goes first: a quick flick is not lost.
    if (this._pending !== null) this.send();
    el.value = '0';
    this.changed(id);
  }

  values() {
    const v = (id) => Number(this.inputs[id].value);
    return {
      throttle: v('throttle'), yaw: v('yaw'), roll: v('roll'), pitch: v('pitch'),
      accessories: ACCESSORIES.map(v), hold: this.holdMode,
    };
  }

  setHoldMode(on) {
    this.holdMode = on;
    const t = this.inputs.throttle;
    const name = on ? 'Throttle: climb rate' : 'Throttle';
    document.getElementById('throttle-label').textContent = name;
    t.setAttribute('aria-label', name);
    document.getElementById('throttle-help').hidden = !on;
    this._show();
  }

  set(sticks) {
    for (const id of STICKS) this.inputs[id].value = String(sticks[id]);
    ACCESSORIES.forEach((id, i) => { this.inputs[id].value = String(sticks.accessories[i]); });
    this._show();
  }

  setPilot(on) {
    // A new spell in the seat starts clean; a lost seat has nothing left to halt
    // (and its banner goes with it).
    if (on !== this.pilot) this.setHalt(null);
    this.pilot = on;
    for (const el of Object.values(this.inputs)) el.disabled = !on;
  }

  changed() {
    if (this.pilot && !this.halted && this._pending === null) {
      // A send already waiting reads the sliders as they are when it goes.
      const wait = this._wait(performance.now());
      if (wait <= 0) this.send();
      else this._pending = setTimeout(() => this.send(), wait);
    }
    this._show();
  }

  // The send budget: a token bucket refilled at SEND_RATE_PER_S, SEND_BURST deep.
  _refill(now) {
    this._tokens = Math.min(SEND_BURST, this._tokens + (now - this._tokensAt) * SEND_RATE_PER_S / 1000);
    this._tokensAt = now;
  }

  // Milliseconds until a message may go (0: now).
  _wait(now) {
    this._refill(now);
    return this._tokens >= 1 ? 0 : (1 - this._tokens) * 1000 / SEND_RATE_PER_S;
  }

  send() {
    clearTimeout(this._pending);
    this._pending = null;
    if (this.halted) return;
    const now = performance.now();
    this._refill(now);
    this._tokens -= 1;  // a flush (centre) may overdraw it: the next change waits longer
    this.lastSent = now;
    this.link.send({ type: 'control', seq: ++this.seq, ...this.values() });
  }

  _show() {
    for (const id of STICKS) {
      document.getElementById(`${id}-v`).textContent = Number(this.inputs[id].value).toFixed(2);
    }
    // With Hold on, the slider's value is said as what it asks for.
    const t = this.inputs.throttle;
    const c = (Number(t.value) - 0.5) * 2;
    if (this.holdMode) {
      t.setAttribute('aria-valuetext', Math.abs(c) < 0.005 ? 'hold the height'
        : `${c > 0 ? 'climb' : 'descend'} ${Math.round(Math.abs(c) * 100)} %`);
    } else {
      t.removeAttribute('aria-valuetext');
    }
  }
}

// -- gamepad -----------------------------------------------------------------
// Each stick comes from an axis (-1..1) or a button (0..1, e.g. a trigger),
// optionally inverted. Throttle defaults to the right trigger so that a
// released gamepad means throttle off.

const DEFAULT_MAP = {
  throttle: { kind: 'button', index: 7, invert: false },
  yaw: { kind: 'axis', index: 0, invert: false },
  roll: { kind: 'axis', index: 2, invert: false },
  pitch: { kind: 'axis', index: 3, invert: true },
};
const DEADZONE = 0.05;
// A button (by default 3, "Y" on the standard layout) toggles Hold when pressed.
const DEFAULT_HOLD_BUTTON = 3;
// How close the gamepad's throttle must come to the slider to take it back.
const PICKUP = 0.03;

export class GamepadInput {
  constructor(controls) {
    this.controls = controls;
    this.map = this._load();
    this.enabled = false;
    this._holdWasDown = false;
    this.onHoldButton = null;
    this._buildUi();
    window.addEventListener('gamepadconnected', (e) => this._status(e.gamepad.id));
    window.addEventListener('gamepaddisconnected', () => this._status(null));
    requestAnimationFrame(() => this._poll());
  }

  _load() {
    const defaults = { ...DEFAULT_MAP, holdButton: DEFAULT_HOLD_BUTTON };
    try { return { ...defaults, ...JSON.parse(localStorage.getItem('pipilot.gamepad') || '{}') }; }
    catch { return defaults; }
  }

  _save() { localStorage.setItem('pipilot.gamepad', JSON.stringify(this.map)); }

  _status(id) { document.getElementById('gp-status').textContent = id ? `(${id})` : 'none'; }

  _buildUi() {
    const root = document.getElementById('gp-map');
    const on = document.createElement('label');
    on.innerHTML = '<input type="checkbox" id="gp-enable"> Fly with the gamepad';
    root.append(on, document.createElement('br'));
    on.querySelector('input').addEventListener('change', (e) => {
      this.enabled = e.target.checked;
      this.controls.padEnabled = this.enabled;
      if (!this.enabled) this._halt(null);  // the sliders, as shown, fly again
    });
    for (const stick of Object.keys(DEFAULT_MAP)) {
      const m = this.map[stick];
      const row = document.createElement('div');
      row.innerHTML = `<strong>${stick}</strong>
        <label>source <select aria-label="${stick} gamepad source"><option value="axis">axis</option><option value="button">button</option></select></label>
        <label>index <input type="number" min="0" max="31" aria-label="${stick} gamepad index"></label>
        <label><input type="checkbox" aria-label="${stick} gamepad invert"> invert</label>`;
      const [sel, idx, inv] = row.querySelectorAll('select, input');
      sel.value = m.kind; idx.value = m.index; inv.checked = m.invert;
      const update = () => {
        this.map[stick] = { kind: sel.value, index: Math.max(0, Math.min(31, Number(idx.value) | 0)), invert: inv.checked };
        this._save();
      };
      for (const el of [sel, idx, inv]) el.addEventListener('change', update);
      root.append(row);
    }
    const hold = document.createElement('div');
    hold.innerHTML = `<strong>Hold</strong>
      <label>button <input type="number" min="0" max="31" aria-label="Hold gamepad button"></label>`;
    const hb = hold.querySelector('input');
    hb.value = this.map.holdButton;
    hb.addEventListener('change', () => {
      this.map.holdButton = Math.max(0, Math.min(31, Number(hb.value) | 0));
      this._save();
    });
    root.append(hold);
  }

  _read(pad, m, stick) {
    let v = m.kind === 'axis' ? pad.axes[m.index] : pad.buttons[m.index]?.value;
    if (typeof v !== 'number' || !Number.isFinite(v)) return null;
    if (m.invert) v = m.kind === 'axis' ? -v : 1 - v;
    if (stick === 'throttle') {
      if (m.kind === 'axis') v = (v + 1) / 2;
      return Math.min(1, Math.max(0, v));
    }
    if (Math.abs(v) < DEADZONE) v = 0;
    return Math.min(1, Math.max(-1, v));
  }

  _halt(reason) { this.controls.setHalt(reason); }

  _poll() {
    requestAnimationFrame(() => this._poll());
    const pad = [...(navigator.getGamepads?.() || [])].find((p) => p);
    const live = document.getElementById('gp-live');
    if (!pad) {
      // Flying with a gamepad that is gone: the sliders would go on sending its
      // last sticks for ever. Fall silent instead, so the lost-pilot failsafe applies.
      if (this.enabled && this.controls.pilot) this._halt('gamepad lost');
      return;
    }
    const vals = {};
    for (const stick of Object.keys(DEFAULT_MAP)) vals[stick] = this._read(pad, this.map[stick], stick);
    live.textContent = Object.entries(vals).map(([k, v]) => `${k} ${v === null ? '–' : v.toFixed(2)}`).join('  ');
    if (!this.enabled || !this.controls.pilot) return;
    // Hold toggles on the button's press, not while it is held down.
    const down = Boolean(pad.buttons[this.map.holdButton]?.pressed);
    if (down && !this._holdWasDown) this.onHoldButton?.();
    this._holdWasDown = down;
    let moved = this.controls.halted !== null;  // back: send its sticks as they are now
    this._halt(null);
    const t = this.controls.inputs.throttle;
    if (this.controls.throttlePickup && vals.throttle !== null) {
      if (Math.abs(Number(t.value) - vals.throttle) <= PICKUP) this.controls.throttlePickup = false;
      else {
        live.textContent += `  (throttle: move to ${Number(t.value).toFixed(2)} to take it back)`;
        vals.throttle = null;
      }
    }
    for (const [stick, v] of Object.entries(vals)) {
      const el = this.controls.inputs[stick];
      if (v !== null && Math.abs(Number(el.value) - v) >= 0.005) { el.value = String(v); moved = true; }
    }
    if (moved) this.controls.changed();
  }
}
