// botwatch status page: refresh a board in place every few seconds (no reload; forms outside it are kept)
(function () {
  "use strict";
  function refresh(box) {
    var every = (parseInt(box.dataset.every, 10) || 5) * 1000;
    function tick() {
      if (document.hidden) { return setTimeout(tick, every); }
      fetch(box.dataset.refresh, {credentials: "same-origin", headers: {"Accept": "text/html"}, redirect: "manual"})
        .then(function (response) {
          if (response.type === "opaqueredirect" || response.status === 401 || response.status === 403) {
            box.insertAdjacentHTML("afterbegin", '<p class="note">Logged out: <a href="/login?next=' +
              encodeURIComponent(location.pathname) + '">log in</a> again to see it live.</p>');
            return null;
          }
          return response.ok ? response.text() : Promise.reject(response.status);
        })
        .then(function (html) {
          if (html === null) { return; }
          box.innerHTML = html;
          box.removeAttribute("data-stale");
          setTimeout(tick, every);
        })
        .catch(function () { box.setAttribute("data-stale", "1"); setTimeout(tick, every); });
    }
    setTimeout(tick, every);
  }
  document.querySelectorAll("[data-refresh]").forEach(refresh);
})();
