// Tollgate review console: a small ES module over the broker's JSON API, no framework.
// The API key lives in sessionStorage only (this tab), never in a URL or a cookie, and goes out as
// `Authorization: Bearer`. Everything rendered from the API is set as text (textContent or SVG
// text nodes), never parsed as HTML.

const KEY_SLOT = 'tollgate.console.key';
const SVG = 'http://www.w3.org/2000/svg';
const PALETTE = ['#c2410c', '#1d4ed8', '#047857', '#7c3aed', '#b91c1c', '#0e7490', '#a16207', '#be185d'];

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

const $ = (id) => document.getElementById(id);

// --- The API ------------------------------------------------------------------------------------

class ApiError extends Error {
  constructor(status, body) {
    const code = body && typeof body.error === 'string' ? body.error : `HTTP ${status}`;
    const description = body && typeof body.error_description === 'string' ? body.error_description : '';
    super(description ? `${code}: ${description}` : code);
    this.status = status;
    this.code = code;
    this.reasons = body && Array.isArray(body.reasons) ? body.reasons : [];
  }
}

function apiKey() {
  return sessionStorage.getItem(KEY_SLOT);
}

async function api(method, path, body, key = apiKey()) {
  const headers = { accept: 'application/json', authorization: `Bearer ${key}` };
  if (body !== undefined) headers['content-type'] = 'application/json';
  const response = await fetch(path, {
    method,
    headers,
    body: body === undefined ? undefined : JSON.stringify(body),
    cache: 'no-store',
    credentials: 'omit',
    referrerPolicy: 'no-referrer',
  });
  let data = null;
  try {
    data = await response.json();
  } catch {
    // An empty or non-JSON body: the status says enough.
  }
  if (!response.ok) throw new ApiError(response.status, data);
  return data;
}

function query(params) {
  const search = new URLSearchParams();
  for (const [name, value] of Object.entries(params))
    if (value !== undefined && value !== null && value !== '') search.set(name, String(value));
  const text = search.toString();
  return text ? `?${text}` : '';
}

/** A refused key (revoked while the tab was open) ends the session; other errors stay where they happened. */
function explain(error) {
  if (error instanceof ApiError && error.status === 401) {
    signOut('The broker no longer accepts this key (invalid_client). Sign in again.');
    return 'signed out';
  }
  if (error instanceof ApiError && error.status === 403 && error.code === 'insufficient_scope') {
    return `Not allowed for this key: ${error.message}`;
  }
  if (error instanceof ApiError) return error.reasons.length ? `${error.message} (${error.reasons.join(', ')})` : error.message;
  return `The broker did not answer: ${error instanceof Error ? error.message : String(error)}`;
}

// --- Small DOM helpers (text only) ---------------------------------------------------------------

function el(tag, options = {}, children = []) {
  const node = document.createElement(tag);
  if (options.className) node.className = options.className;
  if (options.text !== undefined) node.textContent = String(options.text);
  if (options.title) node.title = options.title;
  for (const [name, value] of Object.entries(options.attrs ?? {})) node.setAttribute(name, value);
  for (const child of children) if (child) node.append(child);
  return node;
}

function svg(tag, attrs = {}, text) {
  const node = document.createElementNS(SVG, tag);
  for (const [name, value] of Object.entries(attrs)) node.setAttribute(name, String(value));
  if (text !== undefined) node.textContent = String(text);
  return node;
}

function show(node, message, kind = 'info') {
  node.hidden = !message;
  node.textContent = message ?? '';
  node.className = `message ${kind}`;
}

function time(iso) {
  if (!iso) return '—';
  const date = new Date(iso);
  return Number.isNaN(date.getTime()) ? String(iso) : date.toLocaleString(undefined, { dateStyle: 'short', timeStyle: 'medium' });
}

function short(id) {
  return typeof id === 'string' && id.length > 13 ? `${id.slice(0, 8)}…` : String(id ?? '—');
}

