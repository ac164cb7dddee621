// Immunizer ops page: the charts (Chart.js 3 from Debian's libjs-chart.js, served as
// /chart.min.js). window.ImmCharts.overview(series) draws the overview's time series
// (GET /api/timeseries); ImmCharts.timeline(canvas, incident) draws an incident's alarms
// (score / threshold over time) with its actions as vertical marks. Colours come from the
// page's CSS variables, so both themes apply; ImmCharts.restyle() redraws after a switch.
// Every chart canvas has role="img" and an aria-label that states its figures in words.
'use strict';
(() => {
  const hasChart = typeof window.Chart === 'function';
  const css = (name) => getComputedStyle(document.documentElement).getPropertyValue(name).trim();
  const clock = (ms) => new Date(ms).toLocaleTimeString('en-GB', { hour12: false });
  const charts = new Map();  // canvas id -> Chart

  function baseOptions(yTitle) {
    const grid = css('--border'), text = css('--muted');
    return {
      animation: false, responsive: true, maintainAspectRatio: false, parsing: false,
      interaction: { mode: 'nearest', intersect: false },
      plugins: { legend: { display: false }, tooltip: { callbacks: { title: (items) => items.length ? clock(items[0].parsed.x) : '' } } },
      scales: {
        x: { type: 'linear', grid: { color: grid }, ticks: { color: text, maxTicksLimit: 5, callback: (v) => clock(v) } },
        y: { beginAtZero: true, grid: { color: grid }, ticks: { color: text, maxTicksLimit: 4 },
          title: { display: !!yTitle, text: yTitle, color: text } },
      },
    };
  }

  function draw(canvas, config) {
    const old = charts.get(canvas.id);
    if (old) old.destroy();
    charts.set(canvas.id, new window.Chart(canvas, config));
  }

  // The overview: one small chart per figure.
  const SERIES = [
    { id: 'ch-scored', key: 'scored_per_second', label: 'records scored per second', color: '--accent' },
    { id: 'ch-alarms', key: 'alarms_last_minute', label: 'alarms in the last minute', color: '--high' },
    { id: 'ch-incidents', key: 'incidents_open', label: 'open incidents', color: '--medium' },
    { id: 'ch-blocks', key: 'blocks_active', label: 'active blocks', color: '--critical' },
    { id: 'ch-latency', key: 'latency_p50_ms', label: 'attack call to applied, p50 ms', color: '--ok' },
  ];
  let lastSeries = null;
  function overview(series) {
    lastSeries = series;
    const pts = series.points || [];
    // One time axis for every chart (also those without a value yet, e.g. no applied action).
    const tmin = pts.length ? pts[0].t : Date.now() - 60_000, tmax = pts.length ? pts[pts.length - 1].t : Date.now();
    for (const s of SERIES) {
      const canvas = document.getElementById(s.id);
      if (!canvas) continue;
      const data = pts.filter((p) => p[s.key] !== null && p[s.key] !== undefined).map((p) => ({ x: p.t, y: p[s.key] }));
      const last = data.length ? data[data.length - 1].y : null;
      const max = data.reduce((m, p) => Math.max(m, p.y), 0);
      canvas.setAttribute('aria-label', data.length
        ? `${s.label}: now ${Number(last.toPrecision(3))}, highest ${Number(max.toPrecision(3))}, ${data.length} samples since ${clock(data[0].x)}`
        : `${s.label}: no samples yet`);
      const out = document.getElementById(s.id + '-now');
      if (out) out.textContent = last === null ? '–' : Number(last.toPrecision(3)).toLocaleString('en-US');
      if (!hasChart) continue;
      draw(canvas, {
        type: 'line',
        data: { datasets: [{ data, borderColor: css(s.color), backgroundColor: css(s.color), borderWidth: 1.5, pointRadius: 0, fill: false, tension: 0.2 }] },
        options: (() => { const o = baseOptions(''); o.scales.x.min = tmin; o.scales.x.max = Math.max(tmax, tmin + 1000); return o; })(),
      });
    }
  }

  // Vertical marks at the actions' applied (or dispatched) times, drawn after the datasets.
  const actionMarks = {
    id: 'immActionMarks',
    afterDatasetsDraw(chart, _args, opts) {
      const { ctx, chartArea, scales } = chart;
      ctx.save();
      ctx.strokeStyle = opts.color;
      ctx.fillStyle = opts.color;
      ctx.setLineDash([4, 3]);
      ctx.font = '11px system-ui, sans-serif';
      for (const m of opts.marks || []) {
        const x = scales.x.getPixelForValue(m.x);
        if (x < chartArea.left || x > chartArea.right) continue;
        ctx.beginPath();
        ctx.moveTo(x, chartArea.top);
        ctx.lineTo(x, chartArea.bottom);
        ctx.stroke();
        ctx.fillText(m.label, Math.min(x + 3, chartArea.right - 60), chartArea.top + 10);
      }
      ctx.restore();
    },
  };

  // An incident's alarms (score / threshold, the threshold at 1) and its actions.
  function timeline(canvas, d) {
    const alarms = (d.recent_alarms || []).map((a) => ({ x: Number(a.timestamp_unix_nanos || a.raised_unix_nanos) / 1e6, y: a.ratio }))
      .filter((p) => p.x > 0 && Number.isFinite(p.y)).sort((a, b) => a.x - b.x);
    const marks = (d.action_list || []).map((a) => {
      const at = Number(a.applied_unix_nanos || a.dispatched_unix_nanos || 0) / 1e6;
      return at > 0 ? { x: at, label: `${a.kind} ${a.status}` } : null;
    }).filter(Boolean);
    const xs = alarms.map((p) => p.x).concat(marks.map((m) => m.x));
    const lo = xs.length ? Math.min(...xs) : 0, hi = xs.length ? Math.max(...xs) : 1;
    const pad = Math.max(500, (hi - lo) * 0.05);
    const highest = alarms.reduce((m, p) => Math.max(m, p.y), 0);
    canvas.setAttribute('aria-label', `Timeline of incident ${d.id}: ${alarms.length} recent alarms between ` +
      `${alarms.length ? clock(alarms[0].x) : '–'} and ${alarms.length ? clock(alarms[alarms.length - 1].x) : '–'}, ` +
      `highest ${Number(highest.toPrecision(3))} times the threshold; ${marks.length} action(s)` +
      (marks.length ? `, the first ${marks[0].label} at ${clock(Math.min(...marks.map((m) => m.x)))}` : ''));
    if (!hasChart) return;
    const opts = baseOptions('score ÷ threshold');
    opts.scales.x.min = lo - pad;
    opts.scales.x.max = hi + pad;
    opts.plugins.immActionMarks = { marks, color: css('--critical') };
    opts.plugins.tooltip.callbacks.label = (item) => `${Number(item.parsed.y.toPrecision(3))}× threshold`;
    draw(canvas, {
      type: 'scatter',
      data: { datasets: [
        { data: alarms, backgroundColor: css('--high'), pointRadius: 3 },
        { type: 'line', data: [{ x: lo - pad, y: 1 }, { x: hi + pad, y: 1 }], borderColor: css('--muted'), borderDash: [2, 2], borderWidth: 1, pointRadius: 0 },
      ] },
      options: opts,
      plugins: [actionMarks],
    });
  }

  function restyle() {
    if (lastSeries) overview(lastSeries);
    for (const [id, c] of charts) {
      if (id.startsWith('ch-')) continue;
      const canvas = document.getElementById(id);
      if (canvas && canvas._incident) timeline(canvas, canvas._incident); else c.destroy();
    }
  }

  window.ImmCharts = { available: hasChart, overview, timeline, restyle };
})();
