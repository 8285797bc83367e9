// Kiosk helpers: the PIN keypad (the PIN is posted once, on OK, never sent digit by digit),
// the card-presence hint, the copies stepper, and the inactivity timer that wipes the walk.
(function () {
  "use strict";

  function keypad() {
    var form = document.getElementById("pin-form");
    if (!form) return;
    var value = document.getElementById("pin-value");
    var submit = document.getElementById("pin-submit");
    var dots = form.querySelectorAll(".pin-dots span");
    var digits = "";
    function show() {
      dots.forEach(function (dot, i) { dot.classList.toggle("filled", i < digits.length); });
      submit.disabled = digits.length !== 4;
      value.value = digits;
    }
    form.addEventListener("click", function (event) {
      var key = event.target.closest("button.key");
      if (!key) return;
      if (key.dataset.digit && digits.length < 4) digits += key.dataset.digit;
      else if (key.dataset.key === "back") digits = digits.slice(0, -1);
      else if (key.dataset.key === "clear") digits = "";
      show();
    });
    form.addEventListener("submit", function () {
      submit.disabled = true; // one submission: a double tap must not spend two tries
      setTimeout(function () { digits = ""; dots.forEach(function (d) { d.classList.remove("filled"); }); }, 0);
    });
    show();
  }

  function cardPresence() {
    var place = document.getElementById("card-place");
    if (!place) return;
    var url = place.dataset.stateUrl;
    function poll() {
      fetch(url, { credentials: "same-origin", cache: "no-store" })
        .then(function (r) { return r.ok ? r.json() : null; })
        .then(function (state) { if (state) place.classList.toggle("present", !!state.card); })
        .catch(function () {})
        .finally(function () { setTimeout(poll, 1000); });
    }
    setTimeout(poll, 1000);
  }

  function copiesStepper() {
    document.querySelectorAll("[data-copies]").forEach(function (box) {
      var input = box.querySelector("input");
      box.addEventListener("click", function (event) {
        var button = event.target.closest("button[data-step]");
        if (!button) return;
        var next = Math.min(10, Math.max(1, (parseInt(input.value, 10) || 1) + parseInt(button.dataset.step, 10)));
        input.value = String(next);
      });
    });
  }

  function idleTimer() {
    var main = document.querySelector("[data-kiosk]");
    var cancel = document.getElementById("kiosk-cancel");
    if (!main) return;
    var seconds = parseInt(main.dataset.idleSeconds || "60", 10);
    var timer = null;
    function reset() {
      clearTimeout(timer);
      timer = setTimeout(function () {
        if (cancel) cancel.submit();
        else window.location.href = "/kiosk/" + main.dataset.kiosk + "/";
      }, seconds * 1000);
    }
    ["pointerdown", "keydown", "touchstart"].forEach(function (name) {
      document.addEventListener(name, reset, { passive: true });
    });
    reset();
  }

  function onceForms() {
    var form = document.getElementById("confirm-form");
    if (!form) return;
    form.addEventListener("submit", function () {
      form.querySelectorAll("button").forEach(function (b) { b.disabled = true; });
    });
  }

  // ふりがな: readings over the kanji of questions and procedures (kept for this kiosk's walk).
  function furiganaSwitch() {
    var button = document.querySelector("[data-furigana-switch]");
    if (!button) return;
    button.addEventListener("click", function () {
      var on = button.getAttribute("aria-pressed") !== "true";
      document.cookie = "madoguchi_furigana=" + (on ? "1" : "0") + "; path=/kiosk/; SameSite=Strict";
      window.location.reload();
    });
  }

  // 音声案内: the browser's own speech synthesis (offline voices of the tablet) reads the page's
  // heading, its lead text and any message in red. Never the PIN: key presses are not read.
  function speakable(element) {
    var copy = element.cloneNode(true);
    copy.querySelectorAll("rt, [aria-hidden=true], script").forEach(function (n) { n.remove(); });
    return (copy.textContent || "").replace(/\s+/g, " ").trim();
  }

  function voiceGuidance() {
    var button = document.querySelector("[data-voice-switch]");
    if (!button) return;
    if (!("speechSynthesis" in window)) { button.hidden = true; return; }
    button.addEventListener("click", function () {
      var on = button.getAttribute("aria-pressed") !== "true";
      document.cookie = "madoguchi_voice=" + (on ? "1" : "0") + "; path=/kiosk/; SameSite=Strict";
      button.setAttribute("aria-pressed", on ? "true" : "false");
      window.speechSynthesis.cancel();
      if (on) readPage();
    });
    if (button.getAttribute("aria-pressed") === "true") readPage();
  }

  function readPage() {
    var parts = [];
    document.querySelectorAll("main h1, main .kiosk-lead, main [role=alert]:not([hidden]), main .kiosk-number").forEach(function (el) {
      var text = speakable(el);
      if (text) parts.push(text);
    });
    if (!parts.length) return;
    var utterance = new SpeechSynthesisUtterance(parts.join("。 "));
    utterance.lang = document.documentElement.lang === "en" ? "en-US" : "ja-JP";
    utterance.rate = 0.9; // a little slower for elderly residents
    window.speechSynthesis.speak(utterance);
  }

  document.addEventListener("DOMContentLoaded", function () {
    keypad(); cardPresence(); copiesStepper(); idleTimer(); onceForms(); furiganaSwitch(); voiceGuidance();
  });
})();
