// Live-view panels: receiver, alarms, links, S.Bus statistics, sim ground truth.

const $ = (id) => document.getElementById(id);
const fmt = (v, d = 2) => (typeof v === 'number' ? v.toFixed(d) : (v ?? '–'));

const SBUS_LABELS = {
  rate_hz: ['Frame rate', (v) => `${fmt(v, 1)} /s`],
  period_ms: ['Period', (v) => `${fmt(v, 2)} ms`],
  frames_sent: ['Frames sent', (v) => fmt(v, 0)],
  lateness_p50_us: ['Lateness p50', (v) => `${fmt(v, 0)} µs`],
  lateness_p99_us: ['Lateness p99', (v) => `${fmt(v, 0)} µs`],
  lateness_max_us: ['Lateness max', (v) => `${fmt(v, 0)} µs`],
  missed_slots: ['Missed slots', (v) => fmt(v, 0)],
  watchdog_frames: ['Watchdog frames', (v) => fmt(v, 0)],
  frames_accepted: ['Accepted by FC (sim)', (v) => fmt(v, 0)],
  frames_rejected: ['Rejected by FC (sim)', (v) => (typeof v === 'object' && v ? Object.entries(v).map(([k, n]) => `${k} ${n}`).join(', ') || '0' : fmt(v, 0))],
  accepted_fraction: ['Accepted fraction', (v) => (typeof v === 'number' ? `${(100 * v).toFixed(1)} %` : '–')],
  failsafe: ['Core failsafe', (v) => (v ? 'ACTIVE' : 'off')],
  failsafe_state: ['Core state', (v) => v || '–'],
  failsafe_reason: ['Why', (v) => v || '–'],
  source: ['Flying source', (v) => v || 'none'],
};

// Rows are rebuilt only when the set of keys changes; otherwise only changed
// text is written, so twenty updates a second cost the page next to nothing.
function kv(dl, rows) {
  const keys = rows.map(([k]) => k).join('\n');
  if (dl.dataset.keys !== keys) {
    dl.dataset.keys = keys;
    dl.replaceChildren(...rows.flatMap(([k]) => {
      const dt = document.createElement('dt'); dt.textContent = k;
      const dd = document.createElement('dd'); dd.className = 'mono';
      return [dt, dd];
    }));
  }
  const dds = dl.querySelectorAll('dd');
  rows.forEach(([, v], i) => { setText(dds[i], v); });
}

function setText(el, text) {
  if (el.textContent !== text) el.textContent = text;
}

function bar(id, v, centred) {
  const el = $(`${id}-bar`);
  if (typeof v !== 'number') { el.style.width = '0'; return; }
  if (centred) {
    const c = Math.max(-1, Math.min(1, v));
    el.style.left = `${50 + Math.min(0, c) * 50}%`;
    el.style.width = `${Math.abs(c) * 50}%`;
  } else {
    el.style.left = '0';
    el.style.width = `${Math.max(0, Math.min(1, v)) * 100}%`;
  }
}

export function renderReceiver(rx) {
  for (const [key, id, centred] of [['Throttle', 'rx-throttle', false], ['Roll', 'rx-roll', true],
    ['Pitch', 'rx-pitch', true], ['Yaw', 'rx-yaw', true]]) {
    setText($(id), rx ? fmt(rx[key], 3) : '–');
    bar(id, rx?.[key], centred);
  }
  // 65533..65535: the firmware's "no driver", "timeout" and "invalid" markers.
  setText($('rx-ch'), rx && Array.isArray(rx.Channel)
    ? rx.Channel.map((v) => (v >= 65533 ? '–' : v)).join(' ') : '–');
}

let lastAlarms = '';

