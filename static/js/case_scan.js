// Hand-over QR: a keyboard-wedge reader types the guidance sheet's URL into the focused field and
// presses Enter (the form submits to the server, which reads it). The camera button reads the
// same QR with BarcodeDetector where the browser has it, else with jsQR on frames from the camera.
(function () {
  "use strict";
  var form = document.getElementById("scan-form");
  var field = document.getElementById("scan-code");
  var box = document.getElementById("scan-camera");
  if (!form || !field || !box) return;
  var startButton = document.getElementById("camera-start");
  var stopButton = document.getElementById("camera-stop");
  var stateText = document.getElementById("camera-state");
  var video = document.getElementById("camera-video");
  var canvas = document.getElementById("camera-canvas");
  var stream = null;
  var detector = null;
  var running = false;

  // Focus on load (and again when the page comes back from the cache), selecting what was read
  // last so the next scan replaces it.
  function focusField() { field.focus(); field.select(); }
  focusField();
  window.addEventListener("pageshow", focusField);

  function found(text) {
    stop();
    field.value = text;
    form.submit();
  }

  function stop() {
    running = false;
    if (stream) stream.getTracks().forEach(function (t) { t.stop(); });
    stream = null;
    video.hidden = true;
    stopButton.hidden = true;
    startButton.hidden = false;
    stateText.textContent = "";
  }

  function scanFrame() {
    if (!running) return;
    if (video.readyState < 2) { requestAnimationFrame(scanFrame); return; }
    if (detector) {
      detector.detect(video).then(function (codes) {
        if (codes.length) found(codes[0].rawValue); else setTimeout(scanFrame, 150);
      }, function () { setTimeout(scanFrame, 300); });
      return;
    }
    var width = video.videoWidth, height = video.videoHeight;
    canvas.width = width; canvas.height = height;
    var context = canvas.getContext("2d", { willReadFrequently: true });
    context.drawImage(video, 0, 0, width, height);
    var image = context.getImageData(0, 0, width, height);
    var code = window.jsQR ? window.jsQR(image.data, width, height, { inversionAttempts: "dontInvert" }) : null;
    if (code && code.data) found(code.data); else setTimeout(scanFrame, 150);
  }

  function chooseDetector() {
    if (!("BarcodeDetector" in window)) return Promise.resolve(null);
    return window.BarcodeDetector.getSupportedFormats().then(function (formats) {
      return formats.indexOf("qr_code") >= 0 ? new window.BarcodeDetector({ formats: ["qr_code"] }) : null;
    }, function () { return null; });
  }

  startButton.addEventListener("click", function () {
    if (!navigator.mediaDevices || !navigator.mediaDevices.getUserMedia) {
      stateText.textContent = box.dataset.unsupported;
      return;
    }
    chooseDetector().then(function (d) {
      detector = d;
      if (!detector && !window.jsQR) { stateText.textContent = box.dataset.unsupported; return null; }
      return navigator.mediaDevices.getUserMedia({ video: { facingMode: "environment" }, audio: false });
    }).then(function (media) {
      if (!media) return;
      stream = media;
      video.srcObject = media;
      video.hidden = false;
      startButton.hidden = true;
      stopButton.hidden = false;
      stateText.textContent = box.dataset.looking;
      running = true;
      return video.play().then(scanFrame);
    }).catch(function () {
      stop();
      stateText.textContent = box.dataset.unsupported;
    });
  });
  stopButton.addEventListener("click", function () { stop(); focusField(); });
})();
