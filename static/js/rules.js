// The rules editor: show the line the cursor is on, and jump to a line from a problem's link.
(function () {
  "use strict";
  function setup() {
    document.querySelectorAll("form[data-confirm]").forEach(function (form) {
      form.addEventListener("submit", function (event) {
        if (!window.confirm(form.getAttribute("data-confirm"))) event.preventDefault();
      });
    });
    var text = document.getElementById("text");
    var status = document.getElementById("cursor-line");
    if (!text) return;
    function lineOf(pos) { return text.value.slice(0, pos).split("\n").length; }
    function show() {
      if (status) status.textContent = (document.documentElement.lang === "en" ? "Line " : "") +
        lineOf(text.selectionStart) + (document.documentElement.lang === "en" ? "" : "行目");
    }
    text.addEventListener("keyup", show);
    text.addEventListener("click", show);
    document.querySelectorAll("a[data-line]").forEach(function (link) {
      link.addEventListener("click", function (event) {
        event.preventDefault();
        var line = parseInt(link.getAttribute("data-line"), 10);
        var lines = text.value.split("\n");
        var start = 0;
        for (var i = 0; i < line - 1 && i < lines.length; i++) start += lines[i].length + 1;
        var end = start + (lines[line - 1] || "").length;
        text.focus();
        text.setSelectionRange(start, end);
        var style = window.getComputedStyle(text);
        var height = parseFloat(style.lineHeight) || 18;
        text.scrollTop = Math.max(0, (line - 5) * height);
        show();
      });
    });
  }
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", setup);
  else setup();
})();
