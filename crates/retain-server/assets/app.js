// The retain dashboard: hash-routed pages over the JSON API. The session is an HttpOnly
// cookie; changes carry the CSRF token the server gave at login.
'use strict';
(() => {
  const $ = (sel, root = document) => root.querySelector(sel);
  const view = () => $('#view');
  let me = null;
  let lang = localStorage.getItem('retain.lang') || 'zh-CN';
  const charts = [];

  const t = (k) => (I18N[lang] && I18N[lang][k]) || I18N.en[k] || k;
  const esc = (v) => String(v ?? '').replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' }[c]));
  const num = (v, d = 0) => (v === null || v === undefined || Number.isNaN(v)) ? '—' : Number(v).toLocaleString(lang, { maximumFractionDigits: d, minimumFractionDigits: d });
  const pct = (v, d = 1) => (v === null || v === undefined) ? '—' : `${(v * 100).toFixed(d)}%`;
  // A code a report or chart carries (segment, curve, feature) by its name; plan tiers are numbered.
  const code = (k) => {
    if (k === null || k === undefined) return '';
    const tier = /^plan_tier_(\d+)$/.exec(k);
    if (tier) return lang === 'en' ? `Plan tier ${tier[1]}` : `套餐档位${tier[1]}`;
    const name = (CODES[lang] || {})[k];
    if (name) return name;
    return lang === 'en' ? String(k).replace(/_/g, ' ').replace(/^./, (c) => c.toUpperCase()) : k;
  };
  // "age -0.59σ": a cluster's feature and its distance from the mean.
  const codedLead = (text) => String(text ?? '').replace(/^[a-z_0-9]+/, (k) => code(k));
  const zhEn = (o, base = 'name') => (o ? (lang === 'en' ? o[`${base}_en`] : o[`${base}_zh`]) ?? o[`${base}_en`] ?? '' : '');
  const level = (l) => l ? `<span class="lv ${esc(l)}">${esc(t(l))}</span>` : '—';
  // A code (industry, reason, channel…) by its name under `prefix_code`; a code with no name shows as is.
  const named = (prefix, code) => {
    if (code === null || code === undefined || code === '') return '—';
    const k = `${prefix}_${code}`;
    return (I18N[lang] && I18N[lang][k]) || I18N.en[k] || String(code);
  };
  // YYYY-MM-DD on the browser's clock, `back` days ago.
  const day = (back = 0) => {
    const d = new Date();
    d.setDate(d.getDate() - back);
    return `${d.getFullYear()}-${String(d.getMonth() + 1).padStart(2, '0')}-${String(d.getDate()).padStart(2, '0')}`;
  };

  class ApiError extends Error { constructor(status, code, message) { super(message); this.status = status; this.code = code; } }
  // A page's reads that finish after the user moved on must not paint over the new page.
  class Stale extends Error {}
  let routeSeq = 0;

  async function api(method, path, body) {
    const headers = { Accept: 'application/json' };
    if (body !== undefined) headers['Content-Type'] = 'application/json';
    if (method !== 'GET' && me) headers['X-CSRF-Token'] = me.csrf;
    const seq = routeSeq;
    const res = await fetch(path, { method, headers, credentials: 'same-origin', body: body === undefined ? undefined : JSON.stringify(body) });
    const data = await res.json().catch(() => ({}));
    if (method === 'GET' && seq !== routeSeq) throw new Stale();
    if (!res.ok) {
      if (res.status === 401 && path !== '/api/v1/session') { me = null; renderLogin(); }
      throw new ApiError(res.status, data.code, data.message || res.statusText);
    }
    return data;
  }

  function toast(text, bad = false) {
    const el = $('#toast');
    el.textContent = text; el.className = bad ? 'bad' : ''; el.hidden = false;
    clearTimeout(toast.timer); toast.timer = setTimeout(() => { el.hidden = true; }, 6000);
  }

  function chart(el, option) {
    if (!window.echarts || !el) return;
    const c = echarts.init(el);
    c.setOption(option);
    charts.push(c);
  }

  // The seeds' churn categories and the stages of the strategy table (docs/offers.md).
  const CATEGORIES = ['price', 'quality', 'social', 'convenience'];
  const STAGES = ['prevention', 'care', 'retention', 'win_back'];

  // Pages each role sees, in menu order; the first is the role's home.
  const PAGES = {
    admin: ['overview', 'warnings', 'groups', 'visits', 'campaigns', 'queue', 'segments', 'network', 'model', 'rules', 'offers', 'managers', 'counter', 'runs', 'audit'],
    analyst: ['overview', 'warnings', 'groups', 'visits', 'campaigns', 'queue', 'segments', 'network', 'model', 'rules', 'offers', 'managers', 'counter', 'runs'],
    approver: ['overview', 'campaigns', 'segments', 'network', 'model', 'rules', 'offers', 'managers', 'runs'],
    manager: ['queue', 'warnings', 'groups', 'visits', 'managers', 'counter'],
    store: ['counter'],
  };

  function applyStatic() {
    document.documentElement.lang = lang;
    document.querySelectorAll('[data-i18n]').forEach((el) => { el.textContent = t(el.dataset.i18n); });
    $('#lang').value = lang;
  }

  function renderNav(active) {
    const pages = me ? PAGES[me.role] || [] : [];
    $('#nav').innerHTML = pages.map((p) => `<a href="#/${p}" data-testid="nav-${p}" class="${p === active ? 'on' : ''}">${esc(t(`nav_${p}`))}</a>`).join('');
    $('#who').textContent = me ? `${me.name} · ${me.role}` : '';
    $('#logout').hidden = !me;
  }

  function renderLogin(message) {
    renderNav();
    // Keep a form already on screen (and what was typed into it): only the message changes.
    const shown = $('#login-form');
    if (shown) {
      $('[data-testid=login-error]').textContent = message || '';
      return;
    }
    view().innerHTML = `<form class="login" id="login-form" data-testid="login-form">
      <h1>retain · ${esc(t('brand'))}</h1>
      <label>${esc(t('name'))}<br><input name="name" autocomplete="username" required></label>
      <label>${esc(t('password'))}<br><input name="password" type="password" autocomplete="current-password" required></label>
      <button class="primary" type="submit">${esc(t('login'))}</button>
      <div class="error" data-testid="login-error">${esc(message || '')}</div></form>`;
    $('#login-form').addEventListener('submit', async (e) => {
      e.preventDefault();
      const f = new FormData(e.target);
      try {
        me = await api('POST', '/api/v1/session', { name: f.get('name'), password: f.get('password') });
        const home = `#/${PAGES[me.role][0]}`;
        if (location.hash === home) route(); else location.hash = home;
      } catch (err) { renderLogin(`${t('login_failed')}: ${err.message}`); }
    });
  }

  async function route() {
    routeSeq += 1;
    charts.splice(0).forEach((c) => c.dispose());
    applyStatic();
    if (!me) {
      try { me = await api('GET', '/api/v1/me'); } catch (err) { if (!(err instanceof Stale)) renderLogin(); return; }
    }
    const [page, arg] = location.hash.replace(/^#\/?/, '').split('?')[0].split('/');
    const allowed = PAGES[me.role] || [];
    const target = page === 'customer' || page === 'campaign' ? page : (allowed.includes(page) ? page : allowed[0]);
    renderNav(target === 'customer' ? 'warnings' : target === 'campaign' ? 'campaigns' : target);
    view().innerHTML = `<p class="muted">${esc(t('loading'))}</p>`;
    try {
      await (RENDER[target] || RENDER[allowed[0]])(arg ? decodeURIComponent(arg) : undefined);
    } catch (err) {
      if (err instanceof Stale || (err instanceof ApiError && err.status === 401)) return;
      view().innerHTML = `<p class="error" data-testid="page-error">${esc(err.status === 404 ? t('not_found') : err.status === 403 ? t('forbidden') : '')} ${esc(err.message)}</p>`;
    }
  }

  function table(headers, rows, testid = '') {
    return `<table data-testid="${esc(testid)}"><thead><tr>${headers.map((h) => `<th${h.num ? ' class="num"' : ''}>${esc(h.label ?? h)}</th>`).join('')}</tr></thead>
      <tbody>${rows.join('') || `<tr><td colspan="${headers.length}" class="muted">${esc(t('none'))}</td></tr>`}</tbody></table>`;
  }

  // Rules re-tuned per tenure cohort: the pending proposal as a diff, accepted or rejected by
  // those who plan; a button to propose when there is none.
  async function showProposal() {
    const el = $('#proposal');
    const planner = ['admin', 'analyst'].includes(me.role);
    const d = await api('GET', '/api/v1/rules/proposal');
    const p = d.proposal;
    const shift = (b, a) => `${pct(b.precision)} → ${pct(a.precision)} · ${pct(b.recall)} → ${pct(a.recall)}`;
    if (!p) {
      el.innerHTML = planner ? `<p><button id="propose" data-testid="rules-propose">${esc(t('propose_cohorts'))}</button></p>` : '';
    } else {
      el.innerHTML = `<div class="panel"><h2>${esc(t('proposal'))}</h2>
        <p class="muted">${esc(t('proposal_target'))} ${pct(p.target_precision)} · ${esc(p.snapshots.join(', '))} · ${esc(t('potential'))}: ${shift(p.before, p.after)}</p>
        ${table([t('cohort'), t('threshold'), t('precision_recall'), t('points')], p.cohorts.map((c) => `<tr><td>${esc(c.cohort)}</td>
          <td>${c.threshold_before} → ${c.threshold_after}</td><td>${shift(c.before, c.after)}</td>
          <td>${c.points.map((r) => `<span class="pill" title="lift ${num(r.lift, 2)} / ${num(r.lift_overall, 2)}, ${r.hits}">${esc(r.rule)} ${r.before} → ${r.after}</span>`).join(' ')}</td></tr>`), 'proposal-table')}
        ${planner ? `<p><button id="proposal-accept" data-testid="proposal-accept">${esc(t('accept'))}</button> <button id="proposal-reject" data-testid="proposal-reject">${esc(t('reject'))}</button></p>` : ''}</div>`;
    }
    const act = (id, path, done) => {
      const b = $(`#${id}`);
      if (!b) return;
      b.addEventListener('click', async () => {
        b.disabled = true;
        try { await api('POST', path); toast(t(done)); await (done === 'accepted_proposal' ? route() : showProposal()); } catch (err) { toast(err.message, true); b.disabled = false; }
      });
    };
    act('propose', '/api/v1/rules/proposal', 'proposed');
    act('proposal-accept', '/api/v1/rules/proposal/accept', 'accepted_proposal');
    act('proposal-reject', '/api/v1/rules/proposal/reject', 'rejected_proposal');
  }

  // The TOML editor of rules and offers: checked by the server before it replaces the file.
  function editor(kind, text, backtest) {
    if (!['admin', 'analyst'].includes(me.role)) return '';
    return `<h2>${esc(t('edit'))}</h2><div class="panel" data-testid="${kind}-editor">
      <textarea id="src" rows="18" style="width:100%;font-family:monospace" spellcheck="false">${esc(text)}</textarea>
      <p><input id="src-note" size="40" placeholder="${esc(t('note'))}">
      <button class="primary" id="src-save" data-testid="${kind}-save">${esc(t('save'))}</button>
      ${backtest ? `<button id="src-backtest" data-testid="rules-backtest">${esc(t('backtest'))}</button>` : ''}</p>
      <div id="src-result" data-testid="${kind}-result"></div></div>`;
  }

  function bindEditor(kind, path) {
    const save = $('#src-save');
    if (!save) return;
    const result = $('#src-result');
    save.addEventListener('click', async () => {
      try {
        await api('PUT', path, { toml: $('#src').value, note: $('#src-note').value });
        toast(t('saved'));
        route();
      } catch (err) { result.innerHTML = `<pre class="error">${esc(err.message)}</pre>`; }
    });
    const bt = $('#src-backtest');
    if (bt) bt.addEventListener('click', async () => {
      bt.disabled = true;
      result.innerHTML = `<p class="muted">${esc(t('loading'))}</p>`;
      try {
        const r = await api('POST', '/api/v1/rules/backtest', { toml: $('#src').value });
        result.innerHTML = table([t('level'), { label: t('precision'), num: true }, { label: t('recall'), num: true }, { label: t('rule_lift'), num: true }],
          ['red', 'yellow', 'blue'].map((l) => `<tr><td>${level(l)}</td><td class="num">${pct(r.levels?.[l]?.precision)}</td><td class="num">${pct(r.levels?.[l]?.recall)}</td><td class="num">${num(r.levels?.[l]?.lift, 1)}</td></tr>`), 'backtest-table');
      } catch (err) { result.innerHTML = `<pre class="error">${esc(err.message)}</pre>`; }
      bt.disabled = false;
    });
  }

  const VISIT_CHANNELS = ['onsite', 'phone', 'wechat', 'meeting'];
  const VISIT_OUTCOMES = ['routine', 'needs_follow_up', 'complaint', 'competitor_offer', 'renewal_agreed', 'expansion'];
  const MEMBERS_SHOWN = 50;
  const groupHref = (id) => `#/groups/${encodeURIComponent(id)}`;
  const reasonPills = (reasons) => (reasons || []).map((r) => (typeof r === 'string'
    ? `<span class="pill">${esc(named('gr', r))}</span>`
    : `<span class="pill" title="${esc(t('points'))} ${esc(r.points)}">${esc(named('gr', r.code))}</span>`)).join('');
  // A lost group has no level: it shows as lost instead.
  const groupLevel = (g) => (g.status === 'lost' ? `<span class="st">${esc(t('gst_lost'))}</span>` : level(g.level));

  // Group 360: the group's warning, people, products, members and visits, and the form that
  // records a visit. Sending the form twice records one visit (the server keeps one per group,
  // manager and day); the button still waits for the answer.
  async function groupView(id) {
    const d = await api('GET', `/api/v1/groups/${encodeURIComponent(id)}`);
    const g = d.group || {};
    const w = d.warning || {};
    const cut = (s) => String(s ?? '').slice(0, 10);
    const visits = [...(d.recorded_visits || []).map((v) => ({ ...v, recorded: true })), ...(d.visits || [])]
      .sort((a, b) => String(b.visit_date).localeCompare(String(a.visit_date)));
    const members = (d.members || []).slice(0, MEMBERS_SHOWN);
    const person = (sid) => (sid === null || sid === undefined ? '—' : `<a href="#/customer/${esc(encodeURIComponent(sid))}">${esc(sid)}</a>`);
    // Without a manager on the group, an analyst says whose visit it was; a manager's is their own.
    const askManager = me.role !== 'manager' && !g.manager_id;
    const badge = g.status === 'lost' || w.level ? groupLevel({ status: g.status, level: w.level }) : '';
    view().innerHTML = `<h1 data-testid="group-title"><a href="#/groups">${esc(t('nav_groups'))}</a> › ${esc(g.name)} <small class="muted">${esc(g.group_id)}</small> ${badge}</h1>
      <div class="grid">
        <div class="panel"><h2>${esc(t('profile'))}</h2><div class="kv">
          <div>${esc(t('industry'))}</div><div>${esc(g.industry)} ${esc(named('ind', g.industry))}</div>
          <div>${esc(t('grade'))}</div><div>${esc(g.value_tier)}</div>
          <div>${esc(t('size'))}</div><div>${esc(named('size', w.size))} · ${esc(t('members'))} ${num(w.members_now)} · ${esc(t('employees'))} ${num(g.employees)}</div>
          <div>${esc(t('status'))}</div><div>${esc(named('gst', g.status))} ${esc(cut(g.status_date))}</div>
          <div>${esc(t('branch'))}</div><div>${esc(g.branch_id)}</div>
          <div>${esc(t('manager'))}</div><div>${esc(g.manager_id || '—')}</div>
          <div>${esc(t('agreement'))}</div><div>${esc(cut(g.contract_start))} – ${esc(cut(g.contract_end))}</div>
          <div>${esc(t('monthly_revenue'))}</div><div>${num(w.monthly_revenue)}</div>
          <div>${esc(t('lifetime_value'))}</div><div>${num(w.lifetime_value)} <span class="muted">(${esc(t('expected_months'))} ${num(w.expected_months, 1)})</span></div>
          <div>${esc(t('last_visit'))}</div><div>${esc(w.last_visit || '—')}</div>
        </div></div>
        <div class="panel" data-testid="group-warning"><h2>${esc(t('group_warning'))} ${d.warning ? `${badge} <small class="muted">${esc(t('score'))} ${esc(w.score)}</small>` : ''}</h2>
          ${d.warning ? table([t('reasons'), { label: t('points'), num: true }], (w.reasons || []).map((r) => `<tr><td>${esc(named('gr', r.code))}</td><td class="num">${esc(r.points)}</td></tr>`)) : `<p class="muted">${esc(t('not_ready'))}</p>`}</div>
        <div class="panel"><h2>${esc(t('key_people'))}</h2>
          ${table([t('role'), t('job_title'), t('subscriber')], (d.key_people || []).map((k) => `<tr><td>${esc(named('krole', k.role))}</td><td>${esc(k.title)}</td><td>${person(k.subscriber_id)}</td></tr>`), 'group-key-people')}</div>
        <div class="panel"><h2>${esc(t('products'))}</h2>
          ${table([t('kind'), { label: t('monthly_fee'), num: true }, t('start_date'), t('end_date'), t('status')], (d.products || []).map((p) => `<tr><td>${esc(named('prod', p.kind))} <small class="muted">${esc(p.product_id)}</small></td><td class="num">${num(p.monthly_fee)}</td><td class="nowrap">${esc(cut(p.start_date))}</td><td class="nowrap">${esc(cut(p.end_date) || '—')}</td><td>${esc(named('pst', p.status))}</td></tr>`), 'group-products')}</div>
        <div class="panel"><h2>${esc(t('planned_visits'))}</h2>
          ${table([t('visit_due'), t('purpose'), { label: t('overdue_days'), num: true }], (d.planned_visits || []).map((v) => `<tr><td>${esc(v.due_date)}</td><td>${esc(named('purpose', v.purpose))}</td><td class="num">${v.overdue_days ? num(v.overdue_days) : ''}</td></tr>`), 'group-planned')}</div>
      </div>
      <h2>${esc(t('record_visit'))}</h2>
      <form class="filters panel" id="vf" data-testid="visit-form">
        <label>${esc(t('visit_date'))}<input type="date" name="visit_date" value="${day()}" min="${day(365)}" max="${day()}" required></label>
        <label>${esc(t('channel'))}<select name="channel">${VISIT_CHANNELS.map((c) => `<option value="${c}">${esc(named('vch', c))}</option>`).join('')}</select></label>
        <label>${esc(t('outcome'))}<select name="outcome">${VISIT_OUTCOMES.map((o) => `<option value="${o}">${esc(named('vout', o))}</option>`).join('')}</select></label>
        ${askManager ? `<label>${esc(t('visit_manager'))}<input name="manager_id" size="12" maxlength="64" required></label>` : ''}
        <label>${esc(t('notes'))}<input name="notes" size="48" maxlength="512"></label>
        <button class="primary" type="submit">${esc(t('save'))}</button></form>
      <h2>${esc(t('visits'))}</h2>
      ${table([t('visit_date'), t('manager'), t('channel'), t('outcome'), t('notes'), t('source')], visits.map((v) => `<tr${v.recorded ? ` data-testid="recorded-visit" data-date="${esc(v.visit_date)}"` : ''}>
        <td class="nowrap">${esc(v.visit_date)}</td><td class="nowrap">${esc(v.manager_id)}</td><td>${esc(named('vch', v.channel))}</td>
        <td class="${v.outcome === 'complaint' || v.outcome === 'competitor_offer' ? 'error' : ''}">${esc(named('vout', v.outcome))}</td><td>${esc(v.notes)}</td>
        <td class="muted">${v.recorded ? `<span title="${esc(v.recorded_at)}">${esc(t('recorded'))} · ${esc(v.recorded_by)}</span>` : esc(t('loaded'))}</td></tr>`), 'group-visits')}
      <h2>${esc(t('members'))} <small class="muted" data-testid="group-members-total">${esc(t('members_total'))} ${num(d.members_total)}${d.members_total > members.length ? ` · ${esc(t('shown'))} ${num(members.length)}` : ''}</small></h2>
      ${table([t('subscriber'), t('msisdn'), t('join_date'), t('plan'), t('status'), t('manager')], members.map((m) => `<tr><td>${person(m.subscriber_id)}</td><td>${esc(m.msisdn)}</td><td>${esc(cut(m.join_date))}</td><td>${esc(m.plan_id)}</td><td>${esc(t(m.status))} ${m.status === 'active' ? '' : esc(cut(m.status_date))}</td><td>${esc(m.manager_id || '—')}</td></tr>`), 'group-members')}`;
    $('#vf').addEventListener('submit', async (e) => {
      e.preventDefault();
      const f = e.target;
      const button = f.querySelector('button[type=submit]');
      const v = new FormData(f);
      const body = { visit_date: v.get('visit_date'), channel: v.get('channel'), outcome: v.get('outcome'), notes: v.get('notes') || '' };
      if (v.get('manager_id')) body.manager_id = v.get('manager_id').trim();
      button.disabled = true;
      try {
        const r = await api('POST', `/api/v1/groups/${encodeURIComponent(id)}/visits`, body);
        toast(r.created ? t('visit_saved') : t('visit_exists'));
        await route();
      } catch (err) { toast(err.message, true); button.disabled = false; }
    });
  }

  // Customer 360's network panel: the home cell with its churn and risk, and the calling circle
  // with its leader, its leavers and links to the members this user may open.
  function circlePanel(n) {
    if (!n) return '';
    const cell = n.home_cell;
    const c = n.circle;
    const cellRows = cell ? `<div>${esc(t('home_cell'))}</div><div>${esc(cell.cell_id)} · ${esc(n.district || cell.district || '')} ${esc(cell.technology || '')}</div>
      ${cell.churn_rate == null ? '' : `<div>${esc(t('churn_rate'))}</div><div>${pct(cell.churn_rate, 1)} · ${esc(t('mean_risk'))} ${cell.mean_risk == null ? '—' : pct(cell.mean_risk, 1)}</div>
      <div>${esc(t('dropped_call_rate'))}</div><div>${num(cell.dropped_call_rate_4w, 2)} · ${esc(t('weak_coverage'))} ${num(cell.weak_coverage_4w)}</div>`}` : '';
    const circle = c ? `<div>${esc(t('circle'))}</div><div>#${esc(c.id)} · ${num(c.size)} · ${esc(t('circle_churn_rate'))} ${pct(c.churn_rate, 1)} ${c.in_wave ? `<span class="lv red">${esc(t('in_wave'))}</span>` : ''} ${c.leader ? `<span class="pill">${esc(t('leader'))}</span>` : ''}</div>` : `<div>${esc(t('circle'))}</div><div class="muted">${esc(t('not_in_circle'))}</div>`;
    const members = c ? table([t('subscriber'), t('leader'), { label: t('calls'), num: true }, t('left_recently')], c.members.map((m) => `<tr><td>${m.subscriber_id == null ? `<span class="muted">${esc(t('other_manager'))}</span>` : `<a href="#/customer/${encodeURIComponent(m.subscriber_id)}">${esc(m.subscriber_id)}</a>`}</td><td>${m.leader ? '★' : ''}</td><td class="num">${num(m.calls)}</td><td>${m.left_3m ? '✗' : ''}</td></tr>`), 'circle-members') : '';
    return `<div class="panel" data-testid="circle-panel"><h2>${esc(t('nav_network'))}</h2><div class="kv">${cellRows}${circle}</div>${members}</div>`;
  }

  const RENDER = {
    async overview() {
      const d = await api('GET', '/api/v1/overview');
      const o = d.operator;
      const w = d.warnings || {};
      view().innerHTML = `<h1>${esc(t('nav_overview'))}</h1>
        <div class="cards" data-testid="overview-cards">
          ${[['subscribers', o.subscribers], ['active', o.active], ['suspended', o.suspended], ['cancelled', o.cancelled], ['red', w.red], ['yellow', w.yellow], ['blue', w.blue]]
            .map(([k, v]) => `<div class="card"><div class="k">${esc(t(k))}</div><div class="v">${num(v)}</div></div>`).join('')}
        </div>
        <div class="grid">
          <div class="panel"><h2>${esc(t('warning_trend'))}</h2><div class="chart" id="c-trend"></div></div>
          <div class="panel"><h2>${esc(t('churn_by_month'))}</h2><div class="chart" id="c-churn"></div></div>
          <div class="panel"><h2>${esc(t('arpu_by_month'))}</h2><div class="chart" id="c-arpu"></div></div>
          <div class="panel"><h2>${esc(t('campaign_retention'))}</h2><div class="chart" id="c-camp"></div></div>
        </div>`;
      const trend = d.warning_trend || [];
      chart($('#c-trend'), { tooltip: { trigger: 'axis' }, legend: {}, xAxis: { type: 'category', data: trend.map((x) => x.as_of) }, yAxis: { type: 'value' },
        series: ['red', 'yellow', 'blue'].map((l) => ({ name: t(l), type: 'bar', stack: 'w', data: trend.map((x) => x[l]), itemStyle: { color: { red: '#dc2626', yellow: '#d97706', blue: '#2563eb' }[l] } })) });
      const months = o.months || [];
      chart($('#c-churn'), { tooltip: { trigger: 'axis' }, xAxis: { type: 'category', data: months.map((m) => m.month) }, yAxis: { type: 'value' }, series: [{ type: 'bar', name: t('cancelled'), data: months.map((m) => m.cancellations), itemStyle: { color: '#b91c1c' } }] });
      chart($('#c-arpu'), { tooltip: { trigger: 'axis' }, xAxis: { type: 'category', data: months.map((m) => m.month) }, yAxis: { type: 'value', scale: true }, series: [{ type: 'line', name: 'ARPU', data: months.map((m) => m.arpu) }] });
      const camps = (d.campaigns || []).filter((c) => c.treated_retention !== null && c.treated_retention !== undefined);
      chart($('#c-camp'), { tooltip: { trigger: 'axis' }, legend: {}, xAxis: { type: 'category', data: camps.map((c) => `#${c.id} ${c.name}`) }, yAxis: { type: 'value', min: (v) => Math.max(0, Math.floor((v.min - 0.05) * 10) / 10), max: 1 },
        series: [{ name: t('treated'), type: 'bar', data: camps.map((c) => c.treated_retention) }, { name: t('control'), type: 'bar', data: camps.map((c) => c.control_retention) }] });
    },

    async warnings() {
      const q = new URLSearchParams(location.hash.split('?')[1] || '');
      const params = new URLSearchParams();
      for (const k of ['level', 'branch', 'rule', 'cohort']) if (q.get(k)) params.set(k, q.get(k));
      params.set('limit', '200');
      const d = await api('GET', `/api/v1/warnings?${params}`);
      view().innerHTML = `<h1>${esc(t('nav_warnings'))} <small class="muted">${esc(d.as_of)}</small></h1>
        <form class="filters" id="wf">
          <label>${esc(t('level'))}<select name="level"><option value="">${esc(t('all'))}</option>${['red', 'yellow', 'blue'].map((l) => `<option value="${l}" ${q.get('level') === l ? 'selected' : ''}>${esc(t(l))}</option>`).join('')}</select></label>
          <label>${esc(t('branch'))}<input name="branch" size="8" value="${esc(q.get('branch') || '')}"></label>
          <label>${esc(t('rule'))}<input name="rule" size="8" value="${esc(q.get('rule') || '')}" placeholder="EW001"></label>
          <button type="submit">${esc(t('filter'))}</button>
          <a href="/api/v1/warnings?${esc(new URLSearchParams([...params].filter(([k]) => k !== 'limit')).toString())}&format=csv" data-testid="warnings-export" download>${esc(t('export'))}</a>
          <span class="muted" data-testid="warnings-total">${esc(t('total'))}: ${num(d.total)} · ${level('red')} ${num(d.by_level.red)} ${level('yellow')} ${num(d.by_level.yellow)} ${level('blue')} ${num(d.by_level.blue)}</span>
        </form>
        ${table([t('subscriber'), t('msisdn'), t('level'), { label: t('score'), num: true }, t('cohort'), t('branch'), t('manager'), t('reasons')],
          d.items.map((w) => `<tr><td><a href="#/customer/${w.subscriber_id}" data-testid="customer-link">${w.subscriber_id}</a></td><td>${esc(w.msisdn)}</td><td>${level(w.level)}</td>
            <td class="num">${w.score}</td><td>${esc(w.cohort)}</td><td>${esc(w.branch_id)}</td><td>${esc(w.manager_id)}</td>
            <td>${esc(lang === 'en' ? w.reasons_en : w.reasons_zh)}</td></tr>`), 'warnings-table')}`;
      $('#wf').addEventListener('submit', (e) => {
        e.preventDefault();
        const f = new URLSearchParams(new FormData(e.target));
        for (const [k, v] of [...f]) if (!v) f.delete(k);
        location.hash = `#/warnings?${f}`;
      });
    },

    async customer(id) {
      const d = await api('GET', `/api/v1/customers/${encodeURIComponent(id)}`);
      const p = d.profile || {};
      const w = d.warnings || {};
      const c = d.churn || {};
      const seg = d.segments || {};
      const rec = d.recommendations || {};
      view().innerHTML = `<h1 data-testid="customer-title">${esc(t('subscriber'))} ${esc(d.subscriber_id)} <small class="muted">${esc(p.msisdn)}</small> ${level(w.level)}</h1>
        <div class="grid">
          <div class="panel"><h2>${esc(t('profile'))}</h2><div class="kv">
            <div>${esc(t('plan'))}</div><div>${esc(p.plan_name)} (${num(p.plan_fee)})</div>
            <div>${esc(t('join_date'))}</div><div>${esc(p.join_date)}</div>
            <div>${esc(t('status'))}</div><div>${esc(p.status)} ${esc(p.status_date || '')}</div>
            <div>${esc(t('city'))}</div><div>${esc(p.city)} ${esc(p.county)}</div>
            <div>${esc(t('branch'))}</div><div>${esc(p.branch_id)}</div>
            <div>${esc(t('manager'))}</div><div>${esc(p.manager_id || '—')}</div>
            <div>${esc(t('value'))}</div><div>${esc(d.value?.value_tier)} · ${esc(t('clv'))} ${num(d.value?.clv)}</div>
            <div>${esc(t('segments'))}</div><div>${esc(zhEn(seg.cluster))} · ${esc(code(seg.lifecycle_stage))} · RFM ${esc(code(seg.rfm?.group))}</div>
            <div>${esc(t('tags'))}</div><div>${(d.tags || []).map((x) => `<span class="pill">${esc(zhEn(x))}</span>`).join('')}</div>
          </div></div>
          <div class="panel"><h2>${esc(t('churn'))}</h2><div class="kv">
            <div>${esc(t('churn'))}</div><div>${c.available ? pct(c.probability, 2) : esc(c.note || '—')}</div>
            <div>${esc(t('decile'))}</div><div>${esc(c.decile ?? '—')}</div>
            <div>${esc(t('model_reasons'))}</div><div>${(c.reasons || []).map((r) => `<span class="pill">${esc(r)}</span>`).join('')}</div>
            <div>${esc(t('level'))}</div><div>${level(w.level)} ${esc(w.score ?? '')}</div>
            <div>${esc(t('rule'))}</div><div>${(Array.isArray(w.rules) ? w.rules : []).map((r) => `<span class="pill">${esc(typeof r === 'string' ? r : (r.id || JSON.stringify(r)))}</span>`).join('')}</div>
          </div></div>
          <div class="panel"><h2>${esc(t('usage'))}</h2><div class="chart" id="c-usage"></div></div>
          <div class="panel"><h2>${esc(t('recommendations'))}</h2>${rec.blocked ? `<p class="error">${esc(t('blocked'))}: ${esc(rec.blocked)}</p>` : ''}
            ${table([t('offer'), t('channel'), { label: t('expected_value'), num: true }, t('talking_points')], (rec.offers || []).map((o) => `<tr><td>${esc(zhEn(o))}</td><td>${esc(o.channel)}</td><td class="num">${num(o.expected_value, 1)}</td><td>${esc(lang === 'en' ? o.talking_point_en : o.talking_point_zh)}</td></tr>`), 'offers-table')}</div>
          <div class="panel"><h2>${esc(t('work_orders'))}</h2>${table(['#', t('channel'), t('purpose'), t('offer'), t('due')], (d.work_orders || []).map((o) => `<tr><td>${o.id}</td><td>${esc(o.channel)}</td><td>${esc(o.purpose)}</td><td>${esc(o.offer_id)}</td><td>${esc(o.due_date)}</td></tr>`))}</div>
          ${circlePanel(d.network)}
          <div class="panel"><h2>${esc(t('events'))}</h2>${table([t('at'), t('action'), ''], (d.events || []).slice(-15).reverse().map((e) => `<tr><td>${esc(e.timestamp)}</td><td>${esc(e.kind)}</td><td>${esc(e.detail || e.competitor || e.category || '')}</td></tr>`))}</div>
        </div>`;
      const m = (d.usage?.monthly) || [];
      chart($('#c-usage'), { tooltip: { trigger: 'axis' }, legend: {}, xAxis: { type: 'category', data: m.map((x) => String(x.period).slice(0, 7)) },
        yAxis: [{ type: 'value', name: t('fee') }, { type: 'value', name: t('minutes') }],
        series: [{ name: t('fee'), type: 'line', data: m.map((x) => x.fee) }, { name: t('minutes'), type: 'bar', yAxisIndex: 1, data: m.map((x) => x.voice_minutes) }] });
    },

    async network() {
      const d = await api('GET', '/api/v1/network');
      const n = d.summary || {};
      const cells = d.cells || [];
      view().innerHTML = `<h1>${esc(t('nav_network'))} <small class="muted">${esc(d.as_of)}</small></h1>
        <div class="cards" data-testid="network-cards">
          ${[['cells', num(n.cells)], ['homed', num(n.homed)], ['circles', num(n.circles)], ['mean_circle_size', num(n.mean_circle_size, 1)],
            ['circles_in_wave', num(n.circles_in_wave)], ['circle_churn_rate', pct(n.circle_churn_rate, 1)],
            ['outside_churn_rate', n.outside_churn_rate == null ? '—' : pct(n.outside_churn_rate, 1)],
            ['leaders_at_risk', n.leaders_at_risk == null ? '—' : pct(n.leaders_at_risk, 1)]]
            .map(([k, v]) => `<div class="card"><div class="k">${esc(t(k))}</div><div class="v">${v}</div></div>`).join('')}
        </div>
        <div class="panel"><h2>${esc(t('cell_map'))}</h2>
          <form class="filters" id="mapf"><label>${esc(t('colour_by'))}<select name="by" data-testid="map-colour">
            <option value="churn_rate">${esc(t('churn_rate'))}</option><option value="mean_risk">${esc(t('mean_risk'))}</option>
            <option value="complaint_rate">${esc(t('complaint_rate'))}</option></select></label></form>
          <div class="chart tall" id="c-cells" data-testid="cell-map"></div></div>
        <h2>${esc(t('districts'))}</h2>
        ${table([t('district'), { label: t('cells'), num: true }, { label: t('subscribers'), num: true }, { label: t('churn_rate'), num: true }, { label: t('mean_risk'), num: true }, { label: t('at_risk'), num: true }, { label: t('hot_cells'), num: true }],
          (n.districts || []).map((x) => `<tr><td>${esc(x.district)}</td><td class="num">${num(x.cells)}</td><td class="num">${num(x.subscribers)}</td><td class="num">${pct(x.churn_rate, 1)}</td><td class="num">${x.mean_risk == null ? '—' : pct(x.mean_risk, 1)}</td><td class="num">${num(x.at_risk)}</td><td class="num">${num(x.hot_cells)}</td></tr>`), 'districts-table')}`;
      // Each cell at its place, sized by its subscribers, coloured by the chosen rate.
      const draw = (by) => {
        const values = cells.map((c) => c[by] ?? 0);
        const top = Math.max(0.01, ...values);
        const biggest = Math.max(1, ...cells.map((c) => c.subscribers));
        charts.splice(0).forEach((c) => c.dispose());
        chart($('#c-cells'), {
          tooltip: { formatter: (p) => { const c = cells[p.dataIndex]; return `${esc(c.cell_id)} · ${esc(c.district || '')} · ${esc(c.technology || '')}<br>${esc(t('subscribers'))} ${num(c.subscribers)} · ${esc(t('churn_rate'))} ${pct(c.churn_rate, 1)}<br>${esc(t('mean_risk'))} ${c.mean_risk == null ? '—' : pct(c.mean_risk, 1)} · ${esc(t('complaint_rate'))} ${pct(c.complaint_rate, 1)}<br>${esc(t('dropped_call_rate'))} ${num(c.dropped_call_rate_4w, 2)} · ${esc(t('weak_coverage'))} ${num(c.weak_coverage_4w)}`; } },
          xAxis: { type: 'value', scale: true, name: 'lon' }, yAxis: { type: 'value', scale: true, name: 'lat' },
          visualMap: { min: 0, max: top, dimension: 2, calculable: true, formatter: (v) => pct(v, 1), orient: 'horizontal', left: 'center', bottom: 0, inRange: { color: ['#2c7bb6', '#ffffbf', '#d7191c'] } },
          grid: { bottom: 70 },
          series: [{ type: 'scatter', data: cells.map((c, i) => [c.longitude, c.latitude, values[i]]), symbolSize: (v, p) => 4 + 14 * Math.sqrt(cells[p.dataIndex].subscribers / biggest) }],
        });
      };
      draw('churn_rate');
      $('#mapf').addEventListener('change', (e) => draw(e.target.value));
    },

    async segments() {
      const [d, tg] = await Promise.all([api('GET', '/api/v1/segments'), api('GET', '/api/v1/tags')]);
      view().innerHTML = `<h1>${esc(t('nav_segments'))} <small class="muted">${esc(d.as_of)}</small></h1>
        <h2>${esc(t('clusters'))}</h2>
        ${table(['#', t('title'), { label: t('subscribers'), num: true }, { label: t('share'), num: true }, { label: 'ARPU', num: true }, { label: t('churn_rate'), num: true }, ''],
          (d.clusters || []).map((c) => `<tr><td>${c.id}</td><td>${esc(zhEn(c))}</td><td class="num">${num(c.size)}</td><td class="num">${pct(c.share)}</td><td class="num">${num(c.arpu, 1)}</td><td class="num">${pct(c.churn_rate, 2)}</td><td class="muted">${esc((c.top_features || []).map(codedLead).join(', '))}</td></tr>`), 'clusters-table')}
        <div class="grid">
          <div class="panel"><h2>${esc(t('rfm_grid'))}</h2><div class="chart" id="c-grid" data-testid="rfm-grid"></div></div>
          <div class="panel"><h2>${esc(t('rfm'))}</h2><div class="chart" id="c-rfm"></div></div>
          <div class="panel"><h2>${esc(t('lifecycle'))}</h2><div class="chart" id="c-life"></div></div>
          <div class="panel"><h2>${esc(t('retention_curve'))}</h2><div class="chart" id="c-ret"></div></div>
          <div class="panel"><h2>${esc(t('value'))}</h2><div class="chart" id="c-value"></div></div>
        </div>
        <h2>${esc(t('tags'))}</h2>
        ${table(['ID', t('title'), t('rule'), { label: t('subscribers'), num: true }], tg.tags.map((x) => `<tr><td>${esc(x.id)}</td><td>${esc(zhEn(x))}</td><td><code>${esc(x.when)}</code></td><td class="num">${num(x.count)}</td></tr>`), 'tags-table')}
        <form class="filters" id="tgf"><label>${esc(t('target_by_tags'))}<input name="tags" size="48" placeholder="contract_expiring and not enterprise_member" data-testid="target-input"></label>
          <label><input type="checkbox" name="whole_circles" data-testid="target-circles"> ${esc(t('whole_circles'))}</label>
          <button type="submit">${esc(t('lookup'))}</button></form><div id="tg-result" data-testid="target-result"></div>`;
      $('#tgf').addEventListener('submit', async (e) => {
        e.preventDefault();
        const form = new FormData(e.target);
        const expr = form.get('tags');
        const circles = form.get('whole_circles') ? '&whole_circles=true' : '';
        try {
          const r = await api('GET', `/api/v1/targets?tags=${encodeURIComponent(expr)}${circles}`);
          $('#tg-result').innerHTML = `<p><b>${num(r.count)}</b> ${esc(t('subscribers'))}: ${r.sample.map((x) => `<span class="pill">${x.subscriber_id} ${esc(x.msisdn)}</span>`).join('')}</p>`;
        } catch (err) { $('#tg-result').innerHTML = `<p class="error">${esc(err.message)}</p>`; }
      });
      const bars = (el, obj) => chart(el, { tooltip: {}, xAxis: { type: 'category', data: Object.keys(obj || {}).map(code), axisLabel: { rotate: 30 } }, yAxis: { type: 'value' }, series: [{ type: 'bar', data: Object.values(obj || {}) }] });
      bars($('#c-rfm'), d.rfm_group);
      const grid = d.rfm_grid || [];
      const scores = ['1', '2', '3', '4', '5'];
      chart($('#c-grid'), {
        tooltip: { formatter: (p) => `R${p.value[0] + 1} F${p.value[1] + 1}: ${num(p.value[2])} (M ${num(p.value[3], 1)})` },
        xAxis: { type: 'category', name: 'R', data: scores }, yAxis: { type: 'category', name: 'F', data: scores },
        visualMap: { min: 0, max: Math.max(1, ...grid.map((c) => c.subscribers)), calculable: true, orient: 'horizontal', left: 'center', bottom: 0 },
        grid: { bottom: 70 },
        series: [{ type: 'heatmap', label: { show: true }, data: grid.map((c) => [c.r - 1, c.f - 1, c.subscribers, c.m]) }],
      });
      bars($('#c-value'), d.value_tier);
      const stages = ['onboarding', 'growth', 'mature', 'decline', 'churned'].filter((s) => d.lifecycle_stage && s in d.lifecycle_stage);
      chart($('#c-life'), { tooltip: {}, series: [{ type: 'funnel', sort: 'none', data: stages.map((s) => ({ name: code(s), value: d.lifecycle_stage[s] })) }] });
      const ret = (d.retention || []).slice(0, 8);
      const ks = ['6m', '12m', '24m', '36m', '60m'];
      chart($('#c-ret'), { tooltip: { trigger: 'axis' }, legend: { type: 'scroll' }, xAxis: { type: 'category', data: ks }, yAxis: { type: 'value', min: 0.5, max: 1 },
        series: ret.map((r) => ({ name: code(r.segment), type: 'line', data: ks.map((k) => r.survival?.[k]) })) });
    },

    async model() {
      const d = await api('GET', '/api/v1/model');
      view().innerHTML = `<h1>${esc(t('nav_model'))} v${esc(d.version)}</h1>
        <div class="cards">${[['auc', num(d.auc, 4)], ['lift', num(d.top_decile_lift, 2)], ['PR-AUC', num(d.pr_auc, 4)], ['Brier', num(d.brier, 4)]].map(([k, v]) => `<div class="card"><div class="k">${esc(t(k))}</div><div class="v" data-testid="model-${esc(k)}">${v}</div></div>`).join('')}</div>
        <div class="grid">
          <div class="panel"><h2>${esc(t('deciles'))}</h2><div class="chart" id="c-lift"></div></div>
          <div class="panel"><h2>${esc(t('importance'))}</h2><div class="chart" id="c-imp"></div></div>
          <div class="panel"><h2>${esc(t('calibration'))}</h2><div class="chart" id="c-cal"></div></div>
          <div class="panel"><h2>${esc(t('drift'))} (PSI)</h2><div class="chart" id="c-drift"></div></div>
        </div>
        <div id="versions"></div>`;
      api('GET', '/api/v1/model/versions').then((v) => {
        const el = $('#versions');
        if (!el) return;
        el.innerHTML = `<h2>${esc(t('versions'))}</h2>
          ${table([t('version'), t('decision'), t('test_month'), { label: 'AUC', num: true }, { label: t('lift'), num: true }, { label: 'EMPC', num: true }], [...v.versions].reverse().map((x) => `<tr><td>v${x.version} ${x.champion ? `<span class="st succeeded" data-testid="champion">${esc(t('champion'))}</span>` : ''}</td>
            <td>${esc(x.decision ? t(`decision_${x.decision}`) : '—')}</td><td>${esc(x.test_month || '—')}</td><td class="num">${num(x.auc, 4)}</td><td class="num">${num(x.top_decile_lift, 2)}</td><td class="num">${num(x.empc, 4)}</td></tr>`), 'versions-table')}
          ${v.history.length ? `<p class="muted">${esc(v.history[v.history.length - 1].reason || '')}</p>` : ''}`;
      }).catch(() => {});
      const dec = d.deciles || [];
      chart($('#c-lift'), { tooltip: { trigger: 'axis' }, xAxis: { type: 'category', data: dec.map((x) => x.decile) }, yAxis: { type: 'value' }, series: [{ type: 'bar', name: t('churn_rate'), data: dec.map((x) => x.churn_rate) }] });
      const imp = (d.importance || []).slice(0, 15).reverse();
      chart($('#c-imp'), { grid: { left: 160 }, tooltip: {}, xAxis: { type: 'value' }, yAxis: { type: 'category', data: imp.map((x) => code(x[0])) }, series: [{ type: 'bar', data: imp.map((x) => Math.round(x[1])) }] });
      const cal = d.calibration || [];
      chart($('#c-cal'), { tooltip: { trigger: 'axis' }, legend: {}, xAxis: { type: 'value', max: 1 }, yAxis: { type: 'value', max: 1 },
        series: [{ name: code('observed'), type: 'line', data: cal.map((x) => [x.mean_predicted, x.observed_rate]) }, { name: code('ideal'), type: 'line', data: [[0, 0], [1, 1]], lineStyle: { type: 'dashed' } }] });
      const drift = (d.feature_drift || []).slice(0, 10).reverse();
      chart($('#c-drift'), { grid: { left: 160 }, tooltip: {}, xAxis: { type: 'value' }, yAxis: { type: 'category', data: drift.map((x) => code(x.feature)) }, series: [{ type: 'bar', data: drift.map((x) => x.psi) }] });
    },

    async rules() {
      const d = await api('GET', '/api/v1/rules');
      const bt = d.backtest || {};
      const byRule = Object.fromEntries((bt.rules || []).map((r) => [r.id || r.rule, r]));
      view().innerHTML = `<h1>${esc(t('rules_in_force'))} <small class="muted">${esc(d.source)}</small></h1>
        ${bt.levels ? `<div class="cards">${['red', 'yellow', 'blue'].map((l) => `<div class="card"><div class="k">${level(l)} ${esc(t('precision'))} / ${esc(t('rule_lift'))}</div><div class="v">${pct(bt.levels[l]?.precision)} / ${num(bt.levels[l]?.lift, 1)}</div></div>`).join('')}
          ${bt.involuntary ? `<div class="card" data-testid="backtest-involuntary"><div class="k">${esc(t('involuntary_churners'))}</div><div class="v">${num(bt.involuntary.churners)} / ${num(bt.positives)}</div><div class="muted">${esc(t('caught'))} ${num(bt.involuntary.caught)}</div></div>` : ''}</div>` : ''}
        ${table(['ID', t('title'), t('category'), { label: t('score'), num: true }, t('rule'), { label: t('precision'), num: true }, { label: t('rule_lift'), num: true }],
          (d.rules || []).map((r) => `<tr><td>${esc(r.id)}</td><td>${esc(zhEn(r))}</td><td>${esc(r.category)}</td><td class="num">${r.points}</td><td><code>${esc(r.when)}</code></td><td class="num">${pct(byRule[r.id]?.precision)}</td><td class="num">${num(byRule[r.id]?.lift, 1)}</td></tr>`), 'rules-table')}
        <div id="proposal" data-testid="proposal"></div>
        ${editor('rules', d.toml, true)}`;
      bindEditor('rules', '/api/v1/rules');
      await showProposal();
    },

    async offers() {
      const d = await api('GET', '/api/v1/offers');
      const m = d.matching || {};
      const learned = [...(d.learning?.cells || [])].sort((a, b) => b.treated - a.treated);
      view().innerHTML = `<h1>${esc(t('offers_library'))}</h1>
        ${m.assigned !== undefined ? `<div class="cards">${[['assigned', num(m.assigned)], ['cost', num(m.cost)], ['expected_value', num(m.expected_net_value)], ['budget', num(m.budget)]].map(([k, v]) => `<div class="card"><div class="k">${esc(t(k))}</div><div class="v">${v}</div></div>`).join('')}</div>` : ''}
        ${table(['ID', t('title'), t('kind'), t('channel'), t('reasons'), { label: t('save_rate'), num: true }, { label: t('assigned'), num: true }, t('talking_points')],
          (d.library || []).map((o) => `<tr><td>${esc(o.id)}</td><td>${esc(zhEn(o))}</td><td>${esc(o.kind)}</td><td>${esc((o.channels || []).join(' '))}</td><td>${(o.reasons || []).map((r) => `<span class="pill">${esc(r)}</span>`).join('')}</td><td class="num">${pct(o.prior_save_rate)}</td><td class="num">${num(m.by_offer?.[o.id]?.count)}</td><td class="muted">${esc(lang === 'en' ? o.talking_point_en : o.talking_point_zh)}</td></tr>`), 'offers-library')}
        ${(d.strategies || []).length ? `<h2>${esc(t('strategy_table'))}</h2>
          ${table([t('category'), ...STAGES.map((st) => t('stage_' + st)), { label: t('assigned'), num: true }],
            CATEGORIES.map((c) => `<tr><td>${esc(t('cat_' + c))}</td>${STAGES.map((st) => {
              const cell = d.strategies.find((x) => x.category === c && x.stage === st) || {};
              return `<td>${esc(lang === 'en' ? cell.measure_en || '' : cell.measure_zh || '')}<br>${(cell.offers || []).map((o) => `<span class="pill">${esc(o)}</span>`).join(' ')}</td>`;
            }).join('')}<td class="num">${num(m.by_category?.[c]?.count)}</td></tr>`), 'strategy-table')}` : ''}
        <h2>${esc(t('learning'))}</h2>
        ${learned.length ? `<p class="muted" data-testid="offers-learning-summary">${esc(t('learn_summary'))} ${num(d.learning.observations)} · ${esc(t('learn_control'))} ${pct(d.learning.control_churn)}</p>
          ${table([t('learn_reason'), t('kind'), t('learn_tier'), { label: t('learn_treated'), num: true }, { label: t('learn_churn_treated'), num: true }, { label: t('learn_churn_control'), num: true }, { label: t('learn_prior'), num: true }, { label: t('learn_rate'), num: true }],
            learned.map((c) => `<tr><td>${esc(c.reason)}</td><td>${esc(c.kind)}</td><td>${esc(c.segment)}</td><td class="num">${num(c.treated)}</td><td class="num">${pct(c.churn_treated)}</td><td class="num">${pct(c.churn_control)}</td><td class="num">${pct(c.prior_save_rate)}</td><td class="num">${pct(c.save_rate)}</td></tr>`), 'offers-learning')}`
          : `<p class="muted" data-testid="offers-learning-empty">${esc(t('learn_empty'))}</p>`}
        ${editor('offers', d.toml, false)}`;
      bindEditor('offers', '/api/v1/offers');
    },

    async campaigns() {
      const canPlan = ['admin', 'analyst'].includes(me.role);
      const [d, tp, wb] = await Promise.all([api('GET', '/api/v1/campaigns'), api('GET', '/api/v1/templates').catch(() => ({ templates: [] })),
        canPlan ? api('GET', '/api/v1/winback?limit=20').catch(() => null) : null]);
      view().innerHTML = `<h1>${esc(t('campaigns'))}</h1>
        ${canPlan ? `<form class="filters" id="cf" data-testid="campaign-form">
          <label>${esc(t('template'))}<select name="template">${tp.templates.filter((x, i, a) => a.findIndex((y) => y.name === x.name) === i).map((x) => `<option value="${esc(x.name)}">${esc(x.name)} · ${esc(lang === 'en' ? x.name_en : x.name_zh)}</option>`).join('')}</select></label>
          <label>${esc(t('budget'))}<input name="budget" type="number" min="1" step="1" size="8"></label>
          <label>${esc(t('title'))}<input name="name" size="16"></label>
          <button class="primary" type="submit">${esc(t('new_campaign'))}</button></form>` : ''}
        ${table(['#', t('title'), t('template'), t('status'), { label: t('budget'), num: true }, t('owner'), { label: t('uplift'), num: true }],
          d.campaigns.map((c) => `<tr><td><a href="#/campaign/${c.id}" data-testid="campaign-link">${c.id}</a></td><td>${esc(c.name)}</td><td>${esc(c.template)}</td><td>${esc(t(c.status))}</td><td class="num">${num(c.budget)}</td><td>${esc(c.owner)}</td><td class="num">${c.uplift === null || c.uplift === undefined ? '—' : pct(c.uplift)}</td></tr>`), 'campaigns-table')}`;
      // Win-back (挽回): the recent leavers, how they left and who can still be reached.
      if (wb) {
        view().insertAdjacentHTML('beforeend', `<h2 data-testid="winback">${esc(t('winback'))} <small class="muted">${esc(t('winback_window'))} ${wb.window_months}</small></h2>
          <div class="cards">${[['leavers', wb.leavers], ['voluntary', wb.voluntary], ['involuntary', wb.involuntary], ['reachable', wb.reachable], ['reachable_value', wb.reachable_value]].map(([k, v]) => `<div class="card"><div class="k">${esc(t(k))}</div><div class="v">${num(v)}</div></div>`).join('')}</div>
          ${table([t('subscriber'), t('msisdn'), t('left_on'), t('exit'), { label: t('value'), num: true }, t('channel')],
            wb.items.map((l) => `<tr><td>${l.subscriber_id}</td><td>${esc(l.msisdn)}</td><td>${esc(l.left_on)}</td><td>${esc(t('exit_' + l.exit))}</td><td class="num">${num(l.value)}</td><td>${l.channel ? esc(t(l.channel)) : '—'}</td></tr>`), 'winback-table')}`);
      }
      const f = $('#cf');
      if (f) f.addEventListener('submit', async (e) => {
        e.preventDefault();
        const v = new FormData(f);
        const body = { template: v.get('template') };
        if (v.get('budget')) body.budget = Number(v.get('budget'));
        if (v.get('name')) body.name = v.get('name');
        try { const c = await api('POST', '/api/v1/campaigns', body); location.hash = `#/campaign/${c.id}`; } catch (err) { toast(err.message, true); }
      });
    },

    async campaign(id) {
      const c = await api('GET', `/api/v1/campaigns/${encodeURIComponent(id)}`);
      const steps = { draft: ['rehearse'], rehearsed: ['rehearse', 'approve', 'reject'], approved: ['launch'], launched: ['simulate', 'evaluate'], evaluated: ['evaluate'] }[c.status] || [];
      const r = c.rehearsal;
      const e = c.evaluation;
      view().innerHTML = `<h1>#${c.id} ${esc(c.name)} <small class="muted" data-testid="campaign-status">${esc(t(c.status))}</small></h1>
        <div class="kv"><div>${esc(t('template'))}</div><div>${esc(c.template)} v${c.template_version}</div>
          <div>${esc(t('budget'))}</div><div>${num(c.budget)} · ${esc(t('approval_level'))} ${c.approval_level}</div>
          <div>${esc(t('owner'))}</div><div>${esc(c.owner)}</div><div>as of</div><div>${esc(c.as_of)}</div>
          <div>${esc(t('work_orders'))}</div><div>${num(c.work_orders.total)} ${c.work_orders.by_channel.map((x) => `<span class="pill">${esc(x.channel)} ${x.done}/${x.work_orders}</span>`).join('')}</div></div>
        <p class="steps">${steps.map((s) => `<button data-step="${s}" data-testid="step-${s}" class="${s === 'launch' || s === 'approve' ? 'primary' : ''}">${esc(t(s))}</button>`).join('')}
          ${steps.includes('approve') ? `<input id="note" placeholder="${esc(t('note'))}" size="24">` : ''}</p>
        ${r ? `<h2>${esc(t('rehearsal'))}</h2><div class="cards">${[['members', r.projected?.members], ['reach', r.projected?.expected_reach], ['cost', r.projected?.cost], ['saves', r.projected?.expected_saves], ['expected_value', r.projected?.expected_saved_value], ['roi', r.projected?.expected_roi]].map(([k, v]) => `<div class="card"><div class="k">${esc(t(k))}</div><div class="v">${num(v, k === 'roi' || k === 'saves' ? 1 : 0)}</div></div>`).join('')}
          ${r.power ? `<div class="card" data-testid="rehearsal-power"><div class="k">${esc(t('control_share'))} · ${esc(t('min_detectable_uplift'))}</div><div class="v">${pct(r.power.control_share, 0)} · ${pct(r.power.min_detectable_uplift)}</div><div class="muted">${esc(t('expected_uplift'))} ${pct(r.power.expected_uplift)} · ${esc(t(r.power.detectable ? 'detectable' : 'not_detectable'))}</div></div>` : ''}</div>` : ''}
        ${e ? `<h2>${esc(t('evaluation'))}</h2><div class="cards" data-testid="evaluation">${[['treated', pct(e.treated_retention)], ['control', pct(e.control_retention)], ['uplift', `${pct(e.uplift)} [${pct(e.uplift_ci_low)}, ${pct(e.uplift_ci_high)}] <span class="pill" data-testid="significance">${esc(t(e.significant ? 'significant' : 'not_significant'))}</span>`], ['roi', `${num(e.roi, 2)} [${num(e.roi_ci_low, 2)}, ${num(e.roi_ci_high, 2)}]`], ['cost', num(e.cost)], ['nps', `${num(e.nps_treated, 1)} / ${num(e.nps_control, 1)}`], ['new_service_penetration', pct(e.new_service_penetration)]].map(([k, v]) => `<div class="card"><div class="k">${esc(t(k))}</div><div class="v">${v}</div></div>`).join('')}</div>
          <div class="panel"><div class="chart" id="c-eval"></div></div>
          ${Object.keys(e.by_category || {}).length ? `<h3>${esc(t('by_category'))} <span class="pill" data-testid="evaluation-stage">${esc(t('stage_' + (e.stage || 'retention')))}</span></h3>
            ${table([t('category'), { label: t('treated'), num: true }, { label: t('control'), num: true }, { label: t('uplift'), num: true }, ''],
              CATEGORIES.concat(Object.keys(e.by_category).filter((k) => !CATEGORIES.includes(k))).filter((k) => e.by_category[k]).map((k) => { const g = e.by_category[k]; return `<tr><td>${esc(CATEGORIES.includes(k) ? t('cat_' + k) : k)}</td><td class="num">${num(g.treated)}</td><td class="num">${num(g.control)}</td><td class="num">${g.uplift == null ? '—' : `${pct(g.uplift)} [${pct(g.uplift_ci_low)}, ${pct(g.uplift_ci_high)}]`}</td><td>${esc(t(g.significant ? 'significant' : 'not_significant'))}</td></tr>`; }), 'evaluation-by-category')}` : ''}` : ''}
        <h2>${esc(t('history'))}</h2>
        ${table([t('at'), t('actor'), t('action'), ''], (c.history || []).map((h) => `<tr><td>${esc(h.at)}</td><td>${esc(h.actor)}</td><td>${esc(h.action)}</td><td class="muted">${esc(h.detail?.note || h.detail?.reason || '')}</td></tr>`), 'campaign-history')}`;
      document.querySelectorAll('[data-step]').forEach((b) => b.addEventListener('click', async () => {
        const step = b.dataset.step;
        document.querySelectorAll('[data-step]').forEach((x) => { x.disabled = true; });
        const note = $('#note') ? $('#note').value : '';
        try {
          await api('POST', `/api/v1/campaigns/${c.id}/${step}`, step === 'approve' || step === 'reject' ? { note } : undefined);
          toast(`${t(step)}: ${t('done')}`);
        } catch (err) { toast(err.message, true); }
        route();
      }));
      if (e) {
        const groups = Object.entries(e.by_level || {});
        chart($('#c-eval'), { tooltip: { trigger: 'axis' }, legend: {}, xAxis: { type: 'category', data: [t('total'), ...groups.map(([k]) => t(k))] }, yAxis: { type: 'value', min: (v) => Math.max(0, Math.floor((v.min - 0.05) * 10) / 10), max: 1 },
          series: [{ name: t('treated'), type: 'bar', data: [e.treated_retention, ...groups.map(([, g]) => g.treated_retention)] }, { name: t('control'), type: 'bar', data: [e.control_retention, ...groups.map(([, g]) => g.control_retention)] }] });
      }
    },

    async queue() {
      const d = await api('GET', '/api/v1/work-orders?status=open&limit=200');
      const reasons = d.stated_reasons || [];
      view().innerHTML = `<h1>${esc(t('queue'))} <small class="muted">${num(d.items.length)}</small></h1>
        ${table(['#', t('subscriber'), t('msisdn'), t('channel'), t('purpose'), t('offer'), t('due'), t('callback')],
          d.items.map((w) => `<tr data-wo="${w.id}" data-purpose="${esc(w.purpose)}"><td>${w.id}</td><td>${['admin', 'analyst', 'manager'].includes(me.role) ? `<a href="#/customer/${w.subscriber_id}">${w.subscriber_id}</a>` : w.subscriber_id}</td><td>${esc(w.msisdn)}</td><td>${esc(t(w.channel))}</td><td>${esc(t(w.purpose))}</td><td>${esc(w.offer_id)}</td><td>${esc(w.due_date)}</td>
            <td><form class="cb" data-testid="callback-form">
              <label><input type="checkbox" name="reached"> ${esc(t('reached'))}</label>
              <label><input type="checkbox" name="accepted"> ${esc(t('accepted'))}</label>
              <select name="stated_reason"><option value="">${esc(t('stated_reason'))}</option>${reasons.map((r) => `<option value="${esc(r.code)}">${esc(lang === 'en' ? r.code : r.zh)}</option>`).join('')}</select>
              <select name="satisfaction" data-testid="satisfaction"><option value="">${esc(t('satisfaction'))}</option>${[...Array(11).keys()].map((k) => `<option value="${k}">${k}</option>`).join('')}</select>
              <input name="notes" size="10" placeholder="${esc(t('notes'))}">
              <button type="submit">${esc(t('save'))}</button></form></td></tr>`), 'queue-table')}`;
      document.querySelectorAll('form.cb').forEach((f) => f.addEventListener('submit', async (e) => {
        e.preventDefault();
        const id = f.closest('tr').dataset.wo;
        const v = new FormData(f);
        const body = { reached: v.get('reached') === 'on', accepted: v.get('accepted') === 'on', notes: v.get('notes') || '' };
        if (v.get('stated_reason')) body.stated_reason = v.get('stated_reason');
        if (v.get('satisfaction')) body.satisfaction = Number(v.get('satisfaction'));
        try { await api('POST', `/api/v1/work-orders/${id}/callback`, body); toast(`${t('callback')} #${id}: ${t('saved')}`); f.closest('tr').remove(); } catch (err) { toast(err.message, true); }
      }));
    },

    async counter(key) {
      view().innerHTML = `<h1>${esc(t('nav_counter'))}</h1>
        <form class="filters" id="lk"><label>${esc(t('counter_lookup'))}<input name="key" size="20" value="${esc(key || '')}" data-testid="lookup-input"></label>
        <button class="primary" type="submit">${esc(t('lookup'))}</button></form><div id="decision"></div>`;
      $('#lk').addEventListener('submit', (e) => { e.preventDefault(); location.hash = `#/counter/${encodeURIComponent(new FormData(e.target).get('key').trim())}`; });
      if (!key) return;
      const d = await api('GET', `/api/v1/decisions/${encodeURIComponent(key)}?channel=store`);
      $('#decision').innerHTML = `<div class="panel" data-testid="decision"><h2>${esc(d.msisdn)} ${level(d.level)} <small class="muted">${esc(lang === 'en' ? d.reason : d.reason_zh) || ''}</small></h2>
        ${d.blocked ? `<p class="error">${esc(t('blocked'))}: ${esc(d.blocked)}</p>` : ''}
        ${table([t('offer'), t('channel'), t('talking_points')], (d.offers || []).map((o) => `<tr><td>${esc(zhEn(o))}</td><td>${esc(o.channel)}</td><td>${esc(lang === 'en' ? o.talking_point_en : o.talking_point_zh)}</td></tr>`))}
        ${(d.work_orders || []).length ? `<h2>${esc(t('work_orders'))}</h2>${table(['#', t('channel'), t('offer'), t('due')], d.work_orders.map((o) => `<tr><td>${o.id}</td><td>${esc(o.channel)}</td><td>${esc(o.offer_id)}</td><td>${esc(o.due_date)}</td></tr>`))}` : ''}</div>`;
    },

    // Groups, most urgent first; with an id, that group's 360.
    async groups(id) {
      if (id) return groupView(id);
      const q = new URLSearchParams(location.hash.split('?')[1] || '');
      const params = new URLSearchParams();
      if (q.get('level')) params.set('level', q.get('level'));
      params.set('limit', '500');
      let d;
      try {
        d = await api('GET', `/api/v1/groups?${params}`);
      } catch (err) {
        if (!(err instanceof ApiError) || err.status !== 503) throw err;
        view().innerHTML = `<h1>${esc(t('nav_groups'))}</h1><p class="muted" data-testid="groups-none">${esc(t('groups_none'))}</p>`;
        return;
      }
      const r = d.report || {};
      const cards = [['groups_active', num(r.groups)], ['red', num(r.red)], ['yellow', num(r.yellow)], ['blue', num(r.blue)], ['group_lost', num(r.lost)],
        ['lifetime_value', num(r.lifetime_value)], ['ltv_at_risk', num(r.lifetime_value_at_risk)], ['visits_planned', num(r.visits_planned)]];
      if (r.auc !== undefined && r.auc !== null) cards.push(['auc', num(r.auc, 4)], ['lift', num(r.top_decile_lift, 2)]);
      view().innerHTML = `<h1>${esc(t('nav_groups'))} <small class="muted">${esc(d.as_of)}</small></h1>
        <div class="cards" data-testid="groups-cards">${cards.map(([k, v]) => `<div class="card"><div class="k">${esc(t(k))}</div><div class="v">${v}</div></div>`).join('')}</div>
        ${r.auc !== undefined && r.auc !== null ? `<p class="muted">${esc(t('groups_truth'))}</p>` : ''}
        ${me.role === 'manager' ? `<p class="muted">${esc(t('groups_report_scope'))}</p>` : ''}
        <form class="filters" id="gf">
          <label>${esc(t('level'))}<select name="level"><option value="">${esc(t('all'))}</option>${['red', 'yellow', 'blue'].map((l) => `<option value="${l}" ${q.get('level') === l ? 'selected' : ''}>${esc(t(l))}</option>`).join('')}</select></label>
          <button type="submit">${esc(t('filter'))}</button>
          <span class="muted" data-testid="groups-total">${esc(t('total'))}: ${num(d.total)}${d.total > d.groups.length ? ` · ${esc(t('shown'))} ${num(d.groups.length)}` : ''}</span>
        </form>
        ${table([t('group'), t('industry'), t('grade'), t('size'), t('manager'), t('level'), { label: t('score'), num: true }, t('reasons'), { label: t('lifetime_value'), num: true }, t('agreement_end'), t('last_visit')],
          d.groups.map((g) => `<tr data-group="${esc(g.group_id)}"${g.status === 'lost' ? ' class="dim"' : ''}><td><a href="${esc(groupHref(g.group_id))}" data-testid="group-link">${esc(g.name)}</a> <small class="muted">${esc(g.group_id)}</small></td>
            <td title="${esc(g.industry)}">${esc(named('ind', g.industry))}</td><td>${esc(g.value_tier)}</td><td>${esc(named('size', g.size))}</td><td class="nowrap" data-testid="group-manager">${esc(g.manager_id || '—')}</td>
            <td>${groupLevel(g)}</td><td class="num">${esc(g.score)}</td><td>${reasonPills((g.reasons || []).slice(0, 3))}</td><td class="num">${num(g.lifetime_value)}</td>
            <td class="nowrap">${esc(g.contract_end || '—')}</td><td class="nowrap">${esc(g.last_visit || '—')}</td></tr>`), 'groups-table')}`;
      $('#gf').addEventListener('submit', (e) => {
        e.preventDefault();
        const f = new URLSearchParams(new FormData(e.target));
        for (const [k, v] of [...f]) if (!v) f.delete(k);
        location.hash = `#/groups?${f}`;
      });
    },

    // The visit queue, soonest first; a row opens its group.
    async visits() {
      const d = await api('GET', '/api/v1/visits?limit=500');
      const today = day();
      const late = (v) => !v.done_on && v.due_date < today;
      view().innerHTML = `<h1>${esc(t('nav_visits'))} <small class="muted">${esc(d.as_of || '')}</small></h1>
        <p class="muted" data-testid="visits-total">${esc(t('total'))}: ${num(d.total)}${d.total > d.visits.length ? ` · ${esc(t('shown'))} ${num(d.visits.length)}` : ''}
          · ${esc(t('done_on'))} ${num(d.visits.filter((v) => v.done_on).length)} · ${esc(t('late'))} ${num(d.visits.filter(late).length)}</p>
        ${table([t('visit_due'), t('group'), t('manager'), t('purpose'), t('level'), { label: t('overdue_days'), num: true }, t('reasons'), { label: t('lifetime_value'), num: true }, t('done_on')],
          d.visits.map((v) => `<tr class="link${v.done_on ? ' dim' : ''}" data-group="${esc(v.group_id)}">
            <td class="nowrap${late(v) ? ' error' : ''}">${esc(v.due_date)}</td><td><a href="${esc(groupHref(v.group_id))}">${esc(v.group_name)}</a></td>
            <td class="nowrap" data-testid="visit-manager">${esc(v.manager_id || '—')}</td><td>${esc(named('purpose', v.purpose))}</td><td>${level(v.level)}</td>
            <td class="num">${v.overdue_days ? num(v.overdue_days) : ''}</td><td>${reasonPills(v.reasons)}</td><td class="num">${num(v.lifetime_value)}</td>
            <td class="nowrap" data-testid="visit-done">${v.done_on ? `<span class="st succeeded">✓ ${esc(v.done_on)}</span>` : ''}</td></tr>`), 'visits-table')}`;
      document.querySelectorAll('[data-testid=visits-table] tr[data-group]').forEach((tr) => tr.addEventListener('click', () => { location.hash = groupHref(tr.dataset.group); }));
    },

    // The managers' league table and the branches', over the results period (it ends the day
    // before as_of).
    async managers() {
      const d = await api('GET', '/api/v1/managers');
      const ms = d.managers || [];
      const dayBefore = (s) => new Date(Date.parse(`${s}T00:00:00Z`) - 864e5).toISOString().slice(0, 10);
      const of = (a, b) => `${num(a)} / ${num(b)}`;
      // A manager sees their own line only: nothing to rank, so no chart.
      const top = ms.filter((m) => m.saved_value > 0).sort((a, b) => b.saved_value - a.saved_value).slice(0, 20).reverse();
      view().innerHTML = `<h1>${esc(t('nav_managers'))} <small class="muted">${esc(t('period'))} ${esc(d.period_start)} – ${esc(dayBefore(d.as_of))}</small></h1>
        ${me.role === 'manager' ? '' : `<p class="muted" data-testid="unassigned">${esc(t('unassigned_work_orders'))}: ${num(d.unassigned_work_orders)}</p>`}
        ${ms.length > 1 ? `<div class="panel"><h2>${esc(t('saved_by_manager'))}</h2>${top.length ? `<div class="chart" id="c-saved" style="height:${60 + 26 * top.length}px"></div>` : `<p class="muted">${esc(t('none'))}</p>`}</div>` : ''}
        <h2>${esc(t('league'))}</h2>
        ${table(['#', t('manager'), t('branch'), { label: t('groups_n'), num: true }, { label: t('base'), num: true }, { label: t('left'), num: true }, { label: t('retention_rate'), num: true },
          { label: t('visits_done_planned'), num: true }, { label: t('callbacks_on_time'), num: true }, { label: t('work_orders'), num: true }, { label: t('accepted'), num: true }, { label: t('saved_value'), num: true }, { label: t('uplift'), num: true }, { label: t('targets_met'), num: true }],
          ms.map((m, i) => `<tr><td>${i + 1}</td><td>${esc(m.manager_id)}</td><td>${esc(m.branch_id)}</td><td class="num">${num(m.groups)}</td><td class="num">${num(m.subscribers)}</td><td class="num">${num(m.left)}</td>
            <td class="num">${pct(m.retention_rate)}</td><td class="num" title="${esc(t('visits_on_plan'))} ${esc(m.visits_on_plan)}">${of(m.visits_done, m.visits_planned)}</td><td class="num">${of(m.callbacks_on_time, m.callbacks)}</td>
            <td class="num">${num(m.work_orders)}</td><td class="num">${num(m.accepted)}</td><td class="num">${num(m.saved_value)}</td><td class="num">${pct(m.uplift)}</td>
            <td class="num" data-testid="targets-met" title="${esc(t('retention_rate'))} ≥ ${pct(m.targets?.retention_rate)} · ${esc(t('visit_coverage'))} ≥ ${pct(m.targets?.visit_coverage)} · ${esc(t('callbacks_on_time'))} ≥ ${pct(m.targets?.callbacks_on_time)}">${num(m.targets_met)} / ${num(m.targets_total)}</td></tr>`), 'managers-table')}
        <h2>${esc(t('by_branch'))}</h2>
        ${table([t('branch'), { label: t('managers_n'), num: true }, { label: t('base'), num: true }, { label: t('left'), num: true }, { label: t('retention_rate'), num: true },
          { label: t('visits_done_planned'), num: true }, { label: t('callbacks_on_time'), num: true }, { label: t('work_orders'), num: true }, { label: t('saved_value'), num: true }],
          (d.branches || []).map((b) => `<tr><td>${esc(b.branch_id)}</td><td class="num">${num(b.managers)}</td><td class="num">${num(b.subscribers)}</td><td class="num">${num(b.left)}</td><td class="num">${pct(b.retention_rate)}</td>
            <td class="num">${of(b.visits_done, b.visits_planned)}</td><td class="num">${of(b.callbacks_on_time, b.callbacks)}</td><td class="num">${num(b.work_orders)}</td><td class="num">${num(b.saved_value)}</td></tr>`), 'branches-table')}`;
      chart($('#c-saved'), { grid: { left: 100, top: 10, bottom: 30 }, tooltip: {}, xAxis: { type: 'value' }, yAxis: { type: 'category', data: top.map((m) => m.manager_id) },
        series: [{ type: 'bar', name: t('saved_value'), data: top.map((m) => Math.round(m.saved_value)), barMaxWidth: 20, itemStyle: { color: '#059669' } }] });
    },

    // The schedule's jobs and their attempts, in the schedule's time zone.
    async runs() {
      const d = await api('GET', '/api/v1/schedule?limit=200');
      const zone = d.timezone || undefined;
      const when = (v) => (v ? new Date(v).toLocaleString(lang, { timeZone: zone, dateStyle: 'short', timeStyle: 'short' }) : '—');
      const st = (s) => (s ? `<span class="st ${esc(s)}">${esc(t(`st_${s}`))}</span>` : '—');
      view().innerHTML = `<h1>${esc(t('nav_runs'))}</h1>
        ${d.error ? `<p class="error" data-testid="schedule-error">${esc(d.error)}</p>` : ''}
        ${d.configured ? '' : `<p class="muted" data-testid="schedule-none">${esc(t('schedule_none'))}</p>`}
        <h2>${esc(t('jobs'))} ${zone ? `<small class="muted">${esc(zone)}</small>` : ''}</h2>
        ${table([t('job'), t('step'), t('cron'), t('next_run'), t('last_run')], d.jobs.map((j) => `<tr><td>${esc(j.job)}${j.enabled ? '' : ` <span class="muted">(${esc(t('disabled'))})</span>`}</td>
          <td>${esc(t(`step_${j.step}`))}</td><td><code>${esc(j.cron)}</code> ${lang === 'en' ? `<span class="muted">${esc(j.cron_description)}</span>` : ''}</td>
          <td>${when(j.next_run)}</td><td>${j.last ? `${st(j.last.status)} ${when(j.last.started_at)}` : '—'}</td></tr>`), 'jobs-table')}
        <h2>${esc(t('attempts'))}</h2>
        ${table(['#', t('job'), t('slot'), { label: t('attempt'), num: true }, t('status'), t('started'), t('finished'), t('result')], d.runs.map((r) => `<tr><td>${r.id}</td><td>${esc(r.job)}</td><td>${when(r.slot)}</td>
          <td class="num">${r.attempt}</td><td>${st(r.status)}</td><td>${when(r.started_at)}</td><td>${when(r.finished_at)}</td>
          <td class="muted">${esc(r.error || '')}${r.retry_at ? ` → ${esc(t('retry_at'))} ${when(r.retry_at)}` : ''}</td></tr>`), 'runs-table')}`;
    },

    async audit() {
      const d = await api('GET', '/api/v1/audit?limit=300');
      view().innerHTML = `<h1>${esc(t('audit'))}</h1>
        ${table([t('at'), t('actor'), t('action'), t('entity'), ''], d.events.map((e) => `<tr><td>${esc(e.at)}</td><td>${esc(e.actor)}</td><td>${esc(e.action)}</td><td>${esc(e.entity)} ${esc(e.entity_id)}</td><td class="muted"><code>${esc(JSON.stringify(e.detail)).slice(0, 160)}</code></td></tr>`), 'audit-table')}`;
    },
  };

  window.addEventListener('hashchange', route);
  window.addEventListener('resize', () => charts.forEach((c) => c.resize()));
  document.addEventListener('DOMContentLoaded', () => {
    $('#lang').addEventListener('change', (e) => {
      lang = e.target.value;
      localStorage.setItem('retain.lang', lang);
      if (!me) view().innerHTML = ''; // the login form is drawn again in the new language
      route();
    });
    $('#logout').addEventListener('click', async () => { try { await api('POST', '/api/v1/logout'); } catch { /* already out */ } me = null; location.hash = ''; renderLogin(); });
    route();
  });
})();
