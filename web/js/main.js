// The pipilot page: wires the link, the sticks, the hold-to-arm buttons and the live view.

import { announce } from './announce.js';
import { Controls, GamepadInput } from './controls.js';
import { holdToConfirm } from './hold.js';
import { drawHorizon } from './horizon.js';
import { Link } from './link.js';
import { renderAlarms, renderFcLink, renderReceiver, renderSbus, renderSim } from './panels.js';

const $ = (id) => document.getElementById(id);
const HOLD_MS = 1000;
// Telemetry older than this is lost: the FC streams AttitudeState every 130 ms.
const TELEMETRY_STALE_S = 1.0;

const link = new Link(`${location.protocol === 'https:' ? 'wss' : 'ws'}://${location.host}/ws`);
const controls = new Controls(link);
const gamepad = new GamepadInput(controls);
gamepad.onHoldButton = () => { if (!$('hold').disabled) $('hold').click(); };
// The page is halted while its sticks cannot be trusted; the banner goes with the
// halt: when the gamepad returns, the box is unticked, or the seat is gone.
controls.onHalt = (reason) => {
  const b = $('gamepad-banner');
  if (reason) {
    put(b, `${reason[0].toUpperCase()}${reason.slice(1)}: no sticks are sent, the pilot failsafe applies. `
      + (reason === 'page hidden' ? 'Show this tab again to fly.'
        : 'Reconnect it, or untick "Fly with the gamepad" to fly with the sliders.'));
  }
  b.hidden = !reason;
};

let canPilot = false;
let seat = { you: false, occupied: false, state: 'vacant' };
let lastState = null;
let takeoverArmed = -Infinity;
let noticeTimer = null;
let lastAttitude = null;
const cancelConfirm = [];
let holdAvailable = false;  // the vehicle has a flow deck (welcome, then every update)
let lastArmed = null;

function put(el, text) {
  if (el.textContent !== text) el.textContent = text;
}

function badge(el, text, cls) {
  put(el, text);
  const c = `badge ${cls || ''}`;
  if (el.className !== c) el.className = c;
}

function notice(text, kind = 'warn', ms = 4000) {
  const b = $('banner');
  put(b, text);
  b.className = `banner ${kind}`;
  b.hidden = false;
  clearTimeout(noticeTimer);
  if (ms) noticeTimer = setTimeout(() => { b.hidden = true; }, ms);
}

function clearNotice() { $('banner').hidden = true; }

function renderSeat() {
  const you = seat.you;
  controls.setPilot(you && link.open);
  $('arm').disabled = !you;
  $('disarm').disabled = !you;
  if (!you) for (const cancel of cancelConfirm) cancel();
  $('take').hidden = you;
  $('release').hidden = !you;
  $('take').disabled = !canPilot;
  $('take').textContent = seat.occupied && !you ? 'Take over' : 'Take control';
  if (you) badge($('seat'), seat.state === 'silent' ? 'PILOT: heartbeat lost' : 'PILOT (you fly)',
    seat.state === 'silent' ? 'bad' : 'ok');
  else badge($('seat'), seat.occupied ? 'observing: another page flies' : 'observing: seat free',
    seat.occupied ? 'warn' : '');
  renderHoldButton();
  if (seat.arm !== 'none' && seat.arm) notice(`${seat.arm === 'arm' ? 'Arming' : 'Disarming'}: waiting for the FC…`, 'warn', 0);
}

link.addEventListener('open', () => { badge($('conn'), 'online', 'ok'); clearNotice(); });
link.addEventListener('close', () => {
  badge($('conn'), 'offline', 'bad');
  // What the server said no longer holds: the banners below would be stale.
  $('failsafe-banner').hidden = true;
  $('telemetry-banner').hidden = true;
  seat = { ...seat, you: false };
  controls.setHoldMode(false);
  $('hold-banner').hidden = true;
  renderSeat();
  notice('Disconnected from pipilot: the pilot failsafe applies. Reconnecting…', 'bad', 0);
});
link.addEventListener('welcome', (e) => {
  canPilot = e.detail.can_pilot;
  holdAvailable = Boolean(e.detail.hold_available);
  $('help-line').textContent = canPilot
    ? 'Take control to fly. Keep this tab visible: the page is the pilot\'s heartbeat '
      + `(${e.detail.heartbeat_ms} ms timeout). Sticks centre on release; throttle stays.`
    : 'Read-only: this page observes. Open the URL with ?token=… to fly.';
  renderSeat();
});
link.addEventListener('seat', (e) => {
  const m = e.detail;
  const wasArmRequest = seat.arm && seat.arm !== 'none';
  seat = m;
  controls.setHoldMode(Boolean(m.you && m.hold));
  if (m.sticks) controls.set(m.sticks);
  renderSeat();
  if (wasArmRequest && m.arm === 'none') {
    if (m.arm_result === 'timeout') notice('The FC did not change its arming state in time: check the alarms and the throttle.', 'bad', 6000);
    else if (m.arm_result && m.arm_result !== 'done') notice(`Arm request ${m.arm_result}.`, 'warn', 4000);
    else clearNotice();
  }
});
// The server changed the hold's mode (asked for, or released: Hold off, heartbeat
// lost) and says where the throttle slider now is: mid with Hold on, the hover
// throttle when it goes off, so the craft does not jump.
link.addEventListener('hold', (e) => {
  const m = e.detail;
  const was = controls.holdMode;
  controls.setHoldMode(m.on);
  controls.set(m.sticks);
  controls.throttlePickup = true;
  renderHoldButton();
  if (m.on && !was) announce('Hold on: the throttle slider is now a climb rate; mid holds the height.');
  if (!m.on && was) {
    const why = m.note && m.note !== 'Hold turned off' ? ` (${m.note})` : '';
    notice(`Hold off${why}: the throttle is back at ${m.sticks.throttle.toFixed(2)}.`, why ? 'bad' : 'warn', 6000);
  }
  controls.changed();  // the sticks as now shown, in the mode now in force
});
link.addEventListener('error', (e) => notice(`Refused: ${e.detail.message}`, 'warn'));
link.addEventListener('state', (e) => { lastState = e.detail; });

