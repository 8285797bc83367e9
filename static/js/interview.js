// Interview mode: after each autosave the server sends the problems of every field
// (#field-problems); fields outside the swapped part are marked or cleared to match, so a field
// that was fixed stops showing its message and a new problem shows at its field at once.
(function () {
  "use strict";

  function sync() {
    var data = document.getElementById("field-problems");
    if (!data) return;
    var problems = {};
    try { problems = JSON.parse(data.textContent || "{}"); } catch (e) { return; }
    document.querySelectorAll("[data-field]").forEach(function (box) {
      var name = box.dataset.field;
      var message = problems[name];
      var input = box.querySelector("input, select, textarea");
      var note = box.querySelector(".field-problem");
      box.classList.toggle("has-problem", !!message);
      if (message) {
        if (!note) {
          note = document.createElement("p");
          note.className = "field-problem error";
          note.id = name + "-problem";
          box.appendChild(note);
        }
        note.textContent = message;
        if (input) { input.setAttribute("aria-invalid", "true"); input.setAttribute("aria-describedby", note.id); }
      } else {
        if (note) note.remove();
        if (input) { input.removeAttribute("aria-invalid"); input.removeAttribute("aria-describedby"); }
      }
    });
  }

  document.addEventListener("htmx:afterSettle", sync);
})();
