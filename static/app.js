// Ender: small progressive enhancements. No dependencies; every page works without it.
// Loaded with <script src="/static/app.js" defer>; the CSP forbids inline scripts and eval.
(function () {
  'use strict';

  // (a) Send the CSRF token with every htmx request.
  document.addEventListener('htmx:configRequest', function (evt) {
    var meta = document.querySelector('meta[name="csrf-token"]');
    var token = meta && meta.getAttribute('content');
    if (token) evt.detail.headers['X-CSRF-Token'] = token;
  });

  // (b) Toasts: dismissible, success toasts hide by themselves.
  function dismiss(toast) {
    if (!toast || toast.classList.contains('is-hiding')) return;
    toast.classList.add('is-hiding');
    setTimeout(function () { toast.remove(); }, 200);
  }

  function initToasts(root) {
    var scope = root && root.querySelectorAll ? root : document;
    var toasts = Array.prototype.slice.call(scope.querySelectorAll('#toasts .toast-success'));
    if (scope.matches && scope.matches('#toasts .toast-success')) toasts.push(scope);
    toasts.forEach(function (toast) {
      if (toast.dataset.autohide) return;
      toast.dataset.autohide = '1';
      setTimeout(function () { dismiss(toast); }, 6000);
    });
  }

  // (c) <form data-confirm="message">: ask before submitting (runs before htmx sees the event).
  document.addEventListener('submit', function (evt) {
    var form = evt.target;
    var message = form && form.getAttribute && form.getAttribute('data-confirm');
    if (message && !window.confirm(message)) {
      evt.preventDefault();
      evt.stopPropagation();
    }
  }, true);

  // (d) <button data-copy="#selector">: copy the target's text.
  function copyFallback(text) {
    var area = document.createElement('textarea');
    area.value = text;
    area.setAttribute('readonly', '');
    area.className = 'visually-hidden';
    document.body.appendChild(area);
    area.select();
    var ok = document.execCommand('copy');
    area.remove();
    if (!ok) throw new Error('copy failed');
  }

  function copyText(text) {
    if (navigator.clipboard && window.isSecureContext) {
      return navigator.clipboard.writeText(text).catch(function () { copyFallback(text); });
    }
    return new Promise(function (resolve) { copyFallback(text); resolve(); });
  }

  document.addEventListener('click', function (evt) {
    var close = evt.target.closest('.toast-close');
    if (close) { dismiss(close.closest('.toast')); return; }
    if (evt.target.closest('[data-print]')) { evt.preventDefault(); window.print(); return; }

    var button = evt.target.closest('[data-copy]');
    if (!button) return;
    var target = document.querySelector(button.getAttribute('data-copy'));
    if (!target) return;
    evt.preventDefault();
    var text = target.matches('input, textarea') ? target.value : target.textContent;
    copyText(text.trim()).then(function () {
      if (!button.dataset.label) button.dataset.label = button.textContent;
      button.textContent = 'Copied';
      clearTimeout(button._copyTimer);
      button._copyTimer = setTimeout(function () { button.textContent = button.dataset.label; }, 1500);
    }).catch(function () { /* leave the label; the text is still selectable */ });
  });

  document.addEventListener('DOMContentLoaded', function () { initToasts(document); });
  document.addEventListener('htmx:load', function (evt) { initToasts(evt.target); });
})();

// Scheduled sends: a new form starts in the browser's time zone (the server's default is
// UTC), and typing a cron expression switches the pattern to "custom".
(function () {
  'use strict';

  function guessTimezone() {
    var input = document.querySelector('input[data-browser-timezone]');
    if (!input || !window.Intl) return;
    var zone = Intl.DateTimeFormat().resolvedOptions().timeZone;
    if (!zone || zone === input.value) return;
    input.value = zone;
    input.dispatchEvent(new Event('input', { bubbles: true }));
  }

  document.addEventListener('input', function (evt) {
    if (!evt.target || evt.target.id !== 'cron_expression') return;
    var pattern = document.getElementById('pattern');
    if (pattern) pattern.value = 'custom';
  });

  document.addEventListener('DOMContentLoaded', guessTimezone);
})();
