// The pipilot page: wires the link, the sticks, the hold-to-arm buttons and the live view.

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
new GamepadInput(controls);
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
  if (seat.arm !== 'none' && seat.arm) notice(`${seat.arm === 'arm' ? 'Arming' : 'Disarming'}: waiting for the FC…`, 'warn', 0);
}

link.addEventListener('open', () => { badge($('conn'), 'online', 'ok'); clearNotice(); });
link.addEventListener('close', () => {
  badge($('conn'), 'offline', 'bad');
  // What the server said no longer holds: the banners below would be stale.
  $('failsafe-banner').hidden = true;
  $('telemetry-banner').hidden = true;
  seat = { ...seat, you: false };
  renderSeat();
  notice('Disconnected from pipilot: the pilot failsafe applies. Reconnecting…', 'bad', 0);
});
link.addEventListener('welcome', (e) => {
  canPilot = e.detail.can_pilot;
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
  if (m.sticks) controls.set(m.sticks);
  renderSeat();
  if (wasArmRequest && m.arm === 'none') {
    if (m.arm_result === 'timeout') notice('The FC did not change its arming state in time: check the alarms and the throttle.', 'bad', 6000);
    else if (m.arm_result && m.arm_result !== 'done') notice(`Arm request ${m.arm_result}.`, 'warn', 4000);
    else clearNotice();
  }
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