export function renderAlarms(alarms) {
  const ul = $('alarms');
  const key = JSON.stringify(alarms ?? null);
  if (key === lastAlarms) return;
  lastAlarms = key;
  if (alarms === null || alarms === undefined) {
    ul.innerHTML = '<li class="muted">no SystemAlarms yet</li>';
    return;
  }
  const items = Object.entries(alarms);
  if (!items.length) { ul.innerHTML = '<li class="muted">all OK</li>'; return; }
  ul.replaceChildren(...items.map(([name, level]) => {
    const li = document.createElement('li');
    li.className = `lvl-${level}`;
    li.textContent = `${name}: ${level}`;
    return li;
  }));
}

export function renderSbus(sbus) {
  const rows = [];
  for (const [key, [label, f]] of Object.entries(SBUS_LABELS)) {
    if (sbus && key in sbus) rows.push([label, f(sbus[key])]);
  }
  kv($('sbus'), rows.length ? rows : [['S.Bus', 'no statistics']]);
}

export function renderFcLink(state, rtt) {
  const fl = state.fc_link;
  const t = state.telemetry_link;
  kv($('fclink'), [
    ['Connected', t && !t.configured ? 'no telemetry port' : (state.telemetry_connected ? 'yes' : 'no')],
    ['Last packet', typeof t?.age === 'number' ? `${t.age.toFixed(1)} s ago` : '–'],
    ['FC status', fl?.Status ?? '–'],
    ['FC rx / tx', fl ? `${fmt(fl.RxDataRate, 0)} / ${fmt(fl.TxDataRate, 0)} B/s` : '–'],
    ['Page round trip', rtt === null ? '–' : `${rtt.toFixed(1)} ms`],
    ['Pages connected', String(state.clients ?? '–')],
  ]);
}

// Ground truth (sim only): a top-view trail of the last TRAIL points.
const TRAIL = 1200;
const trail = [];

function xyz(p) {
  if (Array.isArray(p)) return p;
  if (p && typeof p === 'object') return [p.x ?? p.north ?? 0, p.y ?? p.east ?? 0, p.z ?? p.down ?? 0];
  return null;
}

export function renderSim(sim) {
  const panel = $('sim-panel');
  panel.hidden = !sim;
  if (!sim) return;
  const p = xyz(sim.position);
  if (!p) return;
  const last = trail[trail.length - 1];
  if (last && Math.hypot(p[0] - last[0], p[1] - last[1]) < 0.005) return;  // nothing to draw
  trail.push(p);
  if (trail.length > TRAIL) trail.shift();
  $('sim-pos').textContent = p.map((v) => fmt(v, 2)).join(', ');
  $('sim-drift').textContent = fmt(sim.drift_m ?? Math.hypot(p[0] - trail[0][0], p[1] - trail[0][1]), 2);
  const c = $('plot');
  const ctx = c.getContext('2d');
  const w = c.width, h = c.height;
  let extent = 1;
  for (const q of trail) extent = Math.max(extent, Math.abs(q[0]), Math.abs(q[1]));
  const s = (Math.min(w, h) / 2 - 12) / (extent * 1.1);
  ctx.clearRect(0, 0, w, h);
  ctx.strokeStyle = '#2a323d';
  ctx.beginPath();
  ctx.moveTo(w / 2, 0); ctx.lineTo(w / 2, h); ctx.moveTo(0, h / 2); ctx.lineTo(w, h / 2);
  ctx.stroke();
  ctx.fillStyle = '#8b97a5';
  ctx.font = '11px system-ui';
  ctx.fillText(`N ↑  scale ±${(extent * 1.1).toFixed(1)} m`, 6, 14);
  // x north (up), y east (right)
  ctx.strokeStyle = '#3d8bfd';
  ctx.lineWidth = 1.5;
  ctx.beginPath();
  trail.forEach((q, i) => {
    const X = w / 2 + q[1] * s, Y = h / 2 - q[0] * s;
    if (i) ctx.lineTo(X, Y); else ctx.moveTo(X, Y);
  });
  ctx.stroke();
  ctx.fillStyle = '#ffd23f';
  ctx.beginPath();
  ctx.arc(w / 2 + p[1] * s, h / 2 - p[0] * s, 4, 0, 2 * Math.PI);
  ctx.fill();
}
