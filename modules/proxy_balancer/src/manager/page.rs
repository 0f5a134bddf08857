//! The balancer-manager page: one self-contained HTML document (inline CSS
//! and JS, no external assets) that polls the JSON API every second and
//! posts changes with the page's token in `X-Modproxy-Token`.

/// The page for a manager whose JSON API is at `api`, with CSRF `token`.
pub fn render(api: &str, token: &str) -> String {
    PAGE.replace("{{API}}", &escape(api))
        .replace("{{TOKEN}}", &escape(token))
}

/// HTML attribute escaping for the two values we insert.
fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('"', "&quot;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

const PAGE: &str = r#"<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta name="modproxy-token" content="{{TOKEN}}">
<meta name="modproxy-api" content="{{API}}">
<title>modproxy balancer manager</title>
<style>
body{font-family:system-ui,sans-serif;margin:1.5em;color:#222}
h1{font-size:1.4em;margin:0 0 .2em} h2{font-size:1.15em;margin:1.4em 0 .3em}
table{border-collapse:collapse;margin:.4em 0} th,td{border:1px solid #ccc;padding:.25em .5em;text-align:left;font-size:.9em}
th{background:#f0f0f0} td.num{text-align:right;font-variant-numeric:tabular-nums}
.ok{color:#17702a;font-weight:600} .disabled,.stopped,.error,.removed,.stale{color:#b3261e;font-weight:600} .draining,.standby{color:#8a5a00;font-weight:600}
input[type=number]{width:4em} input[type=text]{width:6em} button{margin:0 .1em}
#msg{min-height:1.3em;color:#b3261e} .muted{color:#666;font-size:.85em}
</style></head>
<body>
<h1>Balancer manager</h1>
<div class="muted">Live: refreshes every second from <code id="api"></code>. <span id="updated"></span></div>
<div id="msg" role="status"></div>
<div id="balancers">Loading…</div>
<script>
"use strict";
const TOKEN = document.querySelector('meta[name="modproxy-token"]').content;
const API = document.querySelector('meta[name="modproxy-api"]').content;
document.getElementById('api').textContent = API;
const esc = s => String(s).replace(/[&<>"]/g, c => ({'&':'&amp;','<':'&lt;','>':'&gt;','"':'&quot;'}[c]));
let state = null;

async function post(change) {
  const r = await fetch(API, {method: 'POST', headers: {'Content-Type': 'application/json', 'X-Modproxy-Token': TOKEN}, body: JSON.stringify(change)});
  const body = await r.json().catch(() => ({}));
  document.getElementById('msg').textContent = r.ok ? '' : (body.error || ('HTTP ' + r.status));
  if (r.ok) { state = body; render(); }
}

function memberRow(b, m) {
  const act = (label, status) => `<button data-b="${esc(b.name)}" data-m="${esc(m.url)}" data-status="${status}">${label}</button>`;
  const admin = m.status.replace(/\+[EIRC]/g, '');
  const c = m.hcheck;
  const check = c ? ` <small title="${esc(c.reason)}">${esc(c.method)} ${c.last_result}, ${c.consecutive_passes} pass / ${c.consecutive_fails} fail in a row${c.reason ? ': ' + esc(c.reason) : ''}</small>` : '';
  const buttons = [
    admin.includes('+D') ? act('Enable', '-D') : act('Disable', '+D'),
    admin.includes('+N') ? act('Undrain', '-N') : act('Drain', '+N'),
    admin.includes('+H') ? act('Unstandby', '-H') : act('Standby', '+H'),
  ].join('');
  return `<tr data-member="${esc(m.url)}">
    <td>${esc(m.url)}${m.source !== 'config' ? ` <small class="muted">${esc(m.source)}</small>` : ''}</td>
    <td><input type="text" name="route" value="${esc(m.route)}" aria-label="route of ${esc(m.url)}"></td>
    <td><input type="number" name="loadfactor" min="1" max="100" value="${m.loadfactor}" aria-label="loadfactor of ${esc(m.url)}"></td>
    <td><input type="number" name="lbset" min="0" value="${m.lbset}" aria-label="lbset of ${esc(m.url)}"></td>
    <td>${esc(m.status || '-')}</td><td class="${m.state}">${m.state}</td>
    <td class="num">${m.elected}</td><td class="num">${m.busy}</td><td class="num">${m.lbstatus}</td>
    <td class="num">${m.bytes_to}</td><td class="num">${m.bytes_from}</td>
    <td class="num">${m.errors}</td><td>${esc(m.last_error || '-')}</td><td>${m.health}${check}</td>
    <td>${buttons}<button data-b="${esc(b.name)}" data-m="${esc(m.url)}" data-save="1">Save</button></td></tr>`;
}

function balancerBlock(b) {
  const options = state.lbmethods.map(n => `<option${n === b.lbmethod ? ' selected' : ''}>${esc(n)}</option>`).join('');
  const d = b.discovery;
  const source = d ? `<div class="${d.stale_since ? 'stale' : 'muted'}" data-discovery="${esc(b.name)}">members from ${esc(d.source)}: ${esc(d.state)}</div>` : '';
  return `<h2>balancer://${esc(b.name)}</h2>${source}
  <table><tr><th>lbmethod</th><th>sticky session</th><th>failover</th><th>maxattempts</th><th>failonstatus</th><th>failontimeout</th><th>forcerecovery</th><th>timeout</th></tr>
  <tr><td><select data-lbmethod="${esc(b.name)}" aria-label="lbmethod of ${esc(b.name)}">${options}</select></td>
  <td>${esc(b.sticky_session || '(none)')}</td><td>${b.nofailover ? 'off' : 'on'}</td><td class="num">${b.maxattempts}</td>
  <td>${esc(b.failonstatus.join(', ') || '-')}</td><td>${b.failontimeout}</td><td>${b.forcerecovery}</td><td class="num">${b.timeout}</td></tr></table>
  <table><tr><th>Member</th><th>Route</th><th>Factor</th><th>Set</th><th>Status</th><th>State</th><th>Elected</th><th>Busy</th><th>Load</th><th>To</th><th>From</th><th>Errors</th><th>Last error</th><th>Health</th><th>Actions</th></tr>
  ${b.members.map(m => memberRow(b, m)).join('')}</table>`;
}

function render() {
  const root = document.getElementById('balancers');
  // Do not rebuild under the operator's cursor while they edit a field.
  if (root.contains(document.activeElement) && document.activeElement.matches('input,select')) return;
  root.innerHTML = state.balancers.length ? state.balancers.map(balancerBlock).join('') : '<p>No balancers are configured.</p>';
  document.getElementById('updated').textContent = 'Updated ' + new Date().toLocaleTimeString();
}

async function refresh() {
  try {
    const r = await fetch(API, {headers: {'Accept': 'application/json'}, cache: 'no-store'});
    if (!r.ok) throw new Error('HTTP ' + r.status);
    state = await r.json();
    render();
  } catch (e) {
    document.getElementById('msg').textContent = 'Cannot reach the server: ' + e.message;
  }
}

document.addEventListener('click', ev => {
  const t = ev.target.closest('button');
  if (!t) return;
  if (t.dataset.status) post({balancer: t.dataset.b, member: t.dataset.m, set: {status: t.dataset.status}});
  if (t.dataset.save) {
    const row = t.closest('tr');
    const val = n => row.querySelector(`input[name="${n}"]`).value;
    post({balancer: t.dataset.b, member: t.dataset.m, set: {route: val('route'), loadfactor: Number(val('loadfactor')), lbset: Number(val('lbset'))}});
  }
});
document.addEventListener('change', ev => {
  const s = ev.target.closest('select[data-lbmethod]');
  if (s) { post({balancer: s.dataset.lbmethod, lbmethod: s.value}); s.blur(); }
});
refresh();
setInterval(refresh, 1000);
</script>
</body></html>
"#;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_and_api_are_embedded_escaped() {
        let html = render("/bm/api", "ab\"<");
        assert!(html.contains(r#"content="ab&quot;&lt;""#));
        assert!(html.contains(r#"content="/bm/api""#));
        assert!(!html.contains("{{"), "every placeholder is filled");
        assert!(
            !html.contains("http://") && !html.contains("https://"),
            "no external assets"
        );
    }
}