function asText(value) {
  if (value === null || value === undefined) return '—';
  if (typeof value === 'string') return value;
  if (Array.isArray(value) && value.every((item) => typeof item === 'string')) return value.join(', ');
  return JSON.stringify(value);
}

/** A task id that opens the timeline when clicked. */
function taskLink(taskId) {
  if (!taskId) return el('span', { text: '—' });
  const button = el('button', {
    className: 'link mono',
    text: short(taskId),
    title: taskId,
    attrs: { type: 'button', 'data-task': taskId },
  });
  button.addEventListener('click', () => openTimeline(taskId));
  return button;
}

/** `rowOptions(row)` gives a row its class and attributes (el's options), e.g. to mark refusals. */
function table(columns, rows, className = '', rowOptions = () => ({})) {
  const head = el(
    'tr',
    {},
    columns.map((column) => el('th', { text: column.label })),
  );
  const body = rows.map((row) =>
    el(
      'tr',
      rowOptions(row),
      columns.map((column) => {
        const value = column.cell(row);
        return value instanceof Node ? el('td', {}, [value]) : el('td', { text: asText(value), className: column.className });
      }),
    ),
  );
  return el('table', { className }, [el('thead', {}, [head]), el('tbody', {}, body)]);
}

function badge(text, tone) {
  return el('span', { className: `badge ${tone ?? text}`, text });
}

// --- Sign in / out ------------------------------------------------------------------------------

async function signIn(event) {
  event.preventDefault();
  const input = $('api-key');
  const key = input.value.trim();
  const error = $('sign-in-error');
  error.hidden = true;
  if (!key) return;
  try {
    // A review read proves the key is a reviewer's or an admin's before it is kept.
    await api('GET', '/v1/leases?limit=1', undefined, key);
  } catch (failure) {
    let message;
    if (failure instanceof ApiError && failure.status === 401)
      message = `This key was not accepted (${failure.message}). Check it and try again.`;
    else if (failure instanceof ApiError && failure.status === 403)
      message = `This key cannot read the review API (${failure.message}). Use a reviewer or admin key.`;
    else message = explain(failure);
    error.textContent = message;
    error.hidden = false;
    input.select();
    return;
  }
  sessionStorage.setItem(KEY_SLOT, key);
  input.value = '';
  enter();
}

function signOut(message) {
  sessionStorage.removeItem(KEY_SLOT);
  $('app').hidden = true;
  $('nav').hidden = true;
  $('who').hidden = true;
  for (const id of [
    'approvals-list',
    'denials-chart',
    'denials-legend',
    'decisions-table',
    'leases-table',
    'timeline-task',
    'timeline-events',
    'audit-status',
  ])
    $(id).replaceChildren();
  // The searches' summaries name workloads: gone with the rows.
  for (const id of ['decisions-message', 'leases-message']) show($(id), '');
  for (const id of ['decisions-more', 'leases-more']) $(id).hidden = true;
  $('sign-in').hidden = false;
  const error = $('sign-in-error');
  error.textContent = message ?? '';
  error.hidden = !message;
  $('api-key').focus();
}

function enter() {
  $('sign-in').hidden = true;
  $('app').hidden = false;
  $('nav').hidden = false;
  $('who').hidden = false;
  refreshAll();
}

function refreshAll() {
  loadAudit();
  loadApprovals();
  drawDenials();
  searchDecisions();
  searchLeases();
}

// --- Audit chain status ---------------------------------------------------------------------------