function render() {
  requestAnimationFrame(render);
  const s = lastState;
  if (!s) return;
  lastState = null;
  const armed = s.flight?.Armed ?? null;
  const a = $('armed');
  put(a, armed ? armed.toUpperCase() : 'NO FLIGHTSTATUS');
  const cls = `armed-state ${armed ? armed.toLowerCase() : ''}`;
  if (a.className !== cls) a.className = cls;
  put($('mode'), s.flight?.FlightMode ?? '–');
  put($('att'), s.attitude
    ? ['Roll', 'Pitch', 'Yaw'].map((k) => `${(s.attitude[k] ?? 0).toFixed(1)}°`).join(' / ') : '–');
  const att = s.attitude ? `${s.attitude.Roll?.toFixed(1)} ${s.attitude.Pitch?.toFixed(1)}` : '';
  if (att !== lastAttitude) {  // the canvas is redrawn only when the attitude moved
    lastAttitude = att;
    drawHorizon($('horizon'), s.attitude);
  }
  renderReceiver(s.receiver);
  renderAlarms(s.alarms);
  renderSbus(s.sbus);
  renderFcLink(s, link.rtt);
  renderSim(s.sim);
  lastArmed = armed;
  renderHold(s.hold, s.hold_truth, s.seat?.hold);
  renderTelemetry(s);
  put($('rtt'), link.rtt === null ? 'rtt –' : `rtt ${link.rtt.toFixed(1)} ms`);
  // FAILSAFE while the core, not a pilot or a mission, flies the craft (the server
  // decides: a throttle cut after landing is not one); gone when it ends.
  const fsb = $('failsafe-banner');
  if (s.sbus?.failsafe) put(fsb, `FAILSAFE: ${s.sbus.failsafe_reason || 'active'}`);
  fsb.hidden = !s.sbus?.failsafe;
}

// The FC telemetry link: lost once it was connected and no longer is, or when its
// newest packet is older than TELEMETRY_STALE_S. No telemetry at all (`pipilot fly`
// without --telemetry-port) is said plainly, not as an alarm.
function renderTelemetry(s) {
  const t = s.telemetry_link ?? { configured: true, connected: s.telemetry_connected,
    was_connected: s.telemetry_connected, age: null };
  const stale = t.age !== null && t.age > TELEMETRY_STALE_S;
  const lost = t.configured && ((t.was_connected && !t.connected) || stale);
  if (!t.configured) badge($('telemetry'), 'telemetry: none', '');
  else if (lost) badge($('telemetry'), 'telemetry: lost', 'bad');
  else badge($('telemetry'), t.connected ? 'telemetry: connected' : 'telemetry: disconnected',
    t.connected ? 'ok' : 'bad');
  $('telemetry').title = t.configured ? '' : 'No telemetry port: the FC\'s state is not shown '
    + '(pipilot fly --telemetry-port)';
  if (lost) put($('telemetry-age'), t.age === null ? 'no packet yet' : `${t.age.toFixed(1)} s`);
  $('telemetry-banner').hidden = !lost;
}
requestAnimationFrame(render);

function renderHoldButton() {
  const b = $('hold');
  let why = null;
  if (!holdAvailable) why = 'Hold is not available: this vehicle has no flow deck.';
  else if (!seat.you) why = 'Take control to use Hold.';
  else if (!controls.holdMode && lastArmed !== 'Armed') why = 'Arm and take off to use Hold.';
  b.disabled = why !== null && !(controls.holdMode && seat.you);
  const pressed = String(controls.holdMode);
  if (b.getAttribute('aria-pressed') !== pressed) b.setAttribute('aria-pressed', pressed);
  put($('hold-why'), why ?? (controls.holdMode
    ? 'Hold is on: roll and pitch move the held point; the throttle slider is a climb rate (mid holds the height).'
    : 'Hold: the flow deck holds position and height.'));
}

