// Handwritten signature pad (templates/_signature_pad.html). Pointer Events only.
//
// Strokes are kept as vectors [[[x, y, t, p], …], …]: CSS pixels of the pad, t in ms since the
// stroke began, p the pressure 0..1. A pen's own pressure is used as the browser reports it; for
// touch and mouse (pressure 0 or the 0.5 default) a pressure is worked out from the speed, fast
// strokes thinner, and smoothed. The pad redraws from the vectors when it is resized, so nothing
// is lost when a tablet turns. The JSON goes into the hidden input named by data-signature-input
// and a bubbling "signature:change" event follows every change; app/domain/signature.py checks it.
//
// One global only: window.MadoguchiSignature. Pads are set up on DOMContentLoaded and on
// htmx:load, so pads in HTMX-swapped content work too.
(function () {
  "use strict";
  if (window.MadoguchiSignature) return; // loaded twice (e.g. a swapped fragment): keep the first

  var MIN_WIDTH = 0.9; // line width in CSS px at pressure 0
  var MAX_WIDTH = 4.6; // … at pressure 1
  var SLOW = 0.05; // px/ms: this slow or slower gives the heaviest virtual pressure
  var FAST = 2.5; // px/ms: this fast or faster gives the lightest
  var HEAVY = 0.8;
  var LIGHT = 0.2;
  var SMOOTHING = 0.35; // share of the new target per point (exponential smoothing)
  var MAX_STROKES = 200; // as app/domain/signature.py
  var MAX_POINTS = 20000;
  var pads = new WeakMap();

  function round(value, places) {
    var f = Math.pow(10, places);
    return Math.round(value * f) / f;
  }

  function clamp(value, low, high) {
    return Math.min(high, Math.max(low, value));
  }

  function Pad(root) {
    this.root = root;
    this.surface = root.querySelector("[data-signature-surface]");
    this.canvas = root.querySelector("canvas");
    this.ctx = this.canvas.getContext("2d");
    var form = root.closest("form");
    var name = root.getAttribute("data-signature-input");
    this.input = (form || root).querySelector('input[type="hidden"][name="' + name + '"]') ||
      root.querySelector('input[type="hidden"]');
    this.undoButton = root.querySelector("[data-signature-undo]");
    this.clearButton = root.querySelector("[data-signature-clear]");
    this.error = root.querySelector("[data-signature-error]");
    this.strokes = []; // [{type, points: [[x, y, t, p], …]}] in the reference space below
    this.current = null;
    this.pointerId = null;
    // The size strokes are recorded in: the pad's size when the first stroke began. After a
    // resize, drawing scales to fit, and new points are mapped back into this space.
    this.refWidth = 0;
    this.refHeight = 0;
    this.scale = 1;
    this.cssWidth = 0;
    this.cssHeight = 0;
    this.load();
    this.bind();
    this.resize();
    this.update(false);
  }

  Pad.prototype.load = function () {
    // A page re-rendered after an error elsewhere hands the signature back: show it again.
    if (!this.input || !this.input.value) return;
    try {
      var data = JSON.parse(this.input.value);
      if (!data || !Array.isArray(data.strokes)) return;
      this.refWidth = Number(data.width) || 0;
      this.refHeight = Number(data.height) || 0;
      var type = data.pointer_type || "";
      this.strokes = data.strokes.filter(Array.isArray).map(function (points) {
        return { type: type, points: points.filter(function (pt) { return Array.isArray(pt) && pt.length === 4; }) };
      });
    } catch (e) {
      this.strokes = [];
    }
  };

  Pad.prototype.bind = function () {
    var self = this;
    var canvas = this.canvas;
    canvas.style.touchAction = "none";
    canvas.addEventListener("pointerdown", function (e) { self.down(e); });
    canvas.addEventListener("pointermove", function (e) { self.move(e); });
    canvas.addEventListener("pointerup", function (e) { self.up(e); });
    canvas.addEventListener("pointercancel", function (e) { self.up(e); });
    canvas.addEventListener("lostpointercapture", function (e) { self.up(e); });
    if (this.undoButton) this.undoButton.addEventListener("click", function () { self.undo(); });
    if (this.clearButton) this.clearButton.addEventListener("click", function () { self.clear(); });
    // Zooming changes the pad's CSS size too, so the observer also catches devicePixelRatio changes.
    if (window.ResizeObserver) {
      this.observer = new ResizeObserver(function () { self.resize(); });
      this.observer.observe(this.surface);
    } else {
      window.addEventListener("resize", function () { self.resize(); });
    }
    var form = this.root.closest("form");
    if (form && this.root.getAttribute("data-required") === "true") {
      form.addEventListener("submit", function (e) {
        if (self.strokes.length) return;
        e.preventDefault();
        self.showError(self.root.getAttribute("data-message-empty") || "");
      });
    }
  };

  Pad.prototype.resize = function () {
    // The canvas fills the surface inside its border: the client box, not the bounding box.
    var width = Math.max(1, this.surface.clientWidth);
    var height = Math.max(1, this.surface.clientHeight);
    var dpr = window.devicePixelRatio || 1;
    if (width === this.cssWidth && height === this.cssHeight && dpr === this.dpr) return;
    this.cssWidth = width;
    this.cssHeight = height;
    this.dpr = dpr;
    this.canvas.width = Math.round(width * dpr);
    this.canvas.height = Math.round(height * dpr);
    this.canvas.style.width = width + "px";
    this.canvas.style.height = height + "px";
    if (!this.strokes.length && !this.current) {
      this.refWidth = width;
      this.refHeight = height;
    }
    this.scale = Math.min(width / this.refWidth, height / this.refHeight) || 1;
    this.redraw();
  };

  Pad.prototype.lineWidth = function (p) {
    return (MIN_WIDTH + (MAX_WIDTH - MIN_WIDTH) * p) * this.scale;
  };

  Pad.prototype.redraw = function () {
    var ctx = this.ctx;
    ctx.setTransform(1, 0, 0, 1, 0, 0);
    ctx.clearRect(0, 0, this.canvas.width, this.canvas.height);
    ctx.setTransform(this.dpr, 0, 0, this.dpr, 0, 0);
    var self = this;
    this.strokes.forEach(function (stroke) { self.drawStroke(stroke.points, 0); });
    if (this.current) this.drawStroke(this.current.points, 0);
  };

  // Draws the segments of `points` from index `from` (a dot for a one-point stroke).
  Pad.prototype.drawStroke = function (points, from) {
    var ctx = this.ctx;
    var s = this.scale;
    ctx.strokeStyle = "#000";
    ctx.fillStyle = "#000";
    ctx.lineCap = "round";
    ctx.lineJoin = "round";
    if (points.length === 1 && from === 0) {
      ctx.beginPath();
      ctx.arc(points[0][0] * s, points[0][1] * s, this.lineWidth(points[0][3]) / 2, 0, Math.PI * 2);
      ctx.fill();
      return;
    }
    for (var i = Math.max(1, from); i < points.length; i++) {
      var a = points[i - 1];
      var b = points[i];
      ctx.beginPath();
      ctx.lineWidth = this.lineWidth((a[3] + b[3]) / 2);
      ctx.moveTo(a[0] * s, a[1] * s);
      ctx.lineTo(b[0] * s, b[1] * s);
      ctx.stroke();
    }
  };

  Pad.prototype.countPoints = function () {
    return this.strokes.reduce(function (n, stroke) { return n + stroke.points.length; }, 0);
  };

  Pad.prototype.down = function (e) {
    if (this.current) {
      // Palm rejection: while one pointer draws, others are ignored; a pen beats a finger.
      if (e.pointerType !== "pen" || this.current.type === "pen") return;
      this.finish();
    }
    if (e.button !== undefined && e.button > 0) return; // right or middle mouse button
    if (this.strokes.length >= MAX_STROKES || this.countPoints() >= MAX_POINTS) return;
    e.preventDefault();
    if (!this.strokes.length) {
      this.refWidth = this.cssWidth;
      this.refHeight = this.cssHeight;
      this.scale = 1;
    }
    this.pointerId = e.pointerId;
    try { this.canvas.setPointerCapture(e.pointerId); } catch (err) { /* synthetic or gone */ }
    this.current = { type: e.pointerType || "mouse", points: [], start: e.timeStamp, last: null, p: 0.5 };
    this.hideError();
    this.root.classList.add("signing");
    this.add(e);
  };

  Pad.prototype.move = function (e) {
    if (!this.current || e.pointerId !== this.pointerId) return;
    e.preventDefault();
    var events = typeof e.getCoalescedEvents === "function" ? e.getCoalescedEvents() : [];
    if (!events || !events.length) events = [e];
    var from = this.current.points.length;
    for (var i = 0; i < events.length; i++) this.add(events[i]);
    this.drawStroke(this.current.points, Math.max(1, from));
  };

  Pad.prototype.up = function (e) {
    if (!this.current || e.pointerId !== this.pointerId) return;
    if (e.type === "pointerup") this.add(e);
    this.finish();
  };

  Pad.prototype.finish = function () {
    var stroke = this.current;
    this.current = null;
    this.pointerId = null;
    this.root.classList.remove("signing");
    if (!stroke || !stroke.points.length) return;
    if (stroke.points.length === 1) this.drawStroke(stroke.points, 0);
    this.strokes.push({ type: stroke.type, points: stroke.points });
    this.update(true);
  };

  // One point from a pointer event: position in the reference space, time, pressure.
  Pad.prototype.add = function (e) {
    var stroke = this.current;
    if (this.countPoints() + stroke.points.length >= MAX_POINTS) return;
    var rect = this.canvas.getBoundingClientRect();
    var x = clamp((e.clientX - rect.left) / this.scale, 0, this.refWidth);
    var y = clamp((e.clientY - rect.top) / this.scale, 0, this.refHeight);
    var t = Math.max(0, e.timeStamp - stroke.start);
    var last = stroke.last;
    if (last && t < last.t) t = last.t; // coalesced events may carry one time for several points
    var pen = stroke.type === "pen" && e.pressure > 0;
    // No movement adds nothing, except a pen pressing harder or softer in one place.
    if (last && last.x === x && last.y === y && (!pen || e.pressure === last.p)) return;
    var p;
    if (pen) p = e.pressure; // the pen's own pressure, at full precision until the JSON is written
    else if (e.type === "pointerup" && last) p = last.p; // lifted: no speed and no pressure to read
    else p = this.virtualPressure(stroke, x, y, t);
    stroke.last = { x: x, y: y, t: t, p: p };
    stroke.points.push([x, y, t, p]);
  };

  Pad.prototype.virtualPressure = function (stroke, x, y, t) {
    var last = stroke.last;
    if (!last) { stroke.p = 0.5; return stroke.p; }
    var dt = t - last.t;
    if (dt <= 0) return stroke.p; // same instant: speed unknown, keep the smoothed value
    var speed = Math.hypot(x - last.x, y - last.y) * this.scale / dt; // screen px per ms
    var k = clamp((speed - SLOW) / (FAST - SLOW), 0, 1);
    var target = HEAVY + (LIGHT - HEAVY) * k;
    stroke.p = stroke.p + (target - stroke.p) * SMOOTHING;
    return stroke.p;
  };

  Pad.prototype.undo = function () {
    if (!this.strokes.length) return;
    this.strokes.pop();
    this.redraw();
    this.update(true);
  };

  Pad.prototype.clear = function () {
    if (!this.strokes.length && !this.current) return;
    this.strokes = [];
    this.current = null;
    this.refWidth = this.cssWidth;
    this.refHeight = this.cssHeight;
    this.scale = 1;
    this.redraw();
    this.update(true);
  };

  Pad.prototype.value = function () {
    if (!this.strokes.length) return null;
    var counts = {};
    var best = "";
    this.strokes.forEach(function (stroke) {
      counts[stroke.type] = (counts[stroke.type] || 0) + stroke.points.length;
      if (!best || counts[stroke.type] > counts[best]) best = stroke.type;
    });
    return {
      width: round(this.refWidth, 1),
      height: round(this.refHeight, 1),
      pointer_type: best,
      strokes: this.strokes.map(function (stroke) {
        // 0.1 px, whole ms, pressure to 4 places (a 4,096-level pen's steps stay apart).
        return stroke.points.map(function (pt) {
          return [round(pt[0], 1), round(pt[1], 1), Math.round(pt[2]), round(pt[3], 4)];
        });
      }),
    };
  };

  Pad.prototype.update = function (changed) {
    var value = this.value();
    var empty = !value;
    if (this.input) this.input.value = empty ? "" : JSON.stringify(value);
    if (this.undoButton) this.undoButton.disabled = empty;
    if (this.clearButton) this.clearButton.disabled = empty;
    this.root.classList.toggle("has-ink", !empty);
    if (changed) {
      this.root.dispatchEvent(new CustomEvent("signature:change", {
        bubbles: true,
        detail: { empty: empty, strokes: this.strokes.length, value: value },
      }));
    }
  };

  Pad.prototype.showError = function (message) {
    if (!this.error || !message) return;
    this.error.textContent = message;
    this.error.hidden = false;
  };

  Pad.prototype.hideError = function () {
    if (!this.error) return;
    this.error.hidden = true;
    this.error.textContent = "";
  };

  function init(scope) {
    var root = scope || document;
    var found = [];
    if (root.matches && root.matches("[data-signature-pad]")) found.push(root);
    if (root.querySelectorAll) {
      Array.prototype.push.apply(found, root.querySelectorAll("[data-signature-pad]"));
    }
    found.forEach(function (el) {
      if (!pads.has(el)) pads.set(el, new Pad(el));
    });
  }

  window.MadoguchiSignature = {
    init: init,
    // The pad object for a pad element (for page scripts: .value(), .clear(), .undo()).
    get: function (el) { return pads.get(el) || null; },
  };

  document.addEventListener("htmx:load", function (e) { init(e.target); });
  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", function () { init(document); });
  } else {
    init(document);
  }
})();