async function loadAudit() {
  const box = $('audit-status');
  box.replaceChildren(el('p', { className: 'muted', text: 'Verifying…' }));
  let status;
  try {
    status = await api('GET', '/v1/audit/verify');
  } catch (error) {
    const text =
      error instanceof ApiError && error.status === 404 ? 'This broker has no audit chain API (GET /v1/audit/verify).' : explain(error);
    box.replaceChildren(el('p', { className: 'message error', text }));
    return;
  }
  const rows = [
    ['verified', status.verified],
    ['unchained', status.unchained],
    ['head seq', status.head ? status.head.seq : '—'],
  ];
  const facts = el(
    'dl',
    { className: 'facts' },
    rows.flatMap(([name, value]) => [el('dt', { text: name }), el('dd', { text: asText(value), attrs: { 'data-fact': name } })]),
  );
  const parts = [
    el('p', { className: `verdict ${status.ok ? 'ok' : 'broken'}`, attrs: { 'data-audit': status.ok ? 'ok' : 'broken' } }, [
      el('strong', { text: status.ok ? 'OK' : 'BROKEN' }),
      el('span', { text: status.ok ? ' — every chained event links to the one before' : ' — the chain does not verify' }),
    ]),
    facts,
  ];
  if (status.head)
    parts.push(
      el('p', { className: 'head' }, [
        el('span', { className: 'muted', text: 'head hash ' }),
        el('code', { className: 'hash', text: status.head.hash }),
      ]),
    );
  if (status.first_broken) {
    parts.push(
      el('p', {
        className: 'message error',
        text: `First break at seq ${status.first_broken.seq} (event ${status.first_broken.id}): ${status.first_broken.reason}`,
      }),
    );
  }
  box.replaceChildren(...parts);
}

// --- Pending approvals ------------------------------------------------------------------------------

async function loadApprovals() {
  const list = $('approvals-list');
  let page;
  try {
    page = await api('GET', '/v1/approvals?status=pending&limit=100');
  } catch (error) {
    list.replaceChildren(el('p', { className: 'message error', text: explain(error) }));
    return;
  }
  if (page.items.length === 0) {
    list.replaceChildren(el('p', { className: 'muted', text: 'Nothing waits for approval.' }));
    return;
  }
  const columns = [
    { label: 'requested', cell: (a) => time(a.requested_at) },
    { label: 'task', cell: (a) => taskLink(a.task_id) },
    { label: 'workload', cell: (a) => a.workload_id },
    { label: 'boundary', cell: (a) => `${a.boundary_id} v${a.boundary_version}` },
    { label: 'action', cell: (a) => a.action },
    { label: 'resource', cell: (a) => a.resource },
    { label: 'params', cell: (a) => a.params, className: 'mono' },
    { label: 'purpose', cell: (a) => a.purpose },
    { label: 'expires', cell: (a) => time(a.expires_at) },
    { label: 'decide', cell: (a) => decideControls(a) },
  ];
  const note = page.next_cursor
    ? el('p', { className: 'muted', text: `The ${page.items.length} newest are shown; decide these, then refresh for the rest.` })
    : null;
  list.replaceChildren(...[table(columns, page.items, 'approvals'), note].filter(Boolean));
}

function decideControls(approval) {
  const reason = el('input', {
    attrs: { type: 'text', placeholder: 'reason', 'aria-label': `reason for ${approval.approval_id}`, maxlength: '1024' },
  });
  const approve = el('button', { text: 'Approve', className: 'approve', attrs: { type: 'button' } });
  const deny = el('button', { text: 'Deny', className: 'deny', attrs: { type: 'button' } });
  const box = el('div', { className: 'decide', attrs: { 'data-approval': approval.approval_id } }, [reason, approve, deny]);
  const decide = async (verdict) => {
    const message = $('approvals-message');
    if (!reason.value.trim()) {
      show(message, 'A reason is required to approve or deny.', 'error');
      reason.focus();
      return;
    }
    approve.disabled = deny.disabled = true;
    try {
      const decided = await api('POST', `/v1/approvals/${encodeURIComponent(approval.approval_id)}/${verdict}`, {
        reason: reason.value.trim(),
      });
      show(
        message,
        `${decided.status === 'approved' ? 'Approved' : 'Denied'} ${decided.approval_id} (${decided.action} on ${decided.boundary_id}) as ${decided.decided_by}.`,
        'ok',
      );
      await loadApprovals();
    } catch (error) {
      show(message, explain(error), 'error');
      approve.disabled = deny.disabled = false;
    }
  };
  approve.addEventListener('click', () => decide('approve'));
  deny.addEventListener('click', () => decide('deny'));
  return box;
}

