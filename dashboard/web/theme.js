// Sets the page's theme before it is drawn: the operator's choice (localStorage), else the
// system's preference. Loaded in <head> by both pages; app.js adds the switch.
'use strict';
(() => {
  let t = null;
  try { t = localStorage.getItem('immunizer-theme'); } catch (_) { /* storage disabled */ }
  if (t !== 'light' && t !== 'dark') t = window.matchMedia && window.matchMedia('(prefers-color-scheme: light)').matches ? 'light' : 'dark';
  document.documentElement.dataset.theme = t;
})();