const num = (v, d = 2) => (typeof v === 'number' ? v.toFixed(d) : '–');

// The hold's estimate, and in the simulator the truth beside it; WITHDRAWN (its
// sensors went stale while it was on) is a banner with the reason.
function renderHold(h, truth, ph) {
  holdAvailable = Boolean(h);
  renderHoldButton();
  const st = $('hold-state');
  const banner = $('hold-banner');
  if (!h) {
    put(st, 'no flow deck');
    for (const id of ['hold-height', 'hold-velocity', 'hold-climb', 'hold-hover', 'hold-rates']) put($(id), '–');
    banner.hidden = true;
    return;
  }
  put(st, `${h.state.toUpperCase()}${h.reason && h.state !== 'holding' ? `: ${h.reason}` : ''}`);
  const cls = `mono ${h.state}`;
  if (st.className !== cls) st.className = cls;
  const both = (est, tru) => `${est} est` + (truth ? ` / ${tru} true` : '');
  const v = h.velocity_mps;
  put($('hold-height'), both(num(h.height_m), num(truth?.height_m)));
  put($('hold-velocity'), both(v ? `${num(v[0])}, ${num(v[1])}` : '–',
    truth ? `${num(truth.velocity_mps[0])}, ${num(truth.velocity_mps[1])}` : '–'));
  put($('hold-climb'), both(num(h.climb_mps), num(truth?.climb_mps)));
  put($('hold-hover'), num(h.hover_throttle, 3));
  put($('hold-rates'), holdRates(h));
  const on = Boolean(ph?.on);
  if (on && h.state === 'withdrawn') {
    const tilt = ph.fallback_tilt;
    const tilted = tilt && (tilt[0] !== 0 || tilt[1] !== 0)
      ? ` Tilted against the wind it measured (roll ${num(tilt[0])}, pitch ${num(tilt[1])}), fading to level.` : '';
    put(banner, `HOLD WITHDRAWN: ${h.reason || 'sensors lost'}. You fly: an attitude hover at throttle `
      + `${num(h.hover_throttle)}; the throttle slider trims the climb a little.${tilted} It holds again when its sensors are back.`);
  } else if (on && h.state !== 'holding') {
    put(banner, `Hold engaging: ${h.reason || 'waiting for the flow deck'}. You fly meanwhile.`);
  }
  const cls2 = `banner ${h.state === 'withdrawn' ? 'bad' : 'warn'}`;
  if (banner.className !== cls2) banner.className = cls2;
  banner.hidden = !(on && h.state !== 'holding');
}

// Where the body rates come from, and the AttitudeState period the FC took.
function holdRates(h) {
  const src = h.rates === 'imu' ? 'IMU' : 'AttitudeState';
  if (typeof h.attitude_period_ms === 'number') return `${src}; attitude every ${h.attitude_period_ms} ms`;
  if (h.attitude_period_error) return `${src}; attitude period not set (${h.attitude_period_error})`;
  return `${src}; attitude period not set yet`;
}

$('hold').addEventListener('click', () => {
  link.send({ type: 'hold', on: !controls.holdMode, seq: ++controls.seq });
});

$('take').addEventListener('click', () => {
  if (seat.occupied && !seat.you) {
    // Taking the seat from another pilot needs a second, deliberate click.
    if (performance.now() - takeoverArmed > 3000) {
      takeoverArmed = performance.now();
      notice('Another page is flying. Click "Take over" again within 3 s to take control from it.', 'warn', 3000);
      return;
    }
    link.send({ type: 'take', force: true });
  } else {
    link.send({ type: 'take' });
  }
});
// Releasing the seat hands the craft to the failsafe: it is held to confirm, like Disarm.
cancelConfirm.push(
  holdToConfirm($('release'), HOLD_MS, () => link.send({ type: 'release' }), $('release-confirm')),
  holdToConfirm($('arm'), HOLD_MS, () => link.send({ type: 'arm' }), $('arm-confirm')),
  holdToConfirm($('disarm'), HOLD_MS, () => link.send({ type: 'disarm' }), $('disarm-confirm')),
);

async function start() {
  drawHorizon($('horizon'), null);
  renderSeat();
  try {
    const r = await fetch('/api/status', { credentials: 'same-origin' });
    if (r.status === 401) {
      notice('Not logged in: open the address pipilot printed at start (…/?token=…).', 'bad', 0);
      return;
    }
  } catch { /* server down: the link retries */ }
  link.connect();
}
start();