// --- Denials over time (the drift signal) ---------------------------------------------------------------

/** Each window: its span, its bars (an hour, six hours, a day each) and a time label every so many bars. */
const WINDOWS = {
  '24h': { span: 24 * 3600e3, buckets: 24, labelEvery: 4 },
  '7d': { span: 7 * 24 * 3600e3, buckets: 28, labelEvery: 4 },
  '30d': { span: 30 * 24 * 3600e3, buckets: 30, labelEvery: 5 },
};
const MAX_PAGES = 20;

async function drawDenials(event) {
  event?.preventDefault();
  const form = $('denials-form');
  const message = $('denials-message');
  const range = WINDOWS[form.elements.range.value] ?? WINDOWS['24h'];
  // Buckets on whole hours (or days): the bars line up with the clock, the newest one is still filling.
  const step = range.span / range.buckets;
  const until = Math.ceil(Date.now() / step) * step;
  const since = until - range.span;
  const filters = {
    outcome: 'deny',
    since: new Date(since).toISOString(),
    workload: form.elements.workload.value.trim(),
    boundary: form.elements.boundary.value.trim(),
    limit: 1000,
  };
  const denials = [];
  let cursor;
  let pages = 0;
  try {
    do {
      const page = await api('GET', `/v1/decisions${query({ ...filters, cursor })}`);
      denials.push(...page.items);
      cursor = page.next_cursor;
      pages++;
    } while (cursor && pages < MAX_PAGES);
  } catch (error) {
    show(message, explain(error), 'error');
    $('denials-chart').replaceChildren();
    $('denials-legend').replaceChildren();
    return;
  }
  show(
    message,
    `${denials.length} denial${denials.length === 1 ? '' : 's'} in the window${cursor ? ` (the ${denials.length} newest: narrow the filters to see all)` : ''}.`,
  );
  renderDenials(denials, since, until, range);
}

