// Life-event case screens (list, floor overview, detail): follow the staff event stream and
// re-render from the server, so several screens stay in step and a reconnect (EventSource resends
// Last-Event-ID) loses nothing. On the list, a new case for this department chimes (unless muted
// on this screen) and flashes a banner.
(function () {
  "use strict";

  // The department picker submits on change; its button is only for browsers without scripts.
  document.querySelectorAll("form[data-autosubmit]").forEach(function (form) {
    var button = form.querySelector("button[type=submit]");
    if (button) button.hidden = true;
    form.addEventListener("change", function () { form.submit(); });
  });
  // Forms that need a second thought (cancelling a case).
  document.querySelectorAll("form[data-confirm]").forEach(function (form) {
    form.addEventListener("submit", function (event) {
      if (!window.confirm(form.dataset.confirm)) event.preventDefault();
    });
  });

  var section = document.getElementById("cases-live");
  if (!section) return;
  var mode = section.dataset.mode;
  var state = document.getElementById("live-state");
  var banner = document.getElementById("new-banner");
  var bannerNumber = document.getElementById("new-banner-number");
  var mute = document.getElementById("mute");
  var department = section.dataset.department || "";
  var caseId = section.dataset.case || "";
  var eventNames = {};
  try { eventNames = JSON.parse(section.dataset.eventNames || "{}"); } catch (e) { eventNames = {}; }
  var seen = {};
  var audio = null;
  window.madoguchiCaseChimes = 0; // counted for tests and the operations manual

  function muted() { return localStorage.getItem("madoguchi.cases.muted") === "1"; }
  function showMute() {
    if (!mute) return;
    mute.setAttribute("aria-pressed", muted() ? "true" : "false");
    mute.textContent = muted() ? mute.dataset.off : mute.dataset.on;
  }
  if (mute) {
    mute.addEventListener("click", function () {
      localStorage.setItem("madoguchi.cases.muted", muted() ? "0" : "1");
      showMute();
    });
    showMute();
  }

  function chime() {
    window.madoguchiCaseChimes += 1;
    if (muted()) return;
    try {
      audio = audio || new (window.AudioContext || window.webkitAudioContext)();
      [660, 880, 990].forEach(function (freq, i) {
        var osc = audio.createOscillator();
        var gain = audio.createGain();
        osc.frequency.value = freq;
        gain.gain.setValueAtTime(0.25, audio.currentTime + i * 0.3);
        gain.gain.exponentialRampToValueAtTime(0.001, audio.currentTime + i * 0.3 + 0.28);
        osc.connect(gain).connect(audio.destination);
        osc.start(audio.currentTime + i * 0.3);
        osc.stop(audio.currentTime + i * 0.3 + 0.3);
      });
    } catch (e) { /* no audio device: the banner still flashes */ }
  }

  var refreshing = false;
  var again = false;
  function refresh() {
    // One request at a time; a burst of events ends with one more refresh, not one per event.
    if (!window.htmx) return;
    if (refreshing) { again = true; return; }
    refreshing = true;
    var target = document.querySelector(section.dataset.target);
    var editing = target && target.contains(document.activeElement) && document.activeElement.tagName === "INPUT";
    if (editing) { refreshing = false; again = false; setTimeout(refresh, 1500); return; }
    window.htmx.ajax("GET", section.dataset.refresh, { target: section.dataset.target, swap: "innerHTML" })
      .then(function () {
        refreshing = false;
        if (again) { again = false; refresh(); }
      }, function () { refreshing = false; });
  }

  function flash(event) {
    if (!banner) return;
    bannerNumber.textContent = event.data.number + " " + (eventNames[event.data.event] || "");
    banner.hidden = false;
    banner.classList.remove("flash");
    void banner.offsetWidth;
    banner.classList.add("flash");
  }

  function concernsMe(data) {
    if (mode === "floor") return true;
    if (mode === "detail") return String(data.case) === caseId;
    return (data.departments || []).indexOf(department) >= 0 ||
      document.querySelector('[data-case-id="' + data.case + '"]') !== null;
  }

  function connect() {
    var source = new EventSource(section.dataset.stream);
    source.onopen = function () { state.textContent = state.dataset.connected; state.classList.add("connected"); };
    source.onerror = function () { state.textContent = state.dataset.reconnecting; state.classList.remove("connected"); };
    source.addEventListener("reload", function () { window.location.reload(); });
    source.addEventListener("case.submitted", function (message) {
      if (seen[message.lastEventId]) return;
      seen[message.lastEventId] = true;
      var event = JSON.parse(message.data);
      if (mode === "list" && (event.data.departments || []).indexOf(department) >= 0) {
        flash(event);
        chime();
      }
      if (concernsMe(event.data)) refresh();
    });
    source.addEventListener("case.progress", function (message) {
      if (seen[message.lastEventId]) return;
      seen[message.lastEventId] = true;
      if (concernsMe(JSON.parse(message.data).data)) refresh();
    });
  }
  connect();
})();
