// Hold-to-confirm: the action fires only after the button is held for `ms`
// (pointer, touch, or Space/Enter held down). Letting go early cancels.

export function holdToConfirm(button, ms, onConfirm) {
  let timer = null;
  button.style.setProperty('--hold-ms', `${ms}ms`);
  const start = () => {
    if (button.disabled || timer !== null) return;
    button.classList.add('holding');
    timer = setTimeout(() => {
      timer = null;
      button.classList.remove('holding');
      onConfirm();
    }, ms);
  };
  const cancel = () => {
    if (timer !== null) clearTimeout(timer);
    timer = null;
    button.classList.remove('holding');
  };
  button.addEventListener('pointerdown', (e) => {
    if (e.button !== 0) return;
    button.setPointerCapture?.(e.pointerId);
    start();
  });
  for (const ev of ['pointerup', 'pointercancel', 'lostpointercapture', 'blur']) {
    button.addEventListener(ev, cancel);
  }
  button.addEventListener('keydown', (e) => {
    if (e.key !== ' ' && e.key !== 'Enter') return;
    e.preventDefault();
    if (!e.repeat) start();
  });
  button.addEventListener('keyup', (e) => {
    if (e.key === ' ' || e.key === 'Enter') cancel();
  });
  button.addEventListener('click', (e) => e.preventDefault());
  button.addEventListener('contextmenu', (e) => e.preventDefault());
  return cancel;
}