/** Stacked bars: one bar per time bucket, one colour per workload · boundary pair (the busiest seven, then "other"). */
function renderDenials(denials, since, until, { buckets: bucketCount, labelEvery }) {
  const width = 920;
  const height = 260;
  const pad = { left: 44, right: 12, top: 12, bottom: 34 };
  const step = (until - since) / bucketCount;

  const totals = new Map();
  for (const d of denials) {
    const name = `${d.workload_id ?? '—'} · ${d.boundary_id ?? '—'}`;
    const entry = totals.get(name) ?? { count: 0, drift: 0, reasons: new Map() };
    entry.count++;
    if (d.drift) entry.drift++;
    for (const reason of d.reasons ?? []) entry.reasons.set(reason, (entry.reasons.get(reason) ?? 0) + 1);
    totals.set(name, entry);
  }
  const ranked = [...totals.entries()].sort((a, b) => b[1].count - a[1].count);
  const named = ranked.slice(0, PALETTE.length - 1).map(([name]) => name);
  const series = ranked.length > named.length ? [...named, 'other'] : named;
  const colour = (name) => PALETTE[series.indexOf(name) % PALETTE.length];

  const buckets = Array.from({ length: bucketCount }, () => new Map());
  for (const d of denials) {
    const at = Date.parse(d.at);
    const index = Math.min(bucketCount - 1, Math.max(0, Math.floor((at - since) / step)));
    const full = `${d.workload_id ?? '—'} · ${d.boundary_id ?? '—'}`;
    const name = named.includes(full) ? full : 'other';
    buckets[index].set(name, (buckets[index].get(name) ?? 0) + 1);
  }
  const peak = Math.max(1, ...buckets.map((bucket) => [...bucket.values()].reduce((sum, n) => sum + n, 0)));
  const ceiling = niceCeiling(peak);
  const plotWidth = width - pad.left - pad.right;
  const plotHeight = height - pad.top - pad.bottom;
  const barWidth = plotWidth / bucketCount;
  const y = (value) => pad.top + plotHeight - (value / ceiling) * plotHeight;

  const chart = svg('svg', {
    viewBox: `0 0 ${width} ${height}`,
    role: 'img',
    'aria-label': `Denials per ${formatSpan(step)}, stacked by workload and boundary`,
    class: 'bars',
  });
  for (const tick of [0, ceiling / 2, ceiling]) {
    chart.append(svg('line', { x1: pad.left, x2: width - pad.right, y1: y(tick), y2: y(tick), class: 'gridline' }));
    chart.append(
      svg(
        'text',
        { x: pad.left - 6, y: y(tick) + 4, 'text-anchor': 'end', class: 'axis' },
        Number.isInteger(tick) ? tick : tick.toFixed(1),
      ),
    );
  }
  buckets.forEach((bucket, index) => {
    let base = 0;
    const x = pad.left + index * barWidth + 1;
    for (const name of series) {
      const count = bucket.get(name) ?? 0;
      if (!count) continue;
      const rect = svg('rect', {
        x,
        y: y(base + count),
        width: Math.max(1, barWidth - 2),
        height: y(base) - y(base + count),
        fill: colour(name),
        'data-series': name,
        'data-count': count,
      });
      rect.append(
        svg('title', {}, `${name}: ${count} denial${count === 1 ? '' : 's'} from ${time(new Date(since + index * step).toISOString())}`),
      );
      chart.append(rect);
      base += count;
    }
  });
  for (let index = 0; index <= bucketCount; index += labelEvery) {
    const at = new Date(since + index * step);
    const clock = at.toLocaleTimeString(undefined, { hour: '2-digit', minute: '2-digit' });
    const day = at.toLocaleDateString(undefined, { month: 'short', day: 'numeric' });
    // Hourly bars: the time, with the day on the first label; longer bars: the day, with the time when it is not midnight.
    const label =
      step < 6 * 3600e3
        ? index === 0
          ? `${day} ${clock}`
          : clock
        : at.getHours() === 0 && at.getMinutes() === 0
          ? day
          : `${day} ${clock}`;
    const anchor = index === 0 ? 'start' : index === bucketCount ? 'end' : 'middle';
    chart.append(svg('text', { x: pad.left + index * barWidth, y: height - 12, 'text-anchor': anchor, class: 'axis' }, label));
  }
  chart.append(svg('line', { x1: pad.left, x2: width - pad.right, y1: y(0), y2: y(0), class: 'baseline' }));
  $('denials-chart').replaceChildren(chart);

  if (ranked.length === 0) {
    $('denials-legend').replaceChildren(el('p', { className: 'muted', text: 'No denials in this window.' }));
    return;
  }
  const columns = [
    { label: '', cell: ([name]) => swatch(named.includes(name) ? colour(name) : colour('other')) },
    { label: 'workload · boundary', cell: ([name]) => name },
    { label: 'denials', cell: ([, entry]) => entry.count, className: 'num' },
    { label: 'counted as drift', cell: ([, entry]) => entry.drift, className: 'num' },
    {
      label: 'reasons',
      cell: ([, entry]) =>
        [...entry.reasons.entries()]
          .sort((a, b) => b[1] - a[1])
          .map(([reason, n]) => `${reason} ×${n}`)
          .join(', '),
    },
  ];
  $('denials-legend').replaceChildren(table(columns, ranked, 'legend'));
}

function swatch(fill) {
  const box = svg('svg', { width: 12, height: 12, viewBox: '0 0 12 12', 'aria-hidden': 'true' });
  box.append(svg('rect', { width: 12, height: 12, rx: 2, fill }));
  return box;
}

function niceCeiling(value) {
  const power = 10 ** Math.floor(Math.log10(value));
  for (const factor of [1, 2, 2.5, 5, 10]) if (factor * power >= value) return factor * power;
  return 10 * power;
}

function formatSpan(ms) {
  const hours = ms / 3600e3;
  return hours < 24 ? `${hours} hour${hours === 1 ? '' : 's'}` : `${hours / 24} day${hours === 24 ? '' : 's'}`;
}

