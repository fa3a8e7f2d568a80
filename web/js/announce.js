// Says a short sentence to screen readers through the page's polite live region.

let clearTimer = null;

export function announce(text) {
  const el = document.getElementById('announcer');
  if (!el) return;
  // A live region announces changes: empty it first so a repeat is heard again.
  el.textContent = '';
  clearTimeout(clearTimer);
  setTimeout(() => { el.textContent = text; }, 50);
  clearTimer = setTimeout(() => { el.textContent = ''; }, 8000);
}
