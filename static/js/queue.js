// Live certificate queue: listens to the event stream; a new request chimes (unless muted on this
// screen) and flashes a banner; any change re-renders the table from the server, so several
// screens stay in step and a reconnect (EventSource resends Last-Event-ID) loses nothing.
(function () {
  "use strict";
  var section = document.getElementById("queue");
  if (!section) return;
  var state = document.getElementById("live-state");
  var banner = document.getElementById("new-banner");
  var bannerNumber = document.getElementById("new-banner-number");
  var mute = document.getElementById("mute");
  var seen = {};
  var audio = null;
  window.madoguchiChimes = 0; // counted for tests and the operations manual

  function muted() { return localStorage.getItem("madoguchi.queue.muted") === "1"; }
  function showMute() {
    mute.setAttribute("aria-pressed", muted() ? "true" : "false");
    mute.textContent = muted() ? mute.dataset.off : mute.dataset.on;
  }
  mute.addEventListener("click", function () {
    localStorage.setItem("madoguchi.queue.muted", muted() ? "0" : "1");
    showMute();
  });
  showMute();

  function chime() {
    window.madoguchiChimes += 1;
    if (muted()) return;
    try {
      audio = audio || new (window.AudioContext || window.webkitAudioContext)();
      [880, 660].forEach(function (freq, i) {
        var osc = audio.createOscillator();
        var gain = audio.createGain();
        osc.frequency.value = freq;
        gain.gain.setValueAtTime(0.25, audio.currentTime + i * 0.35);
        gain.gain.exponentialRampToValueAtTime(0.001, audio.currentTime + i * 0.35 + 0.3);
        osc.connect(gain).connect(audio.destination);
        osc.start(audio.currentTime + i * 0.35);
        osc.stop(audio.currentTime + i * 0.35 + 0.32);
      });
    } catch (e) { /* no audio device: the banner still flashes */ }
  }

  function refresh() {
    if (window.htmx) window.htmx.ajax("GET", section.dataset.refresh, { target: "#queue-table", swap: "innerHTML" });
  }

  function connect() {
    var source = new EventSource(section.dataset.stream);
    source.onopen = function () { state.textContent = state.dataset.connected; state.classList.add("connected"); };
    source.onerror = function () { state.textContent = state.dataset.reconnecting; state.classList.remove("connected"); };
    source.addEventListener("reload", function () { window.location.reload(); });
    source.addEventListener("certificate.requested", function (message) {
      if (seen[message.lastEventId]) return;
      seen[message.lastEventId] = true;
      var event = JSON.parse(message.data);
      bannerNumber.textContent = event.data.reception_number + " " + event.data.type_label;
      banner.hidden = false;
      banner.classList.remove("flash");
      void banner.offsetWidth;
      banner.classList.add("flash");
      chime();
      refresh();
    });
    source.addEventListener("certificate.state", function () { refresh(); });
  }
  connect();
})();