// --- Filtered, paged searches (decisions and leases) ------------------------------------------------------

/**
 * A filter form's named fields as a review query: text trimmed (empty means no filter), and the
 * datetime-local fields, which the browser gives in its own time zone, sent as UTC instants.
 */
function formFilters(form) {
  const filters = {};
  for (const field of form.elements) {
    if (!field.name) continue;
    const value = field.value.trim();
    filters[field.name] = field.type === 'datetime-local' ? localToIso(value) : value;
  }
  return filters;
}

function localToIso(value) {
  if (!value) return undefined;
  const date = new Date(value);
  return Number.isNaN(date.getTime()) ? value : date.toISOString();
}

/** An instant as a datetime-local field shows it: this browser's wall-clock time, to the second. */
function isoToLocal(value) {
  const date = new Date(value);
  if (!value || Number.isNaN(date.getTime())) return '';
  return new Date(date.getTime() - date.getTimezoneOffset() * 60e3).toISOString().slice(0, 19);
}

/**
 * One search over a review list route: the form `<name>-form` filters, rows go into `<name>-table`,
 * `<name>-more` appends the next page with the route's cursor, and `<name>-message` says what the
 * loaded rows show (`describe(items, more)`) or the API's error. Returns the search, to run again.
 *
 * With `linked`, a search the reviewer submits is kept in the URL fragment (`#<name>?boundary=…`),
 * and such a fragment fills the form: a link to the answer. Only the filters go there; the key never
 * does, and a fragment is not sent to any server.
 */
function pagedSearch({ name, route, columns, describe, rowOptions, pageSize = 25, linked = false }) {
  const form = $(`${name}-form`);
  const message = $(`${name}-message`);
  const holder = $(`${name}-table`);
  const more = $(`${name}-more`);
  let filters = {};
  let items = [];
  // A page that comes back after a newer search started belongs to nothing on screen.
  let generation = 0;

  async function load(cursor) {
    const asked = generation;
    more.disabled = true;
    let page;
    try {
      page = await api('GET', `${route}${query({ ...filters, limit: pageSize, cursor })}`);
    } catch (error) {
      if (asked !== generation) return;
      show(message, explain(error), 'error');
      more.hidden = true;
      return;
    } finally {
      more.disabled = false;
    }
    if (asked !== generation) return;
    items = [...items, ...page.items];
    const rows = table(columns, page.items, name, rowOptions);
    const body = holder.querySelector('tbody');
    if (body) body.append(...rows.querySelector('tbody').children);
    else holder.replaceChildren(rows);
    show(message, describe(items, Boolean(page.next_cursor)));
    more.hidden = !page.next_cursor;
    more.onclick = () => load(page.next_cursor);
  }

  async function search(event) {
    event?.preventDefault();
    generation++;
    filters = formFilters(form);
    if (linked && event) history.replaceState(null, '', `#${name}${query(filters)}`);
    items = [];
    holder.replaceChildren();
    more.hidden = true;
    await load();
    if (scrollOnce) {
      scrollOnce = false;
      $(name).scrollIntoView({ block: 'start' });
    }
  }

  /** Fills the form from a `#<name>?…` fragment; says whether there was one. */
  function restore() {
    const prefix = `#${name}?`;
    if (!linked || !location.hash.startsWith(prefix)) return false;
    const params = new URLSearchParams(location.hash.slice(prefix.length));
    for (const field of form.elements) {
      if (!field.name) continue;
      const value = params.get(field.name) ?? '';
      field.value = field.type === 'datetime-local' ? isoToLocal(value) : value;
    }
    return true;
  }

  form.addEventListener('submit', search);
  // Opened from a link: the answer is what the reviewer came for, so the first search scrolls to it.
  let scrollOnce = restore();
  // A link followed within the page (or a fragment edited by hand) searches again, when signed in.
  window.addEventListener('hashchange', () => {
    if (!restore() || !apiKey()) return;
    scrollOnce = true;
    search();
  });
  return search;
}

function plural(n, noun) {
  return `${n} ${noun}${n === 1 ? '' : 's'}`;
}

