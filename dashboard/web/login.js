// Sign-in page: POST /api/login (JSON), then the ops page. The session cookie is HttpOnly;
// the page reads its CSRF token from /api/session.
'use strict';
(() => {
  const form = document.getElementById('login');
  const error = document.getElementById('error');
  form.onsubmit = async (ev) => {
    ev.preventDefault();
    error.textContent = '';
    const body = { user: document.getElementById('user').value, password: document.getElementById('password').value };
    try {
      const r = await fetch('/api/login', { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify(body) });
      if (r.ok) { location.href = '/'; return; }
      let j = null;
      try { j = await r.json(); } catch (_) { /* empty */ }
      error.textContent = (j && j.error) || `${r.status} ${r.statusText}`;
    } catch (e) {
      error.textContent = 'Cannot reach the dashboard: ' + e.message;
    }
  };
})();
