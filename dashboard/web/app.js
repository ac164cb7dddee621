// Immunizer ops page: loads /api/*, then follows /api/events (SSE). No build step.
'use strict';
(() => {
  const MAX_ROWS = 300;
  const SEV_RANK = { unspecified: 0, low: 1, medium: 2, high: 3, critical: 4 };
  const ENFORCING = new Set(['block_principal', 'abort_call', 'throttle_principal', 'disable_call']);
  const alarms = new Map();   // id -> alarm JSON, insertion order = arrival order
  let actionEvents = [];      // newest first
  const $ = (id) => document.getElementById(id);

  const esc = (s) => String(s ?? '').replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' }[c]));
  const fmtNum = (x, d = 3) => {
    if (x === null || x === undefined || Number.isNaN(x)) return '–';
    const a = Math.abs(x);
    if (a !== 0 && (a >= 1e5 || a < 1e-3)) return x.toExponential(2);
    return Number(x.toPrecision(d)).toString();
  };
  const fmtInt = (n) => Number(n || 0).toLocaleString('en-US');
  const fmtTime = (nanos) => {
    if (!nanos) return '–';
    const d = new Date(Number(nanos) / 1e6);
    return d.toLocaleTimeString('en-GB', { hour12: false }) + '.' + String(d.getMilliseconds()).padStart(3, '0');
  };
  const fmtClock = (nanos) => nanos ? new Date(Number(nanos) / 1e6).toLocaleTimeString('en-GB', { hour12: false }) : '–';
  const fmtMs = (ms) => {
    if (ms === null || ms === undefined) return '–';
    if (ms < 1) return ms.toFixed(2) + ' ms';
    if (ms < 1000) return ms.toFixed(0) + ' ms';
    return (ms / 1000).toFixed(2) + ' s';
  };
  const fmtTtl = (ms) => {
    if (!ms) return '∞';
    const s = ms / 1000;
    if (s < 120) return s.toFixed(0) + ' s';
    if (s < 7200) return (s / 60).toFixed(0) + ' min';
    return (s / 3600).toFixed(1) + ' h';
  };

  let toastTimer = null;
  function toast(msg, error = false) {
    const t = $('toast');
    t.textContent = msg;
    t.className = 'toast show' + (error ? ' error' : '');
    clearTimeout(toastTimer);
    toastTimer = setTimeout(() => { t.className = 'toast' + (error ? ' error' : ''); }, error ? 6000 : 2500);
  }

  // The signed-in user (GET /api/session): its role and the CSRF token every POST carries.
  let session = { user: '', role: 'viewer', csrf_token: '' };
  async function api(path, body) {
    const opt = body === undefined ? {} : {
      method: 'POST',
      headers: { 'Content-Type': 'application/json', 'X-CSRF-Token': session.csrf_token || '' },
      body: JSON.stringify(body),
    };
    const r = await fetch(path, opt);
    if (r.status === 401) { location.href = '/login.html'; throw new Error('signed out'); }
    let j = null;
    try { j = await r.json(); } catch (_) { /* empty */ }
    if (!r.ok) throw new Error((j && j.error) || (r.status + ' ' + r.statusText));
    return j;
  }

  // ---- alarms -------------------------------------------------------------
  function principalHtml(p) {
    const parts = [];
    if (p.session) parts.push(`<div class="call" tabindex="0" title="${esc(p.session)}"><span class="k">session</span><span class="mono">${esc(p.session)}</span></div>`);
    if (p.ip) parts.push(`<div class="call" tabindex="0" title="${esc(p.ip)}"><span class="k">ip</span><span class="mono">${esc(p.ip)}</span></div>`);
    if (p.user) parts.push(`<div class="call" tabindex="0" title="${esc(p.user)}"><span class="k">user</span><span class="mono">${esc(p.user)}</span></div>`);
    return parts.join('') || '<span class="muted">unknown</span>';
  }

  // Plain-language legend of the monitor's feature ids (monitor/src/features.cpp):
  // "arg:<param>:<family>", "any:<family>" (the most unusual parameter), "struct:…", "outcome:…", "principal:…".
  const FAMILY = {
    length_deviation: 'unusual length', charclass_divergence: 'unusual mix of letters, digits and symbols',
    rare_1gram: 'rare characters', rare_3gram: 'unusual character sequence',
    unseen_3gram_frac: 'character sequences never seen before', unseen_chars: 'characters never seen before',
    nonprintable: 'non-printable characters', enum_surprise: 'a value outside the usual set',
    numeric_deviation: 'a number far outside the usual range',
  };
  const RECORD = {
    'struct:arg_count': 'unusual number of parameters', 'struct:arg_count_deviation': 'unusual number of parameters',
    'struct:unseen_args': 'parameters never seen on this call', 'struct:missing_args': 'usual parameters missing',
    'struct:dropped_args': 'parameters dropped', 'outcome:error': 'the call failed',
    'outcome:duration_deviation': 'unusual response time', 'principal:new': 'a client never seen before',
    'principal:recent_calls': 'many recent calls from this client', 'principal:interval_deviation': 'unusual pace of calls',
    'encoding:invalid_utf8': 'text that is not valid UTF-8 (malformed bytes)',
    'size:truncated_values': 'values longer than the sensor records (cut)',
    'size:record_truncated': 'a call too large to record whole (parameters left out)',
  };
  // The legend panel: every family in words.
  function renderLegend() {
    const rows = Object.entries(RECORD).map(([k, v]) => [k, v])
      .concat(Object.entries(FAMILY).map(([k, v]) => [`arg:<parameter>:${k}`, `${v} in that parameter`]))
      .concat(Object.entries(FAMILY).map(([k, v]) => [`any:${k}`, `${v} in the most unusual parameter`]));
    $('legend-list').innerHTML = rows.map(([k, v]) => `<dt>${esc(k)}</dt><dd>${esc(v)}</dd>`).join('');
  }
  function explain(id) {
    if (RECORD[id]) return RECORD[id];
    const m = /^(arg|any):(?:(.*):)?([a-z0-9_]+)$/.exec(id);
    if (m && FAMILY[m[3]]) return m[1] === 'any' ? `${FAMILY[m[3]]} in a parameter` : `${FAMILY[m[3]]} in parameter “${m[2]}”`;
    return id;
  }

  function featuresHtml(all) {
    // A feature of value 0 says what is absent: never shown as a reason.
    const fs = (all || []).filter((f) => f.value !== 0);
    if (!fs.length) return '<span class="muted">no explanation</span>';
    const max = Math.max(...fs.map((f) => Math.abs(f.contribution) || 0), 1e-12);
    return '<div class="features">' + fs.slice(0, 4).map((f) => {
      const w = Math.max(4, Math.round(100 * Math.abs(f.contribution || 0) / max));
      return `<div class="feat" title="${esc(f.feature)}: contribution ${esc(fmtNum(f.contribution))}"><span class="name">${esc(explain(f.feature))}</span>` +
        `<span class="val">= ${esc(fmtNum(f.value))}</span><span class="bar"><i style="width:${w}%"></i></span></div>`;
    }).join('') + '</div>';
  }

  function statusHtml(a) {
    const out = [];
    if (a.feedback) {
      const label = a.feedback.verdict === 'false_positive' ? 'false positive' : 'confirmed';
      out.push(`<span class="tag ${a.feedback.verdict === 'false_positive' ? 'fp' : 'ok'}" title="by ${esc(a.feedback.analyst)}">${label}</span>`);
    }
    for (const s of a.actions || []) {
      const cls = s.status === 'applied' ? 'ok' : s.status === 'rejected' ? 'bad' : s.status === 'dispatched' ? 'warn' : '';
      const lat = s.latency_ms !== null && s.latency_ms !== undefined ? ' · ' + fmtMs(s.latency_ms) : '';
      const label = `${s.action.kind.replace('_principal', '')}: ${s.status}${lat}`;
      out.push(`<span class="tag ${cls}" title="${esc(label)}">${esc(label)}</span>`);
    }
    return out.length ? '<div class="status">' + out.join('') + '</div>' : '<span class="muted">new</span>';
  }

  function alarmRow(a, isNew) {
    const tr = document.createElement('tr');
    tr.dataset.id = a.id;
    tr.dataset.sev = SEV_RANK[a.severity] ?? 0;
    if (isNew) tr.classList.add('new');
    if (a.feedback) tr.classList.add('reviewed');
    const ratio = a.threshold > 0 ? a.combined_score / a.threshold : 0;
    const fill = Math.min(100, Math.round(100 * ratio / 2));  // the bar spans 0..2x threshold
    const reviewed = !!a.feedback;
    tr.innerHTML =
      `<td class="t" title="call at ${esc(fmtTime(a.timestamp_unix_nanos))}, raised ${esc(fmtTime(a.raised_unix_nanos))}">` +
      `<div>${esc(fmtTime(a.timestamp_unix_nanos || a.raised_unix_nanos))}</div><span class="sev sev-${esc(a.severity)}">${esc(a.severity)}</span></td>` +
      `<td class="principal">${principalHtml(a.principal || {})}</td>` +
      `<td><div class="mono call" tabindex="0" title="${esc(a.call)}\n${esc(a.model_key)}">${esc(a.call)}</div></td>` +
      `<td class="num"><div class="score">${esc(fmtNum(a.combined_score))} <span class="thr">/ ${esc(fmtNum(a.threshold))}</span></div>` +
      `<div class="scorebar" title="${esc(fmtNum(ratio))}× threshold"><i style="width:${fill}%"></i><b style="left:50%"></b></div></td>` +
      `<td>${featuresHtml(a.top_features)}</td>` +
      `<td class="st">${statusHtml(a)}</td>` +
      `<td class="act"><div class="btns"><button class="btn fp" data-testid="false-positive" ${reviewed ? 'disabled' : ''}>False positive</button>` +
      `<button class="btn confirm" ${reviewed ? 'disabled' : ''}>Confirm</button>` +
      `<button class="btn danger block" title="block this principal">Block</button></div></td>`;
    tr.querySelector('.fp').onclick = () => feedback(a.id, 'false_positive');
    tr.querySelector('.confirm').onclick = () => feedback(a.id, 'confirmed');
    tr.querySelector('.block').onclick = () => blockAlarm(a);
    applyFilter(tr);
    return tr;
  }

  function applyFilter(tr) {
    const min = Number($('sev-filter').value);
    const hide = $('hide-reviewed').checked && tr.classList.contains('reviewed');
    tr.style.display = (Number(tr.dataset.sev) < min || hide) ? 'none' : '';
  }

  function upsertAlarm(a, isNew) {
    const body = $('alarm-rows');
    const existing = body.querySelector(`tr[data-id="${CSS.escape(a.id)}"]`);
    alarms.set(a.id, a);
    const tr = alarmRow(a, isNew && !existing);
    if (existing) existing.replaceWith(tr); else body.prepend(tr);
    while (body.rows.length > MAX_ROWS) { alarms.delete(body.lastElementChild.dataset.id); body.lastElementChild.remove(); }
    $('alarms-empty').style.display = body.rows.length ? 'none' : '';
  }

  async function feedback(id, verdict) {
    try {
      await api('/api/feedback', { alarm_id: id, verdict, comment: '' });
      toast(verdict === 'false_positive' ? 'Marked as false positive — analyze will learn it' : 'Alarm confirmed');
      const a = await api('/api/alarms/' + encodeURIComponent(id));
      upsertAlarm(a, false);
    } catch (e) { toast('Feedback failed: ' + e.message, true); }
  }

  async function blockAlarm(a) {
    const p = a.principal || {};
    const field = p.session ? 'session' : p.ip ? 'ip' : 'user';
    if (!window.confirm(`Block ${field} ${p[field]} for 1 h?`)) return;
    try {
      const r = await api('/api/block', { alarm_id: a.id, field, ttl_ms: 3600000 });
      toast(`Block sent (action ${r.action_id.slice(0, 8)})`);
    } catch (e) { toast('Block failed: ' + e.message, true); }
  }

  // ---- incidents ------------------------------------------------------------
  const INC_PAGE = 25;
  let incOffset = 0, incTotal = 0, incSelected = null, incReloadTimer = null;
  const incidents = new Map();  // id -> incident JSON on the current page

  function incQuery() {
    const q = new URLSearchParams();
    const st = $('inc-state').value, sev = $('inc-sev').value, kind = $('inc-kind').value;
    if (kind !== 'incidents') q.set('kind', kind);
    const pr = $('inc-principal').value.trim(), call = $('inc-call').value.trim();
    if (st) q.set('state', st);
    if (sev) q.set('severity', sev);
    if (pr) q.set('principal', pr);
    if (call) q.set('call', call);
    return q;
  }
  function sevCounts(b) {
    return ['critical', 'high', 'medium', 'low'].filter((k) => b[k]).map((k) => `${fmtInt(b[k])} ${k}`).join(' · ');
  }
  function incStateButtons(inc) {
    const next = inc.state === 'open' ? ['acknowledged', 'resolved', 'false_positive']
      : inc.state === 'acknowledged' ? ['resolved', 'false_positive'] : ['open'];
    const label = { acknowledged: 'Acknowledge', resolved: 'Resolve', false_positive: 'False positive', open: 'Reopen' };
    return next.map((n) => `<button class="btn inc-set" type="button" data-state="${n}" data-id="${inc.id}">${label[n]}</button>`).join('');
  }
  function incidentRow(inc) {
    const tr = document.createElement('tr');
    tr.className = 'inc' + (incSelected === inc.id ? ' selected' : '');
    tr.dataset.id = inc.id;
    tr.tabIndex = 0;
    tr.setAttribute('aria-label', `incident ${inc.id}: ${inc.principal_key}, ${inc.alarms} alarms, ${inc.state}`);
    const calls = inc.calls.slice(0, 3).map((c) => `<div class="mono call" tabindex="0" title="${esc(c.value)} (${c.alarms} alarms)">${esc(c.value)}</div>`).join('') +
      (inc.calls.length > 3 ? `<div class="muted small">+${inc.calls.length - 3} more</div>` : '');
    const feats = inc.top_features.slice(0, 3).map((f) => `<div class="call" title="${esc(f.feature)}: summed contribution ${esc(fmtNum(f.contribution))}">${esc(explain(f.feature))}</div>`).join('') ||
      '<span class="muted">none</span>';
    tr.innerHTML =
      `<td class="t" title="first ${esc(fmtTime(inc.first_seen_unix_nanos))}, last ${esc(fmtTime(inc.last_seen_unix_nanos))}">` +
      `<div>${esc(fmtTime(inc.last_seen_unix_nanos))}</div><span class="sev sev-${esc(inc.severity)}">${esc(inc.severity)}</span></td>` +
      (inc.kind === 'pattern'
        ? `<td><span class="muted small">pattern · ${fmtInt(inc.principals)} principal${inc.principals === 1 ? '' : 's'}</span><div class="mono wrap-all">${esc(inc.principal_value)}</div></td>`
        : `<td><span class="muted small">${esc(inc.principal_kind)}</span><div class="mono wrap-all">${esc(inc.principal_value)}</div></td>`) +
      `<td class="num"><div>${fmtInt(inc.alarms)}</div><div class="muted small" title="${esc(sevCounts(inc.by_severity))}">${fmtInt(inc.rows)} row${inc.rows === 1 ? '' : 's'}</div></td>` +
      `<td>${calls}</td><td>${feats}</td><td class="num">${fmtInt(inc.actions)}</td>` +
      `<td><div class="state-${esc(inc.state)}">${esc(inc.state.replace('_', ' '))}</div>` +
      (inc.state_by ? `<div class="muted small" title="${esc(fmtTime(inc.state_at_unix_nanos))}">by ${esc(inc.state_by)}</div>` : '') +
      `<div class="btns">${incStateButtons(inc)}</div></td>`;
    tr.onclick = (ev) => { if (!ev.target.closest('button')) showIncident(inc.id); };
    tr.onkeydown = (ev) => { if (ev.key === 'Enter' && ev.target === tr) showIncident(inc.id); };
    for (const b of tr.querySelectorAll('button.inc-set')) b.onclick = () => setIncidentState(inc.id, b.dataset.state);
    return tr;
  }
  function renderIncidents() {
    const body = $('incident-rows');
    body.replaceChildren(...[...incidents.values()].map(incidentRow));
    $('incidents-empty').style.display = incidents.size ? 'none' : '';
    const last = Math.min(incOffset + incidents.size, incTotal);
    $('inc-count').textContent = incTotal ? `${incOffset + 1}–${last} of ${fmtInt(incTotal)}` : '';
    $('inc-prev').disabled = incOffset === 0;
    $('inc-next').disabled = last >= incTotal;
  }
  // The filters live in the page's URL (?state=&principal=ATTACKER), so a reload or a shared
  // link opens the same list: read into the form before the first fetch, written on each search.
  // A parameter is present when its field differs from the page's default ("state=" is all).
  const FILTERS = [['kind', 'inc-kind'], ['state', 'inc-state'], ['severity', 'inc-sev'],
    ['principal', 'inc-principal'], ['call', 'inc-call']];
  const fieldDefault = (el) => el.tagName === 'SELECT'
    ? ([...el.options].find((o) => o.defaultSelected) || el.options[0]).value : el.defaultValue;
  function restoreFilters() {
    const u = new URLSearchParams(location.search);
    for (const [k, id] of FILTERS) {
      const el = $(id);
      const v = u.has(k) ? u.get(k) : fieldDefault(el);
      if (el.tagName === 'SELECT' && ![...el.options].some((o) => o.value === v)) continue;  // hostile or stale
      el.value = v;
    }
    setExportLinks();
  }
  function saveFilters() {
    const u = new URLSearchParams(location.search);
    for (const [k, id] of FILTERS) {
      const el = $(id), v = el.tagName === 'SELECT' ? el.value : el.value.trim();
      if (v === fieldDefault(el)) u.delete(k); else u.set(k, v);
    }
    const qs = u.toString();
    history.replaceState(history.state, '', location.pathname + (qs ? '?' + qs : '') + location.hash);
  }
  // The export links always carry the form's filters (also before the list has loaded).
  function setExportLinks() {
    const exp = incQuery();
    exp.set('format', 'csv');
    $('inc-csv').href = '/api/incidents/export?' + exp;
    exp.set('format', 'json');
    $('inc-json').href = '/api/incidents/export?' + exp;
  }
  async function loadIncidents() {
    const q = incQuery();
    q.set('limit', INC_PAGE);
    q.set('offset', incOffset);
    setExportLinks();
    try {
      const r = await api('/api/incidents?' + q);
      incidents.clear();
      for (const i of r.incidents) incidents.set(i.id, i);
      incTotal = r.total;
      renderIncidents();
    } catch (e) { $('inc-count').textContent = 'incidents unavailable: ' + e.message; }
  }
  const reloadIncidentsSoon = () => { if (!incReloadTimer) incReloadTimer = setTimeout(() => { incReloadTimer = null; loadIncidents(); }, 1000); };
  function onIncidentEvent(inc) {
    // Rows on this page update in place; anything else (a new incident, a state that leaves
    // the filter) reloads the page at most once a second.
    const kind = $('inc-kind').value;
    if (kind !== 'all' && (inc.kind === 'pattern') !== (kind === 'patterns')) return;  // not listed
    if (inc.change === 'removed') {  // a pattern row whose last alarms joined an incident
      if (incidents.has(inc.id)) reloadIncidentsSoon();
      return;
    }
    if (incidents.has(inc.id) && inc.change !== 'state_changed') {
      incidents.set(inc.id, inc);
      const tr = $('incident-rows').querySelector(`tr[data-id="${inc.id}"]`);
      if (tr) tr.replaceWith(incidentRow(inc));
    } else {
      reloadIncidentsSoon();
    }
    if (incSelected === inc.id) showIncidentSoon();
  }
  async function setIncidentState(id, state) {
    try {
      await api(`/api/incidents/${id}/state`, { state, comment: '' });
      toast(`Incident ${id}: ${state.replace('_', ' ')}`);
      loadIncidents();
      if (incSelected === id) showIncident(id);
    } catch (e) { toast('State change failed: ' + e.message, true); }
  }
  let detailTimer = null;
  const showIncidentSoon = () => { if (!detailTimer) detailTimer = setTimeout(() => { detailTimer = null; if (incSelected) showIncident(incSelected, false); }, 1000); };
  async function showIncident(id, focus = true) {
    incSelected = id;
    for (const tr of $('incident-rows').rows) tr.classList.toggle('selected', Number(tr.dataset.id) === id);
    const el = $('inc-detail');
    try {
      const d = await api(`/api/incidents/${id}?alarms=50`);
      const groups = d.groups.map((g) => `<tr><td class="num">${fmtInt(g.count)}</td><td><span class="sev sev-${esc(g.max_severity)}">${esc(g.max_severity)}</span></td>` +
        `<td class="mono wrap-all">${esc(g.call)}</td><td title="${esc(g.top_feature)}">${g.top_feature ? esc(explain(g.top_feature)) : '<span class="muted">–</span>'}</td>` +
        `<td class="t">${esc(fmtTime(g.first_seen_unix_nanos))} – ${esc(fmtTime(g.last_seen_unix_nanos))}</td><td class="num">${esc(fmtNum(g.max_ratio))}×</td></tr>`).join('');
      const acts = d.action_list.map((a) => `<tr><td>${esc(a.kind)}${a.extends ? ` <span class="muted small">extends ${esc(a.extends.slice(0, 8))}</span>` : ''}</td>` +
        `<td class="mono wrap-all">${esc(a.target_field)} ${esc(a.target_value)}</td><td>${esc(a.status)}</td><td class="num">${esc(fmtMs(a.latency_ms))}</td>` +
        `<td>${ENFORCING.has(a.kind) && (a.status === 'applied' || a.status === 'dispatched') ? `<button class="btn unblock" type="button" data-id="${esc(a.extends || a.action_id)}">Unblock</button>` : ''}</td></tr>`).join('');
      const hist = d.history.map((h) => `<li><span class="t">${esc(fmtTime(h.at_unix_nanos))}</span> <b>${esc(h.who)}</b> ${esc(h.what)} <span class="muted">${esc(h.detail)}</span></li>`).join('');
      const p = d.principal || {};
      el.innerHTML = `<div class="panel-head"><h2>Incident ${d.id}: <span class="mono">${esc(d.principal_key)}</span></h2>` +
        `<span><button class="btn danger" type="button" id="inc-block">Block ${esc(d.principal_kind === 'prefix' ? 'ip' : d.principal_kind)}</button> <button class="btn" type="button" id="inc-close">Close</button></span></div>` +
        `<div class="muted">${fmtInt(d.alarms)} alarms (${esc(sevCounts(d.by_severity))}) from ${esc(fmtTime(d.first_seen_unix_nanos))} to ${esc(fmtTime(d.last_seen_unix_nanos))}; ` +
        `session <span class="mono">${esc(p.session || '–')}</span>, ip <span class="mono">${esc(p.ip || '–')}</span>, user <span class="mono">${esc(p.user || '–')}</span></div>` +
        `<h3>Timeline</h3><div class="timeline-box"><canvas id="inc-timeline" role="img" aria-label="incident timeline"></canvas></div>` +
        `<div class="muted small">score ÷ threshold of the ${fmtInt(d.recent_alarms.length)} most recent alarms; dashed line: threshold; marks: actions applied</div>` +
        `<h3>Alarms, identical ones collapsed</h3><table class="compact"><thead><tr><th class="num">Count</th><th>Max</th><th>Call</th><th>Top feature</th><th class="t">Seen</th><th class="num">Score</th></tr></thead><tbody>${groups}</tbody></table>` +
        `<h3>Actions</h3>` + (acts ? `<table class="compact"><thead><tr><th>Kind</th><th>Target</th><th>Status</th><th class="num">Call → applied</th><th></th></tr></thead><tbody>${acts}</tbody></table>` : '<div class="muted">none</div>') +
        `<h3>History</h3>` + (hist ? `<ul class="small">${hist}</ul>` : '<div class="muted">no operator actions yet</div>');
      el.hidden = false;
      const tl = $('inc-timeline');
      tl._incident = d;
      window.ImmCharts.timeline(tl, d);
      $('inc-close').onclick = () => { el.hidden = true; incSelected = null; renderIncidents(); };
      $('inc-block').onclick = async () => {
        const field = d.principal_kind === 'prefix' ? 'ip' : d.principal_kind;
        const value = field === 'ip' ? p.ip : field === 'session' ? p.session : p.user;
        if (!value || !window.confirm(`Block ${field} ${value} for 1 h?`)) return;
        try {
          const r = await api('/api/block', { field, value, ttl_ms: 3600000, incident_id: d.id, reason: `incident ${d.id}` });
          toast(`Block sent (action ${r.action_id.slice(0, 8)})`);
          refreshActiveSoon();
          showIncident(d.id, false);
        } catch (e) { toast('Block failed: ' + e.message, true); }
      };
      for (const b of el.querySelectorAll('button.unblock')) {
        b.onclick = async () => {
          try {
            const r = await api('/api/unblock', { action_id: b.dataset.id, incident_id: d.id });
            toast(r.found ? 'Unblocked' : 'execute no longer had that action');
            showIncident(d.id, false);
          } catch (e) { toast('Unblock failed: ' + e.message, true); }
        };
      }
      if (focus) el.focus();
    } catch (e) { toast('Cannot load incident: ' + e.message, true); }
  }
  $('inc-filter').onsubmit = (ev) => { ev.preventDefault(); incOffset = 0; saveFilters(); loadIncidents(); };
  $('inc-state').onchange = $('inc-filter').onsubmit;
  $('inc-sev').onchange = $('inc-filter').onsubmit;
  $('inc-kind').onchange = $('inc-filter').onsubmit;
  $('inc-prev').onclick = () => { incOffset = Math.max(0, incOffset - INC_PAGE); loadIncidents(); };
  $('inc-next').onclick = () => { incOffset += INC_PAGE; loadIncidents(); };

  // ---- actions -----------------------------------------------------------
  function target(act) {
    const t = act.target_field ? `${act.target_field} ${act.target_value}` : '';
    return t + (act.call ? ` · ${act.call}` : '');
  }

  function renderActions() {
    const body = $('action-rows');
    body.innerHTML = actionEvents.slice(0, 100).map((e) => {
      const cls = e.type === 'applied' ? 'ok' : e.type === 'rejected' ? 'bad' : e.type === 'dispatched' ? 'warn' : '';
      return `<tr><td class="t" title="${esc(fmtTime(e.at_unix_nanos))}">${esc(fmtClock(e.at_unix_nanos))}</td><td><span class="tag ${cls}" title="${esc(e.reason)}">${esc(e.type)}</span></td>` +
        `<td><div>${esc(e.action.kind)}</div><div class="mono call muted" title="${esc(target(e.action))}">${esc(target(e.action))}</div></td>` +
        `<td class="num">${esc(fmtTtl(e.action.ttl_millis))}</td><td class="num">${esc(fmtMs(e.latency_ms))}</td></tr>`;
    }).join('');
    $('actions-empty').style.display = actionEvents.length ? 'none' : '';
  }

  // execute's own list is authoritative (an action extended by later plans is one entry);
  // the dashboard's audit-trail view is the fallback while execute is unreachable.
  async function activeList() {
    try {
      const r = await api('/api/execute/active');
      return r.actions.filter((x) => ENFORCING.has(x.action.kind)).map((x) => ({
        action_id: x.action.id, action: x.action, status: 'active', applied_acks: x.acks,
        expires_unix_nanos: x.expires_unix_nanos }));
    } catch (_) {
      return api('/api/actions/active');
    }
  }
  async function refreshActive() {
    try {
      const list = await activeList();
      $('active-count').textContent = list.length ? list.length + ' enforcing' : 'none';
      $('active-rows').innerHTML = list.map((s) =>
        `<tr><td>${esc(s.action.kind)}<div class="muted small">${esc(s.status)}, ${s.applied_acks} ack</div></td>` +
        `<td class="mono call" title="${esc(target(s.action))}">${esc(target(s.action))}</td>` +
        `<td class="t">${s.expires_unix_nanos ? esc(fmtClock(s.expires_unix_nanos)) : '∞'}</td>` +
        `<td><button class="btn unblock" data-id="${esc(s.action_id)}">Unblock</button></td></tr>`).join('');
      for (const b of $('active-rows').querySelectorAll('button.unblock')) {
        b.onclick = async () => {
          try {
            const r = await api('/api/unblock', { action_id: b.dataset.id });
            toast(r.found ? 'Unblocked' : 'execute no longer had that action');
          } catch (e) { toast('Unblock failed: ' + e.message, true); }
        };
      }
    } catch (_) { /* next refresh */ }
  }
  async function refreshExecute() {
    const el = $('execute-status');
    try {
      const r = await api('/api/execute/active');
      const n = r.effectors.length;
      el.textContent = `execute: ${n} effector${n === 1 ? '' : 's'} connected`;
      el.className = n ? '' : 'warn-text';
      el.title = r.effectors.map((e) => `${e.app}/${e.instance} ${e.version}`).join('\n');
    } catch (e) {
      el.textContent = 'execute unreachable';
      el.className = 'bad-text';
      el.title = e.message;
    }
  }
  let activeTimer = null;
  const refreshActiveSoon = () => { clearTimeout(activeTimer); activeTimer = setTimeout(refreshActive, 300); };

  // ---- stats, distribution, models -----------------------------------------
  // One line above the page: records lost (red), else models still learning, else nothing.
  function renderBanner(s) {
    const b = $('banner');
    const lost = (s.pipeline && s.pipeline.records_lost) || 0;  // null until the first poll
    const m = s.models || {};
    let text = '', bad = false;
    if (lost > 0) {
      bad = true;
      text = `${fmtInt(lost)} records lost in the pipeline (consumers skipped unread data; see immunizer_records_lost_total and docs/operations.md).`;
    } else if (!m.tracked) {
      text = 'Waiting for the first scores: no records have reached analyze yet.';
    } else if (m.learning > 0) {
      text = `${fmtInt(m.learning)} of ${fmtInt(m.tracked)} models are still learning what normal looks like; they raise no alarms until they have seen enough calls.`;
    }
    b.hidden = !text;
    b.textContent = text;
    b.classList.toggle('bad', bad);
  }

  function renderStats(s) {
    renderBanner(s);
    $('c-scored').textContent = fmtInt(s.records_scored);
    if (s.incidents) {
      $('c-incidents').textContent = fmtInt(s.incidents.open);
      $('c-incidents-split').textContent = `${fmtInt(s.incidents.acknowledged)} acknowledged · ${fmtInt(s.incidents.total)} total` +
        (s.incidents.pattern_alarms ? ` · ${fmtInt(s.incidents.pattern_alarms)} low-evidence alarms in ${fmtInt(s.incidents.patterns)} patterns` : '');
    }
    $('c-scored-rate').textContent = s.rates.scored_per_second.toFixed(1) + ' /s over the last min';
    $('c-alarms').textContent = fmtInt(s.alarms);
    $('c-alarms-rate').textContent = fmtInt(s.rates.alarms_last_minute) + ' in the last min · ' +
      fmtInt(s.alarms_by_severity.critical + s.alarms_by_severity.high) + ' high+';
    $('c-blocks').textContent = fmtInt(s.blocks_active);
    $('c-actions').textContent = fmtInt(s.action_events) + ' action events · ' + fmtInt(s.action_events_by_type.rejected) + ' rejected';
    const lat = s.latency_call_to_applied_ms;
    $('c-latency').textContent = lat.p50 === null ? '–' : fmtMs(lat.p50);
    $('c-latency-p95').textContent = lat.p95 === null ? 'p50 · no applied actions yet' : 'p50 · p95 ' + fmtMs(lat.p95) + ' · last ' + fmtMs(lat.last);
    $('c-models').textContent = fmtInt(s.models.tracked);
    $('c-models-state').textContent = `${fmtInt(s.models.active)} active · ${fmtInt(s.models.learning)} learning`;
    $('c-feedback').textContent = fmtInt(s.feedback.total);
    $('c-feedback-split').textContent = `${fmtInt(s.feedback.false_positive)} false positive · ${fmtInt(s.feedback.confirmed)} confirmed`;
    const b = s.score_distribution.buckets;
    const max = Math.max(1, ...b.map((x) => x.count));
    let lo = 0;
    $('dist').innerHTML = b.map((x) => {
      const label = x.le === null ? `>${lo}` : `≤${x.le}`;
      const over = x.le === null || x.le > 1;
      if (x.le !== null) lo = x.le;
      const h = Math.round(100 * Math.log1p(x.count) / Math.log1p(max));
      return `<div class="col ${over ? 'over' : ''}" title="${fmtInt(x.count)} scores"><em>${x.count ? fmtInt(x.count) : ''}</em><i style="height:${h}%"></i><span>${label}</span></div>`;
    }).join('');
    $('dist-learning').textContent = `${fmtInt(s.score_distribution.learning)} scored while learning (not shown) · log scale · orange: above threshold`;
  }

  async function loadSeries() {
    try {
      const ts = await api('/api/timeseries');
      const n = ts.points.length;
      $('charts-range').textContent = n ? `sampled every ${ts.interval_ms / 1000} s, last ${Math.round(n * ts.interval_ms / 60000)} min` : `sampled every ${ts.interval_ms / 1000} s; the first sample comes soon`;
      window.ImmCharts.overview(ts);
    } catch (e) { $('charts-range').textContent = 'charts unavailable: ' + e.message; }
  }

  async function refreshModels() {
    try {
      const ms = await api('/api/models?limit=25');
      $('model-rows').innerHTML = ms.map((m) =>
        `<tr><td class="mono call" title="${esc(m.model_key)}">${esc(m.model_key)}</td><td class="state-${esc(m.state)}">${esc(m.state || '–')}</td>` +
        `<td class="num">${fmtInt(m.scored)}</td><td class="num">${fmtInt(m.alarmed)}</td>` +
        `<td class="num">${esc(fmtNum(m.last_score))} / ${esc(fmtNum(m.threshold))}</td></tr>`).join('') ||
        '<tr><td colspan="5" class="muted">no scores yet</td></tr>';
    } catch (_) { /* next refresh */ }
  }

  // ---- loading and live updates ----------------------------------------------
  // Events that arrive while a load is in flight: re-applied on top of the loaded history, so
  // nothing that happens between the history request and its answer is lost.
  let pending = null;
  async function loadAll() {
    const mine = pending = [];
    try {
      const [al, ac, st] = await Promise.all([api('/api/alarms?limit=' + MAX_ROWS), api('/api/actions?limit=100'), api('/api/stats')]);
      $('alarm-rows').innerHTML = '';
      alarms.clear();
      for (const a of al.slice().reverse()) upsertAlarm(a, false);
      $('alarms-empty').style.display = al.length ? 'none' : '';
      actionEvents = ac;
      for (const ev of mine) ev();
      renderActions();
      renderStats(st);
      $('loading').hidden = true;
      loadSeries();
      loadIncidents();
      refreshActive();
      refreshModels();
    } finally {
      if (pending === mine) pending = null;
    }
  }

  // The event stream opens first and the history loads once it is open (and again after every
  // reconnect): an alarm consumed between the two is then either in the history or an event.
  function connect() {
    const es = new EventSource('/api/events');
    let first = true;
    es.onopen = () => {
      $('conn').textContent = 'live';
      $('conn').className = 'conn conn-on';
      loadAll().catch((e) => { if (first) toast('Cannot load: ' + e.message, true); });
      first = false;
    };
    es.onerror = () => {
      $('conn').textContent = 'reconnecting…';
      $('conn').className = 'conn conn-off';
    };
    // apply(event, replayed): replayed is true when re-applied over freshly loaded history.
    const live = (apply) => (ev) => {
      const e = JSON.parse(ev.data);
      if (pending) pending.push(() => apply(e, true));
      apply(e, false);
    };
    // A loaded alarm is at least as fresh as its "new alarm" event (it may carry actions).
    es.addEventListener('alarm', live((a, replayed) => { if (!(replayed && alarms.has(a.id))) upsertAlarm(a, true); }));
    es.addEventListener('action', live((e) => {
      const same = (x) => x.action_id === e.action_id && x.type === e.type && x.at_unix_nanos === e.at_unix_nanos;
      if (actionEvents.some(same)) return;  // already in the loaded history
      actionEvents.unshift(e);
      if (actionEvents.length > 200) actionEvents.length = 200;
      renderActions();
      refreshActiveSoon();
      // Update the alarm's row from the event itself: no request per event (an alarm evicted
      // from the server's ring used to cost one 404 per action event).
      const a = e.alarm_id && alarms.get(e.alarm_id);
      if (a) {
        const acts = a.actions || (a.actions = []);
        let s = acts.find((x) => x.action_id === e.action_id);
        if (!s) { s = { action_id: e.action_id, action: e.action, latency_ms: null }; acts.push(s); }
        s.status = e.status || e.type;
        if (e.type === 'applied' && e.latency_ms !== null && e.latency_ms !== undefined && s.latency_ms === null) s.latency_ms = e.latency_ms;
        upsertAlarm(a, false);
      }
    }));
    es.addEventListener('stats', (ev) => renderStats(JSON.parse(ev.data)));
    es.addEventListener('incident', (ev) => onIncidentEvent(JSON.parse(ev.data)));
  }

  $('sev-filter').onchange = () => { for (const tr of $('alarm-rows').rows) applyFilter(tr); };
  $('hide-reviewed').onchange = $('sev-filter').onchange;
  $('manual-block').onsubmit = async (ev) => {
    ev.preventDefault();
    const field = $('mb-field').value, value = $('mb-value').value.trim();
    if (!value) return;
    try {
      const r = await api('/api/block', { field, value, ttl_ms: Number($('mb-ttl').value) });
      toast(`Block sent (action ${r.action_id.slice(0, 8)})`);
      $('mb-value').value = '';
      refreshActiveSoon();
    } catch (e) { toast('Block failed: ' + e.message, true); }
  };
  setInterval(() => { $('clock').textContent = new Date().toLocaleTimeString('en-GB', { hour12: false }); }, 1000);
  setInterval(refreshModels, 5000);
  setInterval(loadSeries, 5000);
  renderLegend();
  restoreFilters();
  // A cut value (call, principal) opens in full on click or Enter, and closes again.
  const toggleWhole = (el) => el.classList.toggle('whole');
  document.addEventListener('click', (ev) => { const c = ev.target.closest('.call[tabindex]'); if (c) toggleWhole(c); });
  document.addEventListener('keydown', (ev) => {
    if ((ev.key === 'Enter' || ev.key === ' ') && ev.target.matches && ev.target.matches('.call[tabindex]')) { ev.preventDefault(); toggleWhole(ev.target); }
  });
  // Theme switch (theme.js applied the stored or system choice before the page was drawn).
  const themeButton = () => {
    const light = document.documentElement.dataset.theme === 'light';
    $('theme').textContent = light ? 'Dark theme' : 'Light theme';
  };
  themeButton();
  $('theme').onclick = () => {
    const next = document.documentElement.dataset.theme === 'light' ? 'dark' : 'light';
    document.documentElement.dataset.theme = next;
    try { localStorage.setItem('immunizer-theme', next); } catch (_) { /* not kept */ }
    themeButton();
    window.ImmCharts.restyle();
  };
  setInterval(refreshActive, 10000);
  setInterval(refreshExecute, 10000);
  $('logout').onclick = async () => {
    try { await api('/api/logout', {}); } catch (_) { /* signed out anyway */ }
    location.href = '/login.html';
  };
  api('/api/session').then((s) => {
    session = s;
    $('who').textContent = `${s.user} (${s.role})`;
    $('logout').hidden = s.auth !== 'session';
    document.body.classList.toggle('viewer', s.role !== 'operator');
    refreshExecute();
    connect();
  }).catch(() => {});
})();