// --- Decisions: who could call a tool, for whom, and who was refused ---------------------------------------

const OUTCOME_LABELS = { permit: 'permit', deny: 'DENY', pending: 'pending' };

const DECISION_COLUMNS = [
  { label: 'time', cell: (d) => time(d.at) },
  { label: 'outcome', cell: (d) => badge(OUTCOME_LABELS[d.outcome] ?? d.outcome, d.outcome) },
  { label: 'workload', cell: (d) => d.workload_id },
  { label: 'task', cell: (d) => taskLink(d.task_id) },
  { label: 'boundary', cell: (d) => (d.boundary_id ? `${d.boundary_id} v${d.boundary_version}` : null) },
  { label: 'action', cell: (d) => d.action },
  { label: 'resource', cell: (d) => d.resource },
  { label: 'reasons', cell: (d) => reasonsOf(d) },
  {
    label: 'lease',
    cell: (d) =>
      d.lease_state ? el('span', { title: d.lease_id ?? '', attrs: { 'data-lease': d.lease_id ?? '' } }, [badge(d.lease_state)]) : null,
  },
];

function reasonsOf(decision) {
  if (decision.reasons.length === 0) return null;
  const reasons = el('span', { className: 'reasons', text: decision.reasons.join(', ') });
  // The refusal that reached the drift threshold ended its task: the one a reviewer looks for first.
  if (decision.drift !== 'suspended_task') return reasons;
  return el('span', {}, [
    reasons,
    ' ',
    el('span', {
      className: 'badge drift',
      text: 'suspended the task',
      title: 'this denial reached the drift threshold and suspended its task',
    }),
  ]);
}

/** The reviewer's answer in one line, as `tollgate decisions ls` prints it, over the rows loaded so far. */
function decisionSummary(items, more) {
  if (items.length === 0) return 'No decision matches: nobody asked.';
  const permits = items.filter((d) => d.outcome === 'permit');
  const live = permits.filter((d) => d.lease_state === 'active').length;
  const denied = items.filter((d) => d.outcome === 'deny');
  const pending = items.filter((d) => d.outcome === 'pending').length;
  const workloads = (list) => [...new Set(list.map((d) => d.workload_id))].join(', ') || 'nobody';
  return (
    `${plural(items.length, 'decision')}: ${permits.length} permitted (${workloads(permits)}; ${plural(live, 'lease')} still active), ` +
    `${denied.length} refused (${workloads(denied)})${pending > 0 ? `, ${pending} sent to a reviewer` : ''}.` +
    (more ? ' Older decisions match too: these counts are of the newest shown; load older ones to count them.' : '')
  );
}

// A module script runs after the page is parsed: the forms are there to bind.
const searchDecisions = pagedSearch({
  name: 'decisions',
  route: '/v1/decisions',
  columns: DECISION_COLUMNS,
  describe: decisionSummary,
  rowOptions: (d) => ({ className: `outcome-${d.outcome}`, attrs: { 'data-decision': d.decision_id } }),
  linked: true,
});

// --- Lease search ---------------------------------------------------------------------------------------

const LEASE_COLUMNS = [
  { label: 'issued', cell: (l) => time(l.issued_at) },
  { label: 'lease', cell: (l) => el('span', { className: 'mono', text: short(l.lease_id), title: l.lease_id }) },
  { label: 'task', cell: (l) => taskLink(l.task_id) },
  { label: 'workload', cell: (l) => l.workload_id },
  { label: 'boundary', cell: (l) => `${l.boundary_id} v${l.boundary_version}` },
  { label: 'action', cell: (l) => l.action },
  { label: 'resource', cell: (l) => l.resource },
  { label: 'kind', cell: (l) => l.credential_kind },
  { label: 'state', cell: (l) => badge(l.state) },
  {
    label: 'expires / revoked',
    cell: (l) => (l.revoked_at ? `${time(l.revoked_at)} (${l.revoke_reason ?? 'revoked'})` : time(l.expires_at)),
  },
];

