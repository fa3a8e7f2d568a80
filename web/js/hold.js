// Hold-to-confirm, with a two-step alternative for click-only, keyboard and
// screen reader users.
//
// Holding the button (pointer, touch, or Space/Enter held down) for `ms` fires
// the action; letting go early cancels the hold. A press that ends early, or a
// click that came without a press (a screen reader's), fires nothing: it shows
// the confirm button next to it (announced), which must then be activated on
// its own within CONFIRM_WINDOW_MS. The confirm button ignores activations in
// its first CONFIRM_GUARD_MS, so a double click or a bouncing key is still one
// act, never two. Escape, the window running out, or cancel() withdraws it.

import { announce } from './announce.js';

export const CONFIRM_WINDOW_MS = 5000;
export const CONFIRM_GUARD_MS = 400;
const AFTER_PRESS_MS = 500;  // a click this soon after a press is that press's own

export function holdToConfirm(button, ms, onConfirm, confirm = null) {
  let timer = null;
  let pressEnded = -Infinity;
  let offered = null;  // performance.now() when the confirm button was shown
  let expiry = null;
  const action = (confirm?.dataset.action) || button.textContent.trim();
  button.style.setProperty('--hold-ms', `${ms}ms`);

  const withdraw = (why) => {
    if (offered === null) return;
    offered = null;
    clearTimeout(expiry);
    if (confirm) confirm.hidden = true;
    if (why) announce(why);
  };
  const offer = () => {
    if (!confirm || button.disabled || button.hidden) return;
    if (offered === null) {
      announce(`${confirm.textContent} within ${CONFIRM_WINDOW_MS / 1000} s to ${action.toLowerCase()}; Escape cancels.`);
    }
    offered = performance.now();
    confirm.hidden = false;
    clearTimeout(expiry);
    expiry = setTimeout(() => withdraw(`${action}: not confirmed.`), CONFIRM_WINDOW_MS);
  };
  const start = () => {
    if (button.disabled || timer !== null) return;
    button.classList.add('holding');
    timer = setTimeout(() => {
      timer = null;
      button.classList.remove('holding');
      withdraw(null);
      onConfirm();
    }, ms);
  };
  // Ends a hold; true if it was still under way (let go early).
  const stop = () => {
    const early = timer !== null;
    if (early) clearTimeout(timer);
    timer = null;
    button.classList.remove('holding');
    return early;
  };
  const cancel = () => { stop(); withdraw(null); };

  button.addEventListener('pointerdown', (e) => {
    if (e.button !== 0) return;
    button.setPointerCapture?.(e.pointerId);
    start();
  });
  button.addEventListener('pointerup', (e) => {
    pressEnded = performance.now();
    const r = button.getBoundingClientRect();
    const inside = e.clientX >= r.left && e.clientX <= r.right && e.clientY >= r.top && e.clientY <= r.bottom;
    if (stop() && inside) offer();
  });
  for (const ev of ['pointercancel', 'lostpointercapture', 'blur']) button.addEventListener(ev, stop);
  button.addEventListener('keydown', (e) => {
    if (e.key === 'Escape') { withdraw(`${action}: cancelled.`); return; }
    if (e.key !== ' ' && e.key !== 'Enter') return;
    e.preventDefault();  // no click: the hold decides
    if (!e.repeat) start();
  });
  button.addEventListener('keyup', (e) => {
    if (e.key !== ' ' && e.key !== 'Enter') return;
    e.preventDefault();
    pressEnded = performance.now();
    if (stop()) offer();
  });
  button.addEventListener('click', (e) => {
    e.preventDefault();
    // A press handled above, or a hold that fired, ends in a click too.
    if (performance.now() - pressEnded > AFTER_PRESS_MS && timer === null) offer();
  });
  button.addEventListener('contextmenu', (e) => e.preventDefault());
  if (confirm) {
    confirm.addEventListener('click', () => {
      if (offered === null || button.disabled || button.hidden) { withdraw(null); return; }
      if (performance.now() - offered < CONFIRM_GUARD_MS) return;
      withdraw(null);
      onConfirm();
    });
    confirm.addEventListener('keydown', (e) => {
      if (e.key === 'Escape') withdraw(`${action}: cancelled.`);
    });
  }
  return cancel;
}