function leaseSummary(items, more) {
  return items.length === 0 ? 'No lease matches.' : `${plural(items.length, 'lease')}${more ? ' (more below)' : ''}.`;
}

const searchLeases = pagedSearch({ name: 'leases', route: '/v1/leases', columns: LEASE_COLUMNS, describe: leaseSummary });

// --- Task timeline ---------------------------------------------------------------------------------------

const TONES = [
  [/deny|denied|refus|drift|suspend/, 'deny'],
  [/revoke|expire|complete/, 'end'],
  [/pending|approval/, 'pending'],
  [/permit|issue|lease|approved/, 'permit'],
];

function toneOf(kind) {
  for (const [pattern, tone] of TONES) if (pattern.test(kind)) return tone;
  return 'info';
}

async function openTimeline(taskId) {
  const form = $('timeline-form');
  form.elements.task.value = taskId;
  $('timeline').scrollIntoView({ block: 'start' });
  await loadTimeline();
}

async function loadTimeline(event) {
  event?.preventDefault();
  const taskId = $('timeline-form').elements.task.value.trim();
  const message = $('timeline-message');
  if (!taskId) return;
  let timeline;
  try {
    timeline = await api('GET', `/v1/tasks/${encodeURIComponent(taskId)}/timeline`);
  } catch (error) {
    const text =
      error instanceof ApiError && error.status === 404 ? `No task ${taskId} (or no timeline API on this broker).` : explain(error);
    show(message, text, 'error');
    $('timeline-task').replaceChildren();
    $('timeline-events').replaceChildren();
    return;
  }
  show(message, '');
  const task = timeline.task ?? {};
  const facts = [
    ['task', task.task_id ?? task.id ?? taskId],
    ['intent', task.intent],
    ['subject', task.subject],
    ['workload', task.workload_id],
    ['state', task.state],
    ['opened', time(task.created_at)],
    ['expires', time(task.expires_at)],
    ...(task.ended_at ? [['ended', `${time(task.ended_at)} (${task.end_reason ?? task.state})`]] : []),
  ];
  $('timeline-task').replaceChildren(
    el(
      'dl',
      { className: 'facts inline' },
      facts.flatMap(([name, value]) => [el('dt', { text: name }), el('dd', { text: asText(value) })]),
    ),
  );
  const items = (timeline.events ?? []).map((event) => {
    const { at, kind, ...rest } = event;
    const details = el('dl', { className: 'details' });
    for (const [name, value] of Object.entries(rest)) {
      if (value === null || value === undefined || (Array.isArray(value) && value.length === 0)) continue;
      // Ids are long: shown short, whole on hover (and in the data attribute tests and scripts read).
      const id = name.endsWith('_id') && typeof value === 'string' && UUID.test(value);
      const shown = id ? short(value) : name.endsWith('_at') && typeof value === 'string' ? time(value) : asText(value);
      const dd = el('dd', { text: shown, className: name === 'reasons' ? 'reasons' : id ? 'mono' : '', title: id ? value : undefined });
      if (id) dd.setAttribute('data-id', value);
      details.append(el('dt', { text: name }), dd);
    }
    return el('li', { className: `event ${toneOf(String(kind))}`, attrs: { 'data-kind': String(kind) } }, [
      el('time', { text: time(at), attrs: { datetime: String(at ?? '') } }),
      badge(String(kind), toneOf(String(kind))),
      details,
    ]);
  });
  $('timeline-events').replaceChildren(...(items.length ? items : [el('li', { className: 'muted', text: 'No events.' })]));
}

// --- Start -------------------------------------------------------------------------------------------

function start() {
  $('sign-in-form').addEventListener('submit', signIn);
  $('sign-out').addEventListener('click', () => signOut('Signed out: the key is forgotten.'));
  $('refresh').addEventListener('click', refreshAll);
  $('denials-form').addEventListener('submit', drawDenials);
  $('timeline-form').addEventListener('submit', loadTimeline);
  if (apiKey()) enter();
  else signOut();
}

start();
